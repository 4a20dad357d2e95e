# METADATA
# description: Tests of the subject-level rules R6, R7, R11, R12, R13, R14 (subjects are left out, the share goes on).
package sharing_test

import rego.v1

bank_consent := consent("payco", "payment", "SHARE", ["user.financial.bank_account"])

payment_input := object.union(vendor_input, {
	"request": object.union(vendor_input.request, {"purpose": "payment", "categories": ["user.account.id", "user.financial.bank_account"]}),
	"recipient": object.union(vendor_input.recipient, {
		"id": "payco",
		"agreement": {"purposes": ["payment"], "categories": ["user.account.id", "user.financial.bank_account"], "expires": "2027-12-31", "binds_policy": false},
	}),
})

test_r6_allows_sensitive_category_with_consent if {
	d := data.sharing.decision with input as payment_input with input.subjects as [object.union(adult, {"consents": [bank_consent]})]
	d.allow
	count(d.excluded) == 0
}

test_r6_excludes_subject_without_sensitive_consent if {
	other := object.union(adult, {"ref": "1", "consents": [bank_consent]})
	d := data.sharing.decision with input as payment_input with input.subjects as [adult, other]
	d.allow
	"R6.sensitive_without_consent" in excluded_codes(d, "0")
	count(excluded_codes(d, "1")) == 0
}

test_r6_user_initiated_transaction_to_own_merchant_needs_no_consent if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "order_fulfilment"
		with input.request.legal_basis.kind as "USER_INITIATED"
		with input.request.categories as ["user.name", "user.transaction"]
		with input.recipient.kind as "MERCHANT"
		with input.recipient.agreement.purposes as ["order_fulfilment"]
		with input.recipient.agreement.categories as ["user.name", "user.transaction"]
		with input.subjects as [object.union(adult, {"all_records_in_orders": true, "orders": [{"id": "o1", "merchant": "shipco", "fulfilment": [], "cross_border": false}]})]
	d.allow
}

test_r6_user_initiated_excludes_subject_without_own_order if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "order_fulfilment"
		with input.request.legal_basis.kind as "USER_INITIATED"
		with input.request.categories as ["user.name", "user.transaction"]
		with input.recipient.kind as "MERCHANT"
		with input.recipient.agreement.purposes as ["order_fulfilment"]
		with input.recipient.agreement.categories as ["user.name", "user.transaction"]
		with input.subjects as [object.union(adult, {"all_records_in_orders": true, "orders": [{"id": "o1", "merchant": "elsewhere", "fulfilment": [], "cross_border": false}]})]
	not d.allow
	"R6.not_own_order" in excluded_codes(d, "0")
}

affiliate_input := object.union(vendor_input, {
	"request": object.union(vendor_input.request, {"purpose": "research", "legal_basis": {"kind": "AFFILIATE_SERVICE", "reference": "", "exemption_code": ""}, "categories": ["user.behavior"]}),
	"recipient": {
		"id": "sister", "kind": "AFFILIATE", "active": true, "region": "CN",
		"agreement": {"purposes": ["research", "recommendation"], "categories": ["user.behavior"], "expires": "2027-12-31", "binds_policy": false},
		"security_review_expires": "", "dpa_expires": "",
	},
})

test_r7_allows_affiliate_purpose_change_with_fresh_consent if {
	c := consent("sister", "research", "SHARE", ["user.behavior"])
	d := data.sharing.decision with input as affiliate_input with input.subjects as [object.union(adult, {"consents": [c]})]
	d.allow
}

test_r7_excludes_subject_without_fresh_consent if {
	d := data.sharing.decision with input as affiliate_input
	not d.allow
	"R7.purpose_change_without_consent" in excluded_codes(d, "0")
}

test_r7_declared_affiliate_purpose_needs_no_fresh_consent if {
	d := data.sharing.decision with input as affiliate_input with input.request.purpose as "recommendation"
	d.allow
}

test_r11_allows_child_with_scoped_guardian_consent_alone if {
	c := guardian_consent("shipco", "delivery", "SHARE", ["user.name", "user.contact.phone", "user.contact.address"])
	child := object.union(adult, {"age": 12, "consents": [c]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [child]
	d.allow
	count(d.excluded) == 0
}

test_r11_child_own_consent_does_not_count if {
	c := consent("shipco", "delivery", "SHARE", ["user.name", "user.contact.phone", "user.contact.address"])
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": 12, "consents": [c]})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_guardian_consent_for_fewer_categories_does_not_cover if {
	c := guardian_consent("shipco", "delivery", "SHARE", ["user.name"])
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": 16, "consents": [c]})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_sixteen_is_a_minor if {
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"age": 16})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_eighteen_is_not_a_minor if {
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"age": 18})]
	d.allow
}

test_r11_minor_own_order_needs_no_guardian_consent if {
	order := {"id": "o1", "merchant": "shop", "fulfilment": ["shipco"], "cross_border": false}
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"age": 16, "all_records_in_orders": true, "orders": [order]})]
	d.allow
}

test_r11_child_own_order_still_needs_guardian_consent if {
	order := {"id": "o1", "merchant": "shop", "fulfilment": ["shipco"], "cross_border": false}
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"age": 14, "all_records_in_orders": true, "orders": [order]})]
	not d.allow
	excluded_codes(d, "0") == {"R11.no_guardian_consent", "R6.sensitive_without_consent"}
}

test_r11_minor_data_outside_the_order_needs_guardian_consent if {
	order := {"id": "o1", "merchant": "shop", "fulfilment": ["shipco"], "cross_border": false}
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"age": 16, "all_records_in_orders": false, "orders": [order]})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_excludes_child_without_guardian_consent if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": 14})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_fifteen_is_a_minor_but_not_a_child if {
	c := guardian_consent("shipco", "delivery", "SHARE", ["user.name", "user.contact.phone", "user.contact.address"])
	d := data.sharing.decision with input as payment_input
		with input.request.categories as ["user.account.id"]
		with input.subjects as [object.union(adult, {"age": 15, "consents": [c]})]
	not d.allow
	excluded_codes(d, "0") == {"R11.no_guardian_consent"}
}

test_r11_unknown_age_is_presumed_capable if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": null})]
	d.allow
	count(d.excluded) == 0
}

test_r11_legal_obligation_needs_no_guardian_consent if {
	d := data.sharing.decision with input as authority_input
		with input.subjects as [in_scope(object.union(adult, {"age": 9}))]
	d.allow
}

cross_consent := consent("shipco", "delivery", "CROSS_BORDER", ["user.name", "user.contact.phone", "user.contact.address"])

test_r12_allows_cross_border_with_authorisation if {
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"consents": [cross_consent]})]
	d.allow
}

test_r12_allows_cross_border_transaction_started_by_subject if {
	order := {"id": "o9", "merchant": "shop", "fulfilment": ["shipco"], "cross_border": true}
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"all_records_in_orders": true, "orders": [order]})]
	d.allow
	d.cross_border == {"applies": true, "region": "SG", "exceptions": {"0": "transaction"}}
}

test_r12_cross_border_transaction_covers_only_that_transaction if {
	order := {"id": "o9", "merchant": "shop", "fulfilment": ["shipco"], "cross_border": true}
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"all_records_in_orders": false, "orders": [order]})]
	not d.allow
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r12_cross_border_transaction_covers_only_its_parties if {
	order := {"id": "o9", "merchant": "shop", "fulfilment": ["othership"], "cross_border": true}
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"all_records_in_orders": true, "orders": [order]})]
	not d.allow
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r12_cross_border_transaction_covers_no_other_purpose if {
	order := {"id": "o9", "merchant": "shipco", "fulfilment": [], "cross_border": true}
	d := data.sharing.decision with input as payment_input
		with input.recipient.id as "shipco"
		with input.request.categories as ["user.account.id"]
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"all_records_in_orders": true, "orders": [order]})]
	not d.allow
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r12_consent_may_cover_all_categories if {
	c := all_consent("shipco", "delivery", "CROSS_BORDER")
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"consents": [c]})]
	d.allow
	d.cross_border == {"applies": true, "region": "SG", "exceptions": {"0": "consent"}}
	d.consents == {"0": ["c:shipco:delivery:CROSS_BORDER"]}
}

test_r12_consent_with_empty_category_list_covers_nothing if {
	c := consent("shipco", "delivery", "CROSS_BORDER", [])
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"consents": [c]})]
	not d.allow
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r12_law_exception_is_named if {
	d := data.sharing.decision with input as authority_input
		with input.request.destination_region as "HK"
	d.allow
	d.cross_border == {"applies": true, "region": "HK", "exceptions": {"0": "law"}}
}

test_r12_domestic_share_names_no_exception if {
	d := data.sharing.decision with input as vendor_input
	d.cross_border == {"applies": false, "region": "CN", "exceptions": {}}
}

test_r12_excludes_subject_without_authorisation if {
	d := data.sharing.decision with input as vendor_input with input.request.destination_region as "US"
	not d.allow
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r12_empty_region_counts_as_abroad if {
	d := data.sharing.decision with input as vendor_input with input.request.destination_region as ""
	"R12.cross_border_not_authorised" in excluded_codes(d, "0")
}

test_r13_keeps_subject_who_did_not_opt_out if {
	d := data.sharing.decision with input as ad_input
	d.allow
	count(d.excluded) == 0
}

test_r13_excludes_opted_out_subject_from_ad_partner_share if {
	other := object.union(adult, {"ref": "1", "ad_opt_out": true})
	d := data.sharing.decision with input as ad_input with input.subjects as [adult, other]
	d.allow
	excluded_codes(d, "1") == {"R13.ad_opt_out"}
}

test_r13_does_not_apply_to_vendors if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"ad_opt_out": true})]
	d.allow
}

test_r14_excludes_subject_who_withdrew_consent if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"consent_withdrawn": true})]
	not d.allow
	"R14.consent_withdrawn" in excluded_codes(d, "0")
}

test_r14_excludes_deleted_account if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"account_deleted": true})]
	"R14.account_deleted" in excluded_codes(d, "0")
}

test_r14_excludes_narrowed_consent_under_explicit_consent if {
	narrowed := consent("shipco", "delivery", "SHARE", ["user.name"])
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
		with input.subjects as [object.union(adult, {"consents": [narrowed]})]
	not d.allow
	"R14.consent_missing" in excluded_codes(d, "0")
}

test_r14_allows_explicit_consent_covering_the_share if {
	full := consent("shipco", "delivery", "SHARE", ["user.name", "user.contact.phone", "user.contact.address"])
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
		with input.subjects as [object.union(adult, {"consents": [full]})]
	d.allow
}

test_r14_withdrawal_does_not_block_legal_obligation if {
	d := data.sharing.decision with input as authority_input
		with input.subjects as [in_scope(object.union(adult, {"consent_withdrawn": true}))]
	d.allow
}

withdrawal(recipient, purpose, cats) := {"recipient": recipient, "purpose": purpose, "categories": cats, "all_categories": count(cats) == 0}

test_r14_withdrawal_narrowed_to_the_recipient_excludes if {
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"withdrawals": [withdrawal("shipco", "", [])]})]
	not d.allow
	excluded_codes(d, "0") == {"R14.consent_withdrawn"}
}

test_r14_withdrawal_narrowed_to_another_recipient_does_not_exclude if {
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"withdrawals": [withdrawal("adco", "", [])]})]
	d.allow
}

test_r14_withdrawal_narrowed_to_the_purpose_excludes if {
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"withdrawals": [withdrawal("", "delivery", [])]})]
	"R14.consent_withdrawn" in excluded_codes(d, "0")
}

test_r14_withdrawal_narrowed_to_a_requested_category_excludes if {
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"withdrawals": [withdrawal("", "", ["user.contact.phone"])]})]
	"R14.consent_withdrawn" in excluded_codes(d, "0")
}

test_r14_withdrawal_narrowed_to_another_category_does_not_exclude if {
	d := data.sharing.decision with input as vendor_input
		with input.subjects as [object.union(adult, {"withdrawals": [withdrawal("shipco", "", ["user.behavior"])]})]
	d.allow
}

test_r14_narrowed_withdrawal_does_not_block_legal_obligation if {
	d := data.sharing.decision with input as authority_input
		with input.subjects as [in_scope(object.union(adult, {"withdrawals": [withdrawal("pso", "", [])]}))]
	d.allow
}

deleted := object.union(adult, {"account_deleted": true})

test_r14_deleted_account_is_out_of_user_initiated_share if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "order_fulfilment"
		with input.request.legal_basis.kind as "USER_INITIATED"
		with input.recipient.kind as "MERCHANT"
		with input.recipient.agreement.purposes as ["order_fulfilment"]
		with input.subjects as [object.union(deleted, {"all_records_in_orders": true, "orders": [{"id": "o1", "merchant": "shipco", "fulfilment": [], "cross_border": false}]})]
	not d.allow
	"R14.account_deleted" in excluded_codes(d, "0")
}

test_r14_deleted_account_is_out_of_explicit_consent_share if {
	c := all_consent("shipco", "delivery", "SHARE")
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
		with input.subjects as [object.union(deleted, {"consents": [c]})]
	excluded_codes(d, "0") == {"R14.account_deleted"}
}

test_r14_deleted_account_stays_in_legal_obligation_share if {
	d := data.sharing.decision with input as authority_input with input.subjects as [in_scope(deleted)]
	d.allow
}

test_r6_consent_without_recipient_does_not_count if {
	c := object.union(bank_consent, {"recipient": ""})
	d := data.sharing.decision with input as payment_input with input.subjects as [object.union(adult, {"consents": [c]})]
	not d.allow
	"R6.sensitive_without_consent" in excluded_codes(d, "0")
}

test_r6_consent_without_purpose_does_not_count if {
	c := object.union(bank_consent, {"purpose": ""})
	d := data.sharing.decision with input as payment_input with input.subjects as [object.union(adult, {"consents": [c]})]
	not d.allow
	"R6.sensitive_without_consent" in excluded_codes(d, "0")
}

test_r6_consent_for_all_categories_covers_them if {
	d := data.sharing.decision with input as payment_input
		with input.subjects as [object.union(adult, {"consents": [all_consent("payco", "payment", "SHARE")]})]
	d.allow
	d.consents == {"0": ["c:payco:payment:SHARE"]}
}

test_r6_consent_with_empty_category_list_covers_nothing if {
	d := data.sharing.decision with input as payment_input
		with input.subjects as [object.union(adult, {"consents": [consent("payco", "payment", "SHARE", [])]})]
	not d.allow
	"R6.sensitive_without_consent" in excluded_codes(d, "0")
}

test_r6_guardian_consent_does_not_count_for_an_adult if {
	c := object.union(bank_consent, {"given_by": "guardian"})
	d := data.sharing.decision with input as payment_input with input.subjects as [object.union(adult, {"consents": [c]})]
	not d.allow
	"R6.sensitive_without_consent" in excluded_codes(d, "0")
}

test_r1_unregistered_subject_is_left_out if {
	d := data.sharing.decision with input as ad_input with input.subjects as [adult, object.union(adult, {"ref": "1", "registered": false, "age": null})]
	d.allow
	excluded_codes(d, "1") == {"R1.unknown_subject"}
}

test_r1_unregistered_subject_stays_in_legal_obligation if {
	d := data.sharing.decision with input as authority_input
		with input.subjects as [in_scope(object.union(adult, {"registered": false, "age": null}))]
	d.allow
}

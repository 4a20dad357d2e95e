# METADATA
# description: Tests of the subject-level rules R6, R7, R11, R12, R13, R14 (subjects are left out, the share goes on).
package sharing_test

import rego.v1

bank_consent := {"recipient": "payco", "purpose": "payment", "scope": "SHARE", "categories": ["user.financial.bank_account"]}

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
		with input.subjects as [object.union(adult, {"orders": [{"id": "o1", "merchant": "shipco", "cross_border": false}]})]
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
		with input.subjects as [object.union(adult, {"orders": [{"id": "o1", "merchant": "elsewhere", "cross_border": false}]})]
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
	consent := {"recipient": "sister", "purpose": "research", "scope": "SHARE", "categories": ["user.behavior"]}
	d := data.sharing.decision with input as affiliate_input with input.subjects as [object.union(adult, {"consents": [consent]})]
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

test_r11_allows_child_with_guardian_consent_and_consent if {
	consent := {"recipient": "shipco", "purpose": "delivery", "scope": "SHARE", "categories": ["user.name", "user.contact.phone", "user.contact.address"]}
	child := object.union(adult, {"age": 12, "guardian_consent": true, "consents": [consent]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [child]
	d.allow
}

test_r11_excludes_child_without_guardian_consent if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": 14})]
	not d.allow
	"R11.no_guardian_consent" in excluded_codes(d, "0")
}

test_r11_fifteen_is_not_a_child if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": 15})]
	d.allow
}

test_r11_unknown_age_is_not_taken_for_an_adult if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"age": null})]
	not d.allow
	"R11.age_unknown" in excluded_codes(d, "0")
}

test_r11_legal_obligation_needs_no_guardian_consent if {
	d := data.sharing.decision with input as authority_input
		with input.subjects as [in_scope(object.union(adult, {"age": 9}))]
	d.allow
}

cross_consent := {"recipient": "shipco", "purpose": "", "scope": "CROSS_BORDER", "categories": ["user.name", "user.contact.phone", "user.contact.address"]}

test_r12_allows_cross_border_with_authorisation if {
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"consents": [cross_consent]})]
	d.allow
}

test_r12_allows_cross_border_transaction_started_by_subject if {
	order := {"id": "o9", "merchant": "shipco", "cross_border": true}
	d := data.sharing.decision with input as vendor_input
		with input.request.destination_region as "SG"
		with input.subjects as [object.union(adult, {"orders": [order]})]
	d.allow
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
	narrowed := {"recipient": "shipco", "purpose": "delivery", "scope": "SHARE", "categories": ["user.name"]}
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
		with input.subjects as [object.union(adult, {"consents": [narrowed]})]
	not d.allow
	"R14.consent_missing" in excluded_codes(d, "0")
}

test_r14_allows_explicit_consent_covering_the_share if {
	full := {"recipient": "shipco", "purpose": "delivery", "scope": "SHARE", "categories": ["user.name", "user.contact.phone", "user.contact.address"]}
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

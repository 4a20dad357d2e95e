# METADATA
# description: Tests of R2 (registered, active, current agreement), R3 (purpose), R15 (review, DPA), R17 (partner reaches only its own data).
package sharing_test

import rego.v1

test_r2_allows_registered_active_recipient if {
	data.sharing.recipient_ok with input as vendor_input
}

test_r2_refuses_unknown_recipient if {
	d := data.sharing.decision with input as vendor_input with input.recipient as null
	not d.allow
	"R2.unknown_recipient" in codes(d)
}

test_r2_refuses_inactive_recipient if {
	d := data.sharing.decision with input as vendor_input with input.recipient.active as false
	not d.allow
	"R2.recipient_inactive" in codes(d)
}

test_r2_refuses_expired_agreement if {
	d := data.sharing.decision with input as vendor_input with input.recipient.agreement.expires as "2026-11-28"
	not d.allow
	"R2.agreement_expired" in codes(d)
}

test_r2_agreement_expiring_today_is_current if {
	d := data.sharing.decision with input as vendor_input with input.recipient.agreement.expires as "2026-11-29"
	d.allow
}

test_r3_allows_purpose_in_agreement_and_kind if {
	data.sharing.purpose_ok with input as vendor_input
}

test_r3_refuses_purpose_not_in_agreement if {
	d := data.sharing.decision with input as vendor_input with input.request.purpose as "customer_service"
	not d.allow
	"R3.purpose_not_in_agreement" in codes(d)
}

test_r3_refuses_purpose_not_for_kind if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "ad_delivery"
		with input.recipient.agreement.purposes as ["delivery", "ad_delivery"]
	not d.allow
	"R3.purpose_not_for_kind" in codes(d)
}

test_r3_refuses_unknown_purpose if {
	d := data.sharing.decision with input as vendor_input with input.request.purpose as "fun"
	not d.allow
	"R3.unknown_purpose" in codes(d)
}

test_r15_allows_current_review_and_dpa if {
	data.sharing.review_ok with input as vendor_input
}

test_r15_refuses_expired_security_review if {
	d := data.sharing.decision with input as vendor_input with input.recipient.security_review_expires as "2026-01-01"
	not d.allow
	"R15.security_review_not_current" in codes(d)
}

test_r15_refuses_missing_dpa if {
	d := data.sharing.decision with input as ad_input with input.recipient.dpa_expires as ""
	not d.allow
	"R15.dpa_not_current" in codes(d)
}

test_r15_does_not_apply_to_merchants if {
	data.sharing.review_ok with input as vendor_input with input.recipient.kind as "MERCHANT" with input.recipient.dpa_expires as ""
}

test_r17_allows_partner_pulling_its_own_data if {
	d := data.sharing.decision with input as vendor_input
		with input.request.mode as "pull"
		with input.caller as {"principal": "partner:shipco", "role": "partner", "partner_id": "shipco"}
	d.allow
}

test_r17_refuses_partner_reaching_another_partners_data if {
	d := data.sharing.decision with input as vendor_input
		with input.request.mode as "pull"
		with input.caller as {"principal": "partner:adco", "role": "partner", "partner_id": "adco"}
	not d.allow
	"R17.not_addressed_to_caller" in codes(d)
}

test_r17_refuses_pull_by_a_service if {
	d := data.sharing.decision with input as vendor_input with input.request.mode as "pull"
	not d.allow
	"R17.pull_by_non_partner" in codes(d)
}

test_r17_pull_is_decided_again_with_current_consent if {
	d := data.sharing.decision with input as ad_input
		with input.request.mode as "pull"
		with input.caller as {"principal": "partner:adco", "role": "partner"}
		with input.subjects as [object.union(adult, {"ad_opt_out": true})]
	not d.allow
	"R13.ad_opt_out" in excluded_codes(d, "0")
}

# METADATA
# description: Tests of R4 - every category needed for the purpose and in the agreement.
package sharing_test

import rego.v1

test_r4_allows_needed_and_agreed_categories if {
	data.sharing.minimal_ok with input as vendor_input
}

test_r4_refuses_excess_category if {
	d := data.sharing.decision with input as vendor_input
		with input.request.categories as ["user.name", "user.contact.email"]
		with input.recipient.agreement.categories as ["user.name", "user.contact.email"]
	not d.allow
	"R4.excess_category" in codes(d)
	some r in d.reasons
	r.code == "R4.excess_category"
	contains(r.message, "user.contact.email")
	contains(r.message, "delivery")
}

test_r4_refuses_category_not_in_agreement if {
	d := data.sharing.decision with input as vendor_input
		with input.recipient.agreement.categories as ["user.name"]
	not d.allow
	"R4.category_not_in_agreement" in codes(d)
}

test_r4_applies_under_exemption if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "exemption_code": "public_safety", "reference": "case-1"}
		with input.request.categories as ["user.name", "user.government_id"]
	not d.allow
	"R4.excess_category" in codes(d)
}

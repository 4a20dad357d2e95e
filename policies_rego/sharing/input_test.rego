# METADATA
# description: Tests of R1 - missing, empty or unknown input values never make a decision more permissive.
package sharing_test

import rego.v1

test_r1_allows_a_complete_input if {
	data.sharing.input_ok with input as vendor_input
}

test_r1_refuses_missing_purpose if {
	d := data.sharing.decision with input as vendor_input with input.request.purpose as ""
	not d.allow
	"R1.missing_purpose" in codes(d)
}

test_r1_refuses_unknown_legal_basis if {
	d := data.sharing.decision with input as vendor_input with input.request.legal_basis.kind as "BECAUSE"
	not d.allow
	"R1.unknown_legal_basis" in codes(d)
}

test_r1_refuses_missing_action if {
	d := data.sharing.decision with input as vendor_input with input.request.action as ""
	not d.allow
	"R1.unknown_action" in codes(d)
}

test_r1_refuses_unknown_category if {
	d := data.sharing.decision with input as vendor_input with input.request.categories as ["user.name", "user.shoe_size"]
	not d.allow
	"R1.unknown_category" in codes(d)
}

test_r1_refuses_missing_today if {
	d := data.sharing.decision with input as vendor_input with input.today as null
	not d.allow
	"R1.missing_today" in codes(d)
}

test_r1_refuses_duplicate_subject_refs if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [adult, adult]
	not d.allow
	"R1.malformed_subjects" in codes(d)
}

test_r1_refuses_no_subjects if {
	d := data.sharing.decision with input as vendor_input with input.subjects as []
	not d.allow
	"R1.no_subjects" in codes(d)
}

test_r1_missing_subject_flags_exclude_the_subject if {
	d := data.sharing.decision with input as ad_input with input.subjects as [{"ref": "0", "age": 30}]
	not d.allow
	"R13.ad_opt_out" in excluded_codes(d, "0")
	"R14.account_deleted" in excluded_codes(d, "0")
}

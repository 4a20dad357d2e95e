# METADATA
# description: Tests of R19 (identifiers found in fields whose category may not carry them).
package sharing_test

import rego.v1

found(field, category, kind) := {"field": field, "category": category, "kind": kind}

tagged(kinds) := object.union(adult, {"identifiers": [found("tags", "user.profile.tags", k) | some k in kinds]})

test_r19_leaves_out_subject_with_phone_in_tags if {
	d := data.sharing.decision with input as ad_input
		with input.subjects as [tagged(["PHONE_NUMBER", "EMAIL_ADDRESS"]), object.union(adult, {"ref": "1"})]
	d.allow
	"R19.identifier_in_field" in excluded_codes(d, "0")
	some x in d.excluded
	x.ref == "0"
	contains(x.message, "tags (user.profile.tags): EMAIL_ADDRESS; tags (user.profile.tags): PHONE_NUMBER")
	count(excluded_codes(d, "1")) == 0
}

test_r19_refuses_when_every_subject_carries_a_misplaced_identifier if {
	d := data.sharing.decision with input as ad_input with input.subjects as [tagged(["PHONE_NUMBER"])]
	not d.allow
	"R1.all_subjects_excluded" in codes(d)
}

test_r19_allows_a_phone_number_in_the_phone_field if {
	phone := object.union(adult, {"identifiers": [found("phone", "user.contact.phone", "PHONE_NUMBER")]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [phone]
	d.allow
	count(d.excluded) == 0
}

test_r19_recipient_kind_narrows_what_a_category_carries if {
	ip := object.union(adult, {"identifiers": [found("device", "user.device.info", "IP_ADDRESS")]})
	d := data.sharing.decision with input as ad_input with input.subjects as [ip, object.union(adult, {"ref": "1"})]
	"R19.identifier_in_field" in excluded_codes(d, "0")
	d2 := data.sharing.decision with input as vendor_input with input.subjects as [ip]
	count(excluded_codes(d2, "0")) == 0
}

test_r19_unknown_category_carries_nothing if {
	odd := object.union(adult, {"identifiers": [found("x", "user.unknown", "EMAIL_ADDRESS")]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [odd, object.union(adult, {"ref": "1"})]
	"R19.identifier_in_field" in excluded_codes(d, "0")
}

test_r19_malformed_findings_leave_the_subject_out if {
	odd := object.union(adult, {"identifiers": "PHONE_NUMBER"})
	d := data.sharing.decision with input as vendor_input with input.subjects as [odd, object.union(adult, {"ref": "1"})]
	"R19.identifier_in_field" in excluded_codes(d, "0")
	count(excluded_codes(d, "1")) == 0
}

# Found by the differential test: object.get over a non-object finding failed the decision.
test_r19_non_object_finding_leaves_the_subject_out if {
	odd := object.union(adult, {"identifiers": [true]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [odd, object.union(adult, {"ref": "1"})]
	"R19.identifier_in_field" in excluded_codes(d, "0")
	count(excluded_codes(d, "1")) == 0
}

test_r19_finding_without_kind_is_misplaced if {
	odd := object.union(adult, {"identifiers": [{"field": "phone", "category": "user.contact.phone"}]})
	d := data.sharing.decision with input as vendor_input with input.subjects as [odd, object.union(adult, {"ref": "1"})]
	"R19.identifier_in_field" in excluded_codes(d, "0")
}

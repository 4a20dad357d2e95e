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
	d := data.sharing.decision with input as vendor_input with input.today as "tomorrow"
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

test_r1_malformed_input_names_each_missing_subject_key if {
	d := data.sharing.decision with input as ad_input with input.subjects as [{"ref": "0", "age": 30}]
	not d.allow
	codes(d) == {"R1.malformed_input"}
	messages(d) == {
		"input.subjects[0].ad_opt_out is missing or not boolean",
		"input.subjects[0].account_deleted is missing or not boolean",
		"input.subjects[0].consent_withdrawn is missing or not boolean",
		"input.subjects[0].all_records_in_orders is missing or not boolean",
		"input.subjects[0].consents is missing or not array",
		"input.subjects[0].orders is missing or not array",
		"input.subjects[0].registered is missing or not boolean",
		"input.subjects[0].withdrawals is missing or not array",
	}
	count(d.excluded) == 0
}

# The inputs that OPA (not regorus or regopy) allowed before the gate (issue 15).
test_r1_refuses_a_subject_without_an_age_key if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.remove(adult, ["age"])]
	not d.allow
	messages(d) == {"input.subjects[0].age is missing or not number or null"}
}

test_r1_refuses_an_exemption_without_code_and_reference_keys if {
	d := data.sharing.decision with input as vendor_input with input.request.legal_basis as {"kind": "EXEMPTION"}
	not d.allow
	messages(d) == {
		"input.request.legal_basis.exemption_code is missing or not string",
		"input.request.legal_basis.reference is missing or not string",
	}
}

test_r1_refuses_a_legal_obligation_disclosure_without_reference_key if {
	basis := {"kind": "LEGAL_OBLIGATION", "exemption_code": ""}
	d := data.sharing.decision with input as vendor_input with input.request.action as "PUBLIC_DISCLOSURE" with input.request.legal_basis as basis
	not d.allow
	messages(d) == {"input.request.legal_basis.reference is missing or not string"}
}

test_r1_refuses_a_null_caller_role_without_failing if {
	d := data.sharing.decision with input as vendor_input with input.caller.role as null with input.request.mode as "pull"
	not d.allow
	messages(d) == {"input.caller.role is missing or not string"}
}

test_r1_refuses_mistyped_values if {
	d := data.sharing.decision with input as vendor_input with input.recipient.active as "yes" with input.request.categories as ["user.name", 7] with input.today as null
	not d.allow
	messages(d) == {
		"input.recipient.active is missing or not boolean",
		"input.request.categories is missing or not array of strings",
		"input.today is missing or not string",
	}
}

test_r1_refuses_non_object_elements_and_bad_optional_keys if {
	d := data.sharing.decision with input as vendor_input with input.subjects as [adult, "1"] with input.caller.partner_id as 5 with input.request.quasi_identifiers as [{"ref": "0", "values": {"a": 1}}, "q"]
	not d.allow
	messages(d) == {
		"input.caller.partner_id is not string",
		"input.request.quasi_identifiers[0].values is missing or not object of strings",
		"input.request.quasi_identifiers[1] is not object",
		"input.subjects[1] is not object",
	}
}

test_r1_refuses_a_missing_recipient_key if {
	d := data.sharing.decision with input as object.remove(vendor_input, ["recipient"])
	not d.allow
	messages(d) == {"input.recipient is missing or not an object or null"}
}

test_r1_unknown_recipient_is_well_formed if {
	d := data.sharing.decision with input as vendor_input with input.recipient as null
	not d.allow
	"R2.unknown_recipient" in codes(d)
	not "R1.malformed_input" in codes(d)
}

messages(d) := {r.message | some r in d.reasons}

test_r1_malformed_v2_consent_and_withdrawal_keys_are_named if {
	c := {"recipient": "shipco", "purpose": "delivery", "scope": "SHARE", "categories": []}
	w := {"recipient": "shipco", "purpose": ""}
	d := data.sharing.decision with input as vendor_input with input.subjects as [object.union(adult, {"consents": [c], "withdrawals": [w]})]
	not d.allow
	messages(d) == {
		"input.subjects[0].consents[0].all_categories is missing or not boolean",
		"input.subjects[0].consents[0].given_by is missing or not string",
		"input.subjects[0].consents[0].id is missing or not string",
		"input.subjects[0].withdrawals[0].all_categories is missing or not boolean",
		"input.subjects[0].withdrawals[0].categories is missing or not array of strings",
	}
	d.subject_ref == "none"
}

test_r1_v1_input_is_malformed if {
	v1 := object.union(adult, {"guardian_consent": true})
	d := data.sharing.decision with input as vendor_input with input.contract as "v1" with input.subjects as [object.remove(v1, ["withdrawals"])]
	not d.allow
	"input.subjects[0].withdrawals is missing or not array" in messages(d)
}

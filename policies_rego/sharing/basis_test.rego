# METADATA
# description: Tests of R8 (transfer), R9 (public disclosure), R10 (exemption, registered legal requests) and R16 (de-identified data).
package sharing_test

import rego.v1

# A police data request registered through AdminService (R10, §三.(一).1).
legal_request := {
	"id": "lr-1", "kind": "legal_request", "basis": "LEGAL_OBLIGATION",
	"authority_kind": "PUBLIC_SECURITY", "reference": "case 2026-0042", "exemption_code": "",
	"recipient": "pso", "all_subjects": false,
	"categories": ["user.name", "user.contact.phone", "user.contact.address"],
	"valid_from": "2026-11-01", "valid_until": "2026-12-31", "revoked": false,
}

# The share that request allows: to the AUTHORITY it names, by a caller holding the grant,
# for subjects inside its scope.
authority_input := object.union(vendor_input, {
	"caller": {"principal": "svc:legal-desk", "role": "service", "legal_grant": true},
	"request": object.union(vendor_input.request, {
		"purpose": "legal_request",
		"legal_basis": {"kind": "LEGAL_OBLIGATION", "reference": "", "exemption_code": ""},
		"legal_request": legal_request,
	}),
	"recipient": object.union(vendor_input.recipient, {
		"id": "pso", "kind": "AUTHORITY",
		"agreement": {
			"purposes": ["legal_request"],
			"categories": ["user.name", "user.contact.phone", "user.contact.address"],
			"expires": "2027-12-31", "binds_policy": false,
		},
	}),
	"subjects": [in_scope(adult)],
})

in_scope(s) := object.union(s, {"in_legal_scope": true})

exemption_request := object.union(legal_request, {"basis": "EXEMPTION", "exemption_code": "criminal_investigation"})

exemption_input := object.union(authority_input, {"request": object.union(authority_input.request, {
	"legal_basis": {"kind": "EXEMPTION", "reference": "", "exemption_code": ""},
	"legal_request": exemption_request,
})})

acquirer_input := object.union(vendor_input, {
	"request": object.union(vendor_input.request, {
		"action": "TRANSFER", "purpose": "business_transfer",
		"legal_basis": {"kind": "MERGER", "reference": "", "exemption_code": ""},
	}),
	"recipient": object.union(vendor_input.recipient, {
		"id": "newco", "kind": "ACQUIRER",
		"agreement": {
			"purposes": ["business_transfer"],
			"categories": ["user.name", "user.contact.phone", "user.contact.address"],
			"expires": "2027-12-31", "binds_policy": true,
		},
	}),
	"subjects": [in_scope(adult)],
})

# The registered transfer a MERGER rests on (R8, §三.(二).2).
transfer_request := object.union(legal_request, {
	"kind": "transfer", "basis": "MERGER", "authority_kind": "ACQUIRER",
	"reference": "merger agreement 2026-07", "recipient": "newco", "all_subjects": true,
})

merger_input := object.union(acquirer_input, {
	"caller": {"principal": "svc:legal-desk", "role": "service", "legal_grant": true},
	"request": object.union(acquirer_input.request, {"legal_request": transfer_request}),
})

transfer_consent := consent("newco", "business_transfer", "TRANSFER", ["user.name", "user.contact.phone", "user.contact.address"])

test_r8_allows_registered_merger_to_bound_acquirer if {
	d := data.sharing.decision with input as merger_input
	d.allow
}

test_r8_refuses_merger_without_registered_transfer if {
	d := data.sharing.decision with input as acquirer_input
	not d.allow
	"R8.no_legal_request" in codes(d)
}

test_r8_refuses_merger_to_non_acquirer if {
	d := data.sharing.decision with input as merger_input with input.recipient.kind as "AFFILIATE"
	not d.allow
	"R8.recipient_kind" in codes(d)
}

test_r8_refuses_merger_to_unbound_acquirer if {
	d := data.sharing.decision with input as merger_input with input.recipient.agreement.binds_policy as false
	not d.allow
	"R8.acquirer_not_bound" in codes(d)
}

test_r8_refuses_transfer_under_authorized_partner if {
	d := data.sharing.decision with input as vendor_input with input.request.action as "TRANSFER"
	not d.allow
	"R8.transfer_basis" in codes(d)
}

test_r8_consent_transfer_keeps_only_consenting_subjects if {
	consenting := object.union(adult, {"ref": "1", "consents": [transfer_consent]})
	d := data.sharing.decision with input as acquirer_input
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
		with input.subjects as [adult, consenting]
	d.allow
	"R8.no_transfer_consent" in excluded_codes(d, "0")
	count(excluded_codes(d, "1")) == 0
}

test_r9_allows_disclosure_by_law_under_registered_request if {
	d := data.sharing.decision with input as authority_input with input.request.action as "PUBLIC_DISCLOSURE"
	d.allow
}

test_r9_refuses_disclosure_by_law_without_registered_request if {
	d := data.sharing.decision with input as vendor_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.request.legal_basis as {"kind": "LEGAL_OBLIGATION", "reference": "order 2026-17", "exemption_code": ""}
	not d.allow
	"R10.no_legal_request" in codes(d)
}

test_r9_refuses_disclosure_by_law_without_reference if {
	d := data.sharing.decision with input as authority_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.request.legal_request.reference as ""
	not d.allow
	"R9.missing_reference" in codes(d)
}

test_r9_refuses_disclosure_under_authorized_partner if {
	d := data.sharing.decision with input as vendor_input with input.request.action as "PUBLIC_DISCLOSURE"
	not d.allow
	"R9.disclosure_basis" in codes(d)
}

test_r9_consent_disclosure_excludes_subjects_without_consent if {
	d := data.sharing.decision with input as vendor_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.request.legal_basis.kind as "EXPLICIT_CONSENT"
	not d.allow
	"R9.no_disclosure_consent" in excluded_codes(d, "0")
}

test_r10_allows_registered_exemption if {
	d := data.sharing.decision with input as exemption_input
	d.allow
}

test_r10_refuses_exemption_without_reference if {
	d := data.sharing.decision with input as exemption_input with input.request.legal_request.reference as ""
	not d.allow
	"R10.missing_reference" in codes(d)
}

test_r10_refuses_unknown_exemption_code if {
	d := data.sharing.decision with input as exemption_input with input.request.legal_request.exemption_code as "curiosity"
	not d.allow
	"R10.unknown_exemption_code" in codes(d)
}

test_r10_exemption_skips_consent_rules if {
	child := in_scope(object.union(adult, {"age": 10, "consent_withdrawn": true}))
	d := data.sharing.decision with input as exemption_input with input.subjects as [child]
	d.allow
}

test_r10_legal_obligation_skips_consent_rules if {
	child := in_scope(object.union(adult, {"age": 9, "consent_withdrawn": true, "account_deleted": true}))
	d := data.sharing.decision with input as authority_input with input.subjects as [child]
	d.allow
	count(d.excluded) == 0
}

# Issue 11, item 1: the caller's word is not a legal basis.
test_r10_refuses_legal_obligation_without_registered_request if {
	d := data.sharing.decision with input as ad_input
		with input.request.legal_basis as {"kind": "LEGAL_OBLIGATION", "reference": "", "exemption_code": ""}
	not d.allow
	"R10.no_legal_request" in codes(d)
	"R10.recipient_kind" in codes(d)
}

test_r10_refuses_exemption_with_a_made_up_reference if {
	d := data.sharing.decision with input as ad_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "reference": "x", "exemption_code": "public_safety"}
	not d.allow
	"R10.no_legal_request" in codes(d)
}

test_r10_refuses_unknown_legal_request if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request as null
	not d.allow
	"R10.unknown_legal_request" in codes(d)
}

test_r10_refuses_a_registered_request_to_an_ad_partner if {
	d := data.sharing.decision with input as authority_input with input.recipient.kind as "AD_PARTNER"
	not d.allow
	"R10.recipient_kind" in codes(d)
}

test_r10_refuses_expired_request if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.valid_until as "2026-11-28"
	not d.allow
	"R10.legal_request_expired" in codes(d)
}

test_r10_refuses_request_not_yet_valid if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.valid_from as "2026-11-30"
	not d.allow
	"R10.legal_request_not_yet_valid" in codes(d)
}

test_r10_refuses_revoked_request if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.revoked as true
	not d.allow
	"R10.legal_request_revoked" in codes(d)
}

test_r10_refuses_caller_without_grant if {
	d := data.sharing.decision with input as authority_input with input.caller.legal_grant as false
	not d.allow
	"R10.no_grant" in codes(d)
}

test_r10_pull_needs_no_caller_grant if {
	d := data.sharing.decision with input as authority_input
		with input.caller as {"principal": "partner:pso", "role": "partner", "partner_id": "pso"}
		with input.request.mode as "pull"
	d.allow
}

test_r10_refuses_other_recipient if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.recipient as "other-bureau"
	not d.allow
	"R10.recipient_mismatch" in codes(d)
}

test_r10_refuses_category_outside_request if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.categories as ["user.name"]
	not d.allow
	some r in d.reasons
	r.code == "R10.out_of_scope_category"
	contains(r.message, "user.contact.phone")
}

test_r10_refuses_subject_outside_request if {
	outside := object.union(adult, {"ref": "1", "in_legal_scope": false})
	d := data.sharing.decision with input as authority_input with input.subjects as [in_scope(adult), outside]
	not d.allow
	"R10.out_of_scope_subject" in codes(d)
}

test_r10_all_subjects_request_covers_any_subject if {
	d := data.sharing.decision with input as authority_input
		with input.request.legal_request.all_subjects as true
		with input.subjects as [adult]
	d.allow
}

test_r10_refuses_request_for_another_basis if {
	d := data.sharing.decision with input as exemption_input with input.request.legal_basis.kind as "LEGAL_OBLIGATION"
	not d.allow
	"R10.legal_request_basis" in codes(d)
}

test_r10_refuses_unknown_authority_kind if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.authority_kind as "NEIGHBOUR"
	not d.allow
	"R10.authority_kind" in codes(d)
}

test_r10_refuses_a_code_other_than_the_registered_one if {
	d := data.sharing.decision with input as exemption_input with input.request.legal_basis.exemption_code as "public_safety"
	not d.allow
	"R10.exemption_code_mismatch" in codes(d)
}

qi(ref, city) := {"ref": ref, "values": {"user.location.city": city}}

five_subjects_in(city) := [qi("0", city), qi("1", city), qi("2", city), qi("3", city), qi("4", city)]

five_adults := [object.union(adult, {"ref": ref}) | some ref in ["0", "1", "2", "3", "4"]]

research_input := object.union(vendor_input, {
	"subjects": five_adults,
	"request": object.union(vendor_input.request, {
		"purpose": "research", "categories": ["user.location.city"],
		"legal_basis": {"kind": "DE_IDENTIFIED", "reference": "", "exemption_code": ""},
		"quasi_identifiers": five_subjects_in("a"),
	}),
	"recipient": object.union(vendor_input.recipient, {"agreement": {
		"id": "agr-uni", "version": "1", "purposes": ["research"], "categories": ["user.location.city"],
		"expires": "2027-12-31", "binds_policy": false,
	}}),
})

test_r16_allows_k_anonymous_batch if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "research"
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.categories as ["user.location.city"]
		with input.recipient.agreement.purposes as ["research"]
		with input.recipient.agreement.categories as ["user.location.city"]
		with input.request.quasi_identifiers as five_subjects_in("a")
		with input.subjects as five_adults
	d.allow
}

test_r16_refuses_small_group if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "research"
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.categories as ["user.location.city"]
		with input.recipient.agreement.purposes as ["research"]
		with input.recipient.agreement.categories as ["user.location.city"]
		with input.request.quasi_identifiers as array.concat(five_subjects_in("a"), [qi("5", "b")])
	not d.allow
	"R16.not_k_anonymous" in codes(d)
}

test_r16_refuses_identity_category if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.quasi_identifiers as five_subjects_in("a")
	not d.allow
	"R16.identity_category" in codes(d)
}

test_r1_refuses_a_malformed_legal_request if {
	d := data.sharing.decision with input as authority_input with input.request.legal_request.revoked as "no"
	not d.allow
	"R1.malformed_input" in codes(d)
}

test_r1_refuses_a_legal_request_missing_a_key if {
	d := data.sharing.decision with input as authority_input
		with input.request.legal_request as object.remove(legal_request, ["valid_until"])
	not d.allow
	"R1.malformed_input" in codes(d)
}

test_r10_subject_without_scope_flag_is_out_of_scope if {
	d := data.sharing.decision with input as authority_input with input.subjects as [adult]
	not d.allow
	"R10.out_of_scope_subject" in codes(d)
}

test_r16_counts_subjects_not_records if {
	d := data.sharing.decision with input as research_input
		with input.request.quasi_identifiers as [qi("0", "a"), qi("0", "a"), qi("0", "a"), qi("0", "a"), qi("0", "a")]
	not d.allow
	"R16.not_k_anonymous" in codes(d)
}

test_r16_de_identified_records_carry_no_subject_ref if {
	d := data.sharing.decision with input as research_input
	d.allow
	d.subject_ref == "none"
}

test_r16_identified_share_keeps_per_recipient_refs if {
	d := data.sharing.decision with input as vendor_input
	d.subject_ref == "per_recipient"
}

test_r8_allows_transfer_of_de_identified_data if {
	d := data.sharing.decision with input as research_input
		with input.request.action as "TRANSFER"
		with input.subjects as array.concat([object.union(adult, {"age": null}), object.union(adult, {"ref": "1", "age": 12})], array.slice(five_adults, 2, 5))
	d.allow
	count(d.excluded) == 0
}

test_r9_allows_public_disclosure_of_de_identified_data if {
	d := data.sharing.decision with input as research_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.subjects as array.concat([object.union(adult, {"age": 16})], array.slice(five_adults, 1, 5))
	d.allow
	count(d.excluded) == 0
}

test_r8_de_identified_transfer_still_needs_k_anonymity if {
	d := data.sharing.decision with input as research_input
		with input.request.action as "TRANSFER"
		with input.request.quasi_identifiers as [qi("0", "a")]
	not d.allow
	"R16.not_k_anonymous" in codes(d)
}

test_r8_allows_transfer_under_exemption if {
	d := data.sharing.decision with input as exemption_input
		with input.request.action as "TRANSFER"
		with input.subjects as [in_scope(object.union(adult, {"age": 12, "consent_withdrawn": true}))]
	d.allow
}

test_r9_allows_public_disclosure_under_exemption if {
	d := data.sharing.decision with input as exemption_input
		with input.request.action as "PUBLIC_DISCLOSURE"
	d.allow
}

test_r14_deleted_account_is_out_of_de_identified_share if {
	d := data.sharing.decision with input as research_input
		with input.subjects as array.concat(five_adults, [object.union(adult, {"ref": "5", "account_deleted": true})])
		with input.request.quasi_identifiers as array.concat(five_subjects_in("a"), [qi("5", "a")])
	d.allow
	excluded_codes(d, "5") == {"R14.account_deleted"}
}

test_r14_deleted_account_is_out_of_merger if {
	d := data.sharing.decision with input as merger_input with input.subjects as [in_scope(object.union(adult, {"account_deleted": true}))]
	not d.allow
	"R14.account_deleted" in excluded_codes(d, "0")
}

test_r16_subjects_left_out_do_not_count_towards_k if {
	d := data.sharing.decision with input as research_input
		with input.subjects as [adult, object.union(adult, {"ref": "1"}), object.union(adult, {"ref": "2"}), object.union(adult, {"ref": "3"}), object.union(adult, {"ref": "4", "account_deleted": true})]
	not d.allow
	"R16.not_k_anonymous" in codes(d)
	excluded_codes(d, "4") == {"R14.account_deleted"}
}

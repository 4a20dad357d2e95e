# METADATA
# description: Tests of R8 (transfer), R9 (public disclosure), R10 (exemption) and R16 (de-identified data).
package sharing_test

import rego.v1

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
})

transfer_consent := {"recipient": "newco", "purpose": "", "scope": "TRANSFER", "categories": ["user.name", "user.contact.phone", "user.contact.address"]}

test_r8_allows_merger_to_bound_acquirer if {
	d := data.sharing.decision with input as acquirer_input
	d.allow
}

test_r8_refuses_merger_to_unbound_acquirer if {
	d := data.sharing.decision with input as acquirer_input with input.recipient.agreement.binds_policy as false
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

test_r9_allows_disclosure_by_law_with_reference if {
	d := data.sharing.decision with input as vendor_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.request.legal_basis as {"kind": "LEGAL_OBLIGATION", "reference": "order 2026-17", "exemption_code": ""}
	d.allow
}

test_r9_refuses_disclosure_by_law_without_reference if {
	d := data.sharing.decision with input as vendor_input
		with input.request.action as "PUBLIC_DISCLOSURE"
		with input.request.legal_basis as {"kind": "LEGAL_OBLIGATION", "reference": "", "exemption_code": ""}
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

test_r10_allows_exemption_with_code_and_reference if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "exemption_code": "criminal_investigation", "reference": "case 2026-0042"}
	d.allow
}

test_r10_refuses_exemption_without_reference if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "exemption_code": "criminal_investigation", "reference": ""}
	not d.allow
	"R10.missing_reference" in codes(d)
}

test_r10_refuses_unknown_exemption_code if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "exemption_code": "curiosity", "reference": "x"}
	not d.allow
	"R10.unknown_exemption_code" in codes(d)
}

test_r10_exemption_skips_consent_rules if {
	child := object.union(adult, {"age": 10, "consent_withdrawn": true})
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis as {"kind": "EXEMPTION", "exemption_code": "vital_interest", "reference": "ticket 7"}
		with input.subjects as [child]
	d.allow
}

qi(city) := {"user.location.city": city}

test_r16_allows_k_anonymous_batch if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "research"
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.categories as ["user.location.city"]
		with input.recipient.agreement.purposes as ["research"]
		with input.recipient.agreement.categories as ["user.location.city"]
		with input.request.quasi_identifiers as [qi("a"), qi("a"), qi("a"), qi("a"), qi("a")]
	d.allow
}

test_r16_refuses_small_group if {
	d := data.sharing.decision with input as vendor_input
		with input.request.purpose as "research"
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.categories as ["user.location.city"]
		with input.recipient.agreement.purposes as ["research"]
		with input.recipient.agreement.categories as ["user.location.city"]
		with input.request.quasi_identifiers as [qi("a"), qi("a"), qi("a"), qi("a"), qi("a"), qi("b")]
	not d.allow
	"R16.not_k_anonymous" in codes(d)
}

test_r16_refuses_identity_category if {
	d := data.sharing.decision with input as vendor_input
		with input.request.legal_basis.kind as "DE_IDENTIFIED"
		with input.request.quasi_identifiers as [{}, {}, {}, {}, {}]
	not d.allow
	"R16.identity_category" in codes(d)
}

# METADATA
# description: Shared fixtures and tests of the decision document (allow, R1 fallbacks, R5 obligations).
package sharing_test

import rego.v1

adult := {
	"ref": "0", "age": 30, "guardian_consent": false, "ad_opt_out": false,
	"consent_withdrawn": false, "account_deleted": false, "orders": [], "consents": [],
}

# A share every rule allows: a vendor delivering orders (§三.(一).5.(2)).
vendor_input := {
	"contract": "v1",
	"today": "2026-11-29",
	"caller": {"principal": "svc:checkout", "role": "service"},
	"request": {
		"mode": "share", "action": "SHARE", "purpose": "delivery",
		"legal_basis": {"kind": "AUTHORIZED_PARTNER", "reference": "", "exemption_code": ""},
		"record_type": "order", "destination_region": "CN",
		"categories": ["user.contact.address", "user.contact.phone", "user.name"],
		"quasi_identifiers": [],
	},
	"recipient": {
		"id": "shipco", "kind": "VENDOR", "active": true, "region": "CN",
		"agreement": {
			"purposes": ["delivery"],
			"categories": ["user.name", "user.contact.phone", "user.contact.address", "user.order.items"],
			"expires": "2027-12-31", "binds_policy": false,
		},
		"security_review_expires": "2027-06-30", "dpa_expires": "2027-12-31",
	},
	"subjects": [adult],
}

# An ad partner share (§三.(一).5.(1)).
ad_input := {
	"contract": "v1",
	"today": "2026-11-29",
	"caller": {"principal": "svc:ads", "role": "service"},
	"request": {
		"mode": "share", "action": "SHARE", "purpose": "ad_delivery",
		"legal_basis": {"kind": "AUTHORIZED_PARTNER", "reference": "", "exemption_code": ""},
		"record_type": "customer_profile", "destination_region": "CN",
		"categories": ["user.account.id", "user.demographic.birth_date", "user.location.precise", "user.profile.tags"],
		"quasi_identifiers": [],
	},
	"recipient": {
		"id": "adco", "kind": "AD_PARTNER", "active": true, "region": "CN",
		"agreement": {
			"purposes": ["ad_delivery"],
			"categories": ["user.account.id", "user.demographic.birth_date", "user.location.precise", "user.profile.tags"],
			"expires": "2027-12-31", "binds_policy": false,
		},
		"security_review_expires": "2027-06-30", "dpa_expires": "2027-12-31",
	},
	"subjects": [adult],
}

codes(d) := {r.code | some r in d.reasons}

excluded_codes(d, ref) := {x.code | some x in d.excluded; x.ref == ref}

test_allows_a_vendor_delivery if {
	d := data.sharing.decision with input as vendor_input
	d.allow
	count(d.reasons) == 0
	count(d.excluded) == 0
}

test_r1_empty_input_is_refused_with_reasons if {
	d := data.sharing.decision with input as {}
	not d.allow
	codes(d) == {"R1.malformed_input"}
	{"code": "R1.malformed_input", "message": "input.contract is missing or not string"} in d.reasons
}

test_r1_refuses_when_every_subject_is_excluded if {
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"ad_opt_out": true})]
	not d.allow
	"R1.all_subjects_excluded" in codes(d)
}

test_r5_ad_partner_gets_no_identity if {
	d := data.sharing.decision with input as ad_input
	d.allow
	d.obligations.pseudonymize == ["user.account.id"]
	d.obligations.generalize == {"user.demographic.birth_date": "age_band", "user.location.precise": "city"}
	d.obligations.drop == []
}

test_r5_ad_partner_drops_other_identity_categories if {
	d := data.sharing.decision with input as ad_input
		with input.request.purpose as "ad_measurement"
		with input.request.categories as ["user.device.id", "user.account.id"]
		with input.recipient.agreement.purposes as ["ad_measurement"]
		with input.recipient.agreement.categories as ["user.device.id", "user.account.id"]
	d.allow
	d.obligations.pseudonymize == ["user.account.id", "user.device.id"]
}

test_r5_identified_sharing_consent_keeps_identity_for_that_subject if {
	consent := {"recipient": "adco", "purpose": "ad_delivery", "scope": "IDENTIFIED_SHARING", "categories": ["user.account.id"]}
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"consents": [consent]})]
	d.allow
	d.subject_obligations["0"].pseudonymize == []
	d.subject_obligations["0"].generalize == {"user.demographic.birth_date": "age_band", "user.location.precise": "city"}
}

test_r5_identified_consent_for_another_partner_does_not_count if {
	consent := {"recipient": "otherco", "purpose": "", "scope": "IDENTIFIED_SHARING", "categories": ["user.account.id"]}
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"consents": [consent]})]
	d.allow
	count(d.subject_obligations) == 0
	d.obligations.pseudonymize == ["user.account.id"]
}

test_non_ad_partner_has_no_obligations if {
	d := data.sharing.decision with input as vendor_input
	d.obligations == {"drop": [], "pseudonymize": [], "generalize": {}}
}

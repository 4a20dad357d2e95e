# METADATA
# description: Shared fixtures and tests of the decision document (allow, R1 fallbacks, R5 obligations).
package sharing_test

import rego.v1

adult := {
	"ref": "0", "registered": true, "age": 30, "ad_opt_out": false, "consent_withdrawn": false,
	"account_deleted": false, "all_records_in_orders": false, "orders": [], "consents": [],
	"withdrawals": [],
}

# A consent the subject gave, naming recipient, purpose, scope and categories (R6).
consent(recipient, purpose, scope, cats) := {
	"id": concat(":", ["c", recipient, purpose, scope]),
	"recipient": recipient, "purpose": purpose, "scope": scope,
	"categories": cats, "all_categories": false, "given_by": "subject",
}

# The same consent given by the guardian (§六).
guardian_consent(recipient, purpose, scope, cats) := object.union(consent(recipient, purpose, scope, cats), {"given_by": "guardian"})

# A consent for every category, stated explicitly.
all_consent(recipient, purpose, scope) := object.union(consent(recipient, purpose, scope, []), {"all_categories": true})

# A share every rule allows: a vendor delivering orders (§三.(一).5.(2)).
vendor_input := {
	"contract": "v2",
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
			"id": "agr-shipco", "version": "3",
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
	"contract": "v2",
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
			"id": "agr-adco", "version": "1",
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
	c := consent("adco", "ad_delivery", "IDENTIFIED_SHARING", ["user.account.id"])
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"consents": [c]})]
	d.allow
	d.subject_obligations["0"].pseudonymize == []
	d.subject_obligations["0"].generalize == {"user.demographic.birth_date": "age_band", "user.location.precise": "city"}
}

test_r5_identified_consent_for_another_partner_does_not_count if {
	c := consent("otherco", "ad_delivery", "IDENTIFIED_SHARING", ["user.account.id"])
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"consents": [c]})]
	d.allow
	count(d.subject_obligations) == 0
	d.obligations.pseudonymize == ["user.account.id"]
}

test_non_ad_partner_has_no_obligations if {
	d := data.sharing.decision with input as vendor_input
	d.obligations == {"drop": [], "pseudonymize": [], "generalize": {}}
}

# A vendor measuring ad effectiveness (§三.(一).5.(2) "衡量广告和服务的有效性").
vendor_ads_input := object.union(vendor_input, {
	"request": object.union(vendor_input.request, {"purpose": "ad_effectiveness", "categories": ["user.account.id", "user.behavior"]}),
	"recipient": object.union(vendor_input.recipient, {
		"id": "measureco",
		"agreement": {"id": "agr-m", "version": "2", "purposes": ["ad_effectiveness", "service_analytics"], "categories": ["user.account.id", "user.behavior", "user.contact.phone"], "expires": "2027-12-31", "binds_policy": false},
	}),
})

test_r5_vendor_doing_ad_effectiveness_gets_no_account_id_in_clear if {
	d := data.sharing.decision with input as vendor_ads_input
	d.allow
	d.obligations.pseudonymize == ["user.account.id"]
}

test_r5_vendor_doing_service_analytics_gets_no_account_id_in_clear if {
	d := data.sharing.decision with input as vendor_ads_input with input.request.purpose as "service_analytics"
	d.allow
	d.obligations.pseudonymize == ["user.account.id"]
}

test_r5_r4_lets_an_agreed_identity_category_through_for_ad_work if {
	d := data.sharing.decision with input as vendor_ads_input
		with input.request.categories as ["user.account.id", "user.contact.phone"]
	d.allow
	d.obligations.drop == ["user.contact.phone"]
}

test_r5_r4_still_refuses_an_identity_category_the_agreement_lacks if {
	d := data.sharing.decision with input as vendor_ads_input
		with input.request.categories as ["user.account.id", "user.contact.email"]
	not d.allow
	codes(d) == {"R4.category_not_in_agreement"}
}

test_r5_identified_sharing_after_explicit_consent if {
	c := consent("measureco", "ad_effectiveness", "IDENTIFIED_SHARING", ["user.account.id", "user.contact.phone"])
	consenting := object.union(adult, {"ref": "1", "consents": [c]})
	d := data.sharing.decision with input as vendor_ads_input
		with input.request.categories as ["user.account.id", "user.contact.phone"]
		with input.subjects as [adult, consenting]
	d.allow
	d.obligations == {"drop": ["user.contact.phone"], "pseudonymize": ["user.account.id"], "generalize": {}}
	d.subject_obligations == {"1": {"drop": [], "pseudonymize": [], "generalize": {}}}
	d.consents == {"1": ["c:measureco:ad_effectiveness:IDENTIFIED_SHARING"]}
}

test_r5_identified_consent_without_recipient_does_not_count if {
	c := consent("", "ad_delivery", "IDENTIFIED_SHARING", ["user.account.id"])
	d := data.sharing.decision with input as ad_input with input.subjects as [object.union(adult, {"consents": [c]})]
	d.allow
	count(d.subject_obligations) == 0
}

test_r5_minor_identified_sharing_needs_the_guardian if {
	own := consent("adco", "ad_delivery", "IDENTIFIED_SHARING", ["user.account.id"])
	scoped := all_consent("adco", "ad_delivery", "SHARE")
	minor := object.union(adult, {"age": 16, "consents": [own, object.union(scoped, {"given_by": "guardian"})]})
	d := data.sharing.decision with input as ad_input
		with input.request.categories as ["user.account.id", "user.profile.tags"]
		with input.subjects as [minor]
	d.allow
	count(d.subject_obligations) == 0
	d.consents == {"0": ["c:adco:ad_delivery:SHARE"]}
}

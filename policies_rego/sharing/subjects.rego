# METADATA
# title: Subject-level rules (R6, R7, R8, R9, R11, R12, R13, R14)
# description: |
#   Rules that leave a subject out of the batch instead of refusing the share. Each
#   exclusion names the subject's batch ref, the rule code and why. Flags are read
#   strictly (R1): only an explicit false clears ad_opt_out, consent_withdrawn and
#   account_deleted, only an explicit true is guardian consent, and an age that is not a
#   number counts as possibly a child. Bodies are written inline (no helper call per
#   subject on the common path) to keep evaluation fast (docs/adr/0001).
package sharing

import rego.v1

# A consent matches this share when it names this recipient (or any, "") and this
# purpose (or any, "") for the given scope.
_consent_matches(c, scope) if {
	c.scope == scope
	c.recipient in {"", _recipient_id}
	c.purpose in {"", _purpose}
}

# True when one matching consent of the scope covers every category in cats.
_has_consent(s, scope, cats) if {
	some c in s.consents
	_consent_matches(c, scope)
	every x in cats {
		x in c.categories
	}
}

# Categories in cats with no matching consent of the scope.
_unconsented(s, scope, cats) := {x |
	some x in cats
	not _has_consent(s, scope, {x})
}

_scope := data.params.action_consent_scope[_action]

# Categories that leave in their own form: for an AD_PARTNER, identity categories that R5
# drops or generalises do not (a pseudonymised one does).
_stripped(c) if {
	input.recipient.kind == "AD_PARTNER"
	c in data.params.identity_categories
	not c in data.params.ad_partner_identity.pseudonymize
}

_leaving := {c | some c in input.request.categories; not _stripped(c)}

_sensitive_requested := {c | some c in _leaving; c in data.params.sensitive_categories}

_user_initiated_ok := {c | input.request.legal_basis.kind == "USER_INITIATED"; some c in data.params.user_initiated_sensitive}

# R6, 第一部分 and §三.(一).4: sensitive categories need the subject's explicit consent to
# that category for this recipient, except under LEGAL_OBLIGATION, EXEMPTION,
# DE_IDENTIFIED, and USER_INITIATED transaction data of the subject's own order sent to
# that order's merchant. A child's data (14 or under, or age unknown) is sensitive
# whatever its category.

# METADATA
# description: Subjects left out of the share, one {ref, code, message} per subject and rule.
exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	not input.request.legal_basis.kind in data.params.consent_skipping_bases
	count(_sensitive_requested) > 0
	some s in input.subjects
	is_number(s.age)
	s.age > data.params.child_max_age
	missing := _unconsented(s, _scope, _sensitive_requested - _user_initiated_ok)
	count(missing) > 0
	msg := concat("", ["no explicit consent to share sensitive categories: ", concat(", ", sort(missing))])
}

exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	not input.request.legal_basis.kind in data.params.consent_skipping_bases
	some s in input.subjects
	not is_number(s.age)
	missing := _unconsented(s, _scope, _leaving - _user_initiated_ok)
	count(missing) > 0
	msg := concat("", ["child data is sensitive; no explicit consent for: ", concat(", ", sort(missing))])
}

exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	not input.request.legal_basis.kind in data.params.consent_skipping_bases
	some s in input.subjects
	is_number(s.age)
	s.age <= data.params.child_max_age
	missing := _unconsented(s, _scope, _leaving - _user_initiated_ok)
	count(missing) > 0
	msg := concat("", ["child data is sensitive; no explicit consent for: ", concat(", ", sort(missing))])
}

# R5: the identity categories a subject's IDENTIFIED_SHARING consent with this partner keeps.
# (Here, not in decision.rego: OPA's policy API compiles one module at a time, so modules
# must not depend on each other in a cycle.)
_identified_consent(c) if {
	c.scope == "IDENTIFIED_SHARING"
	c.recipient == input.recipient.id
	c.purpose in {"", input.request.purpose}
}

_kept_identity(s) := {x |
	some c in s.consents
	_identified_consent(c)
	some x in c.categories
	x in _categories
	x in data.params.identity_categories
}

# R5 x R6: identity categories kept under an identified-sharing consent leave as they are,
# so sensitive ones among them need the R6 consent too.
exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	input.recipient.kind == "AD_PARTNER"
	not input.request.legal_basis.kind in data.params.consent_skipping_bases
	some s in input.subjects
	some c in s.consents
	c.scope == "IDENTIFIED_SHARING"
	kept := {x | some x in _kept_identity(s); x in data.params.sensitive_categories}
	missing := _unconsented(s, _scope, kept)
	count(missing) > 0
	msg := concat("", ["no explicit consent to share sensitive categories: ", concat(", ", sort(missing))])
}

_own_order(s) if {
	some o in s.orders
	o.merchant == _recipient_id
	_recipient_id != ""
}

exclusions contains {"ref": s.ref, "code": "R6.not_own_order", "message": concat("", ["subject has no order with merchant ", _show(_recipient_id)])} if {
	input.request.legal_basis.kind == "USER_INITIATED"
	input.request.action == "SHARE"
	some s in input.subjects
	not _own_order(s)
}

# R7, §三.(一).4: an AFFILIATE changing purpose needs fresh consent for exactly that purpose.
_fresh_purpose_consent(s) if {
	some c in s.consents
	c.scope == "SHARE"
	c.recipient in {"", _recipient_id}
	c.purpose == _purpose
	every x in _categories {
		x in c.categories
	}
}

exclusions contains {"ref": s.ref, "code": "R7.purpose_change_without_consent", "message": concat("", ["no fresh consent for affiliate purpose ", _show(_purpose)])} if {
	_affiliate_purpose_change
	some s in input.subjects
	not _fresh_purpose_consent(s)
}

# R8, §三.(二).1 and R9, §三.(三).1: transfer / disclosure resting on consent (or the
# user's own choice) needs that subject's consent of that scope for every category.
exclusions contains {"ref": s.ref, "code": "R8.no_transfer_consent", "message": "no explicit consent to transfer these categories"} if {
	input.request.action == "TRANSFER"
	input.request.legal_basis.kind == "EXPLICIT_CONSENT"
	some s in input.subjects
	not _has_consent(s, "TRANSFER", _categories)
}

exclusions contains {"ref": s.ref, "code": "R9.no_disclosure_consent", "message": "no explicit consent or own choice to disclose publicly"} if {
	input.request.action == "PUBLIC_DISCLOSURE"
	input.request.legal_basis.kind in {"EXPLICIT_CONSENT", "USER_INITIATED"}
	some s in input.subjects
	not _has_consent(s, "PUBLIC_DISCLOSURE", _categories)
}

# R11, §六: a child's data (14 or under) needs guardian consent, except under
# LEGAL_OBLIGATION or EXEMPTION. An unknown age is never taken for an adult (R1).
exclusions contains {"ref": s.ref, "code": "R11.no_guardian_consent", "message": "subject is 14 or under without guardian consent"} if {
	not input.request.legal_basis.kind in data.params.consent_exempt_bases
	some s in input.subjects
	is_number(s.age)
	s.age <= data.params.child_max_age
	not s.guardian_consent == true
}

exclusions contains {"ref": s.ref, "code": "R11.age_unknown", "message": "the subject age is unknown and there is no guardian consent"} if {
	not input.request.legal_basis.kind in data.params.consent_exempt_bases
	some s in input.subjects
	not is_number(s.age)
	not s.guardian_consent == true
}

# R12, §七: personal data leaves China only if law requires it, the subject authorised the
# cross-border transfer, or the subject started a cross-border transaction with this
# recipient. An empty or unknown region counts as abroad.
_cross_border if not input.request.destination_region == data.params.home_region

_cross_border if not object.get(_recipient, "region", "") == data.params.home_region

_cross_border_ok(s) if _has_consent(s, "CROSS_BORDER", _categories)

_cross_border_ok(s) if {
	some o in s.orders
	o.cross_border == true
	o.merchant == _recipient_id
	_recipient_id != ""
}

exclusions contains {"ref": s.ref, "code": "R12.cross_border_not_authorised", "message": concat("", ["no authorisation to send data to region ", _show(_destination)])} if {
	_cross_border
	not input.request.legal_basis.kind == "LEGAL_OBLIGATION"
	some s in input.subjects
	not _cross_border_ok(s)
}

# R13, §一.(二): opted out of personalised / commercial ads => out of every AD_PARTNER share.
exclusions contains {"ref": s.ref, "code": "R13.ad_opt_out", "message": "subject opted out of personalised ads"} if {
	input.recipient.kind == "AD_PARTNER"
	some s in input.subjects
	not s.ad_opt_out == false
}

# R14, §五.(三)(四): withdrawn or narrowed consent, or a deleted account.
exclusions contains {"ref": s.ref, "code": "R14.consent_withdrawn", "message": "subject withdrew consent"} if {
	input.request.legal_basis.kind in data.params.consent_based_bases
	some s in input.subjects
	not s.consent_withdrawn == false
}

exclusions contains {"ref": s.ref, "code": "R14.account_deleted", "message": "subject deleted the account"} if {
	not input.request.legal_basis.kind in data.params.consent_exempt_bases
	some s in input.subjects
	not s.account_deleted == false
}

exclusions contains {"ref": s.ref, "code": "R14.consent_missing", "message": concat("", ["no current consent covering purpose ", _show(_purpose), " and the requested categories"])} if {
	input.request.legal_basis.kind == "EXPLICIT_CONSENT"
	input.request.action == "SHARE"
	some s in input.subjects
	not _has_consent(s, "SHARE", _categories)
}

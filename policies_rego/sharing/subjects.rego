# METADATA
# title: Subject-level rules (R6, R7, R8, R9, R11, R12, R13, R14)
# description: |
#   Rules that leave a subject out of the batch instead of refusing the share. Each
#   exclusion names the subject's batch ref, the rule code and why. Flags are read
#   strictly: only an explicit false clears ad_opt_out, consent_withdrawn and
#   account_deleted, and an age that is not a number counts as possibly a child (R1).
package sharing

import rego.v1

_subject_list := [s | some x in _subjects; s := _obj(x)]

_consents(s) := [c | some x in _arr(object.get(s, "consents", [])); c := _obj(x)]

_orders(s) := [o | some x in _arr(object.get(s, "orders", [])); o := _obj(x)]

_cleared(s, flag) if object.get(s, flag, null) == false

# A consent matches this share when it names this recipient (or any, "") and this
# purpose (or any, "") for the given scope.
_consent_matches(c, scope) if {
	c.scope == scope
	object.get(c, "recipient", null) in {"", _recipient_id}
	object.get(c, "purpose", null) in {"", _purpose}
}

_consent_covers(c, cats) if {
	covered := {x | some x in _arr(object.get(c, "categories", []))}
	count(cats - covered) == 0
}

# True when one matching consent of the scope covers every category in cats.
_has_consent(s, scope, cats) if {
	some c in _consents(s)
	_consent_matches(c, scope)
	_consent_covers(c, cats)
}

# Categories in cats with no matching consent of the scope.
_unconsented(s, scope, cats) := {x |
	some x in cats
	not _has_consent(s, scope, {x})
}

_scope := _params.action_consent_scope[_action]

_age(s) := a if {
	a := object.get(s, "age", null)
	is_number(a)
}

# Unknown age never counts as an adult (R1); §六 and the 14-or-under sensitive class.
_maybe_child(s) if not _age(s)

_maybe_child(s) if _age(s) <= _params.child_max_age

_consent_based if _basis in {b | some b in _params.consent_based_bases}

_excl(s, code, message) := {"ref": _str(object.get(s, "ref", "")), "code": code, "message": message}

# R6, 第一部分 and §三.(一).4: sensitive categories (every category for a child) need the
# subject's explicit consent to that category for this recipient, except under
# LEGAL_OBLIGATION, EXEMPTION, DE_IDENTIFIED, and USER_INITIATED transaction data of the
# subject's own order sent to that order's merchant.
_sensitive := {c | some c in _params.sensitive_categories}

_sensitive_for(s) := _categories if _maybe_child(s)

_sensitive_for(s) := _categories & _sensitive if not _maybe_child(s)

_user_initiated_ok := {c | _basis == "USER_INITIATED"; some c in _params.user_initiated_sensitive}

_own_order(s) if {
	some o in _orders(s)
	o.merchant == _recipient_id
	_recipient_id != ""
}

exclusions contains _excl(s, "R6.sensitive_without_consent", sprintf("no explicit consent to share sensitive categories: %s", [concat(", ", sort(missing))])) if {
	not _consent_skipped
	some s in _subject_list
	missing := _unconsented(s, _scope, _sensitive_for(s) - _user_initiated_ok)
	count(missing) > 0
}

exclusions contains _excl(s, "R6.not_own_order", sprintf("subject has no order with merchant %s", [_recipient_id])) if {
	_basis == "USER_INITIATED"
	_action == "SHARE"
	some s in _subject_list
	not _own_order(s)
}

# R7, §三.(一).4: an AFFILIATE changing purpose needs fresh consent for exactly that purpose.
_fresh_purpose_consent(s) if {
	some c in _consents(s)
	c.scope == "SHARE"
	object.get(c, "recipient", null) in {"", _recipient_id}
	c.purpose == _purpose
	_consent_covers(c, _categories)
}

exclusions contains _excl(s, "R7.purpose_change_without_consent", sprintf("no fresh consent for affiliate purpose '%s'", [_purpose])) if {
	_affiliate_purpose_change
	some s in _subject_list
	not _fresh_purpose_consent(s)
}

# R8, §三.(二).1 and R9, §三.(三).1: transfer / disclosure resting on consent (or the
# user's own choice) needs that subject's consent of that scope for every category.
exclusions contains _excl(s, "R8.no_transfer_consent", "no explicit consent to transfer these categories") if {
	_action == "TRANSFER"
	_basis == "EXPLICIT_CONSENT"
	some s in _subject_list
	not _has_consent(s, "TRANSFER", _categories)
}

exclusions contains _excl(s, "R9.no_disclosure_consent", "no explicit consent or own choice to disclose publicly") if {
	_action == "PUBLIC_DISCLOSURE"
	_basis in {"EXPLICIT_CONSENT", "USER_INITIATED"}
	some s in _subject_list
	not _has_consent(s, "PUBLIC_DISCLOSURE", _categories)
}

# R11, §六: a child's data (14 or under, or age unknown) needs guardian consent, except
# under LEGAL_OBLIGATION or EXEMPTION.
exclusions contains _excl(s, "R11.no_guardian_consent", "subject is 14 or under without guardian consent") if {
	not _consent_exempt
	some s in _subject_list
	_age(s)
	_maybe_child(s)
	not _cleared_true(s, "guardian_consent")
}

exclusions contains _excl(s, "R11.age_unknown", "subject's age is unknown and there is no guardian consent") if {
	not _consent_exempt
	some s in _subject_list
	not _age(s)
	not _cleared_true(s, "guardian_consent")
}

_cleared_true(s, flag) if object.get(s, flag, null) == true

# R12, §七: personal data leaves China only if law requires it, the subject authorised the
# cross-border transfer, or the subject started a cross-border transaction with this recipient.
_cross_border if _destination != _params.home_region

_cross_border if _str(object.get(_recipient, "region", "")) != _params.home_region

_cross_border_ok(s) if _has_consent(s, "CROSS_BORDER", _categories)

_cross_border_ok(s) if {
	some o in _orders(s)
	o.cross_border == true
	o.merchant == _recipient_id
	_recipient_id != ""
}

exclusions contains _excl(s, "R12.cross_border_not_authorised", sprintf("no authorisation to send data to region '%s'", [_destination])) if {
	_cross_border
	_basis != "LEGAL_OBLIGATION"
	some s in _subject_list
	not _cross_border_ok(s)
}

# R13, §一.(二): opted out of personalised / commercial ads => out of every AD_PARTNER share.
exclusions contains _excl(s, "R13.ad_opt_out", "subject opted out of personalised ads") if {
	_kind == "AD_PARTNER"
	some s in _subject_list
	not _cleared(s, "ad_opt_out")
}

# R14, §五.(三)(四): withdrawn or narrowed consent, or a deleted account.
exclusions contains _excl(s, "R14.consent_withdrawn", "subject withdrew consent") if {
	_consent_based
	some s in _subject_list
	not _cleared(s, "consent_withdrawn")
}

exclusions contains _excl(s, "R14.account_deleted", "subject deleted the account") if {
	not _consent_exempt
	some s in _subject_list
	not _cleared(s, "account_deleted")
}

exclusions contains _excl(s, "R14.consent_missing", sprintf("no current consent covering purpose '%s' and the requested categories", [_purpose])) if {
	_basis == "EXPLICIT_CONSENT"
	_action == "SHARE"
	some s in _subject_list
	not _has_consent(s, "SHARE", _categories)
}

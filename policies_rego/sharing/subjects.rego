# METADATA
# title: Subject-level rules (R6, R7, R8, R9, R11, R12, R13, R14)
# description: |
#   Rules that leave a subject out of the batch instead of refusing the share. Each
#   exclusion names the subject's batch ref, the rule code and why. Flags are read
#   strictly (R1): only an explicit false clears ad_opt_out, consent_withdrawn and
#   account_deleted. A consent counts only for the recipient and purpose it names (an
#   empty one never means "any") and for the categories it lists, or for every category
#   when it says so (all_categories). A minor's consents count only when the guardian gave
#   them, an adult's only when the subject did (§六). Bodies are written inline where they
#   run per subject to keep evaluation fast (docs/adr/0001). This module depends on
#   input.rego and recipient.rego only; basis.rego and decision.rego read it (OPA's policy
#   API compiles one module at a time, so modules must not depend on each other in a cycle).
package sharing

import rego.v1

# METADATA
# description: Refs of the subjects no subject-level rule left out.
remaining := {s.ref |
	some s in input.subjects
	not s.ref in _excluded_refs
}

_excluded_refs := {x.ref | some x in exclusions}

# R5, §三.(一).5.(1)-(2): ad and analytics work - an AD_PARTNER, or any recipient working
# for an ad/analytics purpose (ad_effectiveness, service_analytics: "分析我们服务的使用方式、
# 衡量广告和服务的有效性"). Its obligations are in decision.rego.
_r5_applies if _kind == "AD_PARTNER"

_r5_applies if input.request.purpose in _params.ad_purposes

# Identity categories of this share that subject s consented to share identified with
# this recipient for this purpose (given by the guardian for a minor).
_kept_identity(s) := _request_identity - _uncovered(s, "IDENTIFIED_SHARING", _request_identity)

_request_identity := {x | some x in input.request.categories; x in _params.identity_categories}

# -- who the subject is (§六, §第一部分) -------------------------------------------------

# A minor is under 18; a child is 14 or under. An age that is not a number is unknown:
# presumed capable (§六 "在电子商务活动中我们推定您具有相应的民事行为能力"), so neither.
_is_minor(s) if {
	is_number(s.age)
	s.age <= _params.minor_max_age
}

_is_child(s) if {
	is_number(s.age)
	s.age <= _params.child_max_age
}

# Who must have given a consent for it to count for this subject.
_giver(s) := "guardian" if _is_minor(s) else := "subject"

# -- consents (R6): scoped by recipient, purpose and categories ---------------------------

# True when consent c of subject s is of the scope and names exactly this recipient and
# this purpose, and was given by the right person. A consent naming "" (or a non-string)
# matches nothing: _named holds only for a non-empty string recipient id and purpose, so
# equality with them implies both (checked once per share, not once per consent).
_consent_for(s, c, scope) if {
	c.scope == scope
	c.recipient == _recipient_id
	c.purpose == input.request.purpose
	_named
	c.given_by == _giver(s)
}

_named if {
	is_string(_recipient_id)
	_recipient_id != ""
	is_string(input.request.purpose)
	input.request.purpose != ""
}

# Categories in the set cats that no matching consent of the scope covers: none when one
# covers every category, else those no matching consent lists (one pass over the consents,
# not one per category; docs/adr/0001).
_uncovered(s, scope, cats) := set() if {
	count(cats) == 0
} else := set() if {
	some c in s.consents
	c.all_categories == true
	_consent_for(s, c, scope)
} else := cats - _listed(s, scope)

# Categories the matching consents of the scope list.
_listed(s, scope) := {x |
	some c in s.consents
	_consent_for(s, c, scope)
	some x in c.categories
}

_has_consent(s, scope, cats) if count(_uncovered(s, scope, cats)) == 0

_scope := _params.action_consent_scope[_action]

# -- what leaves ---------------------------------------------------------------------------

# Categories that leave in their own form: under R5, identity categories that are dropped
# or generalised do not (a pseudonymised one does).
_stripped(c) if {
	_r5_applies
	c in _params.identity_categories
	not c in _params.ad_partner_identity.pseudonymize
}

_leaving := {c | some c in input.request.categories; not _stripped(c)}

# What leaves for subject s: R5 keeps the identity categories s consented to share
# identified (decision.rego), so those leave too.
_leaving_for(s) := _leaving | _kept_identity(s) if {
	_r5_applies
	_has_identified_scope(s)
} else := _leaving

# Cheap test before _kept_identity: without a consent of scope IDENTIFIED_SHARING nothing is
# kept (most subjects; the scoped checks run only for those that have one).
_has_identified_scope(s) if {
	some c in s.consents
	c.scope == "IDENTIFIED_SHARING"
}

_sensitive := {c | some c in _params.sensitive_categories}

_user_initiated_ok := {c | input.request.legal_basis.kind == "USER_INITIATED"; some c in _params.user_initiated_sensitive}

# Sensitive categories of this share that need consent: what leaves for any subject is a
# subset of the request's categories, so when this is empty R6 cannot leave an adult out
# (checked once per share instead of once per subject).
_sensitive_requested := (_categories & _sensitive) - _user_initiated_ok

# -- orders (R6 USER_INITIATED, R11 own order, R12 cross-border transaction) -------------

# The recipient is a party to order o: its merchant or one of its fulfilment partners.
_order_party(o) if {
	_recipient_id != ""
	o.merchant == _recipient_id
}

_order_party(o) if {
	_recipient_id != ""
	_recipient_id in o.fulfilment
}

# Every record of s in this batch belongs to an order of s that the recipient is a party
# to: the share carries that transaction's data and nothing else.
_order_share(s) if {
	s.all_records_in_orders == true
	count(s.orders) > 0
	every o in s.orders {
		_order_party(o)
	}
}

# As _order_share, but only to the order's merchant (R6 USER_INITIATED, §三.(一).3).
_merchant_share(s) if {
	s.all_records_in_orders == true
	count(s.orders) > 0
	every o in s.orders {
		_recipient_id != ""
		o.merchant == _recipient_id
	}
}

# -- R6 --------------------------------------------------------------------------------

# R6, 第一部分 and §三.(一).4: sensitive categories need the subject's explicit consent to
# that category for this recipient and purpose, except under LEGAL_OBLIGATION, EXEMPTION,
# DE_IDENTIFIED, and USER_INITIATED transaction data of the subject's own order sent to
# that order's merchant. A child's data (14 or under) is sensitive whatever its category,
# and only the guardian's scoped consent covers it (R11).

# METADATA
# description: Subjects left out of the share, one {ref, code, message} per subject and rule.
exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	not input.request.legal_basis.kind in _params.consent_skipping_bases
	count(_sensitive_requested) > 0
	some s in input.subjects
	not _is_child(s)
	missing := _uncovered(s, _scope, _leaving_for(s) & _sensitive_requested)
	count(missing) > 0
	msg := concat("", ["no explicit consent to share sensitive categories: ", concat(", ", sort(missing))])
}

exclusions contains {"ref": s.ref, "code": "R6.sensitive_without_consent", "message": msg} if {
	not input.request.legal_basis.kind in _params.consent_skipping_bases
	some s in input.subjects
	_is_child(s)
	missing := _uncovered(s, _scope, _leaving_for(s))
	count(missing) > 0
	msg := concat("", ["child data is sensitive; no guardian consent for: ", concat(", ", sort(missing))])
}

exclusions contains {"ref": s.ref, "code": "R6.not_own_order", "message": concat("", ["records are not all of the subject own orders with merchant ", _show(_recipient_id)])} if {
	input.request.legal_basis.kind == "USER_INITIATED"
	input.request.action == "SHARE"
	some s in input.subjects
	not _merchant_share(s)
}

# -- R7 --------------------------------------------------------------------------------

# R7, §三.(一).4: an AFFILIATE changing purpose needs fresh consent for exactly that purpose.
exclusions contains {"ref": s.ref, "code": "R7.purpose_change_without_consent", "message": concat("", ["no fresh consent for affiliate purpose ", _show(_purpose)])} if {
	_affiliate_purpose_change
	some s in input.subjects
	not _has_consent(s, "SHARE", _categories)
}

# -- R8, R9 ------------------------------------------------------------------------------

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

# -- R11 ---------------------------------------------------------------------------------

# R11, §六: a minor's data (under 18) leaves only with the guardian's explicit consent,
# scoped like any consent, except where no consent is needed (LEGAL_OBLIGATION, EXEMPTION,
# DE_IDENTIFIED: "法律法规允许", docs/adr/0020) or to fulfil the minor's own order (§六 ¶1:
# the guardian consented to the minor using the service). A child (14 or under) has no
# own-order exception: the data is sensitive (R6).
_own_order_exception(s) if {
	not _is_child(s)
	input.request.purpose in _params.transaction_purposes
	_order_share(s)
}

exclusions contains {"ref": s.ref, "code": "R11.no_guardian_consent", "message": msg} if {
	not input.request.legal_basis.kind in _params.consent_skipping_bases
	some s in input.subjects
	_is_minor(s)
	not _own_order_exception(s)
	missing := _uncovered(s, _scope, _leaving_for(s))
	count(missing) > 0
	msg := concat("", ["subject is under 18; no guardian consent for: ", concat(", ", sort(missing))])
}

# -- R12 ---------------------------------------------------------------------------------

# R12, §七: personal data leaves China only if law requires it, the subject authorised the
# cross-border transfer (CROSS_BORDER consent, possibly for all categories), or the subject
# started a cross-border transaction - and then only that transaction's data to its
# merchant and fulfilment partners. An empty or unknown region counts as abroad.
_cross_border if not input.request.destination_region == _params.home_region

_cross_border if not object.get(_recipient, "region", "") == _params.home_region

_cross_border_transaction(s) if {
	input.request.purpose in _params.transaction_purposes
	_order_share(s)
	every o in s.orders {
		o.cross_border == true
	}
}

# Which exception of §七 lets subject s's data abroad (the ledger records it).
_cross_border_exception(_) := "law" if input.request.legal_basis.kind == "LEGAL_OBLIGATION"

_cross_border_exception(s) := "consent" if {
	not input.request.legal_basis.kind == "LEGAL_OBLIGATION"
	_has_consent(s, "CROSS_BORDER", _leaving_for(s))
}

_cross_border_exception(s) := "transaction" if {
	not input.request.legal_basis.kind == "LEGAL_OBLIGATION"
	not _has_consent(s, "CROSS_BORDER", _leaving_for(s))
	_cross_border_transaction(s)
}

exclusions contains {"ref": s.ref, "code": "R12.cross_border_not_authorised", "message": concat("", ["no authorisation to send data to region ", _show(_destination)])} if {
	_cross_border
	some s in input.subjects
	not _cross_border_exception(s)
}

# -- R1 ----------------------------------------------------------------------------------

# R1: a subject the registry holds nothing about has unknown flags, consents and age; that
# never makes a share more permissive, so the subject is left out of every share except
# LEGAL_OBLIGATION and EXEMPTION (which read none of these facts).
exclusions contains {"ref": s.ref, "code": "R1.unknown_subject", "message": "the registry holds no facts about the subject"} if {
	not input.request.legal_basis.kind in _params.consent_exempt_bases
	some s in input.subjects
	not s.registered == true
}

# -- R13 ---------------------------------------------------------------------------------

# R13, §一.(二): opted out of personalised / commercial ads => out of every AD_PARTNER share.
exclusions contains {"ref": s.ref, "code": "R13.ad_opt_out", "message": "subject opted out of personalised ads"} if {
	_kind == "AD_PARTNER"
	some s in input.subjects
	not s.ad_opt_out == false
}

# -- R14 ---------------------------------------------------------------------------------

# R14, §五.(三)(四): withdrawn consent, a withdrawal narrowed to a recipient, purpose or
# category, or a deleted account. In a withdrawal an empty recipient or purpose is not
# narrowed (the withdrawal reaches every recipient / purpose: the restrictive reading);
# its categories are all when all_categories is true, else the ones it lists.
exclusions contains {"ref": s.ref, "code": "R14.consent_withdrawn", "message": "subject withdrew consent"} if {
	input.request.legal_basis.kind in _params.consent_based_bases
	some s in input.subjects
	not s.consent_withdrawn == false
}

_withdrawal_reaches(w, _) if w == ""

_withdrawal_reaches(w, actual) if w == actual

_withdrawal_covers(w, _) if w.all_categories == true

_withdrawal_covers(w, x) if x in w.categories

_withdrawal_matches(w) if {
	_withdrawal_reaches(w.recipient, _recipient_id)
	_withdrawal_reaches(w.purpose, input.request.purpose)
	some x in input.request.categories
	_withdrawal_covers(w, x)
}

exclusions contains {"ref": s.ref, "code": "R14.consent_withdrawn", "message": "subject withdrew consent for this recipient, purpose or category"} if {
	input.request.legal_basis.kind in _params.consent_based_bases
	some s in input.subjects
	some w in s.withdrawals
	_withdrawal_matches(w)
}

# A deleted account (删除 = 不可被检索、访问, 第一部分) is out of every share except data
# kept by legal duty: LEGAL_OBLIGATION and EXEMPTION. USER_INITIATED, MERGER and
# DE_IDENTIFIED shares leave it out too.
exclusions contains {"ref": s.ref, "code": "R14.account_deleted", "message": "subject deleted the account"} if {
	not input.request.legal_basis.kind in _params.consent_exempt_bases
	some s in input.subjects
	not s.account_deleted == false
}

exclusions contains {"ref": s.ref, "code": "R14.consent_missing", "message": concat("", ["no current consent covering purpose ", _show(_purpose), " and the requested categories"])} if {
	input.request.legal_basis.kind == "EXPLICIT_CONSENT"
	input.request.action == "SHARE"
	some s in input.subjects
	not _has_consent(s, "SHARE", _categories)
}

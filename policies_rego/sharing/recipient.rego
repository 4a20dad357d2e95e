# METADATA
# title: The recipient (R2, R3, R15, R17)
# description: |
#   Who may receive data and for what: a registered, active partner with a current
#   agreement (R2), a purpose both the agreement and the recipient kind allow (R3; an
#   AFFILIATE's purpose change is handled per subject by R7), a current security review
#   and data-protection agreement for ad partners and vendors (R15), and a partner only
#   ever reaching data addressed to itself (R17).
package sharing

import rego.v1

_kinds := _params.recipient_kinds

# R2, §三.(一).5: registered (the gateway sends null for an unknown id).
_recipient_registered if {
	is_string(_recipient_id)
	_recipient_id != ""
}

_recipient_active if _recipient.active == true

_agreement_current if _current(object.get(_agreement, "expires", ""))

# METADATA
# description: R2 holds - the recipient is registered, active and under a current agreement.
recipient_ok if {
	is_string(input.recipient.id)
	input.recipient.id != ""
	input.recipient.active == true
	_current(input.recipient.agreement.expires)
}

_deny_recipient contains _reason("R2.unknown_recipient", "recipient is not a registered partner") if {
	not _recipient_registered
}

_deny_recipient contains _reason("R2.recipient_inactive", concat("", ["recipient ", _show(_recipient_id), " is not active"])) if {
	_recipient_registered
	not _recipient_active
}

_deny_recipient contains _reason("R2.agreement_expired", concat("", ["recipient ", _show(_recipient_id), " has no current agreement"])) if {
	_recipient_registered
	not _agreement_current
}

# R3, §三.(一).4-5.
_kind_known if _kinds[_kind]

_purpose_known if _params.purposes[_purpose]

_purpose_in_agreement if _purpose in _agreement.purposes

_purpose_in_kind if _purpose in _kinds[_kind].purposes

# R7: an AFFILIATE may ask for a purpose outside the ones declared for affiliates
# (§三.(一).4) only with fresh consent; subjects without it are excluded in subjects.rego.
_affiliate_purpose_change if {
	input.recipient.kind == "AFFILIATE"
	_params.purposes[input.request.purpose]
	not input.request.purpose in _params.recipient_kinds.AFFILIATE.purposes
}

# METADATA
# description: R3 holds - the purpose is known, named by the agreement and allowed for the kind (or R7 applies).
purpose_ok if {
	_params.purposes[input.request.purpose]
	input.request.purpose in input.recipient.agreement.purposes
	input.request.purpose in _params.recipient_kinds[input.recipient.kind].purposes
}

purpose_ok if {
	input.recipient.kind == "AFFILIATE"
	_params.purposes[input.request.purpose]
	input.request.purpose in input.recipient.agreement.purposes
	not input.request.purpose in _params.recipient_kinds.AFFILIATE.purposes
}

_deny_purpose contains _reason("R3.unknown_recipient_kind", concat("", ["recipient kind ", _show(_kind), " is unknown"])) if {
	_recipient_registered
	not _kind_known
}

_deny_purpose contains _reason("R3.unknown_purpose", concat("", ["purpose ", _show(_purpose), " is not a known purpose"])) if {
	_purpose != ""
	not _purpose_known
}

_deny_purpose contains _reason("R3.purpose_not_in_agreement", concat("", ["purpose ", _show(_purpose), " is not in the agreement of recipient ", _show(_recipient_id)])) if {
	_recipient_registered
	_purpose_known
	not _purpose_in_agreement
}

_deny_purpose contains _reason("R3.purpose_not_for_kind", concat("", ["purpose ", _show(_purpose), " is not allowed for recipient kind ", _show(_kind)])) if {
	_kind_known
	_purpose_known
	not _purpose_in_kind
	not _affiliate_purpose_change
}

# R15, §三.(一).5.(2): API/SDK security review and data-protection agreement, both current.
_review_required if _kind in _params.review_required_kinds

_review_current if _current(object.get(_recipient, "security_review_expires", ""))

_dpa_current if _current(object.get(_recipient, "dpa_expires", ""))

# METADATA
# description: R15 holds - no review is required for this kind, or both the review and the DPA are current.
review_ok if not _kind in _params.review_required_kinds

review_ok if {
	input.recipient.kind in _params.review_required_kinds
	_current(input.recipient.security_review_expires)
	_current(input.recipient.dpa_expires)
}

_deny_review contains _reason("R15.security_review_not_current", concat("", [_show(_kind), " ", _show(_recipient_id), " has no current API/SDK security review"])) if {
	_review_required
	not _review_current
}

_deny_review contains _reason("R15.dpa_not_current", concat("", [_show(_kind), " ", _show(_recipient_id), " has no current data-protection agreement"])) if {
	_review_required
	not _dpa_current
}

# R17, §三.(一).5: a partner reaches only data addressed to itself; a pull is decided
# again when data leaves (the gateway asks with mode "pull").
_role := object.get(_caller, "role", "")

_caller_is_recipient if {
	_recipient_id != ""
	_caller.partner_id == _recipient_id
}

_caller_is_recipient if {
	_recipient_id != ""
	_caller.principal == concat("", ["partner:", _show(_recipient_id)])
}

# METADATA
# description: R17 holds - a partner caller is the recipient, and only partners pull.
caller_ok if {
	input.caller.role in _params.roles
	input.caller.role != "partner"
	input.request.mode != "pull"
}

caller_ok if {
	input.caller.role == "partner"
	_caller_is_recipient
}

_deny_caller contains _reason("R17.not_addressed_to_caller", "a partner may only reach data addressed to itself") if {
	_role == "partner"
	not _caller_is_recipient
}

_deny_caller contains _reason("R17.pull_by_non_partner", concat("", ["only the recipient partner may pull; caller role is ", _show(_role)])) if {
	_mode == "pull"
	_role != "partner"
}

# METADATA
# title: Normalised input and R1 (default deny, no permissive gaps)
# description: |
#   Reads the contract-v1 input into normalised values (object.get with ""/{}/[]
#   defaults). Allowing checks are stated positively, so a missing or mistyped value makes
#   them false (R1, whole §三); the refusal rules here name what was missing or unknown.
package sharing

import rego.v1

_reason(code, message) := {"code": code, "message": message}

# A caller-supplied value for a message: engines print non-strings and "" differently.
_show(x) := x if {
	is_string(x)
	x != ""
} else := "(missing)"

_request := x if {
	x := input.request
	is_object(x)
} else := {}

_caller := x if {
	x := input.caller
	is_object(x)
} else := {}

_today := object.get(input, "today", "")

_mode := object.get(_request, "mode", "")

_action := object.get(_request, "action", "")

_purpose := object.get(_request, "purpose", "")

_legal_basis := x if {
	x := _request.legal_basis
	is_object(x)
} else := {}

_basis := object.get(_legal_basis, "kind", "")

_reference := object.get(_legal_basis, "reference", "")

_exemption_code := object.get(_legal_basis, "exemption_code", "")

_destination := object.get(_request, "destination_region", "")

_raw_categories := x if {
	x := _request.categories
	is_array(x)
} else := []

_categories := {c | some c in _raw_categories}

_known_categories := {c | some c in data.params.categories}

_recipient := x if {
	x := input.recipient
	is_object(x)
} else := {}

_recipient_id := object.get(_recipient, "id", "")

_kind := object.get(_recipient, "kind", "")

_agreement := x if {
	x := _recipient.agreement
	is_object(x)
} else := {}

_subjects := x if {
	x := input.subjects
	is_array(x)
} else := []

_subject_refs := {s.ref | some s in _subjects}

# True when d is an ISO date string on or after today (an unexpired end date). Both
# are strings of the same shape, so string order is date order.
_current(d) if {
	is_string(d)
	count(d) == 10
	_today_ok
	d >= input.today
}

_today_ok if {
	is_string(input.today)
	count(input.today) == 10
	substring(input.today, 4, 1) == "-"
	substring(input.today, 7, 1) == "-"
}

_contract_ok if input.contract == "v1"

_action_ok if _action in data.params.actions

_mode_ok if _mode in data.params.modes

_basis_ok if data.params.legal_bases[_basis]

_role_ok if _caller.role in data.params.roles

_purpose_ok if {
	is_string(_purpose)
	_purpose != ""
}

_categories_ok if {
	is_array(_raw_categories)
	count(_raw_categories) > 0
	every c in _raw_categories {
		c in data.params.categories
	}
}

_subjects_ok if {
	is_array(_subjects)
	count(_subjects) > 0
	every s in _subjects {
		is_string(s.ref)
		s.ref != ""
	}
	count(_subject_refs) == count(_subjects)
}

# METADATA
# description: Every input value the decision depends on is present, typed and known (R1).
input_ok if {
	# Direct input references on this (allowing) path: an undefined value makes the
	# check false, never true, and avoids one rule evaluation per accessor.
	input.contract == "v1"
	_today_ok
	input.request.mode in data.params.modes
	input.request.action in data.params.actions
	data.params.legal_bases[input.request.legal_basis.kind]
	input.caller.role in data.params.roles
	is_string(input.request.purpose)
	input.request.purpose != ""
	is_array(input.request.categories)
	count(input.request.categories) > 0
	every c in input.request.categories {
		c in data.params.categories
	}
	is_array(input.subjects)
	count(input.subjects) > 0
	every s in input.subjects {
		is_string(s.ref)
		s.ref != ""
	}
	count({s.ref | some s in input.subjects}) == count(input.subjects)
}

_deny_input contains _reason("R1.unsupported_contract", "input is not decision contract v1") if not _contract_ok

_deny_input contains _reason("R1.missing_today", "input.today is missing or not an ISO date") if not _today_ok

_deny_input contains _reason("R1.unknown_mode", concat("", ["request mode ", _show(_mode), " is unknown"])) if not _mode_ok

_deny_input contains _reason("R1.unknown_action", concat("", ["action ", _show(_action), " is unknown or missing"])) if not _action_ok

_deny_input contains _reason("R1.unknown_legal_basis", concat("", ["legal basis ", _show(_basis), " is unknown or missing"])) if not _basis_ok

_deny_input contains _reason("R1.unknown_caller_role", "caller role is unknown or missing") if not _role_ok

_deny_input contains _reason("R1.missing_purpose", "no purpose given") if not _purpose_ok

_deny_input contains _reason("R1.no_categories", "no data category requested") if {
	not _categories_ok
	count(_categories) == 0
}

_deny_input contains _reason("R1.unknown_category", concat("", ["unknown data categories: ", concat(", ", sort(names))])) if {
	unknown := _categories - _known_categories
	count(unknown) > 0
	names := {_show(c) | some c in unknown}
}

_deny_input contains _reason("R1.no_subjects", "no subject in the batch") if count(_subjects) == 0

_deny_input contains _reason("R1.malformed_subjects", "subject refs are missing, not strings or not unique") if {
	count(_subjects) > 0
	not _subjects_ok
}

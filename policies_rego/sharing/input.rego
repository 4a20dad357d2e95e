# METADATA
# title: Normalised input and R1 (default deny, no permissive gaps)
# description: |
#   Reads the contract-v1 input once into normalised values. A missing, empty, mistyped
#   or unknown value becomes "" / {} / [] here, which no allowing rule accepts, and R1
#   names it as a refusal (R1, whole §三). Rules elsewhere read only these values.
package sharing

import rego.v1

_params := data.params

_obj(x) := x if {
	is_object(x)
} else := {}

_arr(x) := x if {
	is_array(x)
} else := []

_str(x) := x if {
	is_string(x)
} else := ""

_reason(code, message) := {"code": code, "message": message}

_request := _obj(object.get(input, "request", {}))

_caller := _obj(object.get(input, "caller", {}))

_today := t if {
	t := object.get(input, "today", "")
	is_string(t)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, t)
} else := ""

_mode := _str(object.get(_request, "mode", ""))

_action := _str(object.get(_request, "action", ""))

_purpose := _str(object.get(_request, "purpose", ""))

_legal_basis := _obj(object.get(_request, "legal_basis", {}))

_basis := _str(object.get(_legal_basis, "kind", ""))

_reference := _str(object.get(_legal_basis, "reference", ""))

_exemption_code := _str(object.get(_legal_basis, "exemption_code", ""))

_destination := _str(object.get(_request, "destination_region", ""))

_raw_categories := _arr(object.get(_request, "categories", []))

# Only well-formed category names; anything else is refused below (R1.malformed_category).
_categories := {c | some c in _raw_categories; is_string(c)}

_known_categories := {c | some c in _params.categories}

_recipient := _obj(object.get(input, "recipient", {}))

_recipient_id := _str(object.get(_recipient, "id", ""))

_kind := _str(object.get(_recipient, "kind", ""))

_agreement := _obj(object.get(_recipient, "agreement", {}))

_subjects := _arr(object.get(input, "subjects", []))

_subject_refs := {ref | some s in _subjects; ref := _str(object.get(_obj(s), "ref", ""))}

# METADATA
# description: True when the date string d is an ISO date on or after today (an unexpired end date).
_current(d) if {
	is_string(d)
	d != ""
	_today != ""
	d >= _today
}

_contract_ok if input.contract == "v1"

_action_ok if _action in {a | some a in _params.actions}

_mode_ok if _mode in {m | some m in _params.modes}

_basis_ok if _params.legal_bases[_basis]

_role_ok if _str(object.get(_caller, "role", "")) in {r | some r in _params.roles}

_categories_ok if {
	count(_raw_categories) > 0
	count(_categories) == count(_raw_categories)
	count(_categories - _known_categories) == 0
}

_subjects_ok if {
	count(_subjects) > 0
	every s in _subjects {
		_str(object.get(_obj(s), "ref", "")) != ""
	}
	count(_subject_refs) == count(_subjects)
}

# METADATA
# description: Every input value the decision depends on is present, typed and known (R1).
_input_ok if {
	_contract_ok
	_today != ""
	_mode_ok
	_action_ok
	_basis_ok
	_role_ok
	_purpose != ""
	_categories_ok
	_subjects_ok
}

deny contains _reason("R1.unsupported_contract", "input is not decision contract v1") if not _contract_ok

deny contains _reason("R1.missing_today", "input.today is missing or not an ISO date") if _today == ""

deny contains _reason("R1.unknown_mode", sprintf("request mode '%s' is unknown", [_mode])) if not _mode_ok

deny contains _reason("R1.unknown_action", sprintf("action '%s' is unknown or missing", [_action])) if not _action_ok

deny contains _reason("R1.unknown_legal_basis", sprintf("legal basis '%s' is unknown or missing", [_basis])) if not _basis_ok

deny contains _reason("R1.unknown_caller_role", "caller role is unknown or missing") if not _role_ok

deny contains _reason("R1.missing_purpose", "no purpose given") if _purpose == ""

deny contains _reason("R1.no_categories", "no data category requested") if count(_raw_categories) == 0

deny contains _reason("R1.malformed_category", "a requested category is not a string") if {
	count(_categories) != count(_raw_categories)
}

deny contains _reason("R1.unknown_category", sprintf("unknown data categories: %s", [concat(", ", sort(unknown))])) if {
	unknown := _categories - _known_categories
	count(unknown) > 0
}

deny contains _reason("R1.no_subjects", "no subject in the batch") if count(_subjects) == 0

deny contains _reason("R1.malformed_subjects", "subject refs are missing or not unique") if {
	count(_subjects) > 0
	not _subjects_ok
}

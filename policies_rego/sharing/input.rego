# METADATA
# title: The input gate, normalised input and R1 (default deny, no permissive gaps)
# description: |
#   The gate: input_well_formed holds only when every key the policy reads is present with
#   its contract type (CONTRACT.md); otherwise the decision is a refusal that names each
#   missing or mistyped key (R1.malformed_input) and no other rule is evaluated. Rules
#   behind the gate may therefore read input.* directly: every such reference is defined
#   (recipient.* only when the recipient is not null; read it through _recipient). This
#   matters because OPA rewrites a reference out of a negation (opa#1877): there,
#   not f(input.missing) and not input.missing in s are undefined, not true.
#   Values are then checked (known mode, action, legal basis, role, categories); allowing
#   checks are stated positively and the refusal rules here name what was wrong.
package sharing

import rego.v1

_reason(code, message) := {"code": code, "message": message}

# The policy data (params/), bound once per evaluation: regorus resolves every
# data.params.* reference against the data document anew, which cost more than the rule
# reference (measured with callgrind, docs/adr/0001).
_params := data.params

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

_known_categories := {c | some c in _params.categories}

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

_contract_ok if input.contract == "v2"

_action_ok if _action in _params.actions

_mode_ok if _mode in _params.modes

_basis_ok if _params.legal_bases[_basis]

_role_ok if _caller.role in _params.roles

_purpose_ok if {
	is_string(_purpose)
	_purpose != ""
}

_categories_ok if {
	is_array(_raw_categories)
	count(_raw_categories) > 0
	every c in _raw_categories {
		c in _params.categories
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

# -- The gate: keys and types ------------------------------------------------------------

# Required keys of each input object and their types (CONTRACT.md). Optional keys are
# checked only when present. Types: "string", "boolean", "object", "array",
# "number or null", "object or null", "array of strings", "object of strings".
_input_keys := {"contract": "string", "today": "string", "caller": "object", "request": "object", "subjects": "array"}

_caller_keys := {"principal": "string", "role": "string"}

_caller_optional_keys := {"partner_id": "string", "legal_grant": "boolean"}

_request_keys := {
	"mode": "string",
	"action": "string",
	"purpose": "string",
	"legal_basis": "object",
	"destination_region": "string",
	"categories": "array of strings",
	"quasi_identifiers": "array",
}

_request_optional_keys := {"record_type": "string", "legal_request": "object or null"}

# A named legal request (R8, R10; CONTRACT.md "Legal requests"), when it is an object.
_legal_request_keys := {
	"id": "string",
	"kind": "string",
	"basis": "string",
	"authority_kind": "string",
	"reference": "string",
	"exemption_code": "string",
	"recipient": "string",
	"all_subjects": "boolean",
	"categories": "array of strings",
	"valid_from": "string",
	"valid_until": "string",
	"revoked": "boolean",
}

_legal_basis_keys := {"kind": "string", "reference": "string", "exemption_code": "string"}

_recipient_keys := {
	"id": "string",
	"kind": "string",
	"active": "boolean",
	"region": "string",
	"agreement": "object",
	"security_review_expires": "string",
	"dpa_expires": "string",
}

_agreement_keys := {
	"id": "string",
	"version": "string",
	"purposes": "array of strings",
	"categories": "array of strings",
	"expires": "string",
	"binds_policy": "boolean",
}

_subject_keys := {
	"ref": "string",
	"registered": "boolean",
	"age": "number or null",
	"ad_opt_out": "boolean",
	"consent_withdrawn": "boolean",
	"account_deleted": "boolean",
	"all_records_in_orders": "boolean",
	"orders": "array",
	"consents": "array",
	"withdrawals": "array",
}

_order_keys := {"id": "string", "merchant": "string", "fulfilment": "array of strings", "cross_border": "boolean"}

_consent_keys := {
	"id": "string",
	"recipient": "string",
	"purpose": "string",
	"scope": "string",
	"categories": "array of strings",
	"all_categories": "boolean",
	"given_by": "string",
}

_withdrawal_keys := {"recipient": "string", "purpose": "string", "categories": "array of strings", "all_categories": "boolean"}

_quasi_identifier_keys := {"ref": "string", "values": "object of strings"}

# The contract type names a value satisfies, from its shape (one built-in call, not one
# function clause per type: this runs for every key of every subject of a malformed input).
_accepts := {
	"string": {"string"},
	"boolean": {"boolean"},
	"object": {"object", "object of strings"},
	"array": {"array", "array of strings"},
	"number or null": {"number", "null"},
	"object or null": {"object", "object of strings", "null"},
	"array of strings": {"array of strings"},
	"object of strings": {"object of strings"},
}

_shape(x) := concat("", [type_name(x), " of strings"]) if {
	type_name(x) in {"array", "object"}
	every v in x {
		is_string(v)
	}
} else := type_name(x)

_is_type(x, type) if _shape(x) in _accepts[type]

# obj and key are always defined here; an absent obj[key] makes this false, so
# "not _key_ok(...)" is true for a missing key on every engine (no opa#1877 rewrite).
_key_ok(obj, key, type) if _is_type(obj[key], type)

_has_key(obj, key) if _ = obj[key]

# Arrays the gate looks into: iterating a non-array (an object's keys, null) would give
# non-numeric indexes or fail, differently per engine.
_array(x) := x if is_array(x)

_array(x) := [] if not is_array(x)

# The problems of one object: each required key missing or mistyped, each optional key
# present and mistyped. Objects are passed, never collected into sets (hashing them is slow).
_problems(path, obj, keys, optional) := {m |
	some key
	type := keys[key]
	not _key_ok(obj, key, type)
	m := concat("", [path, ".", key, " is missing or not ", type])
} | {m |
	some key
	type := optional[key]
	_has_key(obj, key)
	not _key_ok(obj, key, type)
	m := concat("", [path, ".", key, " is not ", type])
}

_at(path, i) := concat("", [path, "[", format_int(i, 10), "]"])

# The problems of one element of an array of objects.
_element_problems(path, j, x, _) := {concat("", [_at(path, j), " is not object"])} if not is_object(x)

_element_problems(path, j, x, keys) := _problems(_at(path, j), x, keys, {}) if is_object(x)

# Every missing or mistyped key, as text (explains a failed gate; never on the allowing path).
_malformed contains "input is not an object" if not is_object(input)

_malformed contains m if {
	is_object(input)
	some m in _problems("input", input, _input_keys, {})
}

_malformed contains "input.recipient is missing or not an object or null" if {
	is_object(input)
	not _recipient_object_or_null
}

_recipient_object_or_null if input.recipient == null

_recipient_object_or_null if is_object(input.recipient)

_malformed contains m if {
	is_object(input.caller)
	some m in _problems("input.caller", input.caller, _caller_keys, _caller_optional_keys)
}

_malformed contains m if {
	is_object(input.request)
	some m in _problems("input.request", input.request, _request_keys, _request_optional_keys)
}

_malformed contains m if {
	is_object(input.request.legal_basis)
	some m in _problems("input.request.legal_basis", input.request.legal_basis, _legal_basis_keys, {})
}

_malformed contains m if {
	is_object(input.request.legal_request)
	some m in _problems("input.request.legal_request", input.request.legal_request, _legal_request_keys, {})
}

_malformed contains m if {
	is_object(input.request)
	some i, q in _array(object.get(input.request, "quasi_identifiers", []))
	some m in _element_problems("input.request.quasi_identifiers", i, q, _quasi_identifier_keys)
}

_malformed contains m if {
	is_object(input.recipient)
	some m in _problems("input.recipient", input.recipient, _recipient_keys, {})
}

_malformed contains m if {
	is_object(input.recipient.agreement)
	some m in _problems("input.recipient.agreement", input.recipient.agreement, _agreement_keys, {})
}

_malformed contains m if {
	some i, s in _subjects
	some m in _element_problems("input.subjects", i, s, _subject_keys)
}

# Each subject's arrays of objects: [key, keys of each element].
_subject_arrays := [["orders", _order_keys], ["consents", _consent_keys], ["withdrawals", _withdrawal_keys]]

_malformed contains m if {
	some i, s in _subjects
	is_object(s)
	some [name, keys] in _subject_arrays
	path := concat("", [_at("input.subjects", i), ".", name])
	some j, x in _array(object.get(s, name, []))
	some m in _element_problems(path, j, x, keys)
}

# METADATA
# description: |
#   The gate (R1): every key the policy reads is present with its contract type. Written
#   with direct references (an absent key makes it false) to keep the allowing path short.
input_well_formed if {
	[
		type_name(input.contract), type_name(input.today), type_name(input.caller.principal),
		type_name(input.caller.role), type_name(object.get(input.caller, "partner_id", "")),
		type_name(object.get(input.caller, "legal_grant", false)), type_name(input.request.mode),
		type_name(input.request.action), type_name(input.request.purpose),
		type_name(input.request.legal_basis.kind), type_name(input.request.legal_basis.reference),
		type_name(input.request.legal_basis.exemption_code),
		type_name(object.get(input.request, "record_type", "")),
		type_name(input.request.destination_region), type_name(input.request.categories),
		type_name(input.request.quasi_identifiers),
	] == [
		"string", "string", "string", "string", "string", "boolean", "string", "string", "string",
		"string", "string", "string", "string", "string", "array", "array",
	]
	_legal_request_well_formed
	every c in input.request.categories {
		is_string(c)
	}
	every q in input.request.quasi_identifiers {
		is_string(q.ref)
		is_object(q.values)
		every v in q.values {
			is_string(v)
		}
	}
	_recipient_well_formed
	is_array(input.subjects)
	# Per subject and per element, the key types are compared as one list (one comparison
	# instead of a check per key: this runs for every subject of every share).
	every s in input.subjects {
		[
			type_name(s.ref), type_name(s.registered), type_name(s.ad_opt_out),
			type_name(s.consent_withdrawn), type_name(s.account_deleted),
			type_name(s.all_records_in_orders), type_name(s.orders), type_name(s.consents),
			type_name(s.withdrawals),
		] == ["string", "boolean", "boolean", "boolean", "boolean", "boolean", "array", "array", "array"]
		type_name(s.age) in {"number", "null"}
		every o in s.orders {
			[type_name(o.id), type_name(o.merchant), type_name(o.fulfilment), type_name(o.cross_border)] == ["string", "string", "array", "boolean"]
			every f in o.fulfilment {
				is_string(f)
			}
		}
		every c in s.consents {
			[
				type_name(c.id), type_name(c.recipient), type_name(c.purpose), type_name(c.scope),
				type_name(c.categories), type_name(c.all_categories), type_name(c.given_by),
			] == ["string", "string", "string", "string", "array", "boolean", "string"]
			every x in c.categories {
				is_string(x)
			}
		}
		every w in s.withdrawals {
			[type_name(w.recipient), type_name(w.purpose), type_name(w.categories), type_name(w.all_categories)] == ["string", "string", "array", "boolean"]
			every x in w.categories {
				is_string(x)
			}
		}
	}
}

# Absent, null, or an object with every key typed ("object or null", CONTRACT.md).
_legal_request_well_formed if object.get(input.request, "legal_request", null) == null

_legal_request_well_formed if {
	is_object(input.request.legal_request)
	every key, type in _legal_request_keys {
		_key_ok(input.request.legal_request, key, type)
	}
}

_recipient_well_formed if input.recipient == null

_recipient_well_formed if {
	r := input.recipient
	a := r.agreement
	[
		type_name(r.id), type_name(r.kind), type_name(r.active), type_name(r.region),
		type_name(r.security_review_expires), type_name(r.dpa_expires), type_name(a.id),
		type_name(a.version), type_name(a.purposes), type_name(a.categories),
		type_name(a.expires), type_name(a.binds_policy),
	] == [
		"string", "string", "boolean", "string", "string", "string", "string", "string",
		"array", "array", "string", "boolean",
	]
	every p in a.purposes {
		is_string(p)
	}
	every c in a.categories {
		is_string(c)
	}
}

_malformed_reasons contains _reason("R1.malformed_input", m) if some m in _malformed

# R1: a failed gate always carries a reason, even if the explanation above misses a case.
_malformed_reasons contains _reason("R1.malformed_input", "input does not follow decision contract v2") if {
	not input_well_formed
	count(_malformed) == 0
}

# METADATA
# description: The decision when the gate fails - a refusal naming each missing or mistyped key; nothing else is evaluated.
refused_malformed := {
	"allow": false,
	"reasons": _malformed_reasons,
	"excluded": set(),
	"obligations": {"drop": [], "pseudonymize": [], "generalize": {}},
	"subject_obligations": {},
	"consents": {},
	"cross_border": {"applies": false, "region": "", "exceptions": {}},
	"subject_ref": "none",
}

_deny_input contains r if {
	not input_well_formed
	some r in _malformed_reasons
}

# -- Values ------------------------------------------------------------------------------

# METADATA
# description: Every input value the decision depends on is present, typed and known (R1).
input_ok if {
	input_well_formed # so every reference below is defined and typed
	input.contract == "v2"
	_today_ok
	input.request.mode in _params.modes
	input.request.action in _params.actions
	_params.legal_bases[input.request.legal_basis.kind]
	input.caller.role in _params.roles
	input.request.purpose != ""
	count(input.request.categories) > 0
	every c in input.request.categories {
		c in _params.categories
	}
	count(input.subjects) > 0
	every s in input.subjects {
		s.ref != ""
	}
	count({s.ref | some s in input.subjects}) == count(input.subjects)
}

_deny_input contains _reason("R1.unsupported_contract", "input is not decision contract v2") if not _contract_ok

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

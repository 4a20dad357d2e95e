# METADATA
# title: Action and legal basis (R8, R9, R10, R16)
# description: |
#   Which legal basis may carry which action to which recipient kind (params.legal_bases),
#   transfers (R8, §三.(二)), public disclosure (R9, §三.(三)), exemptions (R10, §三.(四) 1-6),
#   registered legal requests and transfers (R8, R10, §三.(一).1) and de-identified data
#   (R16, last paragraph of §三.(四)).
package sharing

import rego.v1

_basis_fits_action if _params.legal_bases[_basis][_action]

_basis_fits_kind if _kind in _params.legal_bases[_basis][_action]


_deny_basis contains _reason("R1.basis_not_for_share", concat("", ["legal basis ", _show(_basis), " does not allow SHARE"])) if {
	_basis_ok
	_action == "SHARE"
	not _basis_fits_action
}

_deny_basis contains _reason("R1.basis_not_for_kind", concat("", ["legal basis ", _show(_basis), " does not allow ", _show(_action), " to recipient kind ", _show(_kind)])) if {
	_basis_fits_action
	_kind_known
	not _basis_fits_kind
}

# R8, §三.(二): TRANSFER only with explicit consent per subject, or MERGER to an ACQUIRER
# bound by this policy (exemptions and de-identified data per §三.(四)).
_deny_basis contains _reason("R8.transfer_basis", concat("", ["TRANSFER needs explicit consent or a merger; legal basis ", _show(_basis), " does not allow it"])) if {
	_basis_ok
	_action == "TRANSFER"
	not _basis_fits_action
}

_binds_policy if _agreement.binds_policy == true

_deny_basis contains _reason("R8.acquirer_not_bound", concat("", ["acquirer ", _show(_recipient_id), " is not bound to this privacy policy"])) if {
	_basis == "MERGER"
	_action == "TRANSFER"
	not _binds_policy
}

# R9, §三.(三): PUBLIC_DISCLOSURE with consent / the user's own choice, or by law with a
# reference to the violation or order.
_deny_basis contains _reason("R9.disclosure_basis", concat("", ["PUBLIC_DISCLOSURE is not allowed under legal basis ", _show(_basis)])) if {
	_basis_ok
	_action == "PUBLIC_DISCLOSURE"
	not _basis_fits_action
}

_deny_basis contains _reason("R9.missing_reference", "PUBLIC_DISCLOSURE under LEGAL_OBLIGATION needs a reference to the violation or order") if {
	_action == "PUBLIC_DISCLOSURE"
	_basis == "LEGAL_OBLIGATION"
	_effective_reference == ""
}

# R10, §三.(四) 1-6: an exemption names its code and a case or document reference; it
# skips consent rules only, never R2-R4.
# Under a registered request its registered code and reference count, not the caller's.
_effective_code := c if {
	c := input.request.legal_request.exemption_code
	is_string(c)
} else := _exemption_code

_effective_reference := r if {
	r := input.request.legal_request.reference
	is_string(r)
} else := _reference

_exemption_known if _effective_code in _params.exemption_codes

_deny_basis contains _reason("R10.missing_exemption_code", "EXEMPTION needs an exemption code") if {
	_basis == "EXEMPTION"
	_effective_code == ""
}

_deny_basis contains _reason("R10.unknown_exemption_code", concat("", ["exemption code ", _show(_effective_code), " is unknown"])) if {
	_basis == "EXEMPTION"
	_effective_code != ""
	not _exemption_known
}

_deny_basis contains _reason("R10.missing_reference", "EXEMPTION needs a case or document reference") if {
	_basis == "EXEMPTION"
	_effective_reference == ""
}

# R8, R10, §三.(一).1, §三.(二).2: LEGAL_OBLIGATION, EXEMPTION and MERGER are never the
# caller's word alone. The order names a request registered beforehand (the gateway sends
# its facts as request.legal_request, null for an unknown id), the caller holds the grant
# for legal requests, the recipient is the request's and of a kind it fits (AUTHORITY for
# an authority's request, ACQUIRER for a transfer; never an AD_PARTNER), and every category
# and subject is inside the request's scope. Out of scope is refused, not trimmed: a legal
# disclosure is all inside its order or not made (CONTRACT.md, "Legal requests").
_lr_params := _params.legal_requests

_lr_kind := _lr_params.kind_by_basis[_basis]

_lr_rule := _lr_params.rule[_lr_kind]

_lr_code(slug) := concat(".", [_lr_rule, slug])

_lr_named if "legal_request" in object.keys(_request)

_lr := x if {
	x := _request.legal_request
	is_object(x)
}

# A field of the named request, "" when absent: refusal rules negate comparisons, and OPA
# moves an undefined reference out of a negation (opa#1877), so they never read one.
_lr_get(key) := object.get(_lr, key, "")

_lr_in_scope(lr) if lr.all_subjects == true

_lr_in_scope(_) if {
	every s in input.subjects {
		object.get(s, "in_legal_scope", false) == true
	}
}

_lr_granted if input.caller.legal_grant == true

# A partner's pull re-decides a share staged by a granted service (R17); the partner
# itself holds no grant.
_lr_granted if input.request.mode == "pull"

_lr_date_started(d) if {
	is_string(d)
	count(d) == 10
	_today_ok
	d <= input.today
}

# METADATA
# description: R8/R10 hold - the basis needs no registered request, or the named one is current, granted, to this recipient and covers the share.
legal_request_ok if not _lr_params.kind_by_basis[input.request.legal_basis.kind]

legal_request_ok if {
	kind := _lr_params.kind_by_basis[input.request.legal_basis.kind]
	lr := input.request.legal_request
	lr.kind == kind
	lr.basis == input.request.legal_basis.kind
	lr.revoked == false
	_lr_date_started(lr.valid_from)
	_current(lr.valid_until)
	_lr_granted
	lr.recipient == input.recipient.id
	input.recipient.kind in _lr_params.recipient_kinds[kind]
	lr.authority_kind in _lr_params.authority_kinds[kind]
	every c in input.request.categories {
		c in lr.categories
	}
	_lr_in_scope(lr)
	input.request.legal_basis.exemption_code in {"", lr.exemption_code}
	input.request.legal_basis.reference in {"", lr.reference}
}

_deny_basis contains _reason(_lr_code("no_legal_request"), concat("", ["legal basis ", _basis, " needs a legal request registered beforehand; the order names none"])) if {
	_lr_kind
	not _lr_named
}

_deny_basis contains _reason(_lr_code("unknown_legal_request"), "the named legal request is not registered") if {
	_lr_kind
	_lr_named
	not _lr
}

_deny_basis contains _reason(_lr_code("legal_request_basis"), concat("", ["the legal request is registered for ", _show(_lr_get("basis")), " (", _show(_lr_get("kind")), "), not for ", _basis])) if {
	_lr
	[_lr_get("basis"), _lr_get("kind")] != [_basis, _lr_kind]
}

_deny_basis contains _reason(_lr_code("legal_request_revoked"), "the legal request was revoked") if {
	_lr_kind
	_lr
	object.get(_lr, "revoked", true) != false
}

_deny_basis contains _reason(_lr_code("legal_request_expired"), concat("", ["the legal request was valid until ", _show(_lr_get("valid_until"))])) if {
	_lr_kind
	_lr
	not _current(_lr_get("valid_until"))
}

_deny_basis contains _reason(_lr_code("legal_request_not_yet_valid"), concat("", ["the legal request is valid from ", _show(_lr_get("valid_from"))])) if {
	_lr_kind
	_lr
	not _lr_date_started(_lr_get("valid_from"))
}

_deny_basis contains _reason(_lr_code("no_grant"), concat("", ["caller ", _show(_caller.principal), " holds no grant for legal requests"])) if {
	_lr_kind
	_lr_named
	not _lr_granted
}

_deny_basis contains _reason(_lr_code("recipient_mismatch"), concat("", ["the legal request names recipient ", _show(_lr_get("recipient")), ", not ", _show(_recipient_id)])) if {
	_lr_kind
	_lr
	_lr_get("recipient") != _recipient_id
}

_deny_basis contains _reason(_lr_code("recipient_kind"), concat("", ["legal basis ", _basis, " needs a recipient of kind ", concat(" or ", _lr_params.recipient_kinds[_lr_kind]), "; ", _show(_recipient_id), " is ", _show(_kind)])) if {
	_recipient_registered
	not _kind in _lr_params.recipient_kinds[_lr_kind]
}

_deny_basis contains _reason(_lr_code("authority_kind"), concat("", ["a ", _lr_kind, " cannot come from authority kind ", _show(_lr_get("authority_kind"))])) if {
	_lr_kind
	_lr
	not _lr_get("authority_kind") in _lr_params.authority_kinds[_lr_kind]
}

_deny_basis contains _reason(_lr_code("out_of_scope_category"), concat("", ["categories outside the legal request: ", concat(", ", sort(outside))])) if {
	_lr_kind
	_lr
	scope := {c | some c in object.get(_lr, "categories", [])}
	outside := {_show(c) | some c in _categories; not c in scope}
	count(outside) > 0
}

_deny_basis contains _reason(_lr_code("out_of_scope_subject"), concat("", [format_int(count(outside), 10), " subject(s) are outside the legal request"])) if {
	_lr_kind
	_lr
	object.get(_lr, "all_subjects", false) != true
	outside := [s | some s in _subjects; object.get(s, "in_legal_scope", false) != true]
	count(outside) > 0
}

_deny_basis contains _reason(_lr_code("exemption_code_mismatch"), "the order's exemption code differs from the registered one") if {
	_lr_kind
	_lr
	not _exemption_code in {"", _lr_get("exemption_code")}
}

_deny_basis contains _reason(_lr_code("reference_mismatch"), "the order's reference differs from the registered one") if {
	_lr_kind
	_lr
	not _reference in {"", _lr_get("reference")}
}

# R16, last paragraph of §三.(四): de-identified means no identity category remains and
# every combination of released attribute values is shared by at least k subjects
# ("无法重新识别特定个人且不能复原"). quasi_identifiers has one {ref, values} per record
# (values: category -> keyed digest) of the remaining subjects; the records leave with no
# subject reference
# (decision.subject_ref "none"), so nothing links batches.
_identity := {c | some c in _params.identity_categories}

# Only records of subjects that remain count: a subject left out (R14 deleted, ...) does
# not make a group large enough.
_qis := [q | some q in object.get(_request, "quasi_identifiers", []); q.ref in remaining]

# Distinct (subject, combination) pairs: a subject with several equal records counts once.
_qi_pairs := {[q.ref, q.values] | some q in _qis}

_qi_groups := {p[1] | some p in _qi_pairs}

_k := _params.k_anonymity

# Pigeonhole: more distinct combinations than pairs/k means some group has fewer than k
# subjects, without counting each group (counting is O(pairs x groups)).
_qi_too_many_groups if count(_qi_groups) * _k > count(_qi_pairs)

_qi_small_groups := {g |
	not _qi_too_many_groups
	some g in _qi_groups
	count([1 | some p in _qi_pairs; p[1] == g]) < _k
}

_k_anonymous if {
	count(_qis) > 0
	every q in _qis {
		is_string(q.ref)
		is_object(q.values)
	}
	not _qi_too_many_groups
	count(_qi_small_groups) == 0
}

_deny_basis contains _reason("R16.identity_category", concat("", ["DE_IDENTIFIED data still holds identity categories: ", concat(", ", sort(ids))])) if {
	_basis == "DE_IDENTIFIED"
	ids := _categories & _identity
	count(ids) > 0
}

_deny_basis contains _reason("R16.not_k_anonymous", concat("", ["quasi-identifier combinations of ", format_int(count(_qis), 10), " record(s) are shared by fewer than k=", format_int(_k, 10), " subjects"])) if {
	_basis == "DE_IDENTIFIED"
	not _k_anonymous
}

# METADATA
# description: The action, legal basis and recipient kind fit together and the basis-specific conditions (R8-R10, R16) hold.
basis_ok if {
	input.recipient.kind in _params.legal_bases[input.request.legal_basis.kind][input.request.action]
	not _basis_refused
	legal_request_ok
}

_basis_refused if {
	input.request.legal_basis.kind == "MERGER"
	not _binds_policy
}

_basis_refused if {
	input.request.action == "PUBLIC_DISCLOSURE"
	input.request.legal_basis.kind == "LEGAL_OBLIGATION"
	not _has_text(_effective_reference)
}

_basis_refused if {
	input.request.legal_basis.kind == "EXEMPTION"
	not _effective_code in _params.exemption_codes
}

_basis_refused if {
	input.request.legal_basis.kind == "EXEMPTION"
	not _has_text(_effective_reference)
}

_basis_refused if {
	input.request.legal_basis.kind == "DE_IDENTIFIED"
	not _k_anonymous
}

_basis_refused if {
	input.request.legal_basis.kind == "DE_IDENTIFIED"
	some c in input.request.categories
	c in _params.identity_categories
}

_has_text(x) if {
	is_string(x)
	x != ""
}

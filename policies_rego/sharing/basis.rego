# METADATA
# title: Action and legal basis (R8, R9, R10, R16)
# description: |
#   Which legal basis may carry which action to which recipient kind (params.legal_bases),
#   transfers (R8, §三.(二)), public disclosure (R9, §三.(三)), exemptions (R10, §三.(四) 1-6)
#   and de-identified data (R16, last paragraph of §三.(四)).
package sharing

import rego.v1

_basis_fits_action if data.params.legal_bases[_basis][_action]

_basis_fits_kind if _kind in data.params.legal_bases[_basis][_action]


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
	_reference == ""
}

# R10, §三.(四) 1-6: an exemption names its code and a case or document reference; it
# skips consent rules only, never R2-R4.
_exemption_known if _exemption_code in data.params.exemption_codes

_deny_basis contains _reason("R10.missing_exemption_code", "EXEMPTION needs an exemption code") if {
	_basis == "EXEMPTION"
	_exemption_code == ""
}

_deny_basis contains _reason("R10.unknown_exemption_code", concat("", ["exemption code ", _show(_exemption_code), " is unknown"])) if {
	_basis == "EXEMPTION"
	_exemption_code != ""
	not _exemption_known
}

_deny_basis contains _reason("R10.missing_reference", "EXEMPTION needs a case or document reference") if {
	_basis == "EXEMPTION"
	_reference == ""
}

# R16, last paragraph of §三.(四): de-identified means no identity category remains and
# every quasi-identifier combination is shared by at least k records.
_identity := {c | some c in data.params.identity_categories}

_qis := [q | some q in object.get(_request, "quasi_identifiers", [])]

_qi_groups := {q | some q in _qis}

_k := data.params.k_anonymity

# Pigeonhole: more distinct combinations than records/k means some group is below k,
# without counting each group (counting is O(records x groups)).
_qi_too_many_groups if count(_qi_groups) * _k > count(_qis)

_qi_small_groups := {q |
	not _qi_too_many_groups
	some q in _qi_groups
	count([1 | some r in _qis; r == q]) < _k
}

_k_anonymous if {
	count(_qis) > 0
	every q in _qis {
		is_object(q)
	}
	not _qi_too_many_groups
	count(_qi_small_groups) == 0
}

_deny_basis contains _reason("R16.identity_category", concat("", ["DE_IDENTIFIED data still holds identity categories: ", concat(", ", sort(ids))])) if {
	_basis == "DE_IDENTIFIED"
	ids := _categories & _identity
	count(ids) > 0
}

_deny_basis contains _reason("R16.not_k_anonymous", concat("", ["quasi-identifier combinations of ", format_int(count(_qis), 10), " record(s) are shared by fewer than k=", format_int(_k, 10), " records"])) if {
	_basis == "DE_IDENTIFIED"
	not _k_anonymous
}

# METADATA
# description: The action, legal basis and recipient kind fit together and the basis-specific conditions (R8-R10, R16) hold.
basis_ok if {
	input.recipient.kind in data.params.legal_bases[input.request.legal_basis.kind][input.request.action]
	not _basis_refused
}

_basis_refused if {
	input.request.legal_basis.kind == "MERGER"
	not _binds_policy
}

_basis_refused if {
	input.request.action == "PUBLIC_DISCLOSURE"
	input.request.legal_basis.kind == "LEGAL_OBLIGATION"
	not _has_text(_reference)
}

_basis_refused if {
	input.request.legal_basis.kind == "EXEMPTION"
	not _exemption_code in data.params.exemption_codes
}

_basis_refused if {
	input.request.legal_basis.kind == "EXEMPTION"
	not _has_text(_reference)
}

_basis_refused if {
	input.request.legal_basis.kind == "DE_IDENTIFIED"
	not _k_anonymous
}

_basis_refused if {
	input.request.legal_basis.kind == "DE_IDENTIFIED"
	some c in input.request.categories
	c in data.params.identity_categories
}

_has_text(x) if {
	is_string(x)
	x != ""
}

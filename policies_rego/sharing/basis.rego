# METADATA
# title: Action and legal basis (R8, R9, R10, R16)
# description: |
#   Which legal basis may carry which action to which recipient kind (params.legal_bases),
#   transfers (R8, §三.(二)), public disclosure (R9, §三.(三)), exemptions (R10, §三.(四) 1-6)
#   and de-identified data (R16, last paragraph of §三.(四)).
package sharing

import rego.v1

_basis_kinds := {k | some k in _params.legal_bases[_basis][_action]}

_basis_fits_action if _params.legal_bases[_basis][_action]

_basis_fits_kind if _kind in _basis_kinds

_consent_skipped if _basis in {b | some b in _params.consent_skipping_bases}

_consent_exempt if _basis in {b | some b in _params.consent_exempt_bases}

deny contains _reason("R1.basis_not_for_share", sprintf("legal basis %s does not allow SHARE", [_basis])) if {
	_basis_ok
	_action == "SHARE"
	not _basis_fits_action
}

deny contains _reason("R1.basis_not_for_kind", sprintf("legal basis %s does not allow %s to recipient kind %s", [_basis, _action, _kind])) if {
	_basis_fits_action
	_kind_known
	not _basis_fits_kind
}

# R8, §三.(二): TRANSFER only with explicit consent per subject, or MERGER to an ACQUIRER
# bound by this policy (exemptions and de-identified data per §三.(四)).
deny contains _reason("R8.transfer_basis", sprintf("TRANSFER needs explicit consent or a merger; legal basis %s does not allow it", [_basis])) if {
	_basis_ok
	_action == "TRANSFER"
	not _basis_fits_action
}

_binds_policy if _agreement.binds_policy == true

deny contains _reason("R8.acquirer_not_bound", sprintf("acquirer %s is not bound to this privacy policy", [_recipient_id])) if {
	_basis == "MERGER"
	_action == "TRANSFER"
	not _binds_policy
}

# R9, §三.(三): PUBLIC_DISCLOSURE with consent / the user's own choice, or by law with a
# reference to the violation or order.
deny contains _reason("R9.disclosure_basis", sprintf("PUBLIC_DISCLOSURE is not allowed under legal basis %s", [_basis])) if {
	_basis_ok
	_action == "PUBLIC_DISCLOSURE"
	not _basis_fits_action
}

deny contains _reason("R9.missing_reference", "PUBLIC_DISCLOSURE under LEGAL_OBLIGATION needs a reference to the violation or order") if {
	_action == "PUBLIC_DISCLOSURE"
	_basis == "LEGAL_OBLIGATION"
	_reference == ""
}

# R10, §三.(四) 1-6: an exemption names its code and a case or document reference; it
# skips consent rules only, never R2-R4.
_exemption_known if _exemption_code in {c | some c in _params.exemption_codes}

deny contains _reason("R10.missing_exemption_code", "EXEMPTION needs an exemption code") if {
	_basis == "EXEMPTION"
	_exemption_code == ""
}

deny contains _reason("R10.unknown_exemption_code", sprintf("exemption code '%s' is unknown", [_exemption_code])) if {
	_basis == "EXEMPTION"
	_exemption_code != ""
	not _exemption_known
}

deny contains _reason("R10.missing_reference", "EXEMPTION needs a case or document reference") if {
	_basis == "EXEMPTION"
	_reference == ""
}

# R16, last paragraph of §三.(四): de-identified means no identity category remains and
# every quasi-identifier combination is shared by at least k records.
_identity := {c | some c in _params.identity_categories}

_qis := [q | some q in _arr(object.get(_request, "quasi_identifiers", []))]

_qi_groups := {q | some q in _qis}

_k := _params.k_anonymity

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

deny contains _reason("R16.identity_category", sprintf("DE_IDENTIFIED data still holds identity categories: %s", [concat(", ", sort(ids))])) if {
	_basis == "DE_IDENTIFIED"
	ids := _categories & _identity
	count(ids) > 0
}

deny contains _reason("R16.not_k_anonymous", sprintf("quasi-identifier combinations of %d record(s) are shared by fewer than k=%d records", [count(_qis), _k])) if {
	_basis == "DE_IDENTIFIED"
	not _k_anonymous
}

# METADATA
# description: The action, legal basis and recipient kind fit together and the basis-specific conditions (R8-R10, R16) hold.
basis_ok if {
	_basis_fits_action
	_basis_fits_kind
	not _basis_refused
}

_basis_refused if {
	_basis == "MERGER"
	not _binds_policy
}

_basis_refused if {
	_action == "PUBLIC_DISCLOSURE"
	_basis == "LEGAL_OBLIGATION"
	_reference == ""
}

_basis_refused if {
	_basis == "EXEMPTION"
	not _exemption_known
}

_basis_refused if {
	_basis == "EXEMPTION"
	_reference == ""
}

_basis_refused if {
	_basis == "DE_IDENTIFIED"
	count(_categories & _identity) > 0
}

_basis_refused if {
	_basis == "DE_IDENTIFIED"
	not _k_anonymous
}

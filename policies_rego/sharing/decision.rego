# METADATA
# title: Partner data-sharing decision
# description: |
#   The one decision the gateway asks for every share and every partner pull (decision
#   contract v1, policies_rego/CONTRACT.md). Rules R1-R17 of POLICY_SPEC.md, from the
#   privacy policy in shared/seed (where they disagree, the source text wins). The
#   gateway only executes the answer: it keeps no list of identity fields.
# scope: package
package sharing

import rego.v1

# METADATA
# description: Allow only when every rule-level check passes positively, no rule refuses, and a subject is left (R1).
default allow := false

allow if {
	count(deny) == 0
	_input_ok
	recipient_ok
	purpose_ok
	minimal_ok
	basis_ok
	review_ok
	caller_ok
	count(remaining) > 0
}

# METADATA
# description: Refs of the subjects no subject-level rule left out.
remaining := {ref |
	some s in _subject_list
	ref := _str(object.get(s, "ref", ""))
	not ref in _excluded_refs
}

_excluded_refs := {x.ref | some x in exclusions}

deny contains _reason("R1.all_subjects_excluded", sprintf("all %d subject(s) were left out by subject-level rules", [count(_subjects)])) if {
	_subjects_ok
	count(remaining) == 0
}

# R5, §三.(一).5.(1): no identity category reaches an AD_PARTNER unless the subject
# explicitly consented to identified sharing with *that* partner. Account and device ids
# become per-partner pseudonyms, birth date and precise location are generalised, every
# other identity category is dropped. Removal wins over any other treatment.
_ad_identity := data.params.ad_partner_identity

_ad_pseudonymize := {c | some c in _ad_identity.pseudonymize}

_obligations_keeping(kept) := {
	"drop": sort(drop),
	"pseudonymize": sort(ids & _ad_pseudonymize),
	"generalize": generalize,
} if {
	_kind == "AD_PARTNER"
	ids := (_categories & _identity) - kept
	drop := {c | some c in ids; not c in _ad_pseudonymize; not _ad_identity.generalize[c]}
	generalize := {c: g | some c in ids; not c in _ad_pseudonymize; g := _ad_identity.generalize[c]}
}

_obligations_keeping(_) := {"drop": [], "pseudonymize": [], "generalize": {}} if {
	_kind != "AD_PARTNER"
}

# METADATA
# description: Obligations for every remaining subject without its own entry.
obligations := _obligations_keeping(set())

_identified_consent(c) if {
	c.scope == "IDENTIFIED_SHARING"
	c.recipient == _recipient_id
	_recipient_id != ""
	object.get(c, "purpose", null) in {"", _purpose}
}

_kept_identity(s) := {x |
	some c in _consents(s)
	_identified_consent(c)
	some x in _arr(object.get(c, "categories", []))
	x in _categories
	x in _identity
}

# METADATA
# description: Per-subject obligations for AD_PARTNER subjects who consented to identified sharing (R5).
subject_obligations := {ref: o |
	_kind == "AD_PARTNER"
	_subjects_ok
	some s in _subject_list
	ref := _str(object.get(s, "ref", ""))
	ref in remaining
	kept := _kept_identity(s)
	count(kept) > 0
	o := _obligations_keeping(kept)
}

# METADATA
# description: The decision document (contract v1).
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": deny,
	"excluded": exclusions,
	"obligations": obligations,
	"subject_obligations": subject_obligations,
}

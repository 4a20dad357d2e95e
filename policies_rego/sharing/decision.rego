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
	_checks_ok
	count(deny) == 0
	count(remaining) > 0
}

# Every batch-level check, stated positively: allow never rests on the absence of a
# refusal alone (R1). Each has a group of refusal rules that explains a failure.
_checks_ok if {
	input_ok
	recipient_ok
	purpose_ok
	minimal_ok
	basis_ok
	review_ok
	caller_ok
}

# Refusal groups are only evaluated when their positive check failed (they explain it);
# this keeps the allowing path to a handful of rule evaluations.
_refusals contains r if {
	not input_ok
	some r in _deny_input
}

_refusals contains r if {
	not recipient_ok
	some r in _deny_recipient
}

_refusals contains r if {
	not purpose_ok
	some r in _deny_purpose
}

_refusals contains r if {
	not minimal_ok
	some r in _deny_minimal
}

_refusals contains r if {
	not basis_ok
	some r in _deny_basis
}

_refusals contains r if {
	not review_ok
	some r in _deny_review
}

_refusals contains r if {
	not caller_ok
	some r in _deny_caller
}

# METADATA
# description: Every reason the share is refused ({code, message}); empty when allowed.
deny contains r if some r in _refusals

# R1: a failed check always carries a reason, even one no refusal rule names.
deny contains _reason("R1.default_deny", "no rule allows this share") if {
	not _checks_ok
	count(_refusals) == 0
}

# METADATA
# description: Refs of the subjects no subject-level rule left out.
remaining := {s.ref |
	some s in input.subjects
	not s.ref in _excluded_refs
}

_excluded_refs := {x.ref | some x in exclusions}

deny contains _reason("R1.all_subjects_excluded", concat("", ["all ", format_int(count(input.subjects), 10), " subject(s) were left out by subject-level rules"])) if {
	count(input.subjects) > 0
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
	input.recipient.kind == "AD_PARTNER"
	ids := {c | some c in input.request.categories; c in data.params.identity_categories; not c in kept}
	drop := {c | some c in ids; not c in _ad_pseudonymize; not _ad_identity.generalize[c]}
	generalize := {c: g | some c in ids; not c in _ad_pseudonymize; g := _ad_identity.generalize[c]}
}

_obligations_keeping(_) := {"drop": [], "pseudonymize": [], "generalize": {}} if {
	not input.recipient.kind == "AD_PARTNER"
}

# METADATA
# description: Obligations for every remaining subject without its own entry.
obligations := _obligations_keeping(set())

# METADATA
# description: Per-subject obligations for AD_PARTNER subjects who consented to identified sharing (R5).
subject_obligations := {ref: o |
	input.recipient.kind == "AD_PARTNER"
	some s in input.subjects
	some c in s.consents
	c.scope == "IDENTIFIED_SHARING"
	ref := s.ref
	ref in remaining
	kept := _kept_identity(s)
	count(kept) > 0
	o := _obligations_keeping(kept)
}

# METADATA
# description: The decision document (contract v1); behind the input gate (input.rego).
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": deny,
	"excluded": exclusions,
	"obligations": obligations,
	"subject_obligations": subject_obligations,
} if {
	input_well_formed
} else := refused_malformed

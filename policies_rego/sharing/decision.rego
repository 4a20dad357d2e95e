# METADATA
# title: Partner data-sharing decision
# description: |
#   The one decision the gateway asks for every share and every partner pull (decision
#   contract v2, policies_rego/CONTRACT.md). Rules R1-R17 of POLICY_SPEC.md, from the
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

deny contains _reason("R1.all_subjects_excluded", concat("", ["all ", format_int(count(input.subjects), 10), " subject(s) were left out by subject-level rules"])) if {
	count(input.subjects) > 0
	count(remaining) == 0
}

# R5, §三.(一).5.(1)-(2): ad and analytics work (_r5_applies, subjects.rego) gets no identity
# category unless the subject explicitly consented to identified sharing with *that*
# partner for that purpose (IDENTIFIED_SHARING, "除非得到您的许可"). Account and device ids
# become per-partner pseudonyms, birth date and precise location are generalised, every
# other identity category is dropped. Removal wins over any other treatment. R4 lets
# identity categories the agreement lists through for these purposes (minimality.rego) so
# that consented identified sharing can happen.
_ad_identity := _params.ad_partner_identity

_ad_pseudonymize := {c | some c in _ad_identity.pseudonymize}

_obligations_keeping(kept) := {
	"drop": sort(drop),
	"pseudonymize": sort(ids & _ad_pseudonymize),
	"generalize": generalize,
} if {
	_r5_applies
	ids := {c | some c in input.request.categories; c in _params.identity_categories; not c in kept}
	drop := {c | some c in ids; not c in _ad_pseudonymize; not _ad_identity.generalize[c]}
	generalize := {c: g | some c in ids; not c in _ad_pseudonymize; g := _ad_identity.generalize[c]}
}

_obligations_keeping(_) := {"drop": [], "pseudonymize": [], "generalize": {}} if {
	not _r5_applies
}

# METADATA
# description: Obligations for every remaining subject without its own entry.
obligations := _obligations_keeping(set())

# METADATA
# description: Per-subject obligations for subjects who consented to identified sharing (R5).
subject_obligations := {ref: o |
	_r5_applies
	some s in input.subjects
	some c in s.consents
	c.scope == "IDENTIFIED_SHARING"
	ref := s.ref
	ref in remaining
	kept := _kept_identity(s)
	count(kept) > 0
	o := _obligations_keeping(kept)
}

# -- what the ledger records (§三, §八): consents read, cross-border exception, refs -----

# Consent scopes this share reads: the action's, identified sharing under R5, and the
# cross-border authorisation when data leaves China.
_read_scopes contains _scope

_read_scopes contains "IDENTIFIED_SHARING" if _r5_applies

_read_scopes contains "CROSS_BORDER" if _cross_border

# Consent c of subject s is in scope: of a scope this share reads, matching (_consent_for),
# and covering a category that leaves for s (leaving: _leaving_for(s), computed once per
# subject by the caller, not once per consent).
_consent_in_scope(s, c, leaving) if {
	c.scope in _read_scopes
	_consent_for(s, c, c.scope)
	_covers_some(c, leaving)
}

# A consent covers a category it lists, or every category when all_categories is true (an
# empty list with all_categories false covers nothing): here, some category in leaving.
_covers_some(c, leaving) if {
	c.all_categories == true
	count(leaving) > 0
}

_covers_some(c, leaving) if {
	some x in c.categories
	x in leaving
}

# METADATA
# description: |
#   Remaining subject ref -> ids of its consents in scope of this share (recipient,
#   purpose, a scope the share reads, a category that leaves): the consents the consent
#   rules relied on. Empty under bases that need no consent.
consents := {ref: ids |
	not input.request.legal_basis.kind in _params.consent_skipping_bases
	some s in input.subjects
	ref := s.ref
	ref in remaining
	leaving := _leaving_for(s)
	ids := sort({c.id | some c in s.consents; _consent_in_scope(s, c, leaving)})
	count(ids) > 0
}

_region := input.request.destination_region if {
	is_string(input.request.destination_region)
	input.request.destination_region != _params.home_region
} else := object.get(_recipient, "region", "")

_cross_border_exceptions := {ref: e |
	some s in input.subjects
	ref := s.ref
	ref in remaining
	e := _cross_border_exception(s)
}

# METADATA
# description: R12 - whether data leaves China, to which region, and per remaining subject which exception of §七 applied (law, consent, transaction).
cross_border := {
	"applies": true,
	"region": _region,
	"exceptions": _cross_border_exceptions,
} if {
	_cross_border
} else := {"applies": false, "region": _region, "exceptions": {}}

# METADATA
# description: |
#   R16 - how records name their subject: "per_recipient" (a keyed pseudonym, stable for
#   this recipient) or "none" (DE_IDENTIFIED: nothing the recipient could link across
#   batches, "无法重新识别特定个人且不能复原").
subject_ref := "none" if {
	input.request.legal_basis.kind == "DE_IDENTIFIED"
} else := "per_recipient"

# METADATA
# description: The decision document (contract v2); behind the input gate (input.rego).
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": deny,
	"excluded": exclusions,
	"obligations": obligations,
	"subject_obligations": subject_obligations,
	"consents": consents,
	"cross_border": cross_border,
	"subject_ref": subject_ref,
} if {
	input_well_formed
} else := refused_malformed

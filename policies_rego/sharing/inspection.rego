# METADATA
# title: Content inspection (R19)
# description: |
#   Field values are checked against their declared category before they leave
#   (§三.(一).5 "只能接触到其履行职责所需信息"). The gateway reports, per subject, which kind of
#   identifier it found in which field (subjects[].identifiers; never the value). A kind the
#   field's category may not carry to this recipient kind (params.inspection) leaves the
#   subject out: every field is a subject's own, so leaving that subject out stops the
#   identifier and lets the rest of the batch through; the reason names field and kind.
package sharing

import rego.v1

_inspection := _params.inspection

# Kinds a category may carry to this recipient kind: the kind's own entry if it has one,
# else the default; a category in neither carries none.
_carriable(category) := kinds if {
	kinds := _inspection.by_recipient_kind[input.recipient.kind][category]
} else := kinds if {
	kinds := _inspection.allowed[category]
} else := []

# Fields are read with object.get and "" defaults: a finding missing a key is misplaced
# (fail closed), and no undefined reference sits in a negation (opa#1877).
_misplaced(s) := {concat("", [field, " (", category, "): ", kind]) |
	some f in s.identifiers
	is_object(f) # a non-object finding is reported below; object.get on it is an error
	field := _text(object.get(f, "field", ""))
	category := _text(object.get(f, "category", ""))
	kind := _text(object.get(f, "kind", ""))
	not kind in _carriable(category)
}

_text(x) := x if is_string(x)

_text(x) := "(malformed)" if not is_string(x)

exclusions contains {"ref": s.ref, "code": "R19.identifier_in_field", "message": msg} if {
	some s in input.subjects
	is_array(s.identifiers)
	hits := _misplaced(s)
	count(hits) > 0
	msg := concat("", ["identifiers in fields whose category may not carry them to ", _show(_kind), ": ", concat("; ", sort(hits))])
}

# An identifiers value that is not an array of objects cannot be read: the subject is left
# out rather than taken for clean (R1).
exclusions contains {"ref": s.ref, "code": "R19.identifier_in_field", "message": "the inspection findings are malformed"} if {
	some s in input.subjects
	ids := s.identifiers
	not _findings_ok(ids)
}

_findings_ok(ids) if {
	is_array(ids)
	every f in ids {
		is_object(f)
	}
}

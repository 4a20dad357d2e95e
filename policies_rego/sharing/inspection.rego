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

_inspection := data.params.inspection

# Kinds a category may carry to this recipient kind: the kind's own entry if it has one,
# else the default; a category in neither carries none.
_carriable(category) := kinds if {
	kinds := _inspection.by_recipient_kind[input.recipient.kind][category]
} else := kinds if {
	kinds := _inspection.allowed[category]
} else := []

_misplaced(s) := {concat("", [f.field, " (", f.category, "): ", f.kind]) |
	some f in s.identifiers
	not f.kind in _carriable(f.category)
}

exclusions contains {"ref": s.ref, "code": "R19.identifier_in_field", "message": msg} if {
	some s in input.subjects
	s.identifiers
	hits := _misplaced(s)
	count(hits) > 0
	msg := concat("", ["identifiers in fields whose category may not carry them to ", _show(_kind), ": ", concat("; ", sort(hits))])
}

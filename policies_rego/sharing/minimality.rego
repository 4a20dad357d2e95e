# METADATA
# title: Minimality (R4)
# description: |
#   Every requested category must be needed for the purpose (policy data
#   params.purposes) and allowed by the recipient's agreement; excess categories are
#   refused and named (§三.(一).5 "只能接触到其履行职责所需信息", §四.(三)).
package sharing

import rego.v1

# R4 x R5: for ad and analytics purposes every identity category counts as needed, so the
# agreement alone decides whether it may be asked for; R5 then pseudonymises, generalises
# or drops it unless the subject consented to identified sharing (decision.rego).
_needed_for(c, p) if c in _params.purposes[p]

_needed_for(c, p) if {
	p in _params.ad_purposes
	c in _params.identity_categories
}

_needed := {c | some c in _params.purposes[_purpose]} | {c |
	_purpose in _params.ad_purposes
	some c in _params.identity_categories
}

_agreed := {c | some c in object.get(_agreement, "categories", [])}

_excess(requested, needed) := requested - needed

# METADATA
# description: R4 holds - the requested categories are needed for the purpose and in the agreement.
minimal_ok if {
	_params.purposes[input.request.purpose]
	agreed := input.recipient.agreement.categories
	every c in input.request.categories {
		_needed_for(c, input.request.purpose)
		c in agreed
	}
}

_deny_minimal contains _reason("R4.excess_category", concat("", ["categories not needed for purpose ", _show(_purpose), ": ", concat(", ", sort(excess))])) if {
	_purpose_known
	excess := _excess(_categories, _needed) & _known_categories
	count(excess) > 0
}

_deny_minimal contains _reason("R4.category_not_in_agreement", concat("", ["categories not in the agreement of recipient ", _show(_recipient_id), ": ", concat(", ", sort(excess))])) if {
	_recipient_registered
	excess := _excess(_categories, _agreed) & _known_categories
	count(excess) > 0
}

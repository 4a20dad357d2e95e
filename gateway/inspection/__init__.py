"""Content inspection before disclosure (R19, §三.(一).5 "只能接触到其履行职责所需信息").

The gateway inspects every field value of a share for identifiers and tells the policy, per
subject, which kind of identifier it found in which field (``subjects[].identifiers``; the
values never leave the gateway, not even to the policy engine). Which kinds a category may
carry to which recipient kind is policy data (``policies_rego/params/inspection``); the
policy leaves out a subject whose field holds one it may not carry (``R19.identifier_in_field``).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.inspection.detectors import InfoType, find_identifiers

__all__ = ["InfoType", "find_identifiers", "identifiers_in_record"]


def identifiers_in_record(fields: Mapping[str, str]) -> dict[str, frozenset[InfoType]]:
    """Field name -> kinds of identifier found in its value, for fields with a finding."""
    found: dict[str, frozenset[InfoType]] = {}
    for name, value in fields.items():
        kinds = find_identifiers(value)
        if kinds:
            found[name] = kinds
    return found

"""Contract v2 output fields: parsed strictly, so an engine answer that could make records
linkable or hide the cross-border exception fails closed (R1, R12, R16)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import PolicyEngineError
from gateway.policy import parse_decision

GOOD: dict[str, Any] = {
    "allow": True,
    "reasons": [],
    "excluded": [],
    "obligations": {"drop": [], "pseudonymize": [], "generalize": {}},
    "subject_obligations": {},
    "consents": {"0": ["c-2", "c-1"]},
    "cross_border": {"applies": True, "region": "SG", "exceptions": {"0": "consent"}},
    "subject_ref": "none",
}


def test_v2_fields_are_parsed() -> None:
    """Consent ids (sorted), the cross-border exception per subject and the ref mode parse."""
    d = parse_decision(GOOD, revision="r")
    assert d.consents == {"0": ("c-1", "c-2")}
    assert (d.cross_border.applies, d.cross_border.region) == (True, "SG")
    assert d.cross_border.exceptions == {"0": "consent"}
    assert d.subject_ref == "none"


@pytest.mark.parametrize(
    "change",
    [
        {"subject_ref": None},
        {"subject_ref": "stable"},
        {"consents": None},
        {"consents": {"0": "c-1"}},
        {"cross_border": None},
        {"cross_border": {"applies": "yes", "region": "SG", "exceptions": {}}},
        {"cross_border": {"applies": True, "region": "SG", "exceptions": {"0": "asked"}}},
    ],
)
def test_malformed_v2_field_fails_closed(change: dict[str, Any]) -> None:
    """A missing or unknown subject_ref, consents or cross_border is an engine error."""
    raw = {**GOOD, **change}
    if change.get("subject_ref", "") is None:
        del raw["subject_ref"]
    with pytest.raises(PolicyEngineError):
        parse_decision(raw, revision="r")

"""The writer's fast encoding path produces exactly the canonical entry bytes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import (
    Disclosure,
    encode_entry,
    entry_from_disclosure,
    entry_template,
    fill_template,
    validate_disclosure,
)
from ledger.errors import InvalidArgumentError

texts = st.text(max_size=20)
ids = st.lists(st.text(min_size=1, max_size=8), max_size=5).map(tuple)


@st.composite
def disclosures(draw: st.DrawFn) -> Disclosure:
    return Disclosure(
        time=draw(st.datetimes(timezones=st.just(UTC), min_value=datetime(1971, 1, 1))),
        decision=draw(st.sampled_from(["ALLOW", "DENY"])),
        request_id=draw(texts),
        rpc=draw(texts),
        caller=draw(texts),
        caller_role=draw(texts),
        partner_id=draw(texts),
        purpose=draw(texts),
        action=draw(texts),
        mode=draw(st.sampled_from(["", "share", "stage", "pull", "refused_call"])),
        legal_basis=draw(texts),
        # Any valid Unicode (lone surrogates are refused before encoding; see below).
        legal_reference=draw(
            st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
        ),
        exemption_code=draw(texts),
        reason_codes=tuple(draw(st.lists(texts, max_size=3))),
        policy_revision=draw(texts),
        decision_id=draw(texts),
        record_type=draw(texts),
        categories_disclosed=tuple(draw(st.lists(texts, max_size=3))),
        categories_removed=tuple(draw(st.lists(texts, max_size=3))),
        record_count=draw(st.integers(0, 10**12)),
        subject_ids=draw(ids),
        excluded_subject_ids=draw(ids),
        payload_digest=draw(st.sampled_from([b"", bytes(range(32))])),
        pseudonym_key_id=draw(texts),
        agreement_id=draw(texts),
        agreement_version=draw(texts),
        consent_ids=tuple(draw(st.lists(texts, max_size=3))),
        destination_region=draw(texts),
        cross_border_exceptions=tuple(draw(st.lists(texts, max_size=3))),
    )


def _pseudonym(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(d=disclosures(), index=st.integers(0, 2**62), key_id=texts)
def test_filled_template_equals_canonical_encoding(d: Disclosure, index: int, key_id: str) -> None:
    """Template + index + pseudonyms is byte for byte ``encode_entry`` of the same entry."""
    subjects = tuple(_pseudonym(s) for s in d.subject_ids)
    excluded = tuple(_pseudonym(s) for s in d.excluded_subject_ids)
    expected = encode_entry(
        entry_from_disclosure(
            d, index=index, subjects=subjects, excluded_subjects=excluded, subject_key_id=key_id
        )
    )
    got = fill_template(
        entry_template(d, subject_key_id=key_id),
        index=index,
        subjects=subjects,
        excluded_subjects=excluded,
    )
    assert got == expected


def test_text_that_is_not_valid_unicode_is_refused_before_encoding() -> None:
    """A lone surrogate cannot reach either encoder: append's validation names the field."""
    d = Disclosure(
        time=datetime(2000, 1, 1, tzinfo=UTC), decision="ALLOW", legal_reference="\ud800"
    )
    with pytest.raises(InvalidArgumentError, match="legal_reference"):
        validate_disclosure(d)

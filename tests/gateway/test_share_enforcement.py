"""Enforcement on the share path: each disclosed record is transformed exactly as its own
subject's obligations say, and a share's categories are those of its records, whatever mix
of field sets and obligations the records have (plans and layouts are compiled once per
share, never per record)."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.enforcement import transform_record
from gateway.sharing import RecordIn, ShareOrder, Sharing
from tests.inspection.test_share_inspection import SERVICE, sharing  # noqa: F401 (fixture)


def test_a_share_discloses_each_record_as_its_own_obligations_say(sharing: Sharing) -> None:  # noqa: F811
    """Records with different field sets and orders, a birth date the generalizer cannot
    handle, and a subject with obligations of its own (u1007, identified sharing): every
    record equals its field-by-field transform, and the share's disclosed and removed
    categories are the union of its records'."""
    order = ShareOrder(
        recipient_id="adco",
        purpose="ad_delivery",
        action="SHARE",
        legal_basis="AUTHORIZED_PARTNER",
        record_type="customer_profile",
        records=[
            RecordIn(
                subject_id="u1001",
                fields={"account_id": "acct-1", "birth_date": "1990-04-12", "tags": "music"},
            ),
            RecordIn(subject_id="u1007", fields={"tags": "music", "account_id": "acct-7"}),
            RecordIn(subject_id="u1001", fields={"birth_date": "not a date", "tags": "films"}),
        ],
    )
    today = datetime.now(UTC).date()
    outcome = sharing.share(order, SERVICE, request_id="t", rpc="t")
    decision = outcome.decision
    assert decision.allow and not outcome.excluded
    assert set(decision.subject_obligations) == {"1"}  # u1007's own, u1001 the default
    schema, _, _ = sharing._registry.share_facts("customer_profile", "adco", [])
    assert schema is not None
    key = sharing._keys.current("adco")[1]
    refs = {"u1001": "0", "u1007": "1"}
    disclosed: set[str] = set()
    removed: set[str] = set()
    for record, out in zip(order.records, outcome.records, strict=True):
        t = transform_record(
            record.fields,
            schema,
            decision.obligations_for(refs[record.subject_id]),
            key=key,
            today=today,
        )
        assert out.fields == t.fields
        disclosed |= t.disclosed
        removed |= t.removed
    assert outcome.categories_disclosed == tuple(sorted(disclosed))
    assert outcome.categories_removed == tuple(sorted(removed))
    assert outcome.records[0].fields.keys() != outcome.records[1].fields.keys()

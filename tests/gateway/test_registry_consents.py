"""The registry holds scoped consents, narrowed withdrawals and order fulfilment (contract v2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway.errors import InvalidRequestError
from gateway.registry import (
    Consent,
    ConsentGiver,
    ConsentScope,
    Order,
    Registry,
    SubjectFacts,
    Withdrawal,
)
from gateway.registry.store import subject_from_mapping
from gateway.schema import upgrade


@pytest.fixture
def registry(sqlite_url: str) -> Iterator[Registry]:
    r = Registry.open(sqlite_url)
    yield r
    r.close()


def _consent(recipient: str, cats: tuple[str, ...] = (), **kw: object) -> Consent:
    return Consent(
        recipient_id=recipient,
        purpose="ad_delivery",
        scope=ConsentScope.SHARE,
        categories=cats,
        **kw,  # type: ignore[arg-type]
    )


def test_scoped_consents_roundtrip_with_ids_giver_and_all_categories(registry: Registry) -> None:
    """Every scope field survives storage; a consent without id gets a generated one."""
    facts = SubjectFacts(
        subject_id="s1",
        birth_date="2012-01-01",
        consents=(
            _consent("adco", all_categories=True, given_by=ConsentGiver.GUARDIAN),
            _consent("admetrics", ("user.profile.tags",), consent_id="c-7"),
        ),
        orders=(Order(order_id="o1", merchant_id="shop", fulfilment_ids=("ship",)),),
    )
    stored = registry.put_subject(facts)
    first, second = stored.consents
    assert first.consent_id.startswith("consent-") and len(first.consent_id) == 24
    assert (first.all_categories, first.given_by) == (True, ConsentGiver.GUARDIAN)
    assert second.consent_id == "c-7" and second.categories == ("user.profile.tags",)
    assert stored.orders[0].fulfilment_ids == ("ship",)


def test_narrowed_withdrawal_is_kept_and_withdraws_only_consents_inside_it(
    registry: Registry,
) -> None:
    """Withdrawing for one partner keeps the other partner's consent and records the
    narrowing; the subject-wide flag stays clear (R14)."""
    registry.put_subject(
        SubjectFacts(
            subject_id="s2",
            consents=(
                _consent("adco", ("user.profile.tags",)),
                _consent("admetrics", ("user.profile.tags",)),
            ),
        )
    )
    n = registry.withdraw_consent("s2", Withdrawal(recipient_id="adco"))
    facts = registry.subjects(["s2"])["s2"]
    assert n == 1
    assert [c.recipient_id for c in facts.consents] == ["admetrics"]
    assert facts.withdrawals == (Withdrawal(recipient_id="adco"),)
    assert not facts.consent_withdrawn


def test_withdrawal_narrowed_to_a_category_keeps_a_wider_consent(registry: Registry) -> None:
    """A consent covering more than the withdrawn category stays; the withdrawal excludes
    the matching shares in the policy."""
    registry.put_subject(
        SubjectFacts(subject_id="s3", consents=(_consent("adco", all_categories=True),))
    )
    w = Withdrawal(categories=("user.profile.tags",), all_categories=False)
    assert registry.withdraw_consent("s3", w) == 0
    assert len(registry.subjects(["s3"])["s3"].consents) == 1


def test_unnarrowed_withdrawal_withdraws_everything_and_sets_the_flag(registry: Registry) -> None:
    """A withdrawal narrowed to nothing is the whole-subject withdrawal."""
    registry.put_subject(SubjectFacts(subject_id="s4", consents=(_consent("adco"),)))
    assert registry.withdraw_consent("s4", Withdrawal()) == 1
    facts = registry.subjects(["s4"])["s4"]
    assert facts.consent_withdrawn and facts.consents == () and facts.withdrawals == ()


def test_seed_with_the_old_guardian_flag_is_refused() -> None:
    """A v1 seed's guardian_consent flag is refused, naming what replaces it."""
    with pytest.raises(InvalidRequestError, match='given_by = "guardian"'):
        subject_from_mapping({"subject_id": "s5", "guardian_consent": True})


def test_migration_0002_carries_v1_consents_over(sqlite_url: str) -> None:
    """A registry at revision 0001 with a v1 consent upgrades: the consent gets an id, is
    the subject's own and covers what it listed; the guardian flag column is gone."""
    upgrade(sqlite_url, revision="0001")
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO registry_subjects (subject_id, birth_date, guardian_consent, "
            "ad_opt_out, consent_withdrawn, account_deleted) VALUES ('s9', '', 1, 0, 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO registry_consents (subject_id, recipient_id, purpose, scope, "
            "categories, withdrawn) "
            """VALUES ('s9', 'adco', 'ad_delivery', 'SHARE', '["user.name"]', 0)"""
        )
    upgrade(sqlite_url)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("registry_subjects")}
    engine.dispose()
    assert "guardian_consent" not in columns
    registry = Registry.open(sqlite_url)
    try:
        [c] = registry.subjects(["s9"])["s9"].consents
    finally:
        registry.close()
    assert (c.consent_id, c.given_by, c.all_categories) == (
        "consent-row-1",
        ConsentGiver.SUBJECT,
        False,
    )
    assert c.categories == ("user.name",)

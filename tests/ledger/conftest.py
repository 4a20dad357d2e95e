"""Ledger test fixtures: a ledger on either backend, and a disclosure factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import Disclosure, Ledger

ORIGIN = "test.example/ledger"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """A key directory (created by the ledger on first open)."""
    return tmp_path / "keys"


@pytest.fixture
def open_ledger(db_url: str, keys_dir: Path) -> Iterator[Callable[..., Ledger]]:
    """Factory opening ledgers on ``db_url``; all are closed after the test."""
    opened: list[Ledger] = []

    def make(**kw: Any) -> Ledger:
        led = Ledger.open(db_url, keys_dir=keys_dir, origin=ORIGIN, **kw)
        opened.append(led)
        return led

    yield make
    for led in opened:
        led.close()


@pytest.fixture
def ledger(open_ledger: Callable[..., Ledger]) -> Ledger:
    """An open ledger on each backend."""
    return open_ledger()


def make_disclosure(n: int = 0, **kw: Any) -> Disclosure:
    """A realistic disclosure; ``n`` varies the request id and time."""
    base: dict[str, Any] = dict(
        time=datetime(2025, 1, 1, 12, 0, n % 60, n, tzinfo=UTC),
        decision="ALLOW",
        request_id=f"req-{n}",
        rpc="/partner_gateway.v1.ShareService/Share",
        caller="svc-crm",
        caller_role="sharer",
        partner_id="partner-a",
        purpose="fraud-prevention",
        action="SHARE",
        mode="share",
        legal_basis="consent",
        legal_reference="§三.(一).5",
        reason_codes=("R1",),
        policy_revision="rev-1",
        record_type="customer",
        categories_disclosed=("email", "name"),
        categories_removed=("national_id",),
        record_count=2,
        subject_ids=(f"subject-{n}", "subject-shared"),
        payload_digest=bytes(32),
        pseudonym_key_id="pk1",
    )
    base.update(kw)
    return Disclosure(**base)


@pytest.fixture
def disclosure() -> Callable[..., Disclosure]:
    """Factory for disclosures: ``disclosure(n, **overrides)``."""
    return make_disclosure

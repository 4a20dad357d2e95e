"""The restricted PostgreSQL role can read and append, and cannot drop, truncate or alter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.schema import provision_postgres
from ledger import Disclosure, Ledger

pytestmark = pytest.mark.postgres


@pytest.fixture
def writer_url(postgres_url: str, pg_role: Callable[[], tuple[str, str]]) -> str:
    """The schema provisioned by the superuser, and the URL of a fresh restricted role."""
    role, url = pg_role()
    provision_postgres(postgres_url, role=role)
    return url


def test_restricted_role_appends_but_cannot_drop_or_truncate(
    writer_url: str, tmp_path: Path, disclosure: Callable[..., Disclosure]
) -> None:
    """The gateway's role appends and forgets subjects; DROP, TRUNCATE, UPDATE, DELETE fail."""
    with Ledger.open(writer_url, keys_dir=tmp_path, origin="test.example/ledger") as led:
        led.append([disclosure(i) for i in range(3)])
        led.checkpoint()
        assert led.forget_subject("subject-1") is True
        engine = led.engine
        for stmt in (
            "DROP TABLE ledger_entry",
            "TRUNCATE ledger_entry",
            "TRUNCATE ledger_subject_salt",
            "ALTER TABLE ledger_entry DISABLE TRIGGER ALL",
            "UPDATE ledger_entry SET partner_id = 'x'",
            "DELETE FROM ledger_checkpoint",
            "DELETE FROM ledger_subject_salt",
            "CREATE TABLE ledger_evil (x int)",
        ):
            with pytest.raises(sa.exc.DatabaseError), engine.begin() as conn:
                conn.exec_driver_sql(stmt)
        assert led.size == 3


def test_owner_cannot_truncate_either(postgres_url: str, tmp_path: Path) -> None:
    """Even the tables' owner is stopped by the TRUNCATE trigger."""
    with Ledger.open(postgres_url, keys_dir=tmp_path, origin="test.example/ledger") as led:
        led.append([Disclosure(time=datetime.now(UTC), decision="DENY")])
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), led.engine.begin() as c:
            c.exec_driver_sql("TRUNCATE ledger_entry")

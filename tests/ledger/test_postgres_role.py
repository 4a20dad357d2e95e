"""The restricted PostgreSQL role can read and append, and cannot drop, truncate or alter."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.schema import provision_postgres
from ledger import Disclosure, Ledger

pytestmark = pytest.mark.postgres


@pytest.fixture
def writer_url(postgres_url: str) -> Iterator[str]:
    """The ledger provisioned by the superuser, and a URL for a fresh restricted role."""
    role = f"ledger_writer_{uuid.uuid4().hex[:10]}"
    provision_postgres(postgres_url, role=role)
    yield sa.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    admin = sa.create_engine(
        sa.make_url(postgres_url).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        db = sa.make_url(postgres_url).database
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    admin.dispose()


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

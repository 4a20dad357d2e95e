"""Schema migrations cover every table, and the restricted PostgreSQL role runs the gateway
(issue 14.7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from gateway.cli import app
from gateway.demo import delivery_request
from gateway.errors import UnavailableError
from gateway.registry import Registry
from gateway.schema import (
    VERSION_TABLE,
    head_revision,
    new_revision,
    provision_postgres,
    role_grants,
    target_metadata,
    upgrade,
)
from gateway.server import Gateway
from gateway.settings import Settings
from gateway.testing import running_gateway
from ledger import Ledger
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2, share_pb2_grpc

_ADD_A_MIGRATION = (
    "the models differ from the migrations: add a revision in gateway/migrations/versions "
    "(`share-gateway db revision -m WHAT` writes it; `share-gateway db upgrade` applies it)"
)


def _drift(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), target_metadata())
    finally:
        engine.dispose()
    return list(diffs)


def _tables() -> set[str]:
    return {t for md in target_metadata() for t in md.tables}


def test_migrations_create_exactly_the_tables_the_code_defines(sqlite_url: str) -> None:
    """After ``upgrade`` a SQLite database matches every model: a table or column added
    without a migration fails here (add a revision under gateway/migrations/versions)."""
    upgrade(sqlite_url)
    assert _drift(sqlite_url) == [], _ADD_A_MIGRATION


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(postgres_url: str) -> None:
    """The same on PostgreSQL (types included)."""
    upgrade(postgres_url)
    assert _drift(postgres_url) == [], _ADD_A_MIGRATION


def test_the_role_may_never_update_or_delete_ledger_rows() -> None:
    """Every table gets a grant; on ledger tables only SELECT and INSERT (and the
    sequencer's lock column), whatever tables are added later."""
    grants = role_grants([*_tables(), "ledger_added_later", "registry_added_later"])
    assert set(grants) == _tables() | {VERSION_TABLE, "ledger_added_later", "registry_added_later"}
    for table, privileges in grants.items():
        if table.startswith("ledger_"):
            assert "DELETE" not in privileges
            assert "UPDATE" not in privileges or privileges.endswith("UPDATE (id)")


def test_upgrade_adopts_a_database_the_stores_created(tmp_path: Path, sqlite_url: str) -> None:
    """Tables created before migrations existed are kept and the database is stamped."""
    Ledger.open(sqlite_url, keys_dir=tmp_path / "keys", origin="test.example/ledger").close()
    Registry.open(sqlite_url).close()
    assert upgrade(sqlite_url) == head_revision()
    assert _drift(sqlite_url) == []


@pytest.fixture
def role_url(postgres_url: str, pg_role: Callable[[], tuple[str, str]]) -> str:
    """A database provisioned by the owner, and the URL of the restricted role."""
    role, url = pg_role()
    provision_postgres(postgres_url, role=role)
    return url


@pytest.mark.postgres
def test_the_restricted_role_serves_and_cannot_rewrite_the_ledger(
    tmp_path: Path, role_url: str
) -> None:
    """The gateway starts and serves as the provisioned role (share, outbox staging, erasure),
    and that role cannot UPDATE, DELETE, TRUNCATE, DROP or disable the ledger's triggers."""
    with running_gateway(tmp_path, ledger={"url": role_url}) as gw:
        share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
        response = share.Share(delivery_request(), timeout=30)
        assert response.decision.allowed and response.records
        staged = delivery_request()
        staged.delivery = share_pb2.DELIVERY_MODE_OUTBOX
        assert share.Share(staged, timeout=30).receipt.ledger_index > 0
        admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
        subject = delivery_request().records[0].subject_id
        ack = admin.DeleteSubject(admin_pb2.DeleteSubjectRequest(subject_id=subject), timeout=30)
        assert "unlinked" in ack.message
        engine = gw.gateway.ledger.engine
        for statement in (
            "UPDATE ledger_entry SET partner_id = 'x'",
            "DELETE FROM ledger_entry",
            "DELETE FROM ledger_subject_salt",
            "UPDATE ledger_subject_salt SET salt = ''::bytea",
            "TRUNCATE ledger_entry",
            "TRUNCATE ledger_subject_salt",
            "ALTER TABLE ledger_entry DISABLE TRIGGER ALL",
            "ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_append_only",
            "DROP TABLE ledger_checkpoint",
            "CREATE TABLE ledger_evil (x int)",
        ):
            with pytest.raises(sa.exc.DatabaseError), engine.begin() as conn:
                conn.exec_driver_sql(statement)


@pytest.mark.postgres
def test_a_missing_privilege_is_named_at_start(
    tmp_path: Path, postgres_url: str, role_url: str
) -> None:
    """A role lacking a grant fails to start with the real cause: which privilege, which
    table (was: "registry store unavailable: ProgrammingError")."""
    role = sa.make_url(role_url).username
    owner = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    with owner.begin() as conn:
        conn.exec_driver_sql(f'REVOKE SELECT ON registry_partners FROM "{role}"')
    owner.dispose()
    settings = Settings.load(
        env={}, overrides={"data_dir": str(tmp_path), "ledger": {"url": role_url}}
    )
    with pytest.raises(UnavailableError) as info:
        Gateway.open(settings).close()
    message = info.value.message
    assert "InsufficientPrivilege" in message and "registry_partners" in message
    assert "SELECT privilege" in message


@pytest.mark.postgres
def test_an_unprovisioned_database_names_the_missing_create_privilege(
    tmp_path: Path, pg_role: Callable[[], tuple[str, str]]
) -> None:
    """A restricted role on a database nobody migrated is told to run the migrations as
    the owner, naming the CREATE privilege it lacks."""
    _role, url = pg_role()
    settings = Settings.load(env={}, overrides={"data_dir": str(tmp_path), "ledger": {"url": url}})
    with pytest.raises(UnavailableError) as info:
        Gateway.open(settings).close()
    message = info.value.message
    assert "InsufficientPrivilege" in message and "CREATE privilege" in message
    assert "share-gateway db upgrade" in message


def test_db_upgrade_is_one_command(sqlite_url: str) -> None:
    """``share-gateway db upgrade --url URL`` migrates and names the revision."""
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", sqlite_url])
    assert result.exit_code == 0, result.output
    assert head_revision() in result.output and _drift(sqlite_url) == []


@pytest.mark.postgres
def test_provision_command_creates_every_table_and_the_role(
    postgres_url: str, pg_role: Callable[[], tuple[str, str]]
) -> None:
    """``ledger provision-postgres`` creates every table the gateway needs, not only the
    ledger's, and grants the role access to them."""
    role, url = pg_role()
    args = ["ledger", "provision-postgres", "--admin-url", postgres_url, "--role", role]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == _tables() | {VERSION_TABLE}
        assert conn.exec_driver_sql("SELECT count(*) FROM registry_partners").scalar() == 0
    engine.dispose()


def test_db_revision_writes_the_migration_a_new_table_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table added to the models gets its revision from one command, and that revision
    brings a database at the previous head to the models."""
    extra = sa.MetaData()
    sa.Table("registry_added_later", extra, sa.Column("id", sa.Integer, primary_key=True))
    with_extra = [*target_metadata(), extra]
    monkeypatch.setattr("gateway.schema.target_metadata", lambda: with_extra)
    versions = tmp_path / "versions"
    versions.mkdir()
    following = f"{int(head_revision()) + 1:04d}"
    path = new_revision("registry added later", versions_dir=versions)
    text = path.read_text(encoding="utf-8")
    assert (
        path.name.startswith(f"{following}_") and "create_table" in text and "sqlmodel" not in text
    )
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)  # the shipped head, without the new revision
    monkeypatch.setattr("gateway.schema._VERSION_LOCATIONS", str(versions))
    assert upgrade(url) == following
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), with_extra)
    engine.dispose()
    assert list(diffs) == []

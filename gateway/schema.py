"""The gateway's database schema: Alembic migrations, and PostgreSQL provisioning (14.7).

Invariants:
- One schema history covers every table the gateway needs (``ledger_*``, ``registry_*``,
  ``outbox_*``): ``gateway/migrations/versions``. ``upgrade`` brings a database to the newest
  revision under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an advisory lock), so several
  processes starting at once migrate once. A later schema change is one new revision file
  and one command (``share-gateway db upgrade``).
- ``Gateway.open`` runs ``upgrade``: SQLite and a PostgreSQL owner need nothing else, and on
  an up-to-date database it only reads ``alembic_version`` (all the restricted role may do).
  The initial revision creates only what is missing, so a database made before migrations
  existed is adopted by the same upgrade.
- ``provision_postgres`` runs the migrations as the tables' owner, then grants the gateway's
  role exactly ``role_grants`` of the tables present. The role owns nothing, so it cannot
  DROP, ALTER, TRUNCATE or disable triggers; ledger tables refuse its UPDATEs and DELETEs
  twice (no privilege, and the append-only triggers), and it forgets a subject only through
  ``ledger_forget_salt``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from gateway.errors import ConfigError, UnavailableError
from gateway.registry.snapshot import REGISTRY_VERSION_TABLE, VERSIONED_TABLES, version_ddl
from ledger.storage import (
    FORGET_FUNCTION,
    WRITE,
    append_only_ddl,
    create_ledger_engine,
    describe_db_error,
    is_sqlite,
    ledger_metadata,
)

SCRIPT_LOCATION = "gateway:migrations"
VERSIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
#: Extra revision directories (space-separated, after ``VERSIONS_DIR``); for tests.
_VERSION_LOCATIONS: str | None = None
VERSION_TABLE = "alembic_version"
_MIGRATION_LOCK = 7262702
_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: What the gateway's PostgreSQL role may do, by table: ledger tables read and append; the
#: registry's and outbox's tables the updates and deletes their code performs (upserts,
#: consent withdrawal, subject erasure, delivery marks, acks and expiry). A table added later
#: gets its prefix's default; ``GRANT_EXCEPTIONS`` narrows (or, once, widens) it.
LEDGER_GRANT = "SELECT, INSERT"
STORE_GRANT = "SELECT, INSERT, UPDATE, DELETE"
GRANT_EXCEPTIONS: dict[str, str] = {
    # The writer lock, SELECT ... FOR UPDATE, requires an UPDATE privilege; the trigger
    # refuses every actual UPDATE of the sequencer.
    "ledger_sequencer": "SELECT, INSERT, UPDATE (id)",
    "registry_partners": "SELECT, INSERT, UPDATE",
    "registry_schemas": "SELECT, INSERT, UPDATE",
    "registry_erased_subjects": "SELECT, INSERT",
    # Only the triggers' SECURITY DEFINER function bumps it (ADR 0025).
    REGISTRY_VERSION_TABLE: "SELECT",
    VERSION_TABLE: "SELECT",
}


def role_grants(tables: Iterable[str]) -> dict[str, str]:
    """The gateway role's privileges on each of ``tables`` (and ``alembic_version``). Pure."""
    return {
        t: GRANT_EXCEPTIONS.get(t, LEDGER_GRANT if t.startswith("ledger_") else STORE_GRANT)
        for t in sorted({*tables, VERSION_TABLE})
    }


def target_metadata() -> list[sa.MetaData]:
    """Every table the gateway's code defines: the ledger's and the SQLModel tables
    (registry, outbox)."""
    # Imported for their side effect: the models register their tables.
    import gateway.outbox.store
    import gateway.registry.models  # noqa: F401

    return [ledger_metadata(), SQLModel.metadata]


def head_revision() -> str:
    """The newest revision in ``gateway/migrations/versions``."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def new_revision(message: str, *, versions_dir: Path | None = None) -> Path:
    """Write the revision that brings the newest migration to what the models define
    (Alembic autogenerate against a scratch SQLite database at head), formatted with ruff.

    Args:
        message: What the revision does (its docstring and file name).
        versions_dir: Where to write it (default: ``gateway/migrations/versions``).

    Returns:
        The new file; review it (and name new tables in ``GRANT_EXCEPTIONS`` if their
        prefix's default grant is too wide), then ``share-gateway db upgrade``.
    """
    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'head.db'}"
        upgrade(url)
        engine = create_ledger_engine(url)
        try:
            with engine.connect().execution_options(**WRITE) as conn, conn.begin():
                cfg = _config(conn, extra_versions=versions_dir)
                script = command.revision(
                    cfg,
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                    version_path=str(versions_dir or VERSIONS_DIR),
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        subprocess.run([sys.executable, "-m", "ruff", *args, str(path)], check=False)
    return path


def upgrade(url: str, *, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; return the revision it is at.

    Raises:
        UnavailableError: the database refused; the message names the cause, e.g. the
            privilege a restricted role lacks (run this as the tables' owner).
    """
    engine = create_ledger_engine(url)
    try:
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not is_sqlite(engine):
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            before = current_revision(conn)
            command.upgrade(_config(conn), revision)
            at = current_revision(conn)
            if at != before:
                # A migration that rebuilt a ledger table (SQLite's batch mode copies it)
                # drops its triggers: put back every append-only guard (idempotent).
                present = set(sa.inspect(conn).get_table_names())
                for ddl in append_only_ddl(engine.dialect.name, present):
                    conn.exec_driver_sql(ddl)
                # Likewise the registry version's triggers (ADR 0025).
                if present.issuperset((REGISTRY_VERSION_TABLE, *VERSIONED_TABLES)):
                    for ddl in version_ddl(engine.dialect.name):
                        conn.exec_driver_sql(ddl)
    except sa.exc.SQLAlchemyError as e:
        raise UnavailableError(
            f"database schema upgrade failed: {describe_db_error(e)}; a restricted role "
            "cannot migrate: run `share-gateway db upgrade` as the tables' owner",
            reason="schema.upgrade_failed",
        ) from e
    finally:
        engine.dispose()
    assert at is not None
    return at


def provision_postgres(admin_url: str, *, role: str, password: str | None = None) -> None:
    """Migrate the schema as the owner and create (or update) the gateway's restricted role.

    Args:
        admin_url: URL of a role that may create tables and roles (becomes the owner).
        role: The gateway's role (lowercase SQL identifier), granted ``role_grants`` only.
        password: Its login password; ``None`` leaves it unchanged (or none: trust/peer).

    Raises:
        ConfigError: bad role name or not a PostgreSQL URL.
        UnavailableError: the database refused (the message names the cause).
    """
    if not _ROLE.fullmatch(role):
        raise ConfigError("role must be a lowercase SQL identifier", reason="schema.role")
    if sa.make_url(admin_url).get_backend_name() != "postgresql":
        raise ConfigError("provisioning applies to PostgreSQL only", reason="schema.role")
    upgrade(admin_url)
    engine = create_ledger_engine(admin_url)
    try:
        with engine.begin() as conn:
            if (
                conn.execute(
                    sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
                ).first()
                is None
            ):
                conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
            if password is not None:
                conn.execute(sa.text(f'ALTER ROLE "{role}" PASSWORD :p').bindparams(p=password))
            conn.exec_driver_sql(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE CREATE ON SCHEMA public FROM "{role}"')
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            tables = sa.inspect(conn).get_table_names()
            for table, privileges in role_grants(tables).items():
                conn.exec_driver_sql(f'GRANT {privileges} ON {table} TO "{role}"')
            # Serial ids of consents and outbox rows: nextval needs USAGE on the sequence.
            conn.exec_driver_sql(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
            conn.exec_driver_sql(f'GRANT EXECUTE ON FUNCTION {FORGET_FUNCTION}(bytea) TO "{role}"')
    except sa.exc.SQLAlchemyError as e:
        raise UnavailableError(
            f"cannot provision PostgreSQL: {describe_db_error(e)}", reason="schema.provision"
        ) from e
    finally:
        engine.dispose()


def _config(conn: Connection | None = None, *, extra_versions: Path | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("path_separator", "space")
    extra = " ".join(str(x) for x in (_VERSION_LOCATIONS, extra_versions) if x)
    if extra:
        cfg.set_main_option("version_locations", f"{VERSIONS_DIR} {extra}")
    cfg.attributes["connection"] = conn
    return cfg

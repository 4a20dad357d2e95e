"""Ledger storage: SQLModel tables, engines, append-only triggers, PostgreSQL provisioning.

Tables (all prefixed ``ledger_``, since the gateway's registry shares the database):

* ``ledger_sequencer``: one coordinator row (id 1) that every writer locks per batch
  (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` is the lock). It is
  never updated: the tree size is ``max(idx) + 1`` of ``ledger_entry``, read under the lock.
* ``ledger_entry``: index, leaf hash, canonical bytes, and a few columns copied from the entry
  for queries (``ledger verify`` checks the copies against the bytes).
* ``ledger_node``: hash of every completed perfect subtree of level >= 1 (level 0 are the
  entries' leaf hashes), written in the same transaction as the leaves that complete it.
* ``ledger_checkpoint``: every signed checkpoint (one per append transaction).
* ``ledger_cosignature``: witnesses' cosignatures on checkpoints (c2sp.org/tlog-cosignature).
* ``ledger_subject_index``: pseudonym -> entry index.
* ``ledger_subject_salt``: per-subject salts keyed by a keyed hash of the subject id. The one
  table that allows DELETE: deleting a salt is how a subject is forgotten (§五.(三)); no entry
  or hash changes, so every proof still verifies.

Triggers refuse UPDATE and DELETE on every other ledger table (and UPDATE on salts, and
TRUNCATE on PostgreSQL). On PostgreSQL a salt is deleted through ``ledger_forget_salt``
(``SECURITY DEFINER``), so the gateway's restricted role (``gateway.schema.provision_postgres``)
needs no DELETE privilege on any ledger table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Field, SQLModel

from ledger.errors import InvalidArgumentError, LedgerUnavailableError

_T = TypeVar("_T")
_metadata = sa.MetaData()


class SequencerRow(SQLModel, table=True):
    """The coordinator row locked by each append batch (never updated)."""

    __tablename__ = "ledger_sequencer"
    metadata = _metadata

    id: int = Field(primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False})
    origin: str
    vkey: str
    subject_key_id: str


class EntryRow(SQLModel, table=True):
    """One log entry."""

    __tablename__ = "ledger_entry"
    __table_args__ = (sa.Index("ledger_entry_partner", "partner_id", "idx"),)
    metadata = _metadata

    idx: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    leaf_hash: bytes = Field(sa_type=sa.LargeBinary)
    data: bytes = Field(sa_type=sa.LargeBinary)
    time_us: int = Field(sa_type=sa.BigInteger, index=True)
    partner_id: str
    purpose: str
    action: str
    decision: str


class NodeRow(SQLModel, table=True):
    """Hash of the perfect subtree ``(level, idx)``, level >= 1."""

    __tablename__ = "ledger_node"
    metadata = _metadata

    level: int = Field(
        primary_key=True, sa_type=sa.SmallInteger, sa_column_kwargs={"autoincrement": False}
    )
    idx: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    hash: bytes = Field(sa_type=sa.LargeBinary)


class CheckpointRow(SQLModel, table=True):
    """A signed checkpoint."""

    __tablename__ = "ledger_checkpoint"
    metadata = _metadata

    size: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    root: bytes = Field(sa_type=sa.LargeBinary)
    note: str = Field(sa_type=sa.Text)
    created_us: int = Field(sa_type=sa.BigInteger)


class CosignatureRow(SQLModel, table=True):
    """A witness's cosignature line on the checkpoint of ``size`` (tlog-cosignature/v1)."""

    __tablename__ = "ledger_cosignature"
    metadata = _metadata

    size: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    witness: str = Field(primary_key=True, sa_type=sa.String(255))
    line: str = Field(sa_type=sa.Text)
    created_us: int = Field(sa_type=sa.BigInteger)


class SubjectIndexRow(SQLModel, table=True):
    """Pseudonym -> entry index; ``excluded`` when the subject was left out of the share."""

    __tablename__ = "ledger_subject_index"
    metadata = _metadata

    pseudonym: str = Field(primary_key=True, sa_type=sa.String(64))
    idx: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    excluded: bool


class SubjectSaltRow(SQLModel, table=True):
    """A subject's salt, keyed by a keyed hash of the subject id. Deletable (forgetting)."""

    __tablename__ = "ledger_subject_salt"
    metadata = _metadata

    salt_key: bytes = Field(primary_key=True, sa_type=sa.LargeBinary)
    salt: bytes = Field(sa_type=sa.LargeBinary)


sequencer_t: sa.Table = SequencerRow.__table__  # type: ignore[attr-defined]
entry_t: sa.Table = EntryRow.__table__  # type: ignore[attr-defined]
node_t: sa.Table = NodeRow.__table__  # type: ignore[attr-defined]
checkpoint_t: sa.Table = CheckpointRow.__table__  # type: ignore[attr-defined]
subject_index_t: sa.Table = SubjectIndexRow.__table__  # type: ignore[attr-defined]
cosignature_t: sa.Table = CosignatureRow.__table__  # type: ignore[attr-defined]
salt_t: sa.Table = SubjectSaltRow.__table__  # type: ignore[attr-defined]

APPEND_ONLY_TABLES = (
    "ledger_sequencer",
    "ledger_entry",
    "ledger_node",
    "ledger_checkpoint",
    "ledger_subject_index",
    "ledger_cosignature",
)
SALT_TABLE = "ledger_subject_salt"
ALL_TABLES = (*APPEND_ONLY_TABLES, SALT_TABLE)
WRITE = {"ledger_write": True}
"""Execution option: on SQLite, the transaction starts with ``BEGIN IMMEDIATE``."""


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def create_ledger_engine(url: str) -> Engine:
    """Create an engine with the ledger's durability settings.

    SQLite: WAL, ``synchronous=FULL`` (a commit is fsynced before it returns), a 30 s busy
    timeout, and ``BEGIN IMMEDIATE`` for write transactions (the single-writer lock).
    PostgreSQL: default (durable) commit, READ COMMITTED, pre-ping.

    Raises:
        InvalidArgumentError: the URL is not SQLite or PostgreSQL.
        LedgerUnavailableError: the driver cannot be loaded.
    """
    try:
        u = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise InvalidArgumentError(f"bad ledger URL: {e}") from e
    try:
        if u.get_backend_name() == "sqlite":
            engine = sa.create_engine(
                u, connect_args={"check_same_thread": False, "timeout": 30.0}, pool_size=8
            )
            _configure_sqlite(engine)
            return engine
        if u.get_backend_name() == "postgresql":
            return sa.create_engine(u, pool_pre_ping=True, pool_size=8, max_overflow=8)
    except (ImportError, sa.exc.SQLAlchemyError) as e:
        raise LedgerUnavailableError(f"cannot create ledger engine: {e}") from e
    raise InvalidArgumentError("ledger URL must be sqlite:// or postgresql+psycopg://")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours (SQLAlchemy recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Deleted content (a forgotten subject's salt) is overwritten with zeros, not left in
        # free space where it could re-link the subject's entries (issue 14.4).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("ledger_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _sqlite_triggers(tables: Collection[str]) -> list[str]:
    out = [
        f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
        f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {op} on {t} refused'); END"
        for t in APPEND_ONLY_TABLES
        if t in tables
        for op in ("UPDATE", "DELETE")
    ]
    if SALT_TABLE in tables:
        out.append(
            f"CREATE TRIGGER IF NOT EXISTS {SALT_TABLE}_no_update BEFORE UPDATE ON {SALT_TABLE} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE on {SALT_TABLE} refused'); "
            "END"
        )
    return out


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger is append-only: %% on %% refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


FORGET_FUNCTION = "ledger_forget_salt"
#: Deleting a salt is the one deletion in the ledger. It runs as this function's owner (the
#: tables' owner): the gateway's restricted role gets EXECUTE on it and no DELETE privilege
#: on any ledger table, so it can forget one subject by its salt key and nothing else.
_PG_FORGET = f"""
CREATE OR REPLACE FUNCTION {FORGET_FUNCTION}(key bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM public.{SALT_TABLE} WHERE salt_key = key;
  RETURN FOUND;
END $$
"""


def _pg_triggers(tables: Collection[str]) -> list[str]:
    out = []
    for t in (t for t in ALL_TABLES if t in tables):
        ops = "UPDATE" if t == SALT_TABLE else "UPDATE OR DELETE"
        out += [
            f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}",
            f"CREATE TRIGGER {t}_append_only BEFORE {ops} ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()",
            f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}",
            f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()",
        ]
    return out


def schema_exists(conn: Connection) -> bool:
    """True when every ledger table exists."""
    names = set(sa.inspect(conn).get_table_names())
    return all(t in names for t in ALL_TABLES)


def create_schema(engine: Engine) -> None:
    """Create the ledger tables and append-only triggers if they are missing.

    Raises:
        LedgerUnavailableError: the database refused (e.g. a restricted role on an
            unprovisioned database).
    """
    try:
        with engine.connect() as conn:
            if schema_exists(conn):
                return
        with engine.begin() as conn:
            if not is_sqlite(engine):
                # Serialize concurrent first starts of several processes.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262700)")
            _metadata.create_all(conn, checkfirst=True)
            for ddl in append_only_ddl(engine.dialect.name):
                conn.exec_driver_sql(ddl)
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"cannot create ledger schema: {e}") from e


def append_only_ddl(dialect: str, tables: Collection[str] = ALL_TABLES) -> list[str]:
    """DDL (idempotent; run with ``exec_driver_sql``) of the triggers that refuse changes to
    the ledger ``tables`` (default: all) and, on PostgreSQL, of the salt deletion run with the
    owner's rights (``FORGET_FUNCTION``, EXECUTE revoked from PUBLIC). Also used by the
    gateway's schema migrations, each for the tables it created."""
    if dialect == "sqlite":
        return _sqlite_triggers(tables)
    return [
        _PG_FUNCTION,
        _PG_FORGET,
        f"REVOKE ALL ON FUNCTION {FORGET_FUNCTION}(bytea) FROM PUBLIC",
        *_pg_triggers(tables),
    ]


def ledger_metadata() -> sa.MetaData:
    """The ledger tables' metadata (for the gateway's schema migrations)."""
    return _metadata


def describe_db_error(e: BaseException) -> str:
    """Name a driver error's real cause for an operator: the driver's class and primary
    message (e.g. ``InsufficientPrivilege: permission denied for table ledger_entry``) and,
    for a refused privilege, the privilege the statement needed. Never parameters or row
    values (PostgreSQL's primary message names objects only; SQLite's names tables and
    columns). Pure."""
    orig = getattr(e, "orig", None) or e
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary is None and type(orig).__module__.startswith("sqlite3"):
        primary = str(orig)
    text = f"{type(orig).__name__}: {primary}" if primary else type(orig).__name__
    if getattr(orig, "sqlstate", None) == "42501":  # insufficient_privilege
        statement = str(getattr(e, "statement", "") or "").strip()
        verb = statement.split(None, 1)[0].upper() if statement else ""
        if verb == "SELECT" and "FOR UPDATE" in statement.upper():
            verb = "UPDATE (for SELECT ... FOR UPDATE)"
        needed = f"the {verb} privilege" if verb else "a privilege"
        text += (
            f" ({needed} is missing; grant it, or provision the role with "
            "`share-gateway ledger provision-postgres` as the tables' owner)"
        )
    return text


def chunked(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Split ``seq`` into consecutive slices of at most ``size`` items (for IN lists)."""
    return [seq[i : i + size] for i in range(0, len(seq), size)]


@contextmanager
def write_txn(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the sequencer lock; driver errors become LedgerErrors.

    The lock: SQLite ``BEGIN IMMEDIATE``; PostgreSQL the sequencer row ``FOR UPDATE``.

    Raises:
        LedgerUnavailableError: storage failed.
    """
    try:
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not is_sqlite(engine):
                conn.execute(
                    sa.select(sequencer_t.c.id).where(sequencer_t.c.id == 1).with_for_update()
                )
            yield conn
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e


def read_txn(engine: Engine, fn: Callable[[Connection], _T]) -> _T:
    """Run ``fn`` in a read transaction; driver errors become ``LedgerUnavailableError``."""
    try:
        with engine.connect() as conn, conn.begin():
            return fn(conn)
    except sa.exc.SQLAlchemyError as e:
        raise LedgerUnavailableError(f"ledger storage failed: {describe_db_error(e)}") from e

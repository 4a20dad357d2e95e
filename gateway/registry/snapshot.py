"""The share path's in-memory copy of the registry, valid for one registry version.

Design: docs/adr/0025-registry-snapshot.md. Invariants:

- Every write to a table the share path reads (partners, schemas, subjects, consents,
  withdrawals, orders, erased subjects) bumps ``registry_version.version`` in the same
  transaction, by a database trigger: writes through the AdminService, the ``registry`` CLI,
  the ledger's erasure transaction, another gateway process or plain SQL alike. Only the
  triggers change it (PostgreSQL: a ``SECURITY DEFINER`` function; the gateway's role may
  only read the row), so it never goes back.
- Each share reads the version first (one primary-key read on a connection kept for it),
  then answers from the cache filled under that version, or reads the database and fills
  it. A version other than the cache's empties the whole cache before anything is read, so
  no share ever uses a row older than a write that committed before it started: a
  withdrawn consent, a suspended partner or a changed schema applies to the very next share
  in every process. Rows read after the version was read are at least as new as it; they
  are stored only while the cache is still at that version.
- Memory is bounded: subject facts are kept least-recently-used up to ``max_subjects``
  (subjects can be millions); partners and schemas (a handful) up to ``max_entries`` each,
  emptied when full (an attacker naming endless unknown ids cannot grow them).

PostgreSQL ``LISTEN/NOTIFY`` is not used: a notification reaches a listener asynchronously,
after the writer's commit has returned, so it cannot promise the very next share on
another replica; the per-share version read can, for one round trip instead of five.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from gateway.errors import UnavailableError

REGISTRY_VERSION_TABLE = "registry_version"
#: Tables whose rows the share path caches; a write to any of them bumps the version.
VERSIONED_TABLES = (
    "registry_partners",
    "registry_schemas",
    "registry_subjects",
    "registry_consents",
    "registry_withdrawals",
    "registry_orders",
    "registry_erased_subjects",
)
_PG_BUMP = "registry_bump_version"
_READ_VERSION = f"SELECT version FROM {REGISTRY_VERSION_TABLE} WHERE id = 1"


def version_ddl(dialect: str) -> list[str]:
    """Idempotent DDL (run with ``exec_driver_sql`` by the tables' owner) of the version
    row and the triggers that bump it; the tables, ``registry_version`` included, must
    exist. Pure."""
    if dialect == "sqlite":
        out = [f"INSERT OR IGNORE INTO {REGISTRY_VERSION_TABLE} (id, version) VALUES (1, 0)"]
        for table in VERSIONED_TABLES:
            for op in ("INSERT", "UPDATE", "DELETE"):
                out.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_version_{op.lower()} AFTER {op} "
                    f"ON {table} BEGIN UPDATE {REGISTRY_VERSION_TABLE} SET version = version + 1 "
                    "WHERE id = 1; END"
                )
        return out
    out = [
        f"INSERT INTO {REGISTRY_VERSION_TABLE} (id, version) VALUES (1, 0) "
        "ON CONFLICT (id) DO NOTHING",
        # Runs with the owner's rights: the gateway's role reads the row, never writes it.
        f"""CREATE OR REPLACE FUNCTION {_PG_BUMP}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE public.{REGISTRY_VERSION_TABLE} SET version = version + 1 WHERE id = 1;
  RETURN NULL;
END $$""",
        f"REVOKE ALL ON FUNCTION {_PG_BUMP}() FROM PUBLIC",
    ]
    for table in VERSIONED_TABLES:
        out += [
            f"DROP TRIGGER IF EXISTS {table}_version ON {table}",
            f"CREATE TRIGGER {table}_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {_PG_BUMP}()",
        ]
    return out


def version_triggers_present(conn: Any, dialect: str) -> bool:
    """True when the version row and every trigger exist (DB-API cursor ``conn``)."""
    cur = conn.cursor()
    try:
        if dialect == "sqlite":
            cur.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
                ("registry_%_version_%",),
            )
            want = 3 * len(VERSIONED_TABLES)
        else:
            cur.execute(
                "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE %s",
                ("registry_%_version",),
            )
            want = len(VERSIONED_TABLES)
        (n,) = cur.fetchone()
        if n < want:
            return False
        cur.execute(_READ_VERSION)
        return cur.fetchone() is not None
    finally:
        cur.close()


class VersionReader:
    """Reads the registry version on one connection kept for it (no pool checkout, no
    pre-ping per share). Thread-safe; a failed connection is replaced once, then the read
    fails closed.

    Args:
        connect: Returns a new pooled DB-API connection (``Engine.raw_connection``).
        errors: The driver's error classes.
        autocommit: Put the connection in autocommit mode (PostgreSQL: each read sees the
            newest commit and no transaction stays open).
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Any],
        errors: tuple[type[Exception], ...],
        autocommit: bool,
    ) -> None:
        self._connect = connect
        self._errors = errors
        self._autocommit = autocommit
        self._lock = threading.Lock()
        self._conn: Any = None
        self._cur: Any = None

    def read(self) -> int:
        """The current version.

        Raises:
            UnavailableError: the database cannot be read.
        """
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._cur is None:
                        self._open()
                    self._cur.execute(_READ_VERSION)
                    row = self._cur.fetchone()
                except self._errors as e:
                    self._discard()
                    if attempt:
                        raise UnavailableError(
                            f"registry store unavailable: {type(e).__name__}"
                        ) from e
                    continue
                if row is None:
                    raise UnavailableError(
                        "registry store unavailable: no registry version row "
                        "(run `share-gateway db upgrade`)"
                    )
                return int(row[0])
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _open(self) -> None:
        conn = self._connect()
        if self._autocommit:
            conn.driver_connection.autocommit = True
        self._conn = conn
        self._cur = conn.cursor()

    def _discard(self) -> None:
        conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            # Never back to the pool (it may be in autocommit mode); a broken connection may
            # fail to close, and there is nothing left to do with it then.
            with contextlib.suppress(Exception):
                conn.invalidate()


_MISSING: Any = object()


class Snapshot:
    """Registry rows kept for one version (see the module docstring). Thread-safe.

    ``get_*`` return ``MISSING`` when the row is not cached (``None`` is a cached "no such
    row"); ``put_*`` store what was read after ``version`` was read, and only while the
    snapshot is still at ``version``.
    """

    MISSING = _MISSING

    def __init__(self, *, max_subjects: int = 32_768, max_entries: int = 4_096) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._max_subjects = max_subjects
        self._max_entries = max_entries
        self._schemas: dict[str, Any] = {}
        self._recipients: dict[str, Any] = {}
        self._subjects: OrderedDict[str, Any] = OrderedDict()

    def lookup(
        self, version: int, record_type: str, partner_id: str, ids: Collection[str]
    ) -> tuple[Any, Any, dict[str, Any], list[str]]:
        """What the snapshot holds for one share at ``version``: ``(schema, recipient,
        cached subjects, ids not cached)``; ``MISSING`` for a schema or recipient not cached
        (``None``: cached as absent). No partner is looked up for an empty ``partner_id``, no
        subject for a schema cached as absent.

        Checked and read under one lock: a snapshot at another version (older or newer) is
        emptied first, so a share never sees rows stored under a version it did not read.
        A bulk share's look-up (more than a quarter of ``max_subjects``) does not make its
        subjects recently used: it must not push everyone else's towards eviction.
        """
        with self._lock:
            if version != self._version:
                self._schemas = {}
                self._recipients = {}
                self._subjects = OrderedDict()
                self._version = version
            schema = self._schemas.get(record_type, _MISSING)
            recipient = self._recipients.get(partner_id, _MISSING) if partner_id else None
            found: dict[str, Any] = {}
            missing: list[str] = []
            if schema is not None:
                cache = self._subjects
                refresh = len(ids) <= self._max_subjects // 4
                for sid in ids:
                    facts = cache.get(sid, _MISSING)
                    if facts is _MISSING:
                        missing.append(sid)
                    else:
                        if refresh:
                            cache.move_to_end(sid)
                        found[sid] = facts
        return schema, recipient, found, missing

    def put(
        self,
        version: int,
        *,
        schemas: dict[str, Any] | None = None,
        recipients: dict[str, Any] | None = None,
        subjects: dict[str, Any] | None = None,
    ) -> None:
        """Store rows read after ``version`` was read (dropped if the version moved on).
        Subjects of a share naming at most a quarter of ``max_subjects`` are stored least
        recently used; those of a larger (bulk) share only into free room, evicting nobody."""
        with self._lock:
            if version != self._version:
                return
            for cache, rows in ((self._schemas, schemas), (self._recipients, recipients)):
                if rows:
                    if len(cache) + len(rows) > self._max_entries:
                        cache.clear()
                    cache.update(rows)
            if not subjects:
                return
            cache_s = self._subjects
            if len(subjects) <= self._max_subjects // 4:
                cache_s.update(subjects)
                while len(cache_s) > self._max_subjects:
                    cache_s.popitem(last=False)
                return
            # A bulk share (more than a quarter of the bound) takes only free room, at the
            # least recently used end: its subjects must not push out everyone else's, now
            # or when the next shares need room. A repeated bulk share of the same subjects
            # (a daily audience) then reads them from here, still at this version.
            room = self._max_subjects - len(cache_s)
            for sid, facts in subjects.items():
                if room <= 0:
                    break
                if sid not in cache_s:
                    cache_s[sid] = facts
                    cache_s.move_to_end(sid, last=False)
                    room -= 1

    def __len__(self) -> int:
        """Rows held (subjects, schemas and recipients)."""
        return len(self._subjects) + len(self._schemas) + len(self._recipients)

"""The gateway's own database connection (registry and outbox tables).

The ledger opens its own engine (``ledger.storage``): it needs exclusive write
transactions and its own durability settings. Registry and outbox share one engine here.

Invariants:
- The pool holds at least as many connections as the server has threads that read (the
  event loop and ``worker_threads``), so a busy server never opens (and configures)
  connections on the hot path.
- SQLite: WAL is set once when the engine is created (it is a property of the file); each
  new connection gets a busy timeout and ``secure_delete`` (deleted registry rows, such as
  an erased subject's, are overwritten with zeros rather than left in free pages). No
  pre-ping: a local file has no connection to lose. PostgreSQL: pre-ping, so a restarted
  server is noticed and the pool recovers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from gateway.errors import UnavailableError
from ledger.storage import describe_db_error

BUSY_TIMEOUT_MS = 5_000


def open_engine(url: str, *, pool_size: int = 16) -> Engine:
    """Create the engine for ``url`` with a pool of ``pool_size`` connections.

    Raises:
        UnavailableError: the database cannot be reached or configured.
    """
    sqlite = url.startswith("sqlite")
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=not sqlite,
        **({"connect_args": {"check_same_thread": False}} if sqlite else {}),
    )
    if sqlite:
        event.listen(engine, "connect", _configure_sqlite_connection)
        try:
            with engine.connect() as conn:
                conn.execute(text("PRAGMA journal_mode=WAL"))
        except SQLAlchemyError as e:
            engine.dispose()
            raise UnavailableError(f"database unavailable: {describe_db_error(e)}") from e
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


class GuardedSession(Session):
    """A session whose storage errors surface as ``UnavailableError`` (fail closed)."""

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        super().__exit__(exc_type, exc, tb)
        if isinstance(exc, SQLAlchemyError):
            raise UnavailableError(f"database unavailable: {describe_db_error(exc)}") from exc

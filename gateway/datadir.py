"""The data directory: owner-only, created that way and checked at start (issue 14.6).

Invariants:
- The data dir and its keys dir are 0700; the SQLite database and its ``-wal``/``-shm``
  files are 0600. The registry holds personal data (ids, birth dates, consents), the keys
  dir the secrets behind every pseudonym: no other local user may read them.
- They are *created* that way: directories with mode 0700, the database file with 0600
  before SQLite first opens it (SQLite creates ``-wal`` and ``-shm`` with the database
  file's mode), and ``serve`` runs with umask 077 for anything else.
- A wider mode found at start is refused with an error naming the path and the mode; it is
  never narrowed silently (someone widened it, and an operator should know).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy as sa

from gateway.errors import ConfigError

#: The files SQLite keeps beside a database (WAL mode; ``-journal`` during recovery).
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
#: Mode bits that must be clear: anything for group or others.
_NOT_OWNER = stat.S_IRWXG | stat.S_IRWXO


def check_private(path: Path) -> None:
    """Refuse ``path`` if group or others have any access to it.

    Raises:
        ConfigError: naming the path, its mode and the fix (reason ``config.file_mode``).
    """
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"cannot check the mode of {path}: {e}", reason="config.file_mode") from e
    mode = stat.S_IMODE(st.st_mode)
    if mode & _NOT_OWNER:
        wanted = "700" if stat.S_ISDIR(st.st_mode) else "600"
        raise ConfigError(
            f"{path} has mode {mode:04o}: group or others can access it; "
            f"the gateway keeps personal data and keys there (chmod {wanted} {path})",
            reason="config.file_mode",
        )


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700 if missing, then check its mode.

    Raises:
        ConfigError: it cannot be created, or it exists with a wider mode.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e}", reason="config.file_mode") from e
    check_private(path)


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite://`` URL; ``None`` for other databases or memory."""
    try:
        u = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 if missing (before SQLite does), and check every file
    SQLite keeps beside it.

    Raises:
        ConfigError: a file cannot be created or has a wider mode.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e}", reason="config.file_mode") from e
    check_sqlite_files(path)


def check_sqlite_files(path: Path) -> None:
    """Check the database file and its ``-wal``/``-shm``/``-journal`` siblings that exist.

    Raises:
        ConfigError: one of them is accessible by group or others.
    """
    for suffix in SQLITE_SUFFIXES:
        f = path.with_name(path.name + suffix)
        if suffix == "" or f.exists():
            check_private(f)


def prepare_data_dir(*, data_dir: Path, keys_dir: Path, database_url: str) -> Path | None:
    """Create (0700) and check the data and keys dirs, and create (0600) and check the
    SQLite database file when the gateway uses one.

    Returns:
        The SQLite database file, or ``None`` (PostgreSQL).

    Raises:
        ConfigError: a directory or file is accessible by group or others, or cannot be
            created.
    """
    ensure_private_dir(data_dir)
    ensure_private_dir(keys_dir)
    db = sqlite_file(database_url)
    if db is not None:
        prepare_sqlite_file(db)
    return db

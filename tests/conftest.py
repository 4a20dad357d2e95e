"""Shared fixtures: a throwaway PostgreSQL database per test, and a SQLite file URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

# CI runs Hypothesis derandomized: a red CI is then reproducible with CI=true locally,
# and a rare example found by chance cannot turn one submission red and the next green.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


@pytest.fixture
def postgres_admin_url() -> str:
    """URL of the PostgreSQL superuser on the maintenance database."""
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped after the test.

    Yields a SQLAlchemy URL ``postgresql+psycopg://postgres@127.0.0.1:5432/<name>``. Skips
    the test if the server is not reachable.
    """
    name = f"t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as e:  # pragma: no cover - environment problem
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable: {e}")
    url = sa.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file URL in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_role(postgres_url: str) -> Iterator[Callable[[], tuple[str, str]]]:
    """Factory: a fresh PostgreSQL login role (no privileges) and its URL on ``postgres_url``'s
    database; the database, then the roles (which its grants name), are dropped after."""
    roles: list[str] = []

    def make() -> tuple[str, str]:
        role = f"gateway_{uuid.uuid4().hex[:10]}"
        engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        engine.dispose()
        roles.append(role)
        url = sa.make_url(postgres_url).set(username=role)
        return role, url.render_as_string(hide_password=False)

    yield make
    if roles:
        engine = _admin_engine()
        with engine.connect() as conn:
            database = sa.make_url(postgres_url).database
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in roles:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()

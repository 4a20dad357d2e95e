"""Alembic environment: runs on the connection ``gateway.schema`` opens (online only)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel.sql.sqltypes import AutoString

from gateway import schema


def _render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Render SQLModel's ``AutoString`` as ``sa.String()``: revisions import only sqlalchemy."""
    if kind == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `share-gateway db upgrade` (gateway.schema)")
context.configure(
    connection=connection,
    target_metadata=schema.target_metadata(),
    render_item=_render_item,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

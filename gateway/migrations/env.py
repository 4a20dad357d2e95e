"""Alembic environment: runs on the connection ``gateway.schema`` opens (online only)."""

from __future__ import annotations

from alembic import context

from gateway.schema import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `share-gateway db upgrade` (gateway.schema)")
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

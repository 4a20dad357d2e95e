"""The registry version row and the triggers that bump it on every registry write (the
share path's in-memory snapshot is valid for one version; issue 16, docs/adr/0025).

Creates only what is missing, like 0001: a registry opened before this revision (the store
creates its tables and triggers itself) is adopted by the same upgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.registry.snapshot import VERSIONED_TABLES, version_ddl

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("registry_version"):
        op.create_table(
            "registry_version",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    for ddl in version_ddl(bind.dialect.name):
        bind.exec_driver_sql(ddl)


def downgrade() -> None:
    bind = op.get_bind()
    for table in VERSIONED_TABLES:
        if bind.dialect.name == "sqlite":
            for o in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_version_{o}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_version ON {table}")
    op.drop_table("registry_version")

"""Witness cosignatures of ledger checkpoints (issue 14.1, c2sp.org/tlog-cosignature).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage import append_only_ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "ledger_cosignature"


def upgrade() -> None:
    bind = op.get_bind()
    if TABLE not in set(sa.inspect(bind).get_table_names()):
        op.create_table(
            TABLE,
            sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("witness", sa.String(length=255), nullable=False),
            sa.Column("line", sa.Text(), nullable=False),
            sa.Column("created_us", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("size", "witness"),
        )
    for ddl in append_only_ddl(bind.dialect.name, [TABLE]):  # idempotent
        bind.exec_driver_sql(ddl)


def downgrade() -> None:
    raise NotImplementedError("the audit ledger is append-only: its schema is never dropped")

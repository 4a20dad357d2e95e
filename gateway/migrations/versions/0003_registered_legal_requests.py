"""Registered legal requests and the grant to name them (R8, R10; issue 11).

Creates only what is missing, like 0001: a registry opened before this revision (the store
creates its tables itself) is adopted by the same upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "registry_legal_grants" not in existing:
        op.create_table(
            "registry_legal_grants",
            sa.Column("principal", sa.String(), nullable=False),
            sa.Column("granted_by", sa.String(), nullable=False),
            sa.Column("granted_at", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("principal"),
        )
    if "registry_legal_requests" not in existing:
        op.create_table(
            "registry_legal_requests",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("kind", sa.String(), nullable=False),
            sa.Column("basis", sa.String(), nullable=False),
            sa.Column("authority", sa.String(), nullable=False),
            sa.Column("authority_kind", sa.String(), nullable=False),
            sa.Column("reference", sa.String(), nullable=False),
            sa.Column("exemption_code", sa.String(), nullable=False),
            sa.Column("recipient_id", sa.String(), nullable=False),
            sa.Column("all_subjects", sa.Boolean(), nullable=False),
            sa.Column("subject_ids", sa.JSON(), nullable=True),
            sa.Column("categories", sa.JSON(), nullable=True),
            sa.Column("valid_from", sa.String(), nullable=False),
            sa.Column("valid_until", sa.String(), nullable=False),
            sa.Column("registered_by", sa.String(), nullable=False),
            sa.Column("registered_at", sa.String(), nullable=False),
            sa.Column("revoked", sa.Boolean(), nullable=False),
            sa.Column("revoked_by", sa.String(), nullable=False),
            sa.Column("revoked_at", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_registry_legal_requests_recipient_id",
            "registry_legal_requests",
            ["recipient_id"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_index("ix_registry_legal_requests_recipient_id", "registry_legal_requests")
    op.drop_table("registry_legal_requests")
    op.drop_table("registry_legal_grants")

"""Policy spec v2 (issue 12): scoped consents, narrowed withdrawals, order fulfilment,
agreement id and version; the guardian_consent flag is gone (a guardian's consent is a
consent with given_by = "guardian", docs/adr/0020).

Existing rows get the v2 defaults: consents are the subject's own, for the categories they
list, with an id derived from their row id; agreements and orders have no id / no
fulfilment partner until an admin sets them. Like 0001, it changes only what is not there
yet, so a database the stores created from the v2 models is adopted as it is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("registry_withdrawals"):
        op.create_table(
            "registry_withdrawals",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("subject_id", sa.String(), nullable=False),
            sa.Column("recipient_id", sa.String(), nullable=False),
            sa.Column("purpose", sa.String(), nullable=False),
            sa.Column("categories", sa.JSON(), nullable=True),
            sa.Column("all_categories", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("registry_withdrawals", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_registry_withdrawals_subject_id"), ["subject_id"], unique=False
            )

    if "consent_id" not in _columns("registry_consents"):
        with op.batch_alter_table("registry_consents", schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("consent_id", sa.String(), nullable=False, server_default="")
            )
            batch_op.add_column(
                sa.Column("all_categories", sa.Boolean(), nullable=False, server_default=sa.false())
            )
            batch_op.add_column(
                sa.Column("given_by", sa.String(), nullable=False, server_default="subject")
            )
            batch_op.create_index(
                batch_op.f("ix_registry_consents_consent_id"), ["consent_id"], unique=False
            )
        consents = sa.table("registry_consents", sa.column("id"), sa.column("consent_id"))
        op.execute(
            consents.update().values(
                consent_id=sa.literal("consent-row-") + sa.cast(consents.c.id, sa.String())
            )
        )

    if "fulfilment_ids" not in _columns("registry_orders"):
        with op.batch_alter_table("registry_orders", schema=None) as batch_op:
            batch_op.add_column(sa.Column("fulfilment_ids", sa.JSON(), nullable=True))

    if "agreement_id" not in _columns("registry_partners"):
        with op.batch_alter_table("registry_partners", schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("agreement_id", sa.String(), nullable=False, server_default="")
            )
            batch_op.add_column(
                sa.Column("agreement_version", sa.String(), nullable=False, server_default="")
            )

    if "guardian_consent" in _columns("registry_subjects"):
        with op.batch_alter_table("registry_subjects", schema=None) as batch_op:
            batch_op.drop_column("guardian_consent")


def downgrade() -> None:
    with op.batch_alter_table("registry_subjects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("guardian_consent", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("registry_partners", schema=None) as batch_op:
        batch_op.drop_column("agreement_version")
        batch_op.drop_column("agreement_id")

    with op.batch_alter_table("registry_orders", schema=None) as batch_op:
        batch_op.drop_column("fulfilment_ids")

    with op.batch_alter_table("registry_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_consents_consent_id"))
        batch_op.drop_column("given_by")
        batch_op.drop_column("all_categories")
        batch_op.drop_column("consent_id")

    with op.batch_alter_table("registry_withdrawals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_withdrawals_subject_id"))

    op.drop_table("registry_withdrawals")

"""Initial schema: ledger, registry and outbox tables, the ledger's append-only triggers.

Creates only what is missing, so a database made before migrations existed (tables created
by the stores themselves) is adopted by the same upgrade.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.storage import append_only_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RECIPIENT_KINDS = ("AFFILIATE", "AD_PARTNER", "VENDOR", "MERCHANT", "AUTHORITY", "ACQUIRER")
_CONSENT_SCOPES = (
    "SHARE",
    "IDENTIFIED_SHARING",
    "TRANSFER",
    "PUBLIC_DISCLOSURE",
    "CROSS_BORDER",
)


def _tables() -> list[
    tuple[str, list[sa.Column[object] | sa.Constraint], list[tuple[str, list[str]]]]
]:
    """(name, columns and constraints, indexes) of every table this revision creates."""
    text = sa.String
    return [
        (
            "ledger_sequencer",
            [
                sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
                sa.Column("origin", text(), nullable=False),
                sa.Column("vkey", text(), nullable=False),
                sa.Column("subject_key_id", text(), nullable=False),
                sa.PrimaryKeyConstraint("id"),
            ],
            [],
        ),
        (
            "ledger_entry",
            [
                sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
                sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
                sa.Column("data", sa.LargeBinary(), nullable=False),
                sa.Column("time_us", sa.BigInteger(), nullable=False),
                sa.Column("partner_id", text(), nullable=False),
                sa.Column("purpose", text(), nullable=False),
                sa.Column("action", text(), nullable=False),
                sa.Column("decision", text(), nullable=False),
                sa.PrimaryKeyConstraint("idx"),
            ],
            [
                ("ix_ledger_entry_time_us", ["time_us"]),
                ("ledger_entry_partner", ["partner_id", "idx"]),
            ],
        ),
        (
            "ledger_node",
            [
                sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
                sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
                sa.Column("hash", sa.LargeBinary(), nullable=False),
                sa.PrimaryKeyConstraint("level", "idx"),
            ],
            [],
        ),
        (
            "ledger_checkpoint",
            [
                sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
                sa.Column("root", sa.LargeBinary(), nullable=False),
                sa.Column("note", sa.Text(), nullable=False),
                sa.Column("created_us", sa.BigInteger(), nullable=False),
                sa.PrimaryKeyConstraint("size"),
            ],
            [],
        ),
        (
            "ledger_subject_index",
            [
                sa.Column("pseudonym", sa.String(length=64), nullable=False),
                sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
                sa.Column("excluded", sa.Boolean(), nullable=False),
                sa.PrimaryKeyConstraint("pseudonym", "idx"),
            ],
            [],
        ),
        (
            "ledger_subject_salt",
            [
                sa.Column("salt_key", sa.LargeBinary(), nullable=False),
                sa.Column("salt", sa.LargeBinary(), nullable=False),
                sa.PrimaryKeyConstraint("salt_key"),
            ],
            [],
        ),
        (
            "registry_partners",
            [
                sa.Column("id", text(), nullable=False),
                sa.Column("display_name", text(), nullable=False),
                sa.Column("kind", sa.Enum(*_RECIPIENT_KINDS, name="recipientkind"), nullable=False),
                sa.Column("active", sa.Boolean(), nullable=False),
                sa.Column("region", text(), nullable=False),
                sa.Column("agreement_purposes", sa.JSON(), nullable=True),
                sa.Column("agreement_categories", sa.JSON(), nullable=True),
                sa.Column("agreement_expires", text(), nullable=False),
                sa.Column("agreement_binds_policy", sa.Boolean(), nullable=False),
                sa.Column("security_review_expires", text(), nullable=False),
                sa.Column("dpa_expires", text(), nullable=False),
                sa.PrimaryKeyConstraint("id"),
            ],
            [],
        ),
        (
            "registry_schemas",
            [
                sa.Column("record_type", text(), nullable=False),
                sa.Column("fields", sa.JSON(), nullable=True),
                sa.PrimaryKeyConstraint("record_type"),
            ],
            [],
        ),
        (
            "registry_subjects",
            [
                sa.Column("subject_id", text(), nullable=False),
                sa.Column("birth_date", text(), nullable=False),
                sa.Column("guardian_consent", sa.Boolean(), nullable=False),
                sa.Column("ad_opt_out", sa.Boolean(), nullable=False),
                sa.Column("consent_withdrawn", sa.Boolean(), nullable=False),
                sa.Column("account_deleted", sa.Boolean(), nullable=False),
                sa.PrimaryKeyConstraint("subject_id"),
            ],
            [],
        ),
        (
            "registry_consents",
            [
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("subject_id", text(), nullable=False),
                sa.Column("recipient_id", text(), nullable=False),
                sa.Column("purpose", text(), nullable=False),
                sa.Column("scope", sa.Enum(*_CONSENT_SCOPES, name="consentscope"), nullable=False),
                sa.Column("categories", sa.JSON(), nullable=True),
                sa.Column("withdrawn", sa.Boolean(), nullable=False),
                sa.PrimaryKeyConstraint("id"),
            ],
            [("ix_registry_consents_subject_id", ["subject_id"])],
        ),
        (
            "registry_orders",
            [
                sa.Column("order_id", text(), nullable=False),
                sa.Column("subject_id", text(), nullable=False),
                sa.Column("merchant_id", text(), nullable=False),
                sa.Column("cross_border", sa.Boolean(), nullable=False),
                sa.PrimaryKeyConstraint("order_id"),
            ],
            [("ix_registry_orders_subject_id", ["subject_id"])],
        ),
        (
            "registry_erased_subjects",
            [
                sa.Column("subject_key", sa.LargeBinary(), nullable=False),
                sa.PrimaryKeyConstraint("subject_key"),
            ],
            [],
        ),
        (
            "outbox_items",
            [
                sa.Column("seq", sa.Integer(), nullable=False),
                sa.Column("partner_id", text(), nullable=False),
                sa.Column("staged_us", sa.BigInteger(), nullable=False),
                sa.Column("expires_us", sa.BigInteger(), nullable=False),
                sa.Column("staged_ledger_index", sa.BigInteger(), nullable=False),
                sa.Column("key_id", text(), nullable=False),
                sa.Column("sealed", sa.LargeBinary(), nullable=False),
                sa.Column("delivered_us", sa.BigInteger(), nullable=True),
                sa.PrimaryKeyConstraint("seq"),
            ],
            [
                ("ix_outbox_items_expires_us", ["expires_us"]),
                ("ix_outbox_items_partner_id", ["partner_id"]),
            ],
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for name, columns, indexes in _tables():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, cols in indexes:
            op.create_index(index, name, cols, unique=False)
    ledger_tables = [name for name, _, _ in _tables() if name.startswith("ledger_")]
    for ddl in append_only_ddl(bind.dialect.name, ledger_tables):  # idempotent
        bind.exec_driver_sql(ddl)


def downgrade() -> None:
    raise NotImplementedError("the audit ledger is append-only: its schema is never dropped")

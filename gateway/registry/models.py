"""Registry tables (prefix ``registry_``; the ledger's tables use ``ledger_``)."""

from __future__ import annotations

import enum

from sqlalchemy import JSON, BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel


class RecipientKind(enum.StrEnum):
    """Recipient kinds of POLICY_SPEC (§三)."""

    AFFILIATE = "AFFILIATE"
    AD_PARTNER = "AD_PARTNER"
    VENDOR = "VENDOR"
    MERCHANT = "MERCHANT"
    AUTHORITY = "AUTHORITY"
    ACQUIRER = "ACQUIRER"


class ConsentScope(enum.StrEnum):
    """What an explicit consent allows (see policies_rego/CONTRACT.md)."""

    SHARE = "SHARE"
    IDENTIFIED_SHARING = "IDENTIFIED_SHARING"
    TRANSFER = "TRANSFER"
    PUBLIC_DISCLOSURE = "PUBLIC_DISCLOSURE"
    CROSS_BORDER = "CROSS_BORDER"


class ConsentGiver(enum.StrEnum):
    """Who gave a consent: the subject, or a minor's guardian (§六, R11)."""

    SUBJECT = "subject"
    GUARDIAN = "guardian"


class PartnerRecord(SQLModel, table=True):
    """A registered recipient and its agreement. Dates are ISO dates, ``""`` = none.

    ``agreement_id`` and ``agreement_version`` name the signed agreement a share relies on;
    the ledger records them (§三.(一).5, §八).
    """

    __tablename__ = "registry_partners"

    id: str = Field(primary_key=True)
    display_name: str = ""
    kind: RecipientKind
    active: bool = True
    region: str = "CN"
    agreement_id: str = ""
    agreement_version: str = ""
    agreement_purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    agreement_categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    agreement_expires: str = ""
    agreement_binds_policy: bool = False
    security_review_expires: str = ""
    dpa_expires: str = ""


class SchemaRecord(SQLModel, table=True):
    """A record type: field name → data category."""

    __tablename__ = "registry_schemas"

    record_type: str = Field(primary_key=True)
    fields: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON))


class SubjectRecord(SQLModel, table=True):
    """Facts about one data subject that the policy needs."""

    __tablename__ = "registry_subjects"

    subject_id: str = Field(primary_key=True)
    birth_date: str = ""
    ad_opt_out: bool = False
    consent_withdrawn: bool = False
    account_deleted: bool = False


class ConsentRecord(SQLModel, table=True):
    """One explicit consent, scoped by recipient, purpose and categories (R6).

    An empty ``recipient_id`` or ``purpose`` names none (never "any"); ``categories`` lists
    what it covers, or ``all_categories`` says it covers every category (an empty list
    covers none). ``consent_id`` is the id the ledger records.
    """

    __tablename__ = "registry_consents"

    id: int | None = Field(default=None, primary_key=True)
    consent_id: str = Field(index=True)
    subject_id: str = Field(index=True)
    recipient_id: str = ""
    purpose: str = ""
    scope: ConsentScope
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    all_categories: bool = False
    # Stored as its value ("subject" / "guardian"): an Enum column would store the name.
    given_by: str = ConsentGiver.SUBJECT.value
    withdrawn: bool = False


class WithdrawalRecord(SQLModel, table=True):
    """A withdrawal of consent narrowed to a recipient, purpose or categories (R14, §五.(四)).

    Here an empty ``recipient_id`` or ``purpose`` is *not narrowed* (every recipient /
    purpose: the restrictive reading); ``all_categories`` or the listed ``categories``.
    """

    __tablename__ = "registry_withdrawals"

    id: int | None = Field(default=None, primary_key=True)
    subject_id: str = Field(index=True)
    recipient_id: str = ""
    purpose: str = ""
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    all_categories: bool = True


class OrderRecord(SQLModel, table=True):
    """An order a subject placed (R6 merchant, R11 own order, R12 cross-border transaction);
    ``fulfilment_ids`` are the partners that fulfil it (delivery, payment)."""

    __tablename__ = "registry_orders"

    order_id: str = Field(primary_key=True)
    subject_id: str = Field(index=True)
    merchant_id: str = ""
    fulfilment_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    cross_border: bool = False


class ErasedSubjectRecord(SQLModel, table=True):
    """An erased subject's tombstone: a keyed hash of its id and nothing else (§五.(三)).

    Everything else the registry held about the subject is deleted; the tombstone keeps the
    account deleted for R14 (left out of every share, except under LEGAL_OBLIGATION or
    EXEMPTION) when its id is named again.
    """

    __tablename__ = "registry_erased_subjects"

    subject_key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))


class LegalRequestRecord(SQLModel, table=True):
    """A legal request or business transfer registered before a share rests on it (R8, R10).

    ``kind`` is ``legal_request`` (bases LEGAL_OBLIGATION, EXEMPTION) or ``transfer``
    (MERGER). Dates are ISO dates; ``registered_at``/``revoked_at`` RFC 3339 UTC.
    """

    __tablename__ = "registry_legal_requests"

    id: str = Field(primary_key=True)
    kind: str
    basis: str
    authority: str
    authority_kind: str
    reference: str
    exemption_code: str = ""
    recipient_id: str = Field(index=True)
    all_subjects: bool = False
    subject_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    valid_from: str
    valid_until: str
    registered_by: str
    registered_at: str
    revoked: bool = False
    revoked_by: str = ""
    revoked_at: str = ""


class LegalGrantRecord(SQLModel, table=True):
    """A service principal allowed to name legal requests in a share (R10)."""

    __tablename__ = "registry_legal_grants"

    principal: str = Field(primary_key=True)
    granted_by: str = ""
    granted_at: str = ""


class RegistryVersionRecord(SQLModel, table=True):
    """One row (``id = 1``): a counter that database triggers bump on every write to a
    registry table the share path caches (``gateway.registry.snapshot``, ADR 0025)."""

    __tablename__ = "registry_version"

    id: int = Field(primary_key=True)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))

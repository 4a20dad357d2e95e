"""Registry storage: reads on the share path, writes from the admin surface and the seed."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, delete, select

from gateway.database import GuardedSession, open_engine
from gateway.errors import ConfigError, InvalidRequestError, NotFoundError, UnavailableError
from gateway.registry.legal import LegalRequests, new_legal_request
from gateway.registry.models import (
    ConsentGiver,
    ConsentRecord,
    ConsentScope,
    ErasedSubjectRecord,
    LegalGrantRecord,
    LegalRequestRecord,
    OrderRecord,
    PartnerRecord,
    RecipientKind,
    RegistryVersionRecord,
    SchemaRecord,
    SubjectRecord,
    WithdrawalRecord,
)
from gateway.registry.snapshot import (
    Snapshot,
    VersionReader,
    version_ddl,
    version_triggers_present,
)
from ledger.storage import describe_db_error

_T = TypeVar("_T")
_TABLES = [
    PartnerRecord.__table__,  # type: ignore[attr-defined]
    SchemaRecord.__table__,  # type: ignore[attr-defined]
    SubjectRecord.__table__,  # type: ignore[attr-defined]
    ConsentRecord.__table__,  # type: ignore[attr-defined]
    OrderRecord.__table__,  # type: ignore[attr-defined]
    ErasedSubjectRecord.__table__,  # type: ignore[attr-defined]
    LegalRequestRecord.__table__,  # type: ignore[attr-defined]
    LegalGrantRecord.__table__,  # type: ignore[attr-defined]
    WithdrawalRecord.__table__,  # type: ignore[attr-defined]
    RegistryVersionRecord.__table__,  # type: ignore[attr-defined]
]
_subjects_t = SubjectRecord.__table__  # type: ignore[attr-defined]
_consents_t = ConsentRecord.__table__  # type: ignore[attr-defined]
_orders_t = OrderRecord.__table__  # type: ignore[attr-defined]
_withdrawals_t = WithdrawalRecord.__table__  # type: ignore[attr-defined]
_erased_t = ErasedSubjectRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True, slots=True)
class Consent:
    """An explicit consent scoped by recipient, purpose and categories (contract v2): an
    empty recipient or purpose names none; ``all_categories`` covers every category, an
    empty ``categories`` none. ``consent_id`` is generated when left empty."""

    consent_id: str = ""
    recipient_id: str = ""
    purpose: str = ""
    scope: ConsentScope
    categories: tuple[str, ...] = ()
    all_categories: bool = False
    given_by: ConsentGiver = ConsentGiver.SUBJECT


@dataclass(frozen=True, kw_only=True, slots=True)
class Withdrawal:
    """A withdrawal narrowed to a recipient, purpose or categories; empty = not narrowed."""

    recipient_id: str = ""
    purpose: str = ""
    categories: tuple[str, ...] = ()
    all_categories: bool = True

    def covers(self, c: Consent) -> bool:
        """True when consent ``c`` lies wholly inside this withdrawal (it is withdrawn)."""
        return (
            self.recipient_id in ("", c.recipient_id)
            and self.purpose in ("", c.purpose)
            and (
                self.all_categories
                or (not c.all_categories and set(c.categories) <= set(self.categories))
            )
        )

    @property
    def is_narrowed(self) -> bool:
        return bool(self.recipient_id or self.purpose or not self.all_categories)


@dataclass(frozen=True, kw_only=True, slots=True)
class Order:
    order_id: str
    merchant_id: str = ""
    fulfilment_ids: tuple[str, ...] = ()
    cross_border: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipient:
    """A partner and its agreement as the share path reads them (no ORM instance: building
    a ``PartnerRecord`` cost more than reading its row)."""

    id: str
    kind: RecipientKind
    active: bool
    region: str
    agreement_id: str
    agreement_version: str
    agreement_purposes: tuple[str, ...]
    agreement_categories: tuple[str, ...]
    agreement_expires: str
    agreement_binds_policy: bool
    security_review_expires: str
    dpa_expires: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SubjectFacts:
    """What the registry knows about one subject; ``consents`` excludes withdrawn ones,
    ``withdrawals`` are the narrowed withdrawals (R14)."""

    subject_id: str
    birth_date: str = ""
    ad_opt_out: bool = False
    consent_withdrawn: bool = False
    account_deleted: bool = False
    consents: tuple[Consent, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()
    orders: tuple[Order, ...] = field(default_factory=tuple)


class Registry:
    """Partners, schemas and subject facts in the gateway's database.

    Every storage failure is raised as ``UnavailableError`` (fail closed).

    Args:
        engine: The gateway's database (its registry tables, version row and triggers
            exist: ``open`` makes them).
        tombstone_key: Secret of the keyed hash that marks erased subjects
            (``erase_subject``); ``None``: erasure is refused and no tombstone is read.
        max_cached_subjects: Subjects whose facts the share path keeps in memory (least
            recently used beyond that are dropped; ADR 0025).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        tombstone_key: bytes | None = None,
        max_cached_subjects: int = 32_768,
    ) -> None:
        self._engine = engine
        self._tombstone_key = tombstone_key
        self.legal = LegalRequests(engine=engine)
        self.snapshot = Snapshot(max_subjects=max_cached_subjects)
        self._version = VersionReader(
            connect=engine.raw_connection,
            errors=(engine.dialect.loaded_dbapi.Error, SQLAlchemyError),
            autocommit=engine.dialect.name != "sqlite",
        )

    @classmethod
    def open(
        cls,
        url_or_engine: str | Engine,
        *,
        tombstone_key: bytes | None = None,
        max_cached_subjects: int = 32_768,
    ) -> Registry:
        """Connect (or use a shared engine); create the registry tables, the version row and
        its triggers if missing."""
        engine = open_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        try:
            SQLModel.metadata.create_all(engine, tables=_TABLES)
            _ensure_version_triggers(engine)
        except SQLAlchemyError as e:
            raise UnavailableError(f"registry store unavailable: {describe_db_error(e)}") from e
        return cls(
            engine=engine, tombstone_key=tombstone_key, max_cached_subjects=max_cached_subjects
        )

    def close(self) -> None:
        self._version.close()
        self._engine.dispose()

    @property
    def is_sqlite(self) -> bool:
        """Reads are local file reads (microseconds), not network round trips."""
        return self._engine.dialect.name == "sqlite"

    # -- reads (share path) -------------------------------------------------------------

    # The share path (``share_facts``) answers from ``snapshot``, valid for one registry
    # version that every registry write bumps (ADR 0025): one version read per share, and
    # driver SQL on one pooled connection (see ``_Reader``) for what is not cached. A
    # consent withdrawal or partner change applies to the next share, also when several
    # gateway processes share the database. The admin reads below are not cached.

    def partner(self, partner_id: str) -> PartnerRecord | None:
        with self._read() as reader:
            return _partner(reader, partner_id)

    def partners(self) -> list[PartnerRecord]:
        with self._session() as s:
            return list(s.exec(select(PartnerRecord).order_by(PartnerRecord.id)))

    def schema(self, record_type: str) -> SchemaRecord | None:
        with self._read() as reader:
            return _schema(reader, record_type)

    def subjects(self, subject_ids: Iterable[str]) -> dict[str, SubjectFacts]:
        """Facts for each known subject among ``subject_ids`` (unknown ones are absent)."""
        ids = list(dict.fromkeys(subject_ids))
        if not ids:
            return {}
        with self._read() as reader:
            return _subjects(reader, ids, self._tombstone_key)

    def share_facts(
        self, record_type: str, partner_id: str, subject_ids: Iterable[str]
    ) -> tuple[dict[str, str] | None, Recipient | None, dict[str, SubjectFacts]]:
        """Schema fields, recipient and subject facts for one share, as of the registry
        version read first (ADR 0025): from the snapshot, and what it lacks on one
        connection. Treat the results as read-only (they are shared between shares).

        An empty ``partner_id`` reads no partner; no subject is read for an unknown record
        type. Same facts as ``schema``, ``partner`` and ``subjects``.
        """
        ids = list(dict.fromkeys(subject_ids))
        version = self._version.read()
        snap = self.snapshot
        missing = Snapshot.MISSING
        schema, partner, cached, unread = snap.lookup(version, record_type, partner_id, ids)
        if schema is missing or partner is missing or unread:
            with self._read() as reader:
                new_schema: dict[str, Any] = {}
                new_partner: dict[str, Any] = {}
                if schema is missing:
                    schema = new_schema[record_type] = _schema_fields(reader, record_type)
                if partner is missing:
                    partner = new_partner[partner_id] = _recipient(reader, partner_id)
                read: dict[str, SubjectFacts | None] = {}
                if schema is None:
                    cached = {}
                elif unread:
                    read = dict.fromkeys(unread)
                    read.update(_subjects(reader, unread, self._tombstone_key))
                    cached.update(read)
            snap.put(version, schemas=new_schema, recipients=new_partner, subjects=read)
        facts = {sid: f for sid, f in cached.items() if f is not None}
        return schema, partner, facts

    @contextmanager
    def _read(self) -> Iterator[_Reader]:
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        try:
            with self._engine.connect() as conn:
                reader = _Reader(conn)
                try:
                    yield reader
                finally:
                    reader.close()
        except (SQLAlchemyError, dbapi_error) as e:
            raise UnavailableError(f"registry store unavailable: {describe_db_error(e)}") from e

    def is_empty(self) -> bool:
        with self._session() as s:
            return s.exec(select(PartnerRecord).limit(1)).first() is None

    # -- writes (admin surface) ---------------------------------------------------------

    def upsert_partner(self, partner: PartnerRecord) -> PartnerRecord:
        if not partner.id:
            raise InvalidRequestError(
                "partner id is required", reason="registry.partner_id_missing"
            )
        with self._session() as s:
            merged = s.merge(partner)
            s.commit()
            s.refresh(merged)
            return merged

    def upsert_schema(self, schema: SchemaRecord) -> SchemaRecord:
        if not schema.record_type or not schema.fields:
            raise InvalidRequestError(
                "a schema needs a record type and at least one field",
                reason="registry.schema_invalid",
            )
        with self._session() as s:
            merged = s.merge(schema)
            s.commit()
            s.refresh(merged)
            return merged

    def put_subject(self, facts: SubjectFacts) -> SubjectFacts:
        """Replace everything known about one subject (facts, consents, withdrawals, orders).

        A consent without ``consent_id`` gets a random one (``consent-`` + 16 hex digits).
        """
        if not facts.subject_id:
            raise InvalidRequestError(
                "subject id is required", reason="registry.subject_id_missing"
            )
        with self._session() as s:
            s.merge(
                SubjectRecord(
                    subject_id=facts.subject_id,
                    birth_date=facts.birth_date,
                    ad_opt_out=facts.ad_opt_out,
                    consent_withdrawn=facts.consent_withdrawn,
                    account_deleted=facts.account_deleted,
                )
            )
            s.exec(delete(ConsentRecord).where(col(ConsentRecord.subject_id) == facts.subject_id))
            s.exec(delete(OrderRecord).where(col(OrderRecord.subject_id) == facts.subject_id))
            s.exec(
                delete(WithdrawalRecord).where(col(WithdrawalRecord.subject_id) == facts.subject_id)
            )
            for c in facts.consents:
                s.add(
                    ConsentRecord(
                        consent_id=c.consent_id or f"consent-{secrets.token_hex(8)}",
                        subject_id=facts.subject_id,
                        recipient_id=c.recipient_id,
                        purpose=c.purpose,
                        scope=c.scope,
                        categories=list(c.categories),
                        all_categories=c.all_categories,
                        given_by=c.given_by.value,
                    )
                )
            for w in facts.withdrawals:
                s.add(_withdrawal_record(facts.subject_id, w))
            for o in facts.orders:
                s.merge(
                    OrderRecord(
                        order_id=o.order_id,
                        subject_id=facts.subject_id,
                        merchant_id=o.merchant_id,
                        fulfilment_ids=list(o.fulfilment_ids),
                        cross_border=o.cross_border,
                    )
                )
            s.commit()
        return self.subjects([facts.subject_id])[facts.subject_id]

    def withdraw_consent(self, subject_id: str, withdrawal: Withdrawal) -> int:
        """Record a withdrawal of consent (R14, §五.(四) "您有权改变您授权同意的范围").

        A narrowed withdrawal (recipient, purpose or categories) is kept: the subject is
        left out of every consent-based share it matches. Consents lying wholly inside it
        are marked withdrawn. A withdrawal narrowed to nothing withdraws every consent and
        sets the subject's ``consent_withdrawn`` flag.

        Returns:
            The number of consents withdrawn.

        Raises:
            NotFoundError: the subject is unknown.
        """
        with self._session() as s:
            subject = s.get(SubjectRecord, subject_id)
            if subject is None:
                raise NotFoundError("unknown subject", reason="registry.subject_unknown")
            rows = list(
                s.exec(
                    select(ConsentRecord).where(
                        col(ConsentRecord.subject_id) == subject_id,
                        col(ConsentRecord.withdrawn).is_(False),
                    )
                )
            )
            withdrawn = [r for r in rows if withdrawal.covers(_consent(r))]
            for row in withdrawn:
                row.withdrawn = True
                s.add(row)
            if withdrawal.is_narrowed:
                s.add(_withdrawal_record(subject_id, withdrawal))
            else:
                subject.consent_withdrawn = True
                s.add(subject)
            s.commit()
            return len(withdrawn)

    def erase_subject(self, subject_id: str, conn: Connection) -> bool:
        """Delete everything the registry holds about the subject (its row with the birth
        date and flags, its consents, withdrawals and orders) and leave a tombstone holding
        only a keyed hash of its id, on ``conn`` (the caller's transaction: the ledger's
        erasure).

        Returns:
            True if the registry knew the subject (held data about it, or a tombstone).

        Raises:
            ConfigError: the registry has no tombstone key.
        """
        key = self._tombstone(subject_id)
        held = 0
        for table in (_consents_t, _withdrawals_t, _orders_t, _subjects_t):
            held += conn.execute(table.delete().where(table.c.subject_id == subject_id)).rowcount
        buried = conn.execute(
            sa.select(_erased_t.c.subject_key).where(_erased_t.c.subject_key == key)
        ).first()
        if buried is None:
            conn.execute(_erased_t.insert().values(subject_key=key))
        return bool(held) or buried is not None

    def _tombstone(self, subject_id: str) -> bytes:
        if self._tombstone_key is None:
            raise ConfigError(
                "this registry was opened without a tombstone key", reason="registry.erasure"
            )
        return tombstone(self._tombstone_key, subject_id)

    def load_seed(self, path: Path) -> None:
        """Load a TOML seed file (partners, schemas, subjects); see gateway/demo/registry.toml."""
        try:
            seed = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InvalidRequestError(f"cannot read seed file {path}: {e}") from e
        for p in seed.get("partners", []):
            self.upsert_partner(PartnerRecord.model_validate(p))
        for record_type, fields in seed.get("schemas", {}).items():
            self.upsert_schema(SchemaRecord(record_type=record_type, fields=dict(fields)))
        for subj in seed.get("subjects", []):
            self.put_subject(subject_from_mapping(subj))
        self._load_legal_seed(seed)

    def _load_legal_seed(self, seed: Mapping[str, Any]) -> None:
        """``legal_grants`` (principals) and ``legal_requests`` of a seed (R10). A seeded
        request keeps its ``id`` so demos and docs can name it."""
        now = datetime.now(UTC)
        for grant in seed.get("legal_grants", []):
            self.legal.set_grant(str(grant.get("principal", "")), granted=True, by="seed", now=now)
        for raw in seed.get("legal_requests", []):
            try:
                fields = {k: raw[k] for k in _SEED_LEGAL_KEYS if k in raw}
                record = new_legal_request(registered_by="seed", now=now, **fields)
            except TypeError as e:
                raise InvalidRequestError(f"invalid legal request entry: {e}") from e
            self.legal.check_recipient(record.recipient_id)
            record.id = str(raw.get("id") or record.id)
            if not self.legal.exists(record.id):
                self.legal.add(record)

    def _session(self) -> Session:
        return GuardedSession(self._engine)


def _ensure_version_triggers(engine: Engine) -> None:
    """Create the registry version row and its triggers where they are missing (a database
    made by the stores, not the migrations). Checked first on PostgreSQL: the gateway's
    restricted role may read them but not create them."""
    raw = engine.raw_connection()
    try:
        present = version_triggers_present(raw, engine.dialect.name)
    finally:
        raw.close()
    if present:
        return
    with engine.begin() as conn:
        if engine.dialect.name != "sqlite":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262703)")
        for ddl in version_ddl(engine.dialect.name):
            conn.exec_driver_sql(ddl)


_SEED_LEGAL_KEYS = (
    "basis",
    "authority",
    "authority_kind",
    "reference",
    "exemption_code",
    "recipient_id",
    "subject_ids",
    "all_subjects",
    "categories",
    "valid_from",
    "valid_until",
)


def _withdrawal_record(subject_id: str, w: Withdrawal) -> WithdrawalRecord:
    return WithdrawalRecord(
        subject_id=subject_id,
        recipient_id=w.recipient_id,
        purpose=w.purpose,
        categories=list(w.categories),
        all_categories=w.all_categories,
    )


def _consent(r: ConsentRecord) -> Consent:
    return Consent(
        consent_id=r.consent_id,
        recipient_id=r.recipient_id,
        purpose=r.purpose,
        scope=ConsentScope(r.scope),
        categories=tuple(r.categories),
        all_categories=r.all_categories,
        given_by=ConsentGiver(r.given_by),
    )


def subject_from_mapping(raw: Mapping[str, Any]) -> SubjectFacts:
    """Build ``SubjectFacts`` from a seed/JSON mapping (keys as in gateway/demo/registry.toml).

    Raises:
        InvalidRequestError: a key is missing or unknown, or names an unknown value.
    """
    if "guardian_consent" in raw:
        # Contract v2: a guardian's consent is a scoped consent with given_by = "guardian".
        raise InvalidRequestError(
            "guardian_consent is no longer a flag: record the guardian's consent as a "
            'consent with given_by = "guardian"',
            reason="registry.guardian_consent_flag",
        )
    try:
        return SubjectFacts(
            subject_id=str(raw["subject_id"]),
            birth_date=str(raw.get("birth_date", "")),
            ad_opt_out=bool(raw.get("ad_opt_out", False)),
            consent_withdrawn=bool(raw.get("consent_withdrawn", False)),
            account_deleted=bool(raw.get("account_deleted", False)),
            consents=tuple(
                Consent(
                    consent_id=str(c.get("consent_id", "")),
                    recipient_id=str(c.get("recipient_id", "")),
                    purpose=str(c.get("purpose", "")),
                    scope=ConsentScope(c["scope"]),
                    categories=tuple(c.get("categories", ())),
                    all_categories=bool(c.get("all_categories", False)),
                    given_by=ConsentGiver(c.get("given_by", ConsentGiver.SUBJECT)),
                )
                for c in raw.get("consents", ())
            ),
            withdrawals=tuple(
                Withdrawal(
                    recipient_id=str(w.get("recipient_id", "")),
                    purpose=str(w.get("purpose", "")),
                    categories=tuple(w.get("categories", ())),
                    all_categories=not w.get("categories"),
                )
                for w in raw.get("withdrawals", ())
            ),
            orders=tuple(
                Order(
                    order_id=str(o["order_id"]),
                    merchant_id=str(o.get("merchant_id", "")),
                    fulfilment_ids=tuple(o.get("fulfilment_ids", ())),
                    cross_border=bool(o.get("cross_border", False)),
                )
                for o in raw.get("orders", ())
            ),
        )
    except (KeyError, ValueError) as e:
        raise InvalidRequestError(f"invalid subject entry: {e}") from e


def tombstone(key: bytes, subject_id: str) -> bytes:
    """The keyed hash an erased subject's tombstone holds: HMAC-SHA256(key, id). Pure."""
    return hmac.new(key, subject_id.encode("utf-8"), hashlib.sha256).digest()


def orders_by_id(facts: Sequence[SubjectFacts]) -> dict[str, Order]:
    return {o.order_id: o for f in facts for o in f.orders}


_partner_t = PartnerRecord.__table__  # type: ignore[attr-defined]
_schema_t = SchemaRecord.__table__  # type: ignore[attr-defined]
_PARTNER_COLS = [c.name for c in _partner_t.columns]
_SCHEMA_COLS = [c.name for c in _schema_t.columns]
_JSON_COLS = frozenset(
    c.name for t in (_partner_t, _schema_t) for c in t.columns if isinstance(c.type, sa.JSON)
)


class _Reader:
    """Driver-level reads for the share path (one cursor on one pooled connection).

    Plain SQL through the DB-API cursor: SQLAlchemy Core cost ~70 µs of Python per statement
    here (five statements per share), the driver ~8 µs. Column values are normalised the way
    the ORM would return them: JSON text decoded (SQLite), 0/1 as bool.
    """

    def __init__(self, conn: Connection) -> None:
        self._cur = conn.connection.cursor()
        self._ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"

    def close(self) -> None:
        self._cur.close()

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._cur.execute(sql.replace("?", self._ph), tuple(params))
        return list(self._cur.fetchall())

    def in_list(self, n: int) -> str:
        return "(" + ", ".join([self._ph] * n) + ")"


def _record_fields(cols: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(cols, row, strict=True))
    for name in _JSON_COLS & out.keys():
        out[name] = _json(out[name])
    return out


def _partner(r: _Reader, partner_id: str) -> PartnerRecord | None:
    rows = r.rows(
        f"SELECT {', '.join(_PARTNER_COLS)} FROM registry_partners WHERE id = ?", [partner_id]
    )
    if not rows:
        return None
    f = _record_fields(_PARTNER_COLS, rows[0])
    f["active"] = bool(f["active"])
    f["agreement_binds_policy"] = bool(f["agreement_binds_policy"])
    f["kind"] = RecipientKind(f["kind"])
    return PartnerRecord(**f)


def _schema(r: _Reader, record_type: str) -> SchemaRecord | None:
    rows = r.rows(
        f"SELECT {', '.join(_SCHEMA_COLS)} FROM registry_schemas WHERE record_type = ?",
        [record_type],
    )
    return None if not rows else SchemaRecord(**_record_fields(_SCHEMA_COLS, rows[0]))


def _recipient(r: _Reader, partner_id: str) -> Recipient | None:
    rows = r.rows(
        "SELECT id, kind, active, region, agreement_id, agreement_version, agreement_purposes, "
        "agreement_categories, agreement_expires, agreement_binds_policy, "
        "security_review_expires, dpa_expires FROM registry_partners WHERE id = ?",
        [partner_id],
    )
    if not rows:
        return None
    (
        pid,
        kind,
        active,
        region,
        aid,
        aversion,
        purposes,
        categories,
        expires,
        binds,
        review,
        dpa,
    ) = rows[0]
    return Recipient(
        id=pid,
        kind=RecipientKind(kind),
        active=bool(active),
        region=region,
        agreement_id=aid,
        agreement_version=aversion,
        agreement_purposes=_json_strings(purposes),
        agreement_categories=_json_strings(categories),
        agreement_expires=expires,
        agreement_binds_policy=bool(binds),
        security_review_expires=review,
        dpa_expires=dpa,
    )


def _schema_fields(r: _Reader, record_type: str) -> dict[str, str] | None:
    rows = r.rows("SELECT fields FROM registry_schemas WHERE record_type = ?", [record_type])
    return None if not rows else dict(_json(rows[0][0]))


def _json(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _json_strings(value: Any) -> tuple[str, ...]:
    """A JSON list-of-strings column (purposes, categories): few distinct lists, read per
    subject, so SQLite's text is decoded once per distinct value."""
    return _decoded_strings(value) if isinstance(value, str | bytes) else tuple(value)


@functools.lru_cache(maxsize=4096)
def _decoded_strings(text: str | bytes) -> tuple[str, ...]:
    return tuple(json.loads(text))


#: Enum members by stored value, for the bulk read of consents: a dict look-up per row
#: instead of an Enum call (~1 µs each); a value outside them still goes through the Enum
#: (and fails there as before).
_SCOPES: dict[str, ConsentScope] = {m.value: m for m in ConsentScope}
_GIVERS: dict[str, ConsentGiver] = {m.value: m for m in ConsentGiver}


def _subjects(
    r: _Reader, ids: list[str], tombstone_key: bytes | None = None
) -> dict[str, SubjectFacts]:
    subjects: dict[str, tuple[Any, ...]] = {}
    consents: dict[str, list[Consent]] = {}
    withdrawals: dict[str, list[Withdrawal]] = {}
    orders: dict[str, list[Order]] = {}
    for part in _chunks(ids, _IN_LIST):
        where = r.in_list(len(part))
        for row in r.rows(
            "SELECT subject_id, birth_date, ad_opt_out, consent_withdrawn, "
            f"account_deleted FROM registry_subjects WHERE subject_id IN {where}",
            part,
        ):
            subjects[row[0]] = row
        for sid, cid, recipient, purpose, scope, categories, all_cats, given_by in r.rows(
            "SELECT subject_id, consent_id, recipient_id, purpose, scope, categories, "
            f"all_categories, given_by FROM registry_consents WHERE subject_id IN {where} "
            "AND withdrawn = ? ORDER BY id",
            [*part, False],
        ):
            consents.setdefault(sid, []).append(
                Consent(
                    consent_id=cid,
                    recipient_id=recipient,
                    purpose=purpose,
                    scope=_SCOPES[scope] if scope in _SCOPES else ConsentScope(scope),
                    categories=_json_strings(categories),
                    all_categories=bool(all_cats),
                    given_by=_GIVERS[given_by] if given_by in _GIVERS else ConsentGiver(given_by),
                )
            )
        for sid, recipient, purpose, categories, all_cats in r.rows(
            "SELECT subject_id, recipient_id, purpose, categories, all_categories "
            f"FROM registry_withdrawals WHERE subject_id IN {where} ORDER BY id",
            part,
        ):
            withdrawals.setdefault(sid, []).append(
                Withdrawal(
                    recipient_id=recipient,
                    purpose=purpose,
                    categories=_json_strings(categories),
                    all_categories=bool(all_cats),
                )
            )
        for sid, order_id, merchant_id, fulfilment, cross_border in r.rows(
            "SELECT subject_id, order_id, merchant_id, fulfilment_ids, cross_border "
            f"FROM registry_orders WHERE subject_id IN {where}",
            part,
        ):
            orders.setdefault(sid, []).append(
                Order(
                    order_id=order_id,
                    merchant_id=merchant_id,
                    fulfilment_ids=_json_strings(fulfilment),
                    cross_border=bool(cross_border),
                )
            )
    found = {
        sid: SubjectFacts(
            subject_id=sid,
            birth_date=row[1],
            ad_opt_out=bool(row[2]),
            consent_withdrawn=bool(row[3]),
            account_deleted=bool(row[4]),
            consents=tuple(consents.get(sid, ())),
            withdrawals=tuple(withdrawals.get(sid, ())),
            orders=tuple(orders.get(sid, ())),
        )
        for sid, row in subjects.items()
    }
    missing = [sid for sid in ids if sid not in found]
    if missing and tombstone_key is not None:
        # Erased subjects are known only by a tombstone: a deleted account (R14), no facts.
        keys = {tombstone(tombstone_key, sid): sid for sid in missing}
        for hashes in _chunks(list(keys), _IN_LIST):
            for (key,) in r.rows(
                f"SELECT subject_key FROM registry_erased_subjects WHERE subject_key IN "
                f"{r.in_list(len(hashes))}",
                hashes,
            ):
                sid = keys[bytes(key)]
                found[sid] = SubjectFacts(subject_id=sid, account_deleted=True)
    return found


#: Subject ids per ``IN`` list: fewer statements for bulk shares, well under SQLite's limit
#: of 32,766 parameters.
_IN_LIST = 5_000


def _chunks(ids: list[_T], size: int) -> Iterator[list[_T]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]

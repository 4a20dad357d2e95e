"""Registered legal requests, business transfers and the grant to use them (R8, R10).

Invariants:
- ``LEGAL_OBLIGATION``, ``EXEMPTION`` and ``MERGER`` are never the caller's word alone
  (§三.(一).1, §三.(二).2, §三.(四)): a share on them names a request registered here
  beforehand, and the policy checks the request's facts (``LegalRequestFacts``).
- A request is never deleted or edited: it is revoked. Registration and revocation are
  ledger entries written by the admin service before they take effect.
- Subject ids in a request's scope never reach the policy engine: the share path turns them
  into one ``in_legal_scope`` boolean per subject.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.database import GuardedSession
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.registry.models import LegalGrantRecord, LegalRequestRecord, PartnerRecord

#: Legal basis -> the kind of registered request it needs (R8, R10).
REQUEST_KIND_BY_BASIS = {
    "LEGAL_OBLIGATION": "legal_request",
    "EXEMPTION": "legal_request",
    "MERGER": "transfer",
}
MAX_TEXT = 256
MAX_SCOPE_SUBJECTS = 10_000
_AUTHORITY_KIND = re.compile(r"[A-Z][A-Z_]{0,63}")


def check_grant_principal(principal: str) -> None:
    """Raises: InvalidRequestError: the principal id is empty or too long."""
    if not principal or len(principal) > MAX_TEXT:
        raise InvalidRequestError(
            f"principal is required (1..{MAX_TEXT} characters)",
            reason="registry.legal_grant_principal",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class LegalRequestFacts:
    """What a share needs to know about a named request, for the policy input."""

    request: LegalRequestRecord
    caller_granted: bool
    in_scope: frozenset[str]  # subject ids of the share inside the request's scope


def _text(value: str, name: str, *, required: bool = True) -> str:
    if required and not value:
        raise InvalidRequestError(f"{name} is required", reason=f"registry.legal_request_{name}")
    if len(value) > MAX_TEXT:
        raise InvalidRequestError(
            f"{name} is longer than {MAX_TEXT} characters",
            reason=f"registry.legal_request_{name}",
        )
    return value


def _iso_date(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as e:
        raise InvalidRequestError(
            f"{name} must be an ISO date (YYYY-MM-DD)", reason="registry.legal_request_validity"
        ) from e


def new_legal_request(
    *,
    basis: str,
    authority: str,
    authority_kind: str,
    reference: str,
    exemption_code: str = "",
    recipient_id: str,
    subject_ids: Iterable[str] = (),
    all_subjects: bool = False,
    categories: Iterable[str],
    valid_from: str,
    valid_until: str,
    registered_by: str,
    now: datetime,
) -> LegalRequestRecord:
    """Validate a registration and build the record (pure; the id is random).

    Raises:
        InvalidRequestError: a field is missing, malformed or inconsistent; the reason names
            it (``registry.legal_request_<field>``), never a value.
    """
    kind = REQUEST_KIND_BY_BASIS.get(basis)
    if kind is None:
        raise InvalidRequestError(
            f"basis must be one of {sorted(REQUEST_KIND_BY_BASIS)}",
            reason="registry.legal_request_basis",
        )
    if not _AUTHORITY_KIND.fullmatch(authority_kind):
        raise InvalidRequestError(
            "authority_kind must be an upper-case name such as COURT",
            reason="registry.legal_request_authority_kind",
        )
    if (basis == "EXEMPTION") != bool(exemption_code):
        raise InvalidRequestError(
            "an exemption code is required for EXEMPTION and only for it",
            reason="registry.legal_request_exemption_code",
        )
    scope = list(dict.fromkeys(subject_ids))
    if all_subjects == bool(scope) or len(scope) > MAX_SCOPE_SUBJECTS:
        raise InvalidRequestError(
            f"scope is either all_subjects or 1-{MAX_SCOPE_SUBJECTS} subject ids",
            reason="registry.legal_request_scope",
        )
    if any(not s or len(s) > MAX_TEXT for s in scope):
        raise InvalidRequestError(
            "a subject id in scope is empty or too long", reason="registry.legal_request_scope"
        )
    cats = sorted(set(categories))
    if not cats or any(not c or len(c) > MAX_TEXT for c in cats):
        raise InvalidRequestError(
            "at least one data category is required", reason="registry.legal_request_categories"
        )
    start, end = _iso_date(valid_from, "valid_from"), _iso_date(valid_until, "valid_until")
    if end < start or end < now.date():
        raise InvalidRequestError(
            "valid_until must not be before valid_from or today",
            reason="registry.legal_request_validity",
        )
    return LegalRequestRecord(
        id=f"lr-{secrets.token_hex(8)}",
        kind=kind,
        basis=basis,
        authority=_text(authority, "authority"),
        authority_kind=authority_kind,
        reference=_text(reference, "reference"),
        exemption_code=_text(exemption_code, "exemption_code", required=False),
        recipient_id=_text(recipient_id, "recipient_id"),
        all_subjects=all_subjects,
        subject_ids=scope,
        categories=cats,
        valid_from=valid_from,
        valid_until=valid_until,
        registered_by=registered_by,
        registered_at=now.isoformat(timespec="seconds"),
    )


class LegalRequests:
    """Storage of legal requests and grants (the registry's ``legal`` part).

    Every storage failure is raised as ``UnavailableError`` (fail closed).
    """

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    def _session(self) -> Session:
        return GuardedSession(self._engine)

    def check_recipient(self, recipient_id: str) -> None:
        """Raises ``InvalidRequestError`` unless ``recipient_id`` is a registered partner."""
        with self._session() as s:
            if s.get(PartnerRecord, recipient_id) is None:
                raise InvalidRequestError(
                    "recipient is not a registered partner",
                    reason="registry.legal_request_recipient_unknown",
                )

    def add(self, record: LegalRequestRecord) -> LegalRequestRecord:
        with self._session() as s:
            s.add(record)
            s.commit()
            s.refresh(record)
            return record

    def exists(self, request_id: str) -> bool:
        with self._session() as s:
            return s.get(LegalRequestRecord, request_id) is not None

    def get(self, request_id: str) -> LegalRequestRecord:
        """Raises ``NotFoundError`` for an unknown id."""
        with self._session() as s:
            row = s.get(LegalRequestRecord, request_id)
            if row is None:
                raise NotFoundError(
                    "unknown legal request", reason="registry.legal_request_unknown"
                )
            return row

    def list(
        self, *, recipient_id: str = "", include_revoked: bool = False
    ) -> list[LegalRequestRecord]:
        query = select(LegalRequestRecord).order_by(col(LegalRequestRecord.registered_at))
        if recipient_id:
            query = query.where(col(LegalRequestRecord.recipient_id) == recipient_id)
        if not include_revoked:
            query = query.where(col(LegalRequestRecord.revoked).is_(False))
        with self._session() as s:
            return list(s.exec(query))

    def revoke(self, request_id: str, *, by: str, now: datetime) -> LegalRequestRecord:
        """Mark a request revoked (idempotent: a revoked request keeps its first revocation).

        Raises:
            NotFoundError: the id is unknown.
        """
        with self._session() as s:
            row = s.get(LegalRequestRecord, request_id)
            if row is None:
                raise NotFoundError(
                    "unknown legal request", reason="registry.legal_request_unknown"
                )
            if not row.revoked:
                row.revoked = True
                row.revoked_by = by
                row.revoked_at = now.isoformat(timespec="seconds")
                s.add(row)
                s.commit()
                s.refresh(row)
            return row

    def set_grant(self, principal: str, *, granted: bool, by: str, now: datetime) -> None:
        check_grant_principal(principal)
        with self._session() as s:
            row = s.get(LegalGrantRecord, principal)
            if granted and row is None:
                s.add(
                    LegalGrantRecord(
                        principal=principal,
                        granted_by=by,
                        granted_at=now.isoformat(timespec="seconds"),
                    )
                )
            elif not granted and row is not None:
                s.delete(row)
            s.commit()

    def facts(
        self, request_id: str, *, principal: str, subject_ids: Iterable[str]
    ) -> LegalRequestFacts | None:
        """The named request as a share sees it, or ``None`` when the id is unknown.

        Read fresh on every share: a revocation applies to the next one.
        """
        with self._session() as s:
            row = s.get(LegalRequestRecord, request_id)
            granted = s.get(LegalGrantRecord, principal) is not None
        if row is None:
            return None
        scope = set(row.subject_ids)
        return LegalRequestFacts(
            request=row,
            caller_granted=granted,
            in_scope=frozenset(s for s in subject_ids if row.all_subjects or s in scope),
        )

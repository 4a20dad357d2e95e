"""AdminService: registry changes, consent withdrawal, account deletion, policy reload."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog
from sqlalchemy import Connection

from gateway.errors import InvalidRequestError, NotFoundError
from gateway.interceptors import current_request_id
from gateway.policy import PolicyEngine
from gateway.registry import (
    Consent,
    ConsentGiver,
    ConsentScope,
    Order,
    PartnerRecord,
    RecipientKind,
    Registry,
    SchemaRecord,
    SubjectFacts,
    Withdrawal,
)
from gateway.registry.legal import check_grant_principal, new_legal_request
from gateway.registry.models import LegalRequestRecord
from gateway.security.identity import current_principal
from ledger import Disclosure, Ledger
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc

_log = structlog.get_logger("gateway.admin")


def partner_from_message(p: admin_pb2.Partner) -> PartnerRecord:
    try:
        kind = RecipientKind(admin_pb2.RecipientKind.Name(p.kind).removeprefix("RECIPIENT_KIND_"))
    except ValueError as e:
        raise InvalidRequestError(
            "partner kind is missing or unknown", reason="registry.kind"
        ) from e
    return PartnerRecord(
        id=p.id,
        display_name=p.display_name,
        kind=kind,
        active=p.active,
        region=p.region,
        agreement_id=p.agreement_id,
        agreement_version=p.agreement_version,
        agreement_purposes=list(p.agreement_purposes),
        agreement_categories=list(p.agreement_categories),
        agreement_expires=p.agreement_expires,
        agreement_binds_policy=p.agreement_binds_policy,
        security_review_expires=p.security_review_expires,
        dpa_expires=p.dpa_expires,
    )


def partner_message(p: PartnerRecord) -> admin_pb2.Partner:
    return admin_pb2.Partner(
        id=p.id,
        display_name=p.display_name,
        kind=admin_pb2.RecipientKind.Value(f"RECIPIENT_KIND_{p.kind}"),
        active=p.active,
        region=p.region,
        agreement_id=p.agreement_id,
        agreement_version=p.agreement_version,
        agreement_purposes=p.agreement_purposes,
        agreement_categories=p.agreement_categories,
        agreement_expires=p.agreement_expires,
        agreement_binds_policy=p.agreement_binds_policy,
        security_review_expires=p.security_review_expires,
        dpa_expires=p.dpa_expires,
    )


def _consent_from_message(c: admin_pb2.Consent) -> Consent:
    try:
        scope = ConsentScope(c.scope)
    except ValueError as e:
        raise InvalidRequestError(
            f"unknown consent scope; expected one of {[s.value for s in ConsentScope]}",
            reason="registry.consent_scope",
        ) from e
    try:
        given_by = ConsentGiver(c.given_by or ConsentGiver.SUBJECT)
    except ValueError as e:
        raise InvalidRequestError(
            f"unknown consent giver; expected one of {[g.value for g in ConsentGiver]}",
            reason="registry.consent_given_by",
        ) from e
    return Consent(
        consent_id=c.consent_id,
        recipient_id=c.recipient_id,
        purpose=c.purpose,
        scope=scope,
        categories=tuple(c.categories),
        all_categories=c.all_categories,
        given_by=given_by,
    )


def withdrawal_from_fields(
    recipient_id: str, purpose: str, categories: Sequence[str]
) -> Withdrawal:
    """A withdrawal narrowed to whatever is given; no categories means all of them."""
    return Withdrawal(
        recipient_id=recipient_id,
        purpose=purpose,
        categories=tuple(categories),
        all_categories=not categories,
    )


def subject_from_message(m: admin_pb2.SubjectFacts) -> SubjectFacts:
    return SubjectFacts(
        subject_id=m.subject_id,
        birth_date=m.birth_date,
        ad_opt_out=m.ad_opt_out,
        consent_withdrawn=m.consent_withdrawn,
        account_deleted=m.account_deleted,
        consents=tuple(_consent_from_message(c) for c in m.consents),
        withdrawals=tuple(
            withdrawal_from_fields(w.recipient_id, w.purpose, w.categories) for w in m.withdrawals
        ),
        orders=tuple(
            Order(
                order_id=o.order_id,
                merchant_id=o.merchant_id,
                fulfilment_ids=tuple(o.fulfilment_ids),
                cross_border=o.cross_border,
            )
            for o in m.orders
        ),
    )


def subject_message(f: SubjectFacts) -> admin_pb2.SubjectFacts:
    return admin_pb2.SubjectFacts(
        subject_id=f.subject_id,
        birth_date=f.birth_date,
        ad_opt_out=f.ad_opt_out,
        consent_withdrawn=f.consent_withdrawn,
        account_deleted=f.account_deleted,
        consents=[
            admin_pb2.Consent(
                consent_id=c.consent_id,
                recipient_id=c.recipient_id,
                purpose=c.purpose,
                scope=str(c.scope),
                categories=c.categories,
                all_categories=c.all_categories,
                given_by=str(c.given_by),
            )
            for c in f.consents
        ],
        withdrawals=[
            admin_pb2.Withdrawal(
                recipient_id=w.recipient_id, purpose=w.purpose, categories=w.categories
            )
            for w in f.withdrawals
        ],
        orders=[
            admin_pb2.Order(
                order_id=o.order_id,
                merchant_id=o.merchant_id,
                cross_border=o.cross_border,
                fulfilment_ids=o.fulfilment_ids,
            )
            for o in f.orders
        ],
    )


def legal_request_message(r: LegalRequestRecord) -> admin_pb2.LegalRequest:
    return admin_pb2.LegalRequest(
        id=r.id,
        kind=r.kind,
        basis=r.basis,
        authority=r.authority,
        authority_kind=r.authority_kind,
        reference=r.reference,
        exemption_code=r.exemption_code,
        recipient_id=r.recipient_id,
        subject_ids=r.subject_ids,
        all_subjects=r.all_subjects,
        categories=r.categories,
        valid_from=r.valid_from,
        valid_until=r.valid_until,
        registered_by=r.registered_by,
        registered_at=r.registered_at,
        revoked=r.revoked,
        revoked_by=r.revoked_by,
        revoked_at=r.revoked_at,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Registry administration (role: admin)."""

    def __init__(
        self,
        *,
        registry: Registry,
        engine: PolicyEngine,
        ledger: Ledger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._engine = engine
        self._ledger = ledger
        self._clock = clock

    def UpsertPartner(
        self, request: admin_pb2.UpsertPartnerRequest, context: grpc.ServicerContext
    ) -> admin_pb2.Partner:
        return partner_message(self._registry.upsert_partner(partner_from_message(request.partner)))

    def UpsertSchema(
        self, request: admin_pb2.UpsertSchemaRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RecordSchema:
        row = self._registry.upsert_schema(
            SchemaRecord(record_type=request.schema.record_type, fields=dict(request.schema.fields))
        )
        return admin_pb2.RecordSchema(record_type=row.record_type, fields=row.fields)

    def PutSubject(
        self, request: admin_pb2.PutSubjectRequest, context: grpc.ServicerContext
    ) -> admin_pb2.SubjectFacts:
        return subject_message(self._registry.put_subject(subject_from_message(request.subject)))

    def GetSubject(
        self, request: admin_pb2.GetSubjectRequest, context: grpc.ServicerContext
    ) -> admin_pb2.SubjectFacts:
        facts = self._registry.subjects([request.subject_id]).get(request.subject_id)
        if facts is None:
            raise NotFoundError("unknown subject", reason="registry.subject_unknown")
        return subject_message(facts)

    def WithdrawConsent(
        self, request: admin_pb2.WithdrawConsentRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AdminAck:
        n = self._registry.withdraw_consent(
            request.subject_id,
            withdrawal_from_fields(request.recipient_id, request.purpose, request.categories),
        )
        return admin_pb2.AdminAck(message=f"{n} consent(s) withdrawn")

    def DeleteSubject(
        self, request: admin_pb2.DeleteSubjectRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AdminAck:
        """Erase the subject (§五.(三), issue 14.4) in one transaction: the ledger forgets
        its salt (entries unlinkable), the registry deletes its data and keeps a tombstone
        (R14: a deleted account is left out). A subject known only to the ledger (disclosed
        under LEGAL_OBLIGATION, never registered) is erased too. Idempotent."""
        subject_id = request.subject_id
        if not subject_id:
            raise InvalidRequestError(
                "subject id is required", reason="registry.subject_id_missing"
            )

        def purge(conn: Connection, forgotten: bool) -> None:
            if not self._registry.erase_subject(subject_id, conn) and not forgotten:
                # Neither store ever held it: no tombstone for an id nobody knows.
                raise NotFoundError("unknown subject", reason="registry.subject_unknown")

        forgotten = self._ledger.forget_subject(subject_id, purge=purge)
        return admin_pb2.AdminAck(
            message="subject erased; ledger entries unlinked"
            if forgotten
            else "subject erased; the ledger held no entries for it"
        )

    def ReloadPolicy(
        self, request: admin_pb2.ReloadPolicyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ReloadPolicyResponse:
        revision = self._engine.reload()
        _log.info("policy.reloaded", revision=revision)
        return admin_pb2.ReloadPolicyResponse(policy_revision=revision)

    # -- legal requests (R8, R10) -------------------------------------------------------

    def _record(self, r: LegalRequestRecord, rpc: str, now: datetime) -> None:
        """Append a legal request's registration or revocation to the ledger."""
        self._append_registry_change(
            rpc,
            now,
            partner_id=r.recipient_id,
            legal_basis=r.basis,
            legal_reference=r.reference,
            exemption_code=r.exemption_code,
            legal_request_id=r.id,
        )

    def _append_registry_change(self, rpc: str, now: datetime, **entry: Any) -> None:
        """Append a registry change by the calling admin to the ledger (mode ``registry``);
        the change takes effect only after this returns."""
        principal = current_principal()
        self._ledger.append(
            [
                Disclosure(
                    time=now,
                    decision="ALLOW",
                    request_id=current_request_id(),
                    rpc=f"/partner_gateway.v1.AdminService/{rpc}",
                    caller=principal.id,
                    caller_role=str(principal.role),
                    mode="registry",
                    **entry,
                )
            ]
        )

    def RegisterLegalRequest(
        self, request: admin_pb2.RegisterLegalRequestRequest, context: grpc.ServicerContext
    ) -> admin_pb2.LegalRequest:
        m = request.legal_request
        now = self._clock()
        record = new_legal_request(
            basis=m.basis,
            authority=m.authority,
            authority_kind=m.authority_kind,
            reference=m.reference,
            exemption_code=m.exemption_code,
            recipient_id=m.recipient_id,
            subject_ids=m.subject_ids,
            all_subjects=m.all_subjects,
            categories=m.categories,
            valid_from=m.valid_from,
            valid_until=m.valid_until,
            registered_by=current_principal().id,
            now=now,
        )
        self._registry.legal.check_recipient(record.recipient_id)
        self._record(record, "RegisterLegalRequest", now)
        _log.info("legal_request.registered", id=record.id, recipient=record.recipient_id)
        return legal_request_message(self._registry.legal.add(record))

    def ListLegalRequests(
        self, request: admin_pb2.ListLegalRequestsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListLegalRequestsResponse:
        rows = self._registry.legal.list(
            recipient_id=request.recipient_id, include_revoked=request.include_revoked
        )
        return admin_pb2.ListLegalRequestsResponse(
            legal_requests=[legal_request_message(r) for r in rows]
        )

    def RevokeLegalRequest(
        self, request: admin_pb2.RevokeLegalRequestRequest, context: grpc.ServicerContext
    ) -> admin_pb2.LegalRequest:
        row = self._registry.legal.get(request.id)
        if row.revoked:
            return legal_request_message(row)
        now = self._clock()
        self._record(row, "RevokeLegalRequest", now)
        _log.info("legal_request.revoked", id=row.id)
        return legal_request_message(
            self._registry.legal.revoke(row.id, by=current_principal().id, now=now)
        )

    def SetLegalGrant(
        self, request: admin_pb2.SetLegalGrantRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AdminAck:
        """Give or take a principal's right to name a registered legal request. The change
        is a ledger entry first (``record_type`` ``legal_grant``, the principal as
        ``partner_id``, ``legal_grant.set`` or ``legal_grant.removed``), as registrations are."""
        check_grant_principal(request.principal)
        now = self._clock()
        self._append_registry_change(
            "SetLegalGrant",
            now,
            partner_id=request.principal,
            record_type="legal_grant",
            reason_codes=("legal_grant.set" if request.granted else "legal_grant.removed",),
        )
        self._registry.legal.set_grant(
            request.principal, granted=request.granted, by=current_principal().id, now=now
        )
        _log.info("legal_grant.set", principal=request.principal, granted=request.granted)
        return admin_pb2.AdminAck(
            message="legal-request grant set" if request.granted else "legal-request grant removed"
        )

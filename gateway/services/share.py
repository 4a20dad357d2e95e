"""ShareService: internal services ask for a share; the policy decides; the ledger records."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from gateway.errors import InvalidRequestError, PolicyDeniedError
from gateway.interceptors import current_request_id
from gateway.outbox import Outbox
from gateway.security.identity import current_principal
from gateway.security.limits import StreamBudget, check_request, require_deadline
from gateway.settings import LimitsSettings
from gateway.sharing import Outcome, RecordIn, ShareOrder, Sharing
from gateway.wire import enum_name
from partner_gateway.v1 import share_pb2, share_pb2_grpc

SERVICE = "/partner_gateway.v1.ShareService/"
STREAM_CHUNK_RECORDS = 1_000
#: Left-out subjects named in a refusal's status details; the rest are counted per reason
#: (the trailer must fit 16 KiB: ~1,000 subjects did not, issue 14.5).
REFUSAL_SUBJECTS = 20
_T = TypeVar("_T")


def order_from_request(
    request: share_pb2.ShareRequest,
    records: Iterable[share_pb2.Record] | None = None,
) -> ShareOrder:
    """Translate a ``ShareRequest`` (and optionally streamed records) into a ``ShareOrder``.

    Raises:
        InvalidRequestError: an enum number (action, legal basis, delivery) the API does not
            define.
    """
    basis = request.legal_basis
    delivery_mode(request)  # an unknown delivery mode is refused, never taken as inline
    return ShareOrder(
        recipient_id=request.recipient_id,
        purpose=request.purpose,
        action=enum_name(
            share_pb2.Action.DESCRIPTOR, request.action, prefix="ACTION_", field="action"
        ),
        legal_basis=enum_name(
            share_pb2.LegalBasisKind.DESCRIPTOR,
            basis.kind,
            prefix="LEGAL_BASIS_KIND_",
            field="legal_basis.kind",
        ),
        legal_reference=basis.reference,
        exemption_code=basis.exemption_code,
        legal_request_id=basis.legal_request_id,
        record_type=request.record_type,
        destination_region=request.destination_region,
        records=[
            # The protobuf map is a read-only Mapping here: no copy per record (bulk shares).
            RecordIn(subject_id=r.subject_id, fields=r.fields, order_id=r.order_id)
            for r in (request.records if records is None else records)
        ],
    )


def delivery_mode(request: share_pb2.ShareRequest) -> str:
    """``OUTBOX`` or ``""`` (inline).

    Raises:
        InvalidRequestError: a delivery mode the API does not define.
    """
    return enum_name(
        share_pb2.DeliveryMode.DESCRIPTOR,
        request.delivery,
        prefix="DELIVERY_MODE_",
        field="delivery",
    )


def decision_message(outcome: Outcome, *, max_subjects: int | None = None) -> share_pb2.Decision:
    """The decision as sent; ``max_subjects`` names only the first left-out subjects (the
    totals still count all of them)."""
    d = outcome.decision
    excluded = list(outcome.excluded.items())
    by_reason: dict[str, int] = {}
    for reasons in outcome.excluded.values():
        for code in {r.code for r in reasons}:
            by_reason[code] = by_reason.get(code, 0) + 1
    return share_pb2.Decision(
        allowed=d.allow,
        reasons=[share_pb2.Reason(code=r.code, message=r.message) for r in d.reasons],
        excluded_subjects=[
            share_pb2.ExcludedSubject(
                subject_id=sid,
                reasons=[share_pb2.Reason(code=r.code, message=r.message) for r in reasons],
            )
            for sid, reasons in excluded[:max_subjects]
        ],
        categories_disclosed=outcome.categories_disclosed,
        categories_removed=outcome.categories_removed,
        policy_revision=d.revision,
        excluded_total=len(excluded),
        excluded_by_reason=by_reason,
    )


def receipt_message(outcome: Outcome) -> share_pb2.DisclosureReceipt | None:
    if outcome.receipt is None:
        return None
    return share_pb2.DisclosureReceipt(
        ledger_index=outcome.receipt.index,
        leaf_hash=outcome.receipt.leaf_hash,
        payload_digest=outcome.payload_digest,
        pseudonym_key_id=outcome.key_id,
        checkpoint=outcome.receipt.checkpoint.note,
    )


def refusal(outcome: Outcome) -> PolicyDeniedError:
    """The PERMISSION_DENIED error for a refused share, carrying decision and receipt."""
    reasons = outcome.decision.reasons
    summary = "; ".join(f"{r.code}: {r.message}" for r in reasons) or "no rule allows this share"
    details: list[object] = [decision_message(outcome, max_subjects=REFUSAL_SUBJECTS)]
    receipt = receipt_message(outcome)
    if receipt is not None:
        details.append(receipt)
    return PolicyDeniedError(
        f"share refused by policy: {summary}",
        reasons=[(r.code, r.message) for r in reasons],
        details=details,
    )


def response_message(outcome: Outcome, *, with_records: bool = True) -> share_pb2.ShareResponse:
    return share_pb2.ShareResponse(
        decision=decision_message(outcome),
        records=[
            share_pb2.Record(subject_id=r.subject_ref, fields=r.fields) for r in outcome.records
        ]
        if with_records
        else [],
        receipt=receipt_message(outcome),
        request_id=current_request_id(),
    )


class ShareServicer(share_pb2_grpc.ShareServiceServicer):
    """Share, Evaluate and ShareStream over the ``Sharing`` workflow.

    ``Share`` and ``Evaluate`` are coroutines: the grpc.aio server runs them on its event
    loop, where a share waits for its ledger commit without holding a thread (group commit
    batches every call in flight). With ``blocking`` set (a PostgreSQL registry or an OPA
    server: network round trips), the decision runs there instead of on the loop.
    ``ShareStream`` (bulk) is an async generator on the loop: chunks are read there, the
    order and its decision are built in ``bulk`` (the server's thread pool; ``None``: the
    loop's default executor), the commit is awaited on the loop (ADR 0007).
    """

    def __init__(
        self,
        *,
        sharing: Sharing,
        limits: LimitsSettings,
        outbox: Outbox | None = None,
        blocking: Executor | None = None,
        bulk: Executor | None = None,
    ) -> None:
        self._sharing = sharing
        self._limits = limits
        self._outbox = outbox
        self._blocking = blocking
        self._bulk = bulk

    def _stage(self, order: ShareOrder, rpc: str) -> Outcome:
        """DELIVERY_MODE_OUTBOX: decide and record now, stage for the partner's pull (R17)."""
        if self._outbox is None:
            raise InvalidRequestError(
                "delivery to an outbox is not enabled on this gateway", reason="request.delivery"
            )
        outcome = self._outbox.stage(
            order, current_principal(), request_id=current_request_id(), rpc=SERVICE + rpc
        )
        if not outcome.decision.allow:
            raise refusal(outcome)
        return outcome

    @staticmethod
    async def _in_thread(executor: Executor | None, fn: Callable[..., _T], *args: Any) -> _T:
        """Run blocking ``fn`` in ``executor``, with this call's context (principal, id)."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            executor, functools.partial(ctx.run, fn, *args)
        )

    async def Share(
        self, request: share_pb2.ShareRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> share_pb2.ShareResponse:
        check_request(request, self._limits)
        if request.delivery == share_pb2.DELIVERY_MODE_OUTBOX:
            # Staged: the response carries the decision and the staging receipt, no records.
            outcome = await self._in_thread(
                self._blocking, self._stage, order_from_request(request), "Share"
            )
            return response_message(outcome, with_records=False)
        outcome = await self._sharing.share_async(
            order_from_request(request),
            current_principal(),
            request_id=current_request_id(),
            rpc=SERVICE + "Share",
            executor=self._blocking,
        )
        if not outcome.decision.allow:
            raise refusal(outcome)
        return response_message(outcome)

    async def Evaluate(
        self, request: share_pb2.ShareRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> share_pb2.EvaluateResponse:
        check_request(request, self._limits)
        # R18: a dry run is a decision too; it is recorded before it is answered.
        outcome = await self._sharing.share_async(
            order_from_request(request),
            current_principal(),
            request_id=current_request_id(),
            rpc=SERVICE + "Evaluate",
            mode="evaluate",
            executor=self._blocking,
        )
        # Which subject was left out and why only with an allowed decision: what the Share
        # would return with the records anyway (issue 11); a refused dry run gives counts.
        return share_pb2.EvaluateResponse(
            decision=decision_message(outcome, max_subjects=None if outcome.decision.allow else 0),
            request_id=current_request_id(),
            receipt=receipt_message(outcome),
        )

    async def ShareStream(
        self,
        request_iterator: AsyncIterator[share_pb2.ShareChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[share_pb2.ShareStreamResponse]:
        require_deadline(context)
        budget = StreamBudget(limits=self._limits)
        header: share_pb2.ShareRequest | None = None
        records: list[share_pb2.Record] = []
        # Chunks are read on the loop: a caller that stops sending, cancels or lets its
        # deadline lapse is dropped here, holding no thread (ADR 0007).
        async for chunk in request_iterator:
            if header is None:
                if not chunk.HasField("header"):
                    raise InvalidRequestError(
                        "the first ShareChunk must carry the header", reason="request.stream_header"
                    )
                header = chunk.header
                budget.add(header)
                records.extend(header.records)
            elif chunk.HasField("header"):
                raise InvalidRequestError(
                    "only the first ShareChunk may carry a header", reason="request.stream_header"
                )
            budget.add(chunk)
            records.extend(chunk.records)
        if header is None:
            raise InvalidRequestError("empty stream: no header", reason="request.stream_header")
        loop = asyncio.get_running_loop()
        # A bulk order and its decision are CPU work of many records: in the pool, in steps.
        order = await loop.run_in_executor(self._bulk, order_from_request, header, records)
        if header.delivery == share_pb2.DELIVERY_MODE_OUTBOX:
            outcome = await self._in_thread(self._bulk, self._stage, order, "ShareStream")
            yield share_pb2.ShareStreamResponse(
                summary=response_message(outcome, with_records=False)
            )
            return
        outcome = await self._sharing.share_async(
            order,
            current_principal(),
            request_id=current_request_id(),
            rpc=SERVICE + "ShareStream",
            executor=self._bulk,
        )
        if not outcome.decision.allow:
            raise refusal(outcome)
        yield share_pb2.ShareStreamResponse(summary=response_message(outcome, with_records=False))
        for start in range(0, len(outcome.records), STREAM_CHUNK_RECORDS):
            yield share_pb2.ShareStreamResponse(
                records=[
                    share_pb2.Record(subject_id=r.subject_ref, fields=r.fields)
                    for r in outcome.records[start : start + STREAM_CHUNK_RECORDS]
                ]
            )

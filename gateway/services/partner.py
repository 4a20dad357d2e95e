"""PartnerService: a partner pulls its own outbox (R17) and acknowledges what it received.

The partner is the authenticated caller (``current_principal().partner_id``); no request
field names a partner. Records leave with the per-partner subject pseudonym, and subjects
left out at pull time are only counted, never named.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.interceptors import current_request_id
from gateway.outbox import Outbox, Pulled, parse_cursor
from gateway.security.identity import current_principal
from gateway.security.limits import require_deadline
from gateway.services.share import STREAM_CHUNK_RECORDS, receipt_message
from gateway.sharing import DisclosedRecord
from gateway.streaming import in_pool
from partner_gateway.v1 import partner_pb2, partner_pb2_grpc, share_pb2

SERVICE = "/partner_gateway.v1.PartnerService/"


def _timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def item_messages(
    pulled: Pulled, *, chunk: int = STREAM_CHUNK_RECORDS
) -> Iterator[partner_pb2.OutboxItem]:
    """The ``OutboxItem`` messages of one pulled share (several parts if it is large)."""
    staged, outcome = pulled.staged, pulled.outcome
    d = outcome.decision
    records: list[DisclosedRecord] = outcome.records if d.allow else []
    parts = max(1, -(-len(records) // chunk))
    for part in range(parts):
        yield partner_pb2.OutboxItem(
            cursor=str(staged.seq),
            part=part,
            parts=parts,
            staged_at=_timestamp(staged.staged_at),
            expires_at=_timestamp(staged.expires_at),
            purpose=staged.order.purpose,
            action=share_pb2.Action.Value(f"ACTION_{staged.order.action}")
            if staged.order.action
            else share_pb2.ACTION_UNSPECIFIED,
            record_type=staged.order.record_type,
            allowed=d.allow,
            reasons=[share_pb2.Reason(code=r.code, message=r.message) for r in d.reasons],
            excluded_count=len(outcome.excluded),
            categories_disclosed=outcome.categories_disclosed,
            categories_removed=outcome.categories_removed,
            policy_revision=d.revision,
            records=[
                share_pb2.Record(subject_id=r.subject_ref, fields=r.fields)
                for r in records[part * chunk : (part + 1) * chunk]
            ],
            receipt=receipt_message(outcome),
            staged_ledger_index=staged.staged_ledger_index,
        )


class PartnerServicer(partner_pb2_grpc.PartnerServiceServicer):
    """Pull and Ack over the ``Outbox`` workflow.

    ``Pull`` runs on the event loop; each staged share is decided, recorded and marked
    delivered in a thread of ``executor`` (one step per share), then its messages are sent
    from the loop, so a caller that goes away holds no thread (ADR 0007).
    """

    def __init__(self, *, outbox: Outbox, executor: Executor) -> None:
        self._outbox = outbox
        self._executor = executor

    async def Pull(
        self, request: partner_pb2.PullRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[partner_pb2.OutboxItem]:
        require_deadline(context)
        after = parse_cursor(request.cursor)
        pulled = self._outbox.pull(
            current_principal(),
            after=after,
            max_items=request.max_items,
            request_id=current_request_id(),
            rpc=SERVICE + "Pull",
        )
        async for item in in_pool(pulled, self._executor):
            # The ledger entry of this item is committed; only now do its records leave.
            for message in item_messages(item):
                yield message

    def Ack(
        self, request: partner_pb2.AckRequest, context: grpc.ServicerContext
    ) -> partner_pb2.AckResponse:
        cursor = parse_cursor(request.cursor)
        count = self._outbox.ack(current_principal(), cursor=cursor)
        return partner_pb2.AckResponse(acknowledged=count)

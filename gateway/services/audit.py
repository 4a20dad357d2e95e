"""AuditService (role auditor, read-only): ledger queries, receipts, checkpoints, proofs,
and the subject report ("who got my data", §五).

Entries come back as stored: the canonical bytes (so an auditor can recompute leaf hashes)
and decoded fields. Subjects appear only as ledger pseudonyms inside ``data``; a clear subject
id is accepted as a filter and never returned.

Every read is logged (``audit.read``) with the auditor who made it and, for a page view of
the web console, the console it came ``via`` (ADR 0008): who looked at the history is itself
on record. The log names no subject id and no filter value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auditing import (
    RECEIPT_FORMAT,
    covering_checkpoint,
    iter_entries,
    prove_entry,
    query_page,
    recipients,
    subject_report,
)
from gateway.errors import InvalidRequestError
from gateway.security.identity import current_principal
from gateway.security.limits import require_deadline
from gateway.streaming import in_pool
from gateway.wire import parse_index, parse_timestamp
from ledger import Filter, Ledger, StoredEntry
from ledger.log import MAX_QUERY_LIMIT
from partner_gateway.v1 import audit_pb2, audit_pb2_grpc

DEFAULT_PAGE_SIZE = 100
#: Entries read (one ledger query) per step of StreamDisclosures.
STREAM_BATCH = 500
_DECISIONS = frozenset({"ALLOW", "DENY"})
_log = structlog.get_logger("gateway.audit")


def _log_read(rpc: str, **what: object) -> None:
    """Record who read what kind of thing (never a subject id or filter value)."""
    caller = current_principal()
    _log.info("audit.read", rpc=rpc, principal=caller.id, via=caller.via, **what)


def _timestamp(t: object) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)  # type: ignore[arg-type]
    return ts


def entry_message(stored: StoredEntry) -> audit_pb2.LedgerEntry:
    e = stored.entry
    return audit_pb2.LedgerEntry(
        index=stored.index,
        leaf_hash=stored.leaf_hash,
        data=stored.data,
        time=_timestamp(e.time),
        decision=e.decision,
        partner_id=e.partner_id,
        purpose=e.purpose,
        action=e.action,
        mode=e.mode,
        caller=e.caller,
        rpc=e.rpc,
        request_id=e.request_id,
        legal_basis=e.legal_basis,
        record_type=e.record_type,
        reason_codes=e.reason_codes,
        categories_disclosed=e.categories_disclosed,
        categories_removed=e.categories_removed,
        record_count=e.record_count,
        subject_count=e.subject_count,
        excluded_count=e.excluded_count,
        policy_revision=e.policy_revision,
        agreement_id=e.agreement_id,
        agreement_version=e.agreement_version,
        consent_ids=e.consent_ids,
        destination_region=e.destination_region,
        cross_border_exceptions=e.cross_border_exceptions,
        legal_request_id=e.legal_request_id,
        decision_id=e.decision_id,
    )


def filter_from_message(f: audit_pb2.DisclosureFilter) -> Filter:
    """Empty fields mean "any"; timestamps become aware UTC datetimes.

    Raises:
        InvalidRequestError: an unknown decision value, a timestamp out of range.
    """
    decision = f.decision.upper() or None
    if decision is not None and decision not in _DECISIONS:
        raise InvalidRequestError("decision must be ALLOW or DENY", reason="audit.bad_decision")
    return Filter(
        subject_id=f.subject_id or None,
        partner_id=f.partner_id or None,
        purpose=f.purpose or None,
        action=f.action.upper() or None,
        decision=decision,
        since=parse_timestamp(f.since, field="filter.since") if f.HasField("since") else None,
        until=parse_timestamp(f.until, field="filter.until") if f.HasField("until") else None,
    )


def parse_page_token(token: str) -> int:
    """A page token is the decimal index of the last entry of the previous page; ``-1`` for
    the first page.

    Raises:
        InvalidRequestError: not a token this service issued.
    """
    index = parse_index(token, field="page_token", reason="audit.bad_page_token")
    return -1 if index is None else index


def receipt_document_from_message(receipt: audit_pb2.Receipt) -> dict[str, object]:
    """The saved-receipt document (``gateway.auditing.receipt_document``) of a GetReceipt
    answer, for ``share-gateway audit verify-receipt``."""
    return {
        "format": RECEIPT_FORMAT,
        "index": receipt.entry.index,
        "entry": receipt.entry.data.decode("utf-8"),
        "leaf_hash": receipt.entry.leaf_hash.hex(),
        "tree_size": receipt.tree_size,
        "inclusion_proof": [h.hex() for h in receipt.inclusion_proof],
        "checkpoint": receipt.checkpoint,
    }


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """The auditor's read-only view of the ledger.

    ``StreamDisclosures`` runs on the event loop and reads ``STREAM_BATCH`` entries per step
    in a thread of ``executor``, so a caller that goes away holds no thread (ADR 0008).
    """

    def __init__(self, *, ledger: Ledger, executor: Executor) -> None:
        self._ledger = ledger
        self._executor = executor

    def QueryDisclosures(
        self, request: audit_pb2.QueryDisclosuresRequest, context: grpc.ServicerContext
    ) -> audit_pb2.QueryDisclosuresResponse:
        _log_read("QueryDisclosures", subject_filter=bool(request.filter.subject_id))
        size = request.page_size or DEFAULT_PAGE_SIZE
        if size > MAX_QUERY_LIMIT:
            raise InvalidRequestError(
                f"page_size must be at most {MAX_QUERY_LIMIT}", reason="audit.page_size"
            )
        entries, next_cursor = query_page(
            self._ledger,
            filter_from_message(request.filter),
            after_index=parse_page_token(request.page_token),
            page_size=size,
        )
        return audit_pb2.QueryDisclosuresResponse(
            entries=[entry_message(e) for e in entries],
            next_page_token="" if next_cursor is None else str(next_cursor),
        )

    async def StreamDisclosures(
        self,
        request: audit_pb2.StreamDisclosuresRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.LedgerEntry]:
        _log_read("StreamDisclosures", subject_filter=bool(request.filter.subject_id))
        require_deadline(context)
        entries = iter_entries(
            self._ledger,
            filter_from_message(request.filter),
            after_index=parse_page_token(request.page_token),
            batch=STREAM_BATCH,
        )
        async for stored in in_pool(entries, self._executor, batch=STREAM_BATCH):
            yield entry_message(stored)

    def GetReceipt(
        self, request: audit_pb2.GetReceiptRequest, context: grpc.ServicerContext
    ) -> audit_pb2.Receipt:
        _log_read("GetReceipt", index=request.index)
        proven = prove_entry(self._ledger, request.index)
        return audit_pb2.Receipt(
            entry=entry_message(proven.entry),
            tree_size=proven.tree_size,
            inclusion_proof=proven.inclusion_proof,
            checkpoint=proven.checkpoint.note,
        )

    def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.Checkpoint:
        _log_read("GetCheckpoint")
        # Sign one covering the whole log if the log grew since the last (adds no entry).
        cp = covering_checkpoint(self._ledger, self._ledger.size)
        return audit_pb2.Checkpoint(
            origin=cp.origin,
            size=cp.size,
            root=cp.root,
            note=cp.note,
            verifier_key=self._ledger.verifier_key,
        )

    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        _log_read("GetConsistencyProof")
        proof = self._ledger.consistency_proof(request.old_size, request.new_size)
        return audit_pb2.ConsistencyProof(
            old_size=request.old_size, new_size=request.new_size, proof=proof
        )

    def SubjectReport(
        self, request: audit_pb2.SubjectReportRequest, context: grpc.ServicerContext
    ) -> audit_pb2.SubjectReportResponse:
        _log_read("SubjectReport")
        if not request.subject_id:
            raise InvalidRequestError("subject_id is required", reason="audit.subject_id_missing")
        report = subject_report(self._ledger, request.subject_id)
        return audit_pb2.SubjectReportResponse(
            disclosures=[
                audit_pb2.SubjectDisclosure(
                    ledger_index=d.index,
                    time=_timestamp(d.time),
                    partner_id=d.partner_id,
                    purpose=d.purpose,
                    action=d.action,
                    mode=d.mode,
                    categories=d.categories,
                )
                for d in report
            ],
            recipients=recipients(report),
            linkable=self._ledger.subject_pseudonym(request.subject_id) is not None,
        )

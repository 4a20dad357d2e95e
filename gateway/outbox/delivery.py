"""Outbox delivery (R17): stage a share now, decide it again when the partner pulls it.

Order of operations:
- ``stage``: the policy decides (mode ``stage``) and the decision is appended to the ledger,
  exactly as for an inline share; if allowed, the original records of the subjects the
  policy allowed are sealed into the recipient's outbox. Nothing leaves the gateway.
- ``pull``: for each staged share of the *authenticated* partner, in order, the workflow runs
  again with mode ``pull`` — the policy decides on today's facts (a consent withdrawn since
  staging leaves that subject out; an expired agreement refuses the whole share), the
  obligations are enforced, and the decision is committed to the ledger *before* the caller
  gets the records (R18). The share is then marked delivered; ``ack`` removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from gateway.outbox.store import OutboxStore, StagedShare
from gateway.security.identity import Principal, require_partner
from gateway.sharing import Outcome, ShareOrder, Sharing
from gateway.wire import parse_index


@dataclass(frozen=True, kw_only=True, slots=True)
class Pulled:
    """One staged share as it leaves: what was staged and the pull-time outcome."""

    staged: StagedShare
    outcome: Outcome


def parse_cursor(cursor: str) -> int:
    """An outbox cursor is the decimal sequence number of a staged share; empty means 0.

    Raises:
        InvalidRequestError: the cursor is not one this gateway issued.
    """
    return parse_index(cursor, field="cursor", reason="outbox.bad_cursor") or 0


class Outbox:
    """Staging and pulling over the ``Sharing`` workflow and an ``OutboxStore``."""

    def __init__(self, *, sharing: Sharing, store: OutboxStore) -> None:
        self._sharing = sharing
        self.store = store

    def stage(
        self, order: ShareOrder, principal: Principal, *, request_id: str, rpc: str
    ) -> Outcome:
        """Decide and record a share addressed to an outbox; stage it if allowed.

        Returns:
            The staging outcome (decision and ledger receipt). Its records are the
            sanitized view at staging and must not be returned to the caller.

        Raises:
            InvalidRequestError / UnavailableError: as ``Sharing.share``; on a storage
                failure after the ledger append, the ledger holds a staging entry for a
                share that was not staged (the safe direction: nothing left).
        """
        outcome = self._sharing.share(
            order, principal, request_id=request_id, rpc=rpc, mode="stage"
        )
        if not outcome.decision.allow:
            return outcome
        # Only subjects allowed now are staged; the pull decides again for each of them.
        records = [r for r in order.records if r.subject_id not in outcome.excluded]
        if records and outcome.receipt is not None:
            self.store.purge_expired()
            self.store.stage(
                replace(order, records=records), staged_ledger_index=outcome.receipt.index
            )
        return outcome

    def pull(
        self, principal: Principal, *, after: int, max_items: int, request_id: str, rpc: str
    ) -> Iterator[Pulled]:
        """Decide, record and yield the caller's staged shares after ``after``, in order.

        Each yielded share's decision is already committed to the ledger. Refused shares
        are yielded too (no records), so the partner sees why and can acknowledge them.

        Raises:
            PermissionDeniedError: the caller is not a partner.
            OutboxIntegrityError: a staged row does not open.
            UnavailableError: policy engine, ledger or storage failed (nothing more leaves).
        """
        partner_id = principal.partner_id or ""
        require_partner(partner_id)  # the outbox is always the caller's own (R17)
        self.store.purge_expired()
        for served, staged in enumerate(self.store.pending(partner_id, after=after)):
            if max_items and served >= max_items:
                return
            outcome = self._sharing.share(
                staged.order, principal, request_id=request_id, rpc=rpc, mode="pull"
            )
            self.store.mark_delivered(partner_id, staged.seq)
            yield Pulled(staged=staged, outcome=outcome)

    def ack(self, principal: Principal, *, cursor: int) -> int:
        """Remove the caller's delivered shares up to ``cursor``; returns how many."""
        partner_id = principal.partner_id or ""
        require_partner(partner_id)
        return self.store.ack(partner_id, cursor)

"""Submitting the log's checkpoints to its witnesses, in the background.

Witness latency never blocks an append: appends sign their own checkpoints (ADR 0010); this
thread wakes every ``interval_s``, submits the latest checkpoint to every witness at once,
and stores each cosignature it gets (``ledger_cosignature``). A checkpoint is *published*
once ``quorum`` witnesses cosigned it. A witness that refuses (it has cosigned a larger or a
conflicting tree: the log was rolled back or forked) is logged as an error every round.

At open (``check_not_rolled_back``) one round runs first, synchronously: a refusal there stops
the log from opening, so a gateway restarted on a database restored to an older state, or
with entries removed and re-appended, does not serve. An unreachable witness does not stop it
(availability), but is logged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from ledger.checkpoint import SignedCheckpoint
from ledger.errors import LedgerError, WitnessRefusedError, WitnessUnavailableError
from ledger.witness.client import WitnessClient

if TYPE_CHECKING:
    from ledger.log import Ledger

_log = structlog.get_logger("ledger.witness")


@dataclass(kw_only=True)
class Publication:
    """Outcome of one submission round."""

    checkpoint: SignedCheckpoint | None
    cosigned_by: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    published: bool = False


class WitnessPublisher:
    """Submits ``ledger``'s latest checkpoint to ``witnesses``; k of n make it published.

    Args:
        ledger: The log (read: latest checkpoint, consistency proofs; write: cosignatures).
        witnesses: One client per witness.
        quorum: Cosignatures needed for a checkpoint to count as published.
        interval_s: Pause between rounds of the background thread.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        witnesses: Sequence[WitnessClient],
        quorum: int,
        interval_s: float,
    ) -> None:
        self._ledger = ledger
        self._witnesses = list(witnesses)
        self.quorum = quorum
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._witnesses)))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run rounds in a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._run, name="witness-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a round in flight finishes; requests have timeouts)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        last = -1
        while not self._stop.wait(self._interval_s):
            try:
                cp = self._ledger.latest_checkpoint()
                if cp is not None and cp.size != last:
                    pub = self.publish(cp)
                    if pub.published:
                        last = cp.size
            except LedgerError as e:  # the next round retries
                _log.warning("ledger.witness_round_failed", reason=e.reason, error=e.message)

    def check_not_rolled_back(self, cp: SignedCheckpoint) -> Publication:
        """Submit ``cp`` now; raise if any witness refuses it.

        Raises:
            WitnessRefusedError: a witness has cosigned a larger or a conflicting tree,
                naming each refusing witness and what it said.
            LedgerError: the ledger could not be read or the cosignatures stored.
        """
        pub = self.publish(cp)
        if pub.refused:
            said = "; ".join(f"{name}: {why}" for name, why in sorted(pub.refused.items()))
            raise WitnessRefusedError(
                f"refusing to open the log at size {cp.size}: its witnesses have seen another "
                f"history (the database was rolled back or forked). {said}"
            )
        return pub

    def publish(self, cp: SignedCheckpoint | None = None) -> Publication:
        """Submit ``cp`` (default: the latest checkpoint) to every witness, concurrently.

        Raises:
            LedgerError: the ledger could not be read or the cosignatures stored.
        """
        cp = cp if cp is not None else self._ledger.latest_checkpoint()
        pub = Publication(checkpoint=cp)
        if cp is None:
            return pub
        futures = {
            w.name: self._pool.submit(w.add_checkpoint, cp, self._ledger.consistency_proof)
            for w in self._witnesses
        }
        lines: dict[str, str] = {}
        for name, fut in futures.items():
            try:
                lines[name] = fut.result()
            except WitnessRefusedError as e:
                pub.refused[name] = e.message
                _log.error("ledger.witness_refused", witness=name, size=cp.size, error=e.message)
            except WitnessUnavailableError as e:
                pub.unavailable[name] = e.message
                _log.warning("ledger.witness_unavailable", witness=name, error=e.message)
        if lines:
            self._ledger.add_cosignatures(cp.size, lines)
        pub.cosigned_by = sorted(lines)
        pub.published = len(lines) >= self.quorum
        return pub

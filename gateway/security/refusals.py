"""Refused unauthenticated calls, counted per peer and window (issue 14.5).

A caller without a valid identity (bad token, no certificate) is refused before anything
else runs, and every refusal is audit-relevant; but one ledger entry per refusal let an
unauthenticated flood write thousands of durable entries a second (4,249 in 6 s measured).
So these refusals are counted, and each window writes one entry per ``(peer, reason)`` with
the count.

Invariants:
- Nothing is dropped: every refusal is in exactly one count, and the counts are appended when
  their window ends (a background thread) and on ``close`` (shutdown). A count whose append
  fails is carried into the current window and written with it.
- Growth is bounded: at most ``max_peers`` peers per window get their own count; further peers
  share one ``peer:*`` count per reason. Reasons are the authenticator's few stable codes.
- The entry is a ``refused_call`` DENY whose ``caller`` is ``peer:<address without port>``
  (an internal service's or partner's network address, not a person's), whose
  ``reason_codes`` is the reason, whose ``record_count`` is the number of refused calls, and
  whose time is the window's start. No request id, method name or header value is stored:
  all are chosen by the unauthenticated caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from ledger import Disclosure, LedgerError

_log = structlog.get_logger("gateway.security")
OTHER_PEERS = "peer:*"
_PEER_CHARS = 96


def peer_address(peer: str) -> str:
    """``ipv4:10.0.0.7:51234`` -> ``peer:ipv4:10.0.0.7``; ``ipv6:[::1]:5`` ->
    ``peer:ipv6:[::1]``; other forms (``unix:...``) kept, cut to a bounded length. Pure."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        rest = rest.rpartition(":")[0] or rest
    return f"peer:{kind}:{rest}"[:_PEER_CHARS] if rest else f"peer:{peer}"[:_PEER_CHARS]


class RefusalCounter:
    """Counts refused unauthenticated calls and writes one ledger entry per count.

    Args:
        append: Writes disclosures durably (``Ledger.append``); may raise ``LedgerError``.
        window_s: Length of a counting window in seconds.
        max_peers: Peers counted separately per window; the rest share ``peer:*``.
        clock: Seconds since the epoch (tests move it).
    """

    def __init__(
        self,
        *,
        append: Callable[[Sequence[Disclosure]], object],
        window_s: float = 10.0,
        max_peers: int = 1_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s <= 0 or max_peers <= 0:
            raise ValueError("window_s and max_peers must be positive")
        self._append = append
        self._window_s = window_s
        self._max_peers = max_peers
        self._clock = clock
        self._lock = threading.Lock()
        # window number -> (peer, reason) -> count
        self._counts: dict[int, dict[tuple[str, str], int]] = {}
        self._peers: dict[int, set[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, *, peer: str, reason: str) -> None:
        """Count one refused call from ``peer`` (as ``context.peer()`` gives it). O(1)."""
        window = int(self._clock() // self._window_s)
        address = peer_address(peer)
        with self._lock:
            self._count(window, address, reason, 1)

    def _count(self, window: int, address: str, reason: str, n: int) -> None:
        peers = self._peers.setdefault(window, set())
        if address not in peers:
            if len(peers) >= self._max_peers:
                address = OTHER_PEERS
            peers.add(address)
        counts = self._counts.setdefault(window, {})
        counts[(address, reason)] = counts.get((address, reason), 0) + n

    def pending(self) -> int:
        """Refused calls counted but not yet written."""
        with self._lock:
            return sum(n for counts in self._counts.values() for n in counts.values())

    def flush(self, *, everything: bool = False) -> int:
        """Append the counts of every ended window (``everything``: also the current one).

        Returns:
            How many entries were written. On a ledger failure nothing is lost: the counts
            are carried into the current window (logged), and 0 is returned.
        """
        current = int(self._clock() // self._window_s)
        with self._lock:
            due = sorted(w for w in self._counts if everything or w < current)
            taken = {w: self._counts.pop(w) for w in due}
            for w in due:
                self._peers.pop(w, None)
        entries = [
            Disclosure(
                time=datetime.fromtimestamp(w * self._window_s, UTC),
                decision="DENY",
                mode="refused_call",
                caller=address,
                reason_codes=(reason,),
                record_count=n,
            )
            for w, counts in taken.items()
            for (address, reason), n in sorted(counts.items())
        ]
        if not entries:
            return 0
        try:
            self._append(entries)
        except LedgerError as e:
            with self._lock:
                for counts in taken.values():
                    for (address, reason), n in counts.items():
                        self._count(current, address, reason, n)
            _log.warning("auth.refusals_carried_over", reason=e.reason, entries=len(entries))
            return 0
        return len(entries)

    def start(self) -> None:
        """Flush every window when it ends, in a daemon thread, until ``close``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="refusals", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._window_s - self._clock() % self._window_s + 0.01):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write every count, the current window's too (shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush(everything=True)

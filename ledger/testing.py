"""Test helpers shipped with the ledger (like ``structlog.testing``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ledger.log import Ledger


@dataclass(frozen=True)
class Stall:
    """``holding`` is set once a batch waits at the stall; set ``release`` to let it go."""

    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)


@contextmanager
def stalled_writer(ledger: Ledger, timeout_s: float = 10.0) -> Iterator[Stall]:
    """Hold the writer before each batch until ``release`` is set (at the latest when the
    block exits): appends queue up meanwhile. For tests of waiting, batching, pushback."""
    stall = Stall()
    seq = ledger._sequencer
    original = seq.write

    def stalled(items: Any) -> Any:
        stall.holding.set()
        stall.release.wait(timeout_s)
        return original(items)

    seq.write = stalled
    try:
        yield stall
    finally:
        stall.release.set()
        seq.write = original

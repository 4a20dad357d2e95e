"""Test helpers shipped with the ledger (like ``structlog.testing``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ledger.log import Ledger


@contextmanager
def stalled_writer(ledger: Ledger, timeout_s: float = 10.0) -> Iterator[threading.Event]:
    """Hold the writer before each batch until the yielded event is set (at the latest when
    the block exits): appends queue up meanwhile. For tests of waiting, batching, pushback."""
    gate = threading.Event()
    original = ledger._write_batch

    def stalled(items: Any) -> Any:
        gate.wait(timeout_s)
        return original(items)

    ledger._write_batch = stalled  # type: ignore[method-assign]
    try:
        yield gate
    finally:
        gate.set()
        ledger._write_batch = original  # type: ignore[method-assign]

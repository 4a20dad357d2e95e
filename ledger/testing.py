"""Test helpers shipped with the ledger (like ``structlog.testing``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.checkpoint import NoteVerifier
from ledger.cosignature import Cosigner
from ledger.log import Ledger
from ledger.witness.http import create_witness_server, serve_in_thread
from ledger.witness.service import Witness, WitnessStore


@dataclass(frozen=True)
class RunningWitness:
    """A witness serving HTTP on 127.0.0.1: its URL, its verifier key, the witness itself."""

    url: str
    vkey: str
    witness: Witness


@contextmanager
def running_witness(
    name: str, *, origin: str, log_vkey: str, store: Path
) -> Iterator[RunningWitness]:
    """Serve a new witness named ``name`` that trusts the log ``origin`` signed by
    ``log_vkey``, on port 0, its state in ``store``; shut down on exit."""
    w = Witness(
        cosigner=Cosigner.generate(name),
        logs={origin: [NoteVerifier.parse(log_vkey)]},
        store=WitnessStore(store),
    )
    server, port = create_witness_server("127.0.0.1:0", w)
    serve_in_thread(server)
    try:
        yield RunningWitness(url=f"http://127.0.0.1:{port}", vkey=w.cosigner.vkey, witness=w)
    finally:
        server.shutdown()


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

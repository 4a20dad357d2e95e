"""Verifiable append-only audit ledger of disclosure decisions (RFC 9162, C2SP checkpoints).

Public API: ``Ledger`` (open, append, checkpoint, proofs, queries, forgetting subjects), the
``Disclosure`` input, the query ``Filter``, ``Receipt``, ``StoredEntry``, ``Entry``,
``SignedCheckpoint`` and the ``LedgerError`` tree. Offline auditors need only ``ledger.verify`` and
``ledger.checkpoint.open_checkpoint``.
"""

from __future__ import annotations

from ledger.checkpoint import SignedCheckpoint, open_checkpoint
from ledger.entry import Disclosure, Entry
from ledger.errors import (
    EntryNotFoundError,
    InconsistentCheckpointError,
    InvalidArgumentError,
    LedgerClosedError,
    LedgerCorruptionError,
    LedgerError,
    LedgerKeyError,
    LedgerPushbackError,
    LedgerUnavailableError,
    ProofRangeError,
    VerificationError,
)
from ledger.log import Ledger, Receipt, StoredEntry
from ledger.queries import Filter

__all__ = [
    "Disclosure",
    "Entry",
    "EntryNotFoundError",
    "Filter",
    "InconsistentCheckpointError",
    "InvalidArgumentError",
    "Ledger",
    "LedgerClosedError",
    "LedgerCorruptionError",
    "LedgerError",
    "LedgerKeyError",
    "LedgerPushbackError",
    "LedgerUnavailableError",
    "ProofRangeError",
    "Receipt",
    "SignedCheckpoint",
    "StoredEntry",
    "VerificationError",
    "open_checkpoint",
]

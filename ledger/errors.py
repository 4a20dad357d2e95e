"""The ledger's one error tree.

Every failure the ledger reports is a ``LedgerError`` subclass carrying the name of the gRPC
status code the gateway should answer with (a string, so this package does not import grpc)
and a stable machine-readable ``reason``. Driver exceptions are wrapped at the I/O boundary
(``raise LedgerUnavailableError(...) from e``); nothing is lost silently.
"""

from __future__ import annotations

from typing import ClassVar


class LedgerError(Exception):
    """Root of every error the ledger raises.

    Args:
        message: Diagnostics safe to log (never contains subject ids or field values).
        reason: Stable machine-readable reason; defaults to the class's ``reason``.
    """

    grpc_code: ClassVar[str] = "INTERNAL"
    reason: str = "ledger.internal"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def diagnostics(self) -> str:
        """Return a user-facing one-line description: reason and message."""
        return f"{self.reason}: {self.message}"


class LedgerUnavailableError(LedgerError):
    """Storage is unreachable, read-only or failed mid-transaction; nothing was appended."""

    grpc_code = "UNAVAILABLE"
    reason = "ledger.unavailable"


class LedgerClosedError(LedgerUnavailableError):
    """The ledger was closed; no further appends are accepted."""

    reason = "ledger.closed"


class LedgerPushbackError(LedgerError):
    """Too many appends are waiting; retry later. Nothing was appended (never dropped)."""

    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "ledger.pushback"


class LedgerCorruptionError(LedgerError):
    """Stored data is inconsistent: a hash, an entry or a checkpoint does not verify."""

    grpc_code = "DATA_LOSS"
    reason = "ledger.corrupt"


class InconsistentCheckpointError(LedgerCorruptionError):
    """The tree is not an extension of the last signed checkpoint; refusing to sign."""

    reason = "ledger.checkpoint_inconsistent"


class LedgerKeyError(LedgerError):
    """A key file is missing, unreadable, malformed or has unsafe permissions."""

    grpc_code = "FAILED_PRECONDITION"
    reason = "ledger.key"


class InvalidArgumentError(LedgerError):
    """A disclosure or a request to the ledger is malformed."""

    grpc_code = "INVALID_ARGUMENT"
    reason = "ledger.invalid_argument"


class EntryNotFoundError(LedgerError):
    """The requested index is not (yet) in the log."""

    grpc_code = "NOT_FOUND"
    reason = "ledger.not_found"


class ProofRangeError(InvalidArgumentError):
    """A proof was requested for sizes or an index outside the current tree."""

    grpc_code = "OUT_OF_RANGE"
    reason = "ledger.out_of_range"


class VerificationError(LedgerError):
    """A proof, root or signed note failed verification (raised by the pure verifiers)."""

    grpc_code = "DATA_LOSS"
    reason = "ledger.verification_failed"


class CheckpointFormatError(VerificationError):
    """A checkpoint or signed note is malformed."""

    reason = "ledger.checkpoint_malformed"


class WitnessUnavailableError(LedgerUnavailableError):
    """A witness could not be reached or answered nonsense (retried in the next round)."""

    reason = "ledger.witness_unavailable"


class WitnessRefusedError(LedgerCorruptionError):
    """A witness refused the checkpoint: it has cosigned a larger or a conflicting tree
    (rollback or fork of the log), or the request was malformed (``status``: the witness's
    HTTP status, 0 when refused before asking)."""

    reason = "ledger.witness_refused"

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

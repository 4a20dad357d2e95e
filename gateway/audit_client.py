"""The remote auditor's side of AuditService: it trusts the verifier key it was given and the
last checkpoint it verified, nothing the server says alone.

Like the Go checksum database client (``golang.org/x/mod/sumdb``), the client keeps the latest
checkpoint it verified, per server and log origin, as a C2SP signed note (the same text
``share-gateway ledger checkpoint`` prints and ``ledger verify --trusted-checkpoint`` reads).
On each use it:

1. fetches the latest signed checkpoint and opens it with the auditor's verifier key(s)
   (the key the server reports is only compared, never used);
2. proves the new checkpoint extends the saved one (RFC 9162 §2.1.4.2 consistency proof;
   equal sizes need equal roots); a smaller tree is a rollback, a failed proof a fork, and
   either raises ``VerificationError`` leaving the saved checkpoint untouched;
3. saves the new checkpoint (atomic replace, owner-only file).

Answers are checked against that verified checkpoint: a receipt's checkpoint must verify
and be consistent with it, and its inclusion proof must lead to its root; every entry's leaf
hash is recomputed from its bytes; a full export is folded into a Merkle root that must equal
the checkpoint's root at its size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc

from gateway.auditing import VerifiedReceipt, verify_receipt
from gateway.services.audit import receipt_document_from_message
from ledger import SignedCheckpoint, VerificationError
from ledger.checkpoint import Checkpoint, NoteVerifier, open_with_any
from ledger.merkle import Frontier, leaf_hash
from ledger.verify import verify_consistency
from partner_gateway.v1 import audit_pb2, audit_pb2_grpc

CHECKPOINT_SUFFIX = ".checkpoint"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/share-gateway``, else ``~/.local/state/share-gateway``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "share-gateway"


def open_note(note: str, vkeys: Sequence[str]) -> SignedCheckpoint:
    """Open a signed checkpoint with any of the auditor's keys; the origin is the key name.

    Raises:
        VerificationError: no valid signature by those keys, or a malformed note.
    """
    verifiers = [NoteVerifier.parse(k) for k in vkeys]
    text = open_with_any(verifiers, note)
    cp = Checkpoint.parse(text)
    if cp.origin not in {v.name for v in verifiers}:
        raise VerificationError(f"checkpoint origin {cp.origin!r} is not the verifier key's")
    return SignedCheckpoint(origin=cp.origin, size=cp.size, root=cp.root, note=note)


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointStore:
    """The last verified checkpoint per (server, origin): one signed-note file each."""

    directory: Path

    def path(self, server: str, origin: str) -> Path:
        name = quote(f"{server} {origin}", safe="")
        return self.directory / "checkpoints" / f"{name}{CHECKPOINT_SUFFIX}"

    def load(self, server: str, origin: str, vkeys: Sequence[str]) -> SignedCheckpoint | None:
        """The saved checkpoint, re-verified with the keys (a tampered file is refused).

        Raises:
            VerificationError: the file exists but does not verify.
        """
        path = self.path(server, origin)
        try:
            note = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise VerificationError(f"cannot read saved checkpoint {path}: {e}") from e
        try:
            return open_note(note, vkeys)
        except VerificationError as e:
            raise VerificationError(f"saved checkpoint {path} does not verify: {e}") from e

    def save(self, server: str, cp: SignedCheckpoint) -> Path:
        """Replace the saved checkpoint atomically (directory 0700, file 0600)."""
        path = self.path(server, cp.origin)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cp.note)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path


@dataclass(frozen=True, kw_only=True, slots=True)
class Advance:
    """The outcome of accepting a new checkpoint: what was trusted before and now."""

    previous: SignedCheckpoint | None
    current: SignedCheckpoint
    saved_to: Path


class AuditClient:
    """AuditService calls whose answers are verified before they are believed.

    Args:
        channel: A channel to the gateway (mTLS as an auditor, or TLS with a token).
        server: The address, as the key of the saved checkpoint.
        vkeys: The ledger verifier key(s) the auditor was given out of band.
        store: Where the last verified checkpoint is kept.
        metadata: Per-call metadata (a bearer token).
        timeout: Seconds per unary call.
    """

    def __init__(
        self,
        *,
        channel: grpc.Channel,
        server: str,
        vkeys: Sequence[str],
        store: CheckpointStore,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float = 30.0,
    ) -> None:
        if not vkeys:
            raise VerificationError("a verifier key is needed to check the gateway's answers")
        self._stub = audit_pb2_grpc.AuditServiceStub(channel)
        self.server = server
        self._vkeys = list(vkeys)
        self._store = store
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._trusted: SignedCheckpoint | None = None
        self.advance: Advance | None = None  # the outcome of the last sync

    # -- checkpoints ----------------------------------------------------------------------

    def sync(self, trusted: SignedCheckpoint | None = None) -> Advance:
        """Fetch, verify and save the latest checkpoint (steps 1-3 of the module docstring).

        Args:
            trusted: Prove consistency from this checkpoint instead of the saved one (an
                auditor's ``--trusted-checkpoint`` file); the result is saved all the same.

        Raises:
            VerificationError: bad signature, another key, rollback or fork.
        """
        answer = self._call(self._stub.GetCheckpoint, audit_pb2.GetCheckpointRequest())
        try:
            new = open_note(answer.note, self._vkeys)
        except VerificationError as e:
            reported = answer.verifier_key
            if reported and reported not in self._vkeys:
                raise VerificationError(
                    f"the gateway's checkpoint does not verify with your key ({e.message}); it "
                    f"reports verifier key {reported!r}, which is not one you were given"
                ) from e
            raise
        old = trusted or self._store.load(self.server, new.origin, self._vkeys)
        if old is not None:
            if old.origin != new.origin:
                raise VerificationError(f"checkpoint of {new.origin!r}, expected {old.origin!r}")
            if new.size < old.size:
                raise VerificationError(
                    f"rollback: the gateway's latest checkpoint has {new.size} entries, fewer "
                    f"than the {old.size} you verified before"
                )
            self._prove(old, new, what="fork")
        self._trusted = new
        self.advance = Advance(
            previous=old, current=new, saved_to=self._store.save(self.server, new)
        )
        return self.advance

    def _prove(self, old: SignedCheckpoint, new: SignedCheckpoint, *, what: str) -> None:
        """Check that ``new`` extends ``old`` (a proof from the gateway, verified here)."""
        if old.size == 0:
            return  # every tree extends the empty one
        proof: list[bytes] = []
        if old.size != new.size:
            answer = self._call(
                self._stub.GetConsistencyProof,
                audit_pb2.GetConsistencyProofRequest(old_size=old.size, new_size=new.size),
            )
            proof = list(answer.proof)
        try:
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except VerificationError as e:
            raise VerificationError(
                f"{what}: the checkpoint of {new.size} entries does not extend the one of "
                f"{old.size} entries ({e.message})"
            ) from e

    @property
    def trusted(self) -> SignedCheckpoint:
        """The checkpoint verified by the last ``sync`` (syncing first if needed)."""
        if self._trusted is None:
            self.sync()
        assert self._trusted is not None
        return self._trusted

    # -- answers --------------------------------------------------------------------------

    def query(
        self, flt: audit_pb2.DisclosureFilter, *, page_token: str = "", page_size: int = 100
    ) -> tuple[list[audit_pb2.LedgerEntry], str]:
        """One page of entries (leaf hashes checked) and the next page token ("" = last)."""
        answer = self._call(
            self._stub.QueryDisclosures,
            audit_pb2.QueryDisclosuresRequest(
                filter=flt, page_token=page_token, page_size=page_size
            ),
        )
        for e in answer.entries:
            check_leaf(e)
        return list(answer.entries), answer.next_page_token

    def stream(
        self, flt: audit_pb2.DisclosureFilter, *, timeout: float = 3600.0
    ) -> Iterator[audit_pb2.LedgerEntry]:
        """Every matching entry (leaf hashes checked), as one server stream."""
        request = audit_pb2.StreamDisclosuresRequest(filter=flt)
        for e in self._stub.StreamDisclosures(request, timeout=timeout, metadata=self._metadata):
            check_leaf(e)
            yield e

    def subject_report(self, subject_id: str) -> audit_pb2.SubjectReportResponse:
        return self._call(  # type: ignore[no-any-return]
            self._stub.SubjectReport, audit_pb2.SubjectReportRequest(subject_id=subject_id)
        )

    def receipt(self, index: int) -> dict[str, Any]:
        """Entry ``index``'s receipt, verified (signature, leaf, inclusion) and shown to be
        consistent with the trusted checkpoint; returns the receipt document to save.

        Raises:
            VerificationError: any check fails.
        """
        answer = self._call(self._stub.GetReceipt, audit_pb2.GetReceiptRequest(index=index))
        doc = receipt_document_from_message(answer)
        verified = _verify_receipt_any(doc, self._vkeys)
        cp = open_note(str(doc["checkpoint"]), self._vkeys)
        trusted = self.trusted
        if cp.size >= trusted.size:
            self._prove(trusted, cp, what="receipt")
        else:
            self._prove(cp, trusted, what="receipt")
        if verified.index != index:
            raise VerificationError(f"asked for entry {index}, got {verified.index}")
        return doc

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, timeout=self._timeout, metadata=self._metadata)


def _verify_receipt_any(doc: dict[str, Any], vkeys: Sequence[str]) -> VerifiedReceipt:
    """``verify_receipt`` with the first of the keys that verifies (keys rotate)."""
    error = VerificationError("no verifier key")
    for key in vkeys:
        try:
            return verify_receipt(doc, key)
        except VerificationError as e:
            error = e
    raise error


def check_leaf(entry: audit_pb2.LedgerEntry) -> None:
    """The stated leaf hash is SHA-256(0x00 ‖ data) (RFC 9162 §2.1.1).

    Raises:
        VerificationError: naming the entry's index.
    """
    if leaf_hash(entry.data) != entry.leaf_hash:
        raise VerificationError(f"entry {entry.index}: leaf hash does not match its bytes")


class RootCheck:
    """Folds a full export's leaves, in index order, into the root at the checkpoint's size."""

    def __init__(self, checkpoint: SignedCheckpoint) -> None:
        self._cp = checkpoint
        self._frontier = Frontier()
        self._next = 0

    def add(self, entry: audit_pb2.LedgerEntry) -> None:
        """Add the next entry; those past the checkpoint's size are not covered by it.

        Raises:
            VerificationError: an index is missing or out of order.
        """
        if entry.index != self._next:
            raise VerificationError(f"export skips from entry {self._next} to {entry.index}")
        self._next += 1
        if self._frontier.size < self._cp.size:
            self._frontier.append(entry.leaf_hash)

    def finish(self) -> None:
        """Raises: VerificationError: fewer entries than the checkpoint, or another root."""
        if self._frontier.size < self._cp.size:
            raise VerificationError(
                f"export has {self._frontier.size} entries, the checkpoint {self._cp.size}"
            )
        if self._frontier.root() != self._cp.root:
            raise VerificationError(
                f"the exported entries do not hash to the checkpoint's root at size {self._cp.size}"
            )

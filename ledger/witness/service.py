"""The witness: c2sp.org/tlog-witness ``add-checkpoint`` semantics over its own store.

Invariant: for each origin, the witness cosigns only a checkpoint whose tree extends (RFC 9162
consistency proof) the last one it cosigned; the check and the update are one transaction
(the spec's race: a stale request must never roll the stored size back).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.checkpoint import Checkpoint, NoteVerifier
from ledger.cosignature import Cosigner, split_note
from ledger.errors import CheckpointFormatError, VerificationError
from ledger.merkle import EMPTY_ROOT, HASH_SIZE
from ledger.verify import verify_consistency

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    """An HTTP answer: status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _bad(status: int, why: str) -> Response:
    return Response(status=status, body=why + "\n")


def origin_hash(origin: str) -> str:
    """The monitoring path component of an origin: lowercase hex SHA-256."""
    return hashlib.sha256(origin.encode()).hexdigest()


def _decimal(s: str) -> int | None:
    if not s.isdigit() or (s.startswith("0") and s != "0") or not s.isascii():
        return None
    return int(s)


class WitnessStore:
    """The witness's state: the latest cosigned checkpoint per origin (one SQLite file)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS witness_checkpoint (origin TEXT PRIMARY KEY, "
            "size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL)"
        )
        self.lock = threading.Lock()

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        """``(size, root, cosigned note)`` of the latest cosigned checkpoint, or None."""
        row = self._db.execute(
            "SELECT size, root, note FROM witness_checkpoint WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def latest_by_hash(self, digest: str) -> str | None:
        """The cosigned note of the origin whose SHA-256 hex is ``digest``, or None."""
        for origin, note in self._db.execute("SELECT origin, note FROM witness_checkpoint"):
            if origin_hash(origin) == digest:
                return str(note)
        return None

    def put(self, origin: str, size: int, root: bytes, note: str) -> None:
        """Record (durably: synchronous=FULL) the new latest checkpoint of ``origin``."""
        self._db.execute(
            "INSERT INTO witness_checkpoint (origin, size, root, note) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
            "note = excluded.note",
            (origin, size, root, note),
        )

    def close(self) -> None:
        self._db.close()


class Witness:
    """A witness for a set of logs.

    Args:
        cosigner: The witness's own key.
        logs: Trusted log verifier keys by origin.
        store: Its state.
    """

    def __init__(
        self,
        *,
        cosigner: Cosigner,
        logs: Mapping[str, Sequence[NoteVerifier]],
        store: WitnessStore,
    ) -> None:
        self.cosigner = cosigner
        self._logs = {o: list(v) for o, v in logs.items()}
        self._store = store

    def add_checkpoint(self, request: bytes) -> Response:
        """Handle one ``add-checkpoint`` request body (tlog-witness, steps as in the spec)."""
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError:
            return _bad(400, "request is not UTF-8")
        head, sep, note = text.partition("\n\n")
        if not sep:
            return _bad(400, "request lacks the empty line before the checkpoint")
        lines = head.split("\n")
        old_kw, _, old_s = lines[0].partition(" ")
        old = _decimal(old_s)
        if old_kw != "old" or old is None:
            return _bad(400, "first line must be 'old <size>'")
        if len(lines) - 1 > MAX_PROOF_LINES:
            return _bad(400, "too many consistency proof lines")
        try:
            proof = [base64.b64decode(p, validate=True) for p in lines[1:]]
        except (binascii.Error, ValueError):
            return _bad(400, "consistency proof line is not base64")
        if any(len(p) != HASH_SIZE for p in proof):
            return _bad(400, "consistency proof hash is not 32 bytes")
        try:
            body, _sigs = split_note(note)
            cp = Checkpoint.parse(body)
        except CheckpointFormatError as e:
            return _bad(400, f"malformed checkpoint: {e.message}")
        verifiers = self._logs.get(cp.origin)
        if verifiers is None:
            return _bad(404, "unknown log origin")
        if not self._log_signed(verifiers, note):
            return _bad(403, "no valid signature by a trusted key of the log")
        if old > cp.size:
            return _bad(400, "old size exceeds the checkpoint size")
        with self._store.lock:  # check and update atomically (spec: the rollback race)
            latest = self._store.latest(cp.origin)
            have = 0 if latest is None else latest[0]
            if old != have:
                return Response(status=409, body=f"{have}\n", content_type=SIZE_CONTENT_TYPE)
            if cp.size == 0 and cp.root != EMPTY_ROOT:
                return _bad(422, "a checkpoint of size 0 must have the empty root")
            if old == 0:
                if proof:
                    return _bad(422, "the proof from size 0 must be empty")
            elif latest is not None:
                try:
                    verify_consistency(old, cp.size, latest[1], cp.root, proof)
                except VerificationError as e:
                    return _bad(422, f"consistency proof does not verify: {e.message}")
            line = self.cosigner.cosign(body, int(time.time()))
            self._store.put(cp.origin, cp.size, cp.root, note + line + "\n")
        return Response(status=200, body=line + "\n")

    def checkpoint(self, digest: str) -> Response:
        """Monitoring: the latest cosigned checkpoint of the origin with SHA-256 ``digest``."""
        note = self._store.latest_by_hash(digest)
        if note is None:
            return _bad(404, "no checkpoint cosigned for that origin")
        return Response(status=200, body=note)

    @staticmethod
    def _log_signed(verifiers: Sequence[NoteVerifier], note: str) -> bool:
        for v in verifiers:
            try:
                v.open(note)
            except CheckpointFormatError as e:
                if "has no signature by" in e.message:
                    continue
                return False
            except VerificationError:
                return False
            return True
        return False

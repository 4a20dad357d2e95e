"""The log side of c2sp.org/tlog-witness: submit a checkpoint, get a verified cosignature.

Stdlib HTTP (``urllib``): one request per submission, a short timeout, no retries beyond
the one the protocol calls for (a 409 tells the witness's size; the proof is rebuilt from it).
"""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from ledger.checkpoint import SignedCheckpoint
from ledger.cosignature import CosignatureVerifier, split_note
from ledger.errors import VerificationError, WitnessRefusedError, WitnessUnavailableError

ProofFn = Callable[[int, int], list[bytes]]


@dataclass(frozen=True, kw_only=True, slots=True)
class WitnessConfig:
    """A witness the log submits to: its URL prefix and its cosignature verifier key."""

    url: str
    vkey: str

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.vkey.split("+", 1)[0]


def _http(url: str, data: bytes | None, timeout_s: float) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "text/plain; charset=utf-8")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(65536).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise WitnessUnavailableError(f"witness {url} unreachable: {e}") from e


class WitnessClient:
    """Submits checkpoints of one log to one witness.

    Args:
        config: The witness's URL prefix and verifier key.
        timeout_s: Per-request timeout.
        known_size: The size the witness last cosigned for this log, if known.
    """

    def __init__(
        self, *, config: WitnessConfig, timeout_s: float = 5.0, known_size: int | None = None
    ) -> None:
        self.config = config
        self.verifier = CosignatureVerifier.parse(config.vkey)
        self.name = self.verifier.name
        self.known_size = known_size
        self._timeout_s = timeout_s

    def add_checkpoint(self, cp: SignedCheckpoint, proof: ProofFn) -> str:
        """Submit ``cp`` with a consistency proof from the witness's last size.

        Args:
            cp: The log-signed checkpoint.
            proof: ``proof(old_size, new_size)`` -> RFC 9162 consistency proof.

        Returns:
            The witness's cosignature line on ``cp`` (verified with its key).

        Raises:
            WitnessUnavailableError: unreachable, or an unusable answer.
            WitnessRefusedError: the witness holds a larger or conflicting tree (rollback,
                fork), or refused the request.
        """
        for _ in range(2):  # a 409 teaches the witness's size: one retry with that proof
            old = self.known_size if self.known_size is not None else 0
            if old > cp.size:
                raise WitnessRefusedError(
                    f"witness {self.name} has cosigned size {old}, more than this log's "
                    f"{cp.size}: the log was rolled back",
                    status=409,
                )
            hashes = proof(old, cp.size) if 0 < old < cp.size else []
            body = (
                f"old {old}\n"
                + "".join(base64.b64encode(h).decode() + "\n" for h in hashes)
                + "\n"
                + cp.note
            )
            status, text = _http(
                self.config.url.rstrip("/") + "/add-checkpoint", body.encode(), self._timeout_s
            )
            if status == 409:
                size = text.strip()
                if not size.isdigit():
                    raise WitnessUnavailableError(f"witness {self.name}: bad 409 body")
                self.known_size = int(size)
                continue
            if status != 200:
                raise WitnessRefusedError(
                    f"witness {self.name} refused size {cp.size} (HTTP {status}): "
                    f"{text.strip()[:200]}",
                    status=status,
                )
            return self._cosignature(cp, text)
        raise WitnessUnavailableError(f"witness {self.name}: size changed twice during submit")

    def _cosignature(self, cp: SignedCheckpoint, text: str) -> str:
        body, _ = split_note(cp.note)
        for line in text.splitlines():
            try:
                if self.verifier.verify_line(body, line) is not None:
                    self.known_size = cp.size
                    return line
            except VerificationError as e:
                raise WitnessUnavailableError(f"witness {self.name}: {e.message}") from e
        raise WitnessUnavailableError(f"witness {self.name} returned no cosignature by its key")


def fetch_witnessed(url: str, origin: str, *, timeout_s: float = 5.0) -> str | None:
    """The witness's latest cosigned checkpoint note for ``origin`` (None: it has none).

    Raises:
        WitnessUnavailableError: unreachable or an error status.
    """
    digest = hashlib.sha256(origin.encode()).hexdigest()
    status, text = _http(f"{url.rstrip('/')}/{digest}/checkpoint", None, timeout_s)
    if status == 404:
        return None
    if status != 200:
        raise WitnessUnavailableError(f"witness {url}: HTTP {status}")
    return text

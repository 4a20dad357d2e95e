"""C2SP tlog-cosignature/v1 with Ed25519 (signature type 0x04). Pure: no I/O.

A cosignature is a signed-note signature line ``— <name> base64(key id ‖ timestamp ‖ sig)``:

* key id = ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``;
* timestamp = big-endian u64 POSIX seconds (never zero: tlog-witness requires one);
* sig = Ed25519 over ``"cosignature/v1\\ntime <timestamp>\\n" ‖ <checkpoint body>``.

Verifier key: ``<name>+<key id, 8 hex>+<base64(0x04 ‖ public key)>``; private key file:
``PRIVATE+KEY+<name>+<key id>+<base64(0x04 ‖ seed)>``. Semantics (the spec's): as of the
timestamp, the checkpoint is the largest consistent tree the cosigner has seen for its origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ledger.errors import CheckpointFormatError, VerificationError

ALG_COSIGNATURE_V1 = 0x04
DASH = "\u2014"
_MAX_TIMESTAMP = 2**63 - 1


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """Key id of an Ed25519 cosigner: SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]."""
    return hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()[:4]


def signed_message(body: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosigner signs for checkpoint text ``body`` at ``timestamp``."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def _b64(s: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CheckpointFormatError("invalid base64") from e


def split_note(note: str) -> tuple[str, list[str]]:
    """Split a signed note into its text (newline-terminated) and its signature lines.

    Raises:
        CheckpointFormatError: no signature block or a malformed signature line.
    """
    sep = note.rfind("\n\n")
    if sep < 0 or not note.endswith("\n"):
        raise CheckpointFormatError("signed note lacks a signature block")
    lines = note[sep + 2 : -1].split("\n")
    if any(not line.startswith(f"{DASH} ") for line in lines):
        raise CheckpointFormatError("malformed signature line")
    return note[: sep + 1], lines


@dataclass(frozen=True, kw_only=True)
class CosignatureVerifier:
    """A witness's Ed25519 cosignature/v1 verifier key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``name+keyid+base64(0x04 ‖ key)``.

        Raises:
            CheckpointFormatError: malformed, not a cosignature/v1 key, or wrong key id.
        """
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not parts[0] or any(c in parts[0] for c in " \t\n"):
            raise CheckpointFormatError("witness vkey must be name+keyid+key")
        name, kid_hex, key_b64 = parts
        try:
            kid = bytes.fromhex(kid_hex)
        except ValueError as e:
            raise CheckpointFormatError("witness vkey key id is not hex") from e
        raw = _b64(key_b64)
        if len(kid) != 4 or len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise CheckpointFormatError("witness vkey is not an Ed25519 cosignature/v1 key")
        if cosignature_key_id(name, raw[1:]) != kid:
            raise CheckpointFormatError("witness vkey key id does not match its key")
        return cls(name=name, key_id=kid, public_key=raw[1:])

    def vkey(self) -> str:
        """The vkey string."""
        raw = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify_line(self, body: str, line: str) -> int | None:
        """Check one signature line over checkpoint text ``body``.

        Returns:
            The cosignature's timestamp, or None if the line is not by this key.

        Raises:
            VerificationError: the line is by this key (name and key id) but does not verify.
        """
        name, _, sig_b64 = line.removeprefix(f"{DASH} ").partition(" ")
        if name != self.name:
            return None
        try:
            raw = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != 4 + 8 + 64 or raw[:4] != self.key_id:
            return None
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        try:
            if not 0 < timestamp <= _MAX_TIMESTAMP:
                raise InvalidSignature
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                raw[12:], signed_message(body, timestamp)
            )
        except InvalidSignature as e:
            raise VerificationError(f"cosignature by {self.name} does not verify") from e
        return int(timestamp)


class Cosigner:
    """A witness's Ed25519 cosignature/v1 signing key.

    Args:
        name: Cosigner name (a schema-less URL, e.g. ``witness.example/w1``).
        private_key: The Ed25519 key.
    """

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        if not name or any(c in name for c in "+ \t\n") or DASH in name:
            raise CheckpointFormatError("cosigner name must be non-empty without '+' or spaces")
        self.name = name
        self._key = private_key
        pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = CosignatureVerifier(
            name=name, key_id=cosignature_key_id(name, pub), public_key=pub
        )

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A cosigner with a fresh random key."""
        return cls(name=name, private_key=Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> Cosigner:
        """Parse ``PRIVATE+KEY+name+keyid+base64(0x04 ‖ seed)``.

        Raises:
            CheckpointFormatError: malformed key or mismatching key id.
        """
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointFormatError("cosigner key must be PRIVATE+KEY+name+keyid+key")
        raw = _b64(parts[4])
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise CheckpointFormatError("cosigner key is not an Ed25519 cosignature/v1 key")
        signer = cls(name=parts[2], private_key=Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.key_id.hex() != parts[3]:
            raise CheckpointFormatError("cosigner key id does not match its key")
        return signer

    def skey(self) -> str:
        """The private key string (store with owner-only permissions)."""
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        raw = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{raw}"

    @property
    def vkey(self) -> str:
        """The verifier key string logs and auditors configure."""
        return self.verifier.vkey()

    def cosign(self, body: str, timestamp: int) -> str:
        """Return the signature line (without newline) cosigning checkpoint text ``body``."""
        if not 0 < timestamp <= _MAX_TIMESTAMP:
            raise CheckpointFormatError("cosignature timestamp must be positive")
        sig = self._key.sign(signed_message(body, timestamp))
        raw = self.verifier.key_id + struct.pack(">Q", timestamp) + sig
        return f"{DASH} {self.name} {base64.b64encode(raw).decode()}"


def verified_cosigners(
    body: str, lines: Sequence[str], verifiers: Sequence[CosignatureVerifier]
) -> dict[str, int]:
    """Names (and timestamps) of ``verifiers`` with a valid cosignature among ``lines``.

    Lines by unknown keys are ignored (signed-note rule).

    Raises:
        VerificationError: a line by a known key does not verify.
    """
    out: dict[str, int] = {}
    for line in lines:
        for v in verifiers:
            ts = v.verify_line(body, line)
            if ts is not None:
                out[v.name] = ts
    return out

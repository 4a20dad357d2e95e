"""C2SP tlog-checkpoint bodies and signed notes with Ed25519. Pure: no I/O.

* Checkpoint body (c2sp.org/tlog-checkpoint): ``<origin>\\n<decimal size>\\n<base64 root>\\n``
  followed by optional extension lines.
* Signed note (c2sp.org/signed-note): ``<text>\\n`` then one line per signature,
  ``— <name> <base64(key id (4 bytes) ‖ signature)>\\n`` (U+2014 em dash). The Ed25519
  signature covers the text bytes, which end with a newline.
* Key id: the first 4 bytes of ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)``, 0x01 being the
  Ed25519 algorithm byte. Verifier key: ``<name>+<key id, 8 hex>+<base64(0x01 ‖ public key)>``.
  Private key file: ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`` (as Go's ``note``).

``open_checkpoint(note, vkey)`` is all an offline auditor needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import CheckpointFormatError, VerificationError

ALG_ED25519 = 0x01
_DASH = "\u2014"


def key_id(name: str, public_key: bytes) -> bytes:
    """Return the signed-note key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "+ \t\n\r") or _DASH in name:
        raise CheckpointFormatError("key name must be non-empty without '+', spaces or dashes")


def _b64decode(s: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CheckpointFormatError("invalid base64") from e


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A checkpoint body: the log's origin, tree size and root hash."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """Return the C2SP tlog-checkpoint text (three lines, newline-terminated)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body; extension lines are allowed and ignored.

        Raises:
            CheckpointFormatError: the text is not a checkpoint.
        """
        if not body.endswith("\n"):
            raise CheckpointFormatError("checkpoint must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise CheckpointFormatError("checkpoint needs origin, size and root lines")
        origin, size_s, root_s = lines[:3]
        if not size_s.isdigit() or (size_s.startswith("0") and size_s != "0"):
            raise CheckpointFormatError("checkpoint size is not a canonical decimal")
        root = _b64decode(root_s)
        if len(root) != 32:
            raise CheckpointFormatError("checkpoint root is not 32 bytes")
        return cls(origin=origin, size=int(size_s), root=root)


@dataclass(frozen=True, kw_only=True)
class SignedCheckpoint:
    """A checkpoint and its signed note, as stored and as handed to auditors."""

    origin: str
    size: int
    root: bytes
    note: str

    @property
    def checkpoint(self) -> Checkpoint:
        """The unsigned checkpoint body."""
        return Checkpoint(origin=self.origin, size=self.size, root=self.root)


@dataclass(frozen=True, kw_only=True)
class NoteVerifier:
    """An Ed25519 signed-note verifier parsed from a vkey string."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Parse ``name+keyid+base64(0x01 ‖ key)``.

        Raises:
            CheckpointFormatError: malformed vkey, unknown algorithm or wrong key id.
        """
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointFormatError("vkey must be name+keyid+key")
        name, kid_hex, key_b64 = parts
        _check_name(name)
        try:
            kid = bytes.fromhex(kid_hex)
        except ValueError as e:
            raise CheckpointFormatError("vkey key id is not hex") from e
        raw = _b64decode(key_b64)
        if len(kid) != 4 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointFormatError("vkey is not an Ed25519 signed-note key")
        if key_id(name, raw[1:]) != kid:
            raise CheckpointFormatError("vkey key id does not match its key")
        return cls(name=name, key_id=kid, public_key=raw[1:])

    def vkey(self) -> str:
        """Return the vkey string."""
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def open(self, note: str) -> str:
        """Verify a signed note and return its text.

        Raises:
            CheckpointFormatError: the note is malformed or has no signature by this key.
            VerificationError: a signature by this key does not verify.
        """
        sep = note.rfind("\n\n")
        if sep < 0 or not note.endswith("\n"):
            raise CheckpointFormatError("signed note lacks a signature block")
        text, sigs = note[: sep + 1], note[sep + 2 : -1].split("\n")
        pub = Ed25519PublicKey.from_public_bytes(self.public_key)
        for line in sigs:
            prefix = f"{_DASH} "
            if not line.startswith(prefix):
                raise CheckpointFormatError("malformed signature line")
            name, _, sig_b64 = line[len(prefix) :].partition(" ")
            if name != self.name:
                continue
            raw = _b64decode(sig_b64)
            if len(raw) != 68 or raw[:4] != self.key_id:
                continue
            try:
                pub.verify(raw[4:], text.encode("utf-8"))
            except InvalidSignature as e:
                raise VerificationError("checkpoint signature does not verify") from e
            return text
        raise CheckpointFormatError(f"note has no signature by {self.name}")


class NoteSigner:
    """An Ed25519 signed-note signer.

    Args:
        name: Key name (the log origin); no ``+`` or whitespace.
        private_key: The Ed25519 key.
    """

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name=name, key_id=key_id(name, pub), public_key=pub)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Create a signer with a fresh random key."""
        return cls(name=name, private_key=Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+name+keyid+base64(0x01 ‖ seed)``.

        Raises:
            CheckpointFormatError: malformed key or mismatching key id.
        """
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointFormatError("signing key must be PRIVATE+KEY+name+keyid+key")
        raw = _b64decode(parts[4])
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointFormatError("signing key is not Ed25519")
        signer = cls(name=parts[2], private_key=Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.key_id.hex() != parts[3]:
            raise CheckpointFormatError("signing key id does not match its key")
        return signer

    def skey(self) -> str:
        """Return the private key string (store with owner-only permissions)."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        raw = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{raw}"

    @property
    def vkey(self) -> str:
        """The verifier key string auditors use."""
        return self.verifier.vkey()

    def sign(self, text: str) -> str:
        """Return ``text`` as a signed note with one signature line by this key."""
        if not text.endswith("\n"):
            raise CheckpointFormatError("note text must end with a newline")
        sig = self._key.sign(text.encode("utf-8"))
        line = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{text}\n{_DASH} {self.name} {line}\n"

    def sign_checkpoint(self, cp: Checkpoint) -> SignedCheckpoint:
        """Sign a checkpoint body."""
        return SignedCheckpoint(
            origin=cp.origin, size=cp.size, root=cp.root, note=self.sign(cp.body())
        )


def open_checkpoint(note: str, vkey: str, *, origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint with only the auditor's vkey string.

    Args:
        note: The signed note text.
        vkey: Verifier key ``name+keyid+base64``.
        origin: Expected origin; defaults to the key name.

    Returns:
        The verified checkpoint.

    Raises:
        VerificationError: bad signature, wrong origin or malformed note
            (``CheckpointFormatError`` is a subclass).
    """
    verifier = NoteVerifier.parse(vkey)
    cp = Checkpoint.parse(verifier.open(note))
    if cp.origin != (origin if origin is not None else verifier.name):
        raise VerificationError(f"checkpoint origin {cp.origin!r} is not the expected one")
    return SignedCheckpoint(origin=cp.origin, size=cp.size, root=cp.root, note=note)


def open_with_any(verifiers: Sequence[NoteVerifier], note: str) -> str:
    """Verify ``note`` with the first of ``verifiers`` that has a signature on it.

    Used across key rotations: a checkpoint signed by a retired key still verifies.

    Raises:
        CheckpointFormatError: malformed, or signed by none of the keys.
        VerificationError: a signature by one of the keys does not verify.
    """
    for verifier in verifiers:
        try:
            return verifier.open(note)
        except CheckpointFormatError as e:
            if "has no signature by" not in e.message:
                raise
    raise CheckpointFormatError("note has no signature by any of the given keys")

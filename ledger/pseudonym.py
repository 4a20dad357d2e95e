"""Subject pseudonyms. Pure: no I/O.

``pseudonym = HMAC-SHA256(k_pseudonym, salt_subject ‖ subject_id)`` where ``salt_subject`` is
16 random bytes per subject, kept in the deletable salts table under
``salt_key = HMAC-SHA256(k_salt_index, subject_id)`` (never the clear id). Both keys are
derived from one secret (``k_x = HMAC-SHA256(secret, label_x)``) so the two uses cannot be
confused. Deleting a subject's salt makes its past pseudonyms unlinkable to the subject while
entries, and therefore every Merkle proof, stay unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SALT_SIZE = 16
_LABEL_SALT_INDEX = b"share-gateway/ledger/v1/salt-index"
_LABEL_PSEUDONYM = b"share-gateway/ledger/v1/pseudonym"


@dataclass(frozen=True, kw_only=True)
class SubjectKey:
    """The secret behind subject pseudonyms and the salt index, with its public key id."""

    key_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ValueError("subject key secret must be at least 32 bytes")

    @classmethod
    def from_secret(cls, secret: bytes) -> SubjectKey:
        """Build a key whose id is the first 8 hex digits of SHA-256 of its pseudonym key."""
        k = hmac.new(secret, _LABEL_PSEUDONYM, hashlib.sha256).digest()
        return cls(key_id=hashlib.sha256(k).hexdigest()[:8], secret=secret)

    def pseudonymizer(self) -> Pseudonymizer:
        """Return a fast pseudonymizer bound to this key."""
        return Pseudonymizer(self)


class Pseudonymizer:
    """Computes salt keys and pseudonyms with precomputed HMAC states."""

    __slots__ = ("_pseudo", "_salt_index", "key_id")

    def __init__(self, key: SubjectKey) -> None:
        self.key_id = key.key_id
        self._salt_index = hmac.new(
            hmac.new(key.secret, _LABEL_SALT_INDEX, hashlib.sha256).digest(), None, hashlib.sha256
        )
        self._pseudo = hmac.new(
            hmac.new(key.secret, _LABEL_PSEUDONYM, hashlib.sha256).digest(), None, hashlib.sha256
        )

    def salt_key(self, subject_id: str) -> bytes:
        """Return the keyed hash under which the subject's salt is stored."""
        h = self._salt_index.copy()
        h.update(subject_id.encode("utf-8"))
        return h.digest()

    def pseudonym(self, salt: bytes, subject_id: str) -> str:
        """Return the subject's pseudonym (64 lowercase hex digits) under ``salt``."""
        h = self._pseudo.copy()
        h.update(salt)
        h.update(subject_id.encode("utf-8"))
        return h.hexdigest()

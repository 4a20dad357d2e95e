"""AES-256-GCM sealing of staged shares. Pure apart from drawing a random nonce.

Format of a sealed blob: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
The associated data binds a blob to its outbox row and partner (``associated_data``), so a
ciphertext copied into another row, or into another partner's outbox, fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.outbox.errors import OutboxIntegrityError

NONCE_BYTES = 12
KEY_BYTES = 32
_AD_PREFIX = b"share-gateway/outbox/v1"


def associated_data(row_id: int, partner_id: str) -> bytes:
    """The AES-GCM associated data of outbox row ``row_id`` addressed to ``partner_id``."""
    return b"\n".join((_AD_PREFIX, str(row_id).encode(), partner_id.encode("utf-8")))


def seal(key: bytes, plaintext: bytes, *, row_id: int, partner_id: str) -> bytes:
    """Encrypt ``plaintext`` for row ``row_id`` of ``partner_id``'s outbox."""
    if len(key) != KEY_BYTES:
        raise ValueError("outbox key must be 32 bytes (AES-256)")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data(row_id, partner_id))


def unseal(key: bytes, blob: bytes, *, row_id: int, partner_id: str) -> bytes:
    """Decrypt a blob made by ``seal`` for the same row and partner.

    Raises:
        OutboxIntegrityError: wrong key, row or partner, or the blob was altered.
    """
    if len(key) != KEY_BYTES or len(blob) < NONCE_BYTES + 16:
        raise OutboxIntegrityError(f"outbox row {row_id} cannot be opened")
    try:
        return AESGCM(key).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data(row_id, partner_id)
        )
    except InvalidTag as e:
        raise OutboxIntegrityError(f"outbox row {row_id} failed authentication") from e

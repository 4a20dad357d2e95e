"""Key files: the checkpoint signing key and the subject-pseudonym secret.

Created on first start under ``keys_dir`` (directory mode 0700, files 0600, created with
``O_EXCL`` so two processes starting at once cannot overwrite each other's key). Loading
refuses files readable by group or others.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from ledger.checkpoint import NoteSigner
from ledger.cosignature import Cosigner
from ledger.errors import CheckpointFormatError, LedgerKeyError
from ledger.pseudonym import SubjectKey

SIGNING_KEY_FILE = "ledger-checkpoint.key"
SUBJECT_KEY_FILE = "ledger-subject.key"
#: Verifier keys (public only) of checkpoint signing keys retired by rotation, oldest first.
RETIRED_VKEYS_FILE = "ledger-checkpoint.retired"


def _read_private(path: Path) -> str:
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise LedgerKeyError(f"{path} is accessible by group or others; chmod 600 it")
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerKeyError(f"cannot read key file {path}: {e}") from e


def _create_private(path: Path, content: str) -> bool:
    """Write ``content`` to a new 0600 file; return False if it already exists."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as e:
        raise LedgerKeyError(f"cannot create key file {path}: {e}") from e
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise LedgerKeyError(f"cannot write key file {path}: {e}") from e
    return True


def load_signer(keys_dir: Path) -> NoteSigner:
    """Load the checkpoint signing key.

    Raises:
        LedgerKeyError: missing, unsafe or malformed key file.
    """
    path = Path(keys_dir) / SIGNING_KEY_FILE
    try:
        return NoteSigner.from_skey(_read_private(path))
    except CheckpointFormatError as e:
        raise LedgerKeyError(f"malformed signing key {path}: {e.message}") from e


def load_or_create_signer(keys_dir: Path, *, name: str) -> NoteSigner:
    """Load the signing key, creating it on first start.

    Raises:
        LedgerKeyError: unsafe or malformed file, or a key for another name (origin).
    """
    path = Path(keys_dir) / SIGNING_KEY_FILE
    if not path.exists():
        try:
            fresh = NoteSigner.generate(name)
        except CheckpointFormatError as e:
            raise LedgerKeyError(f"origin cannot be a key name: {e.message}") from e
        _create_private(path, fresh.skey() + "\n")
    signer = load_signer(keys_dir)
    if signer.name != name:
        raise LedgerKeyError(f"{path} signs for {signer.name!r}, not origin {name!r}")
    return signer


def load_or_create_subject_key(keys_dir: Path) -> SubjectKey:
    """Load the subject-pseudonym secret, creating 32 random bytes on first start.

    Raises:
        LedgerKeyError: unsafe or malformed file.
    """
    path = Path(keys_dir) / SUBJECT_KEY_FILE
    if not path.exists():
        _create_private(path, base64.b64encode(os.urandom(32)).decode() + "\n")
    text = _read_private(path)
    try:
        secret = base64.b64decode(text.strip(), validate=True)
        return SubjectKey.from_secret(secret)
    except (binascii.Error, ValueError) as e:
        raise LedgerKeyError(f"malformed subject key {path}") from e


def retired_vkeys(keys_dir: Path) -> list[str]:
    """Verifier keys of the checkpoint signing keys retired by ``rotate_signer``, oldest first."""
    path = Path(keys_dir) / RETIRED_VKEYS_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerKeyError(f"cannot read {path}: {e}") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def rotate_signer(keys_dir: Path, *, name: str) -> NoteSigner:
    """Replace the checkpoint signing key with a new one (issue 5.4).

    The old key's *public* verifier key is appended to the retired list (the private key is
    destroyed, so it can never sign again); checkpoints it signed, and receipts holding them,
    still verify with that vkey. New checkpoints are signed with the new key. The swap of the
    key file is atomic (write a new 0600 file, fsync, rename).

    Returns:
        The new signer.

    Raises:
        LedgerKeyError: no current key, or a key for another name (origin).
    """
    keys_dir = Path(keys_dir)
    current = load_signer(keys_dir)
    if current.name != name:
        raise LedgerKeyError(f"current key signs for {current.name!r}, not origin {name!r}")
    fresh = NoteSigner.generate(name)
    retired = keys_dir / RETIRED_VKEYS_FILE
    try:
        with retired.open("a", encoding="ascii") as f:
            f.write(current.vkey + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise LedgerKeyError(f"cannot record the retired key in {retired}: {e}") from e
    staging = keys_dir / (SIGNING_KEY_FILE + ".new")
    staging.unlink(missing_ok=True)
    _create_private(staging, fresh.skey() + "\n")
    try:
        os.replace(staging, keys_dir / SIGNING_KEY_FILE)
    except OSError as e:
        raise LedgerKeyError(f"cannot install the new signing key: {e}") from e
    return fresh


def load_or_create_cosigner(path: Path, *, name: str) -> Cosigner:
    """Load a witness's cosignature/v1 key file, creating it (0600) on first start.

    Raises:
        LedgerKeyError: unsafe or malformed file, or a key for another name.
    """
    if not path.exists():
        try:
            fresh = Cosigner.generate(name)
        except CheckpointFormatError as e:
            raise LedgerKeyError(f"bad witness name: {e.message}") from e
        _create_private(path, fresh.skey() + "\n")
    try:
        cosigner = Cosigner.from_skey(_read_private(path))
    except CheckpointFormatError as e:
        raise LedgerKeyError(f"malformed witness key {path}: {e.message}") from e
    if cosigner.name != name:
        raise LedgerKeyError(f"{path} cosigns as {cosigner.name!r}, not {name!r}")
    return cosigner

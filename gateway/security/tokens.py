"""Bearer tokens, the second authentication method (issue 5.1).

Invariants:
- The tokens file stores only ``sha256(token)`` (hex) with the principal it authenticates;
  a token itself is shown once, when minted, and never written anywhere.
- Lookup compares the presented token's hash against *every* entry with
  ``hmac.compare_digest`` and no early exit, so timing does not reveal a matching prefix.

File format (JSON, or TOML when the name ends in ``.toml``)::

    {"tokens": [{"sha256": "<hex>", "principal_id": "svc:checkout", "role": "service",
                 "partner_id": null, "label": "checkout dev token"}]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.security.identity import Principal, Role

TOKEN_PREFIX = "sgw_"


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenEntry:
    """One stored token: its hash and the principal it authenticates."""

    sha256: bytes
    principal: Principal
    label: str = ""


def hash_token(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes (tokens are 256-bit random, so no KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenStore:
    """Verifies bearer tokens against stored hashes.

    Build with ``TokenStore.from_file(path)`` or ``TokenStore(entries=...)`` (tests).
    """

    def __init__(self, *, entries: Sequence[TokenEntry] = ()) -> None:
        self._entries = tuple(entries)

    @classmethod
    def from_file(cls, path: Path) -> TokenStore:
        """Load a tokens file; a missing file is an empty store.

        Raises:
            ConfigError: the file is unreadable or malformed (naming ``tokens_file``).
        """
        return cls(entries=_read_entries(path))

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> Principal | None:
        """Return the principal of ``token``, or ``None`` if no stored hash matches."""
        digest = hash_token(token)
        found: Principal | None = None
        for entry in self._entries:  # no early exit: constant work per entry
            if hmac.compare_digest(digest, entry.sha256) and found is None:
                found = entry.principal
        return found


_file_lock = threading.Lock()


def mint_token(
    path: Path,
    *,
    principal_id: str,
    role: Role,
    partner_id: str | None = None,
    label: str = "",
) -> str:
    """Create a new random token, append its hash to the tokens file, return the token.

    The file is written atomically with mode 0600. The returned token is the only copy.

    Raises:
        ConfigError: a partner token without ``partner_id`` or an unreadable file.
    """
    if role is Role.PARTNER and not partner_id:
        raise ConfigError("a partner token needs partner_id")
    if role is not Role.PARTNER and partner_id:
        raise ConfigError("partner_id is only for partner tokens")
    if role is Role.CONSOLE:
        raise ConfigError("a console is identified by its certificate, never by a token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record: dict[str, object] = {
        "sha256": hash_token(token).hex(),
        "principal_id": principal_id,
        "role": role.value,
        "partner_id": partner_id,
        "label": label,
    }
    if path.suffix == ".toml":
        # Appending to TOML would need a writer we do not depend on; minting writes JSON.
        raise ConfigError(f"tokens_file {path}: minting writes JSON; use a .json file")
    with _file_lock:
        raw = _read_raw(path) if path.exists() else {"tokens": []}
        raw.setdefault("tokens", []).append(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    return token


def _read_raw(path: Path) -> dict[str, list[dict[str, object]]]:
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read tokens_file {path}: {type(e).__name__}") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens", []), list):
        raise ConfigError(f"tokens_file {path}: expected a 'tokens' list")
    return raw


def _read_entries(path: Path) -> list[TokenEntry]:
    if not path.exists():
        return []
    entries = []
    for i, item in enumerate(_read_raw(path).get("tokens", [])):
        try:
            role = Role(str(item["role"]))
            partner_id = item.get("partner_id") or None
            digest = bytes.fromhex(str(item["sha256"]))
            if len(digest) != 32:
                raise ValueError("sha256 must be 32 bytes")
            if role is Role.PARTNER and not partner_id:
                raise ValueError("partner token without partner_id")
            if role is Role.CONSOLE:
                raise ValueError("console identities are certificates, not tokens")
            principal = Principal(
                id=str(item["principal_id"]),
                role=role,
                partner_id=str(partner_id) if partner_id else None,
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"tokens_file {path}: entry {i} is invalid: {e}") from e
        entries.append(
            TokenEntry(sha256=digest, principal=principal, label=str(item.get("label", "")))
        )
    return entries

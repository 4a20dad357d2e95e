"""Secret keys in owner-only files, with key ids and rotation (issue 5.4).

Layout (``PseudonymKeys(directory=settings.keys_dir / "pseudonym")``)::

    pseudonym/                 0700
      <partner_id>/            0700   one ring per partner
        CURRENT                0600   the current key id
        <key_id>.key           0600   hex of the key bytes

Invariants:
- A key file is created with mode 0600 (never briefly readable by others) and is refused
  when group or others can read it; directories are 0700.
- Keys are never deleted or overwritten: ``rotate`` adds a key and moves ``CURRENT``, so a
  receipt naming an old key id can still be explained and checked (``get``).
- Key ids are ``<ring>.v<n>`` (e.g. ``adco.v2``): unique across rings, ordered within one.
- Environment keys (``GATEWAY_PSEUDONYM_KEY_<PARTNER>=<key_id>:<hex>``, partner id upper-cased
  with ``-``/``.`` as ``_``) take precedence over files and cannot be rotated here.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

from gateway.errors import ConfigError, InvalidRequestError, NotFoundError

KEY_BYTES = 32
ENV_PREFIX = "GATEWAY_PSEUDONYM_KEY_"
_RING_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_KEY_ID = re.compile(r"(?P<ring>[a-z0-9][a-z0-9._-]{0,62})\.v(?P<n>[1-9][0-9]*)")


class KeyRing:
    """The keys of one ring (one partner, or the checkpoint signer) in one directory.

    Args:
        directory: The ring's directory; created 0700 on first write.
        name: The ring's name, the prefix of its key ids.
        key_bytes: Length of generated keys.
    """

    def __init__(self, *, directory: Path, name: str, key_bytes: int = KEY_BYTES) -> None:
        if not _RING_NAME.fullmatch(name):
            raise InvalidRequestError("key ring name is not a valid id", reason="keys.bad_name")
        self._dir = directory
        self.name = name
        self._key_bytes = key_bytes
        self._lock = threading.Lock()
        # (inode, mtime) of CURRENT -> (key_id, key): one stat() per share instead of two
        # file reads; a rotation (here or by another process) replaces CURRENT, so it shows.
        self._cached: tuple[tuple[int, int], tuple[str, bytes]] | None = None

    def current(self) -> tuple[str, bytes]:
        """The current ``(key_id, key)``; creates the first key on first use."""
        with self._lock:
            try:
                st = os.stat(self._dir / "CURRENT")
                stamp = (st.st_ino, st.st_mtime_ns)
            except FileNotFoundError:
                stamp = None
            if stamp is not None and self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            key_id = self._current_id()
            if key_id is None:
                key_id = self._add_key()
                st = os.stat(self._dir / "CURRENT")
                stamp = (st.st_ino, st.st_mtime_ns)
            found = (key_id, self._read_key(key_id))
            if stamp is not None:
                self._cached = (stamp, found)
            return found

    def get(self, key_id: str) -> bytes:
        """The key ``key_id`` (current or retired).

        Raises:
            NotFoundError: no such key in this ring.
        """
        m = _KEY_ID.fullmatch(key_id)
        if m is None or m["ring"] != self.name or not self._path(key_id).exists():
            raise NotFoundError(f"no key {key_id} in ring {self.name}", reason="keys.not_found")
        return self._read_key(key_id)

    def rotate(self) -> str:
        """Create a new key and make it current; older keys are kept. Returns the new key id."""
        with self._lock:
            return self._add_key()

    def key_ids(self) -> list[str]:
        """Every key id of the ring, oldest first."""
        if not self._dir.exists():
            return []
        ids = [p.stem for p in self._dir.glob("*.key") if _KEY_ID.fullmatch(p.stem)]
        return sorted(ids, key=lambda k: int(k.rpartition(".v")[2]))

    def _path(self, key_id: str) -> Path:
        return self._dir / f"{key_id}.key"

    def _current_id(self) -> str | None:
        pointer = self._dir / "CURRENT"
        if not pointer.exists():
            return None
        _check_private(pointer)
        key_id = pointer.read_text(encoding="ascii").strip()
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigError(f"key ring {self.name}: CURRENT does not name a key")
        return key_id

    def _add_key(self) -> str:
        _make_private_dir(self._dir)
        ids = self.key_ids()
        n = int(ids[-1].rpartition(".v")[2]) + 1 if ids else 1
        while True:
            key_id = f"{self.name}.v{n}"
            try:
                # O_EXCL: two processes racing cannot both create (or overwrite) a key.
                fd = os.open(self._path(key_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_bytes(self._key_bytes).hex() + "\n")
            break
        tmp = self._dir / f"CURRENT.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key_id + "\n")
        os.replace(tmp, self._dir / "CURRENT")
        return key_id

    def _read_key(self, key_id: str) -> bytes:
        path = self._path(key_id)
        _check_private(path)
        try:
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as e:
            raise ConfigError(f"key file {path} is unreadable or malformed") from e


class PseudonymKeys:
    """Per-partner pseudonymization keys (HMAC keys for ``gateway.enforcement.pseudonym``).

    Args:
        directory: Where the partners' rings live, e.g. ``settings.keys_dir / "pseudonym"``;
            created 0700 on first write.
        env: Environment to read ``GATEWAY_PSEUDONYM_KEY_<PARTNER>`` from; ``None`` = none.
    """

    def __init__(self, *, directory: Path, env: Mapping[str, str] | None = None) -> None:
        self._dir = directory
        self._rings: dict[str, KeyRing] = {}
        self._lock = threading.Lock()
        self._env = _env_keys(env or {})

    def current(self, partner_id: str) -> tuple[str, bytes]:
        """The key new shares to ``partner_id`` use: ``(key_id, key)``; created on first use."""
        if (env_key := self._env.get(_env_name(partner_id))) is not None:
            return env_key
        return self._ring(partner_id).current()

    def get(self, partner_id: str, key_id: str) -> bytes:
        """The key ``key_id`` of ``partner_id``, current or retired (to explain old receipts).

        Raises:
            NotFoundError: no such key.
        """
        env_key = self._env.get(_env_name(partner_id))
        if env_key is not None and env_key[0] == key_id:
            return env_key[1]
        return self._ring(partner_id).get(key_id)

    def rotate(self, partner_id: str) -> str:
        """Make a new current key for ``partner_id``; returns its id. Old keys are kept.

        Raises:
            ConfigError: the partner's key comes from the environment.
        """
        if _env_name(partner_id) in self._env:
            raise ConfigError(f"pseudonym key of {partner_id} comes from the environment")
        return self._ring(partner_id).rotate()

    def _ring(self, partner_id: str) -> KeyRing:
        with self._lock:
            ring = self._rings.get(partner_id)
            if ring is None:
                ring = KeyRing(directory=self._dir / partner_id, name=partner_id)
                self._rings[partner_id] = ring
            return ring


def _env_name(partner_id: str) -> str:
    return ENV_PREFIX + re.sub(r"[-.]", "_", partner_id).upper()


def _env_keys(env: Mapping[str, str]) -> dict[str, tuple[str, bytes]]:
    out = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key_id, sep, hexkey = value.partition(":")
        try:
            key = bytes.fromhex(hexkey)
        except ValueError:
            key = b""
        if not sep or not key_id or len(key) < 16:
            # Name the variable, never echo the value.
            raise ConfigError(f"{name} must be '<key_id>:<hex key of at least 16 bytes>'")
        out[name] = (key_id, key)
    return out


def _make_private_dir(path: Path) -> None:
    """Create ``path`` and its parent (the directory of all rings) owner-only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    os.chmod(path, 0o700)


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"key file {path} must be owner-only (chmod 600), not {oct(mode & 0o777)}"
        )

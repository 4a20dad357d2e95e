"""OPA bundle archives of the policy directory: build, sign, read and verify.

Format (OPA "Bundles" docs): a gzipped tarball holding every served ``.rego`` module and
``data.json`` at its path relative to the bundle root, and ``/.manifest`` with the
``revision`` (the gateway's revision of the same files, ``bundle.compute_revision``) and the
``roots`` the bundle owns (the first path segment of every package and data mount). An OPA
server loads it with ``opa run --server --bundle bundle.tar.gz`` or from a bundle service.

Signing (OPA "Signing" docs): ``/.signatures.json`` is ``{"signatures": [JWT]}``; the JWT's
payload lists every other file as ``{"name", "hash", "algorithm": "SHA-256"}`` (plus
``keyid`` when given), signed RS256, ES256 or HS256. A file's hash is SHA-256 over its bytes,
except JSON files, hashed over OPA's canonical form (keys sorted, no whitespace) — the same
walk as OPA's ``bundle.SignatureHasher``, so OPA verifies what this module signs.

The archive is reproducible: entries sorted, mtime 0, no owner names.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from gateway.errors import PolicyLoadError
from gateway.policy.bundle import PolicyBundle, mount_data

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
HASH_ALGORITHM = "SHA-256"
SIGNING_ALGORITHMS = ("RS256", "ES256", "HS256")


@dataclass(frozen=True, slots=True)
class BundleArchive:
    """What an archive holds: modules (path -> text), the merged data, the manifest."""

    modules: Mapping[str, str]
    data: Mapping[str, Any]
    manifest: Mapping[str, Any]
    signed: bool

    @property
    def revision(self) -> str:
        return str(self.manifest.get("revision", ""))


def bundle_roots(bundle: PolicyBundle) -> list[str]:
    """The top-level names the bundle owns: packages' first segments and data mounts."""
    roots = {m.path.split("/")[0] for m in bundle.modules}
    roots |= {mount.split("/")[0] for mount in bundle.data_files.values() if mount}
    roots |= {k for rel, mount in bundle.data_files.items() if not mount for k in bundle.data}
    return sorted(roots)


class _Literal(str):
    """A JSON number kept as its source text (OPA hashes numbers as written)."""


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(_canonical(k) + ":" + _canonical(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, _Literal):
        return str(value)
    # Go's encoder with SetEscapeHTML(false): UTF-8 kept, U+2028/U+2029 escaped.
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def file_hash(name: str, body: bytes) -> str:
    """SHA-256 hex of a bundle file as OPA computes it (JSON over its canonical form)."""
    if name.endswith(".json") or name == MANIFEST:
        try:
            value = json.loads(body, parse_int=_Literal, parse_float=_Literal)
        except ValueError as e:
            raise PolicyLoadError(f"{name}: invalid JSON: {e}") from e
        body = _canonical(value).encode()
    return hashlib.sha256(body).hexdigest()


def _files(bundle: PolicyBundle) -> dict[str, bytes]:
    files = {m.path: m.text.encode() for m in bundle.modules}
    for rel in bundle.data_files:
        files[rel] = (bundle.root / rel).read_bytes()
    manifest = {"revision": bundle.revision, "roots": bundle_roots(bundle), "rego_version": 1}
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return files


def sign_files(
    files: Mapping[str, bytes], key: bytes | str, *, algorithm: str, key_id: str | None = None
) -> bytes:
    """The ``.signatures.json`` body for ``files`` (name -> bytes)."""
    if algorithm not in SIGNING_ALGORITHMS:
        raise PolicyLoadError(f"signing algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
    payload: dict[str, Any] = {
        "files": [
            {"name": name, "hash": file_hash(name, body), "algorithm": HASH_ALGORITHM}
            for name, body in sorted(files.items())
        ]
    }
    if key_id:
        payload["keyid"] = key_id
    try:
        token = jwt.encode(payload, key, algorithm=algorithm)
    except (ValueError, TypeError, jwt.PyJWTError) as e:
        raise PolicyLoadError(f"cannot sign the bundle with {algorithm}: {e}") from e
    return json.dumps({"signatures": [token]}, indent=2).encode()


def write_archive(
    bundle: PolicyBundle,
    out: Path,
    *,
    signing_key: bytes | str | None = None,
    algorithm: str = "RS256",
    key_id: str | None = None,
) -> Path:
    """Write ``bundle`` as an OPA bundle archive at ``out`` (signed when a key is given).

    Raises:
        PolicyLoadError: a file cannot be read, or the key does not fit the algorithm.
    """
    try:
        files = _files(bundle)
    except OSError as e:
        raise PolicyLoadError(f"cannot read policy directory {bundle.root}: {e}") from e
    if signing_key is not None:
        files[SIGNATURES] = sign_files(files, signing_key, algorithm=algorithm, key_id=key_id)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in sorted(files.items()):
            info = tarfile.TarInfo("/" + name)
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            tar.addfile(info, io.BytesIO(body))
    out.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return out


def _members(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            return {
                m.name.lstrip("/"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile()
            }
    except (OSError, tarfile.TarError) as e:
        raise PolicyLoadError(f"{path}: not a bundle archive: {e}") from e


def verify_files(
    files: Mapping[str, bytes],
    key: bytes | str,
    *,
    algorithms: tuple[str, ...] = SIGNING_ALGORITHMS,
) -> None:
    """Check ``.signatures.json`` against ``key`` and every other file's hash, as OPA does.

    Raises:
        PolicyLoadError: no signature, a bad signature, or a file added, missing or changed.
    """
    if SIGNATURES not in files:
        raise PolicyLoadError("bundle is not signed")
    try:
        tokens = json.loads(files[SIGNATURES])["signatures"]
        if len(tokens) != 1:
            raise PolicyLoadError("bundle must carry exactly one signature")
        claims = jwt.decode(tokens[0], key, algorithms=list(algorithms))
        listed = {
            f["name"]: (f["hash"], f.get("algorithm", HASH_ALGORITHM)) for f in claims["files"]
        }
    except PolicyLoadError:
        raise
    except (ValueError, KeyError, TypeError, jwt.PyJWTError) as e:
        raise PolicyLoadError(f"bundle signature does not verify: {e}") from e
    present = {name for name in files if name != SIGNATURES}
    if present != set(listed):
        differ = sorted(present ^ set(listed))
        raise PolicyLoadError(f"signed file list differs from the bundle: {differ}")
    for name in sorted(present):
        digest, algorithm = listed[name]
        if algorithm != HASH_ALGORITHM or digest != file_hash(name, files[name]):
            raise PolicyLoadError(f"bundle file {name} does not match its signed hash")


def read_archive(path: Path, *, verify_key: bytes | str | None = None) -> BundleArchive:
    """Read an archive written by ``write_archive`` (or ``opa build``); verify it if a key is
    given.

    Raises:
        PolicyLoadError: unreadable, not a bundle, or (with ``verify_key``) not verified.
    """
    files = _members(path)
    if verify_key is not None:
        verify_files(files, verify_key)
    try:
        manifest = json.loads(files.get(MANIFEST, b"{}"))
        data: dict[str, Any] = {}
        for name, body in sorted(files.items()):
            *mount, base = name.split("/")
            if base == "data.json":  # mounted as the policy directory mounts it
                mount_data(data, [p for p in mount if p], json.loads(body), name)
        modules = {n: b.decode() for n, b in files.items() if n.endswith(".rego")}
    except (ValueError, UnicodeDecodeError) as e:
        raise PolicyLoadError(f"{path}: unreadable bundle file: {e}") from e
    if not isinstance(manifest, dict):
        raise PolicyLoadError(f"{path}: {MANIFEST} is not a JSON object")
    return BundleArchive(modules=modules, data=data, manifest=manifest, signed=SIGNATURES in files)

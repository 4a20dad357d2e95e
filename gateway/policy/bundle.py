"""Reading a policy directory as an OPA-style bundle, and its revision.

Layout rules (as OPA bundles): every ``*.rego`` file is a module (``*_test.rego`` only when
tests are wanted); a ``data.json`` at ``a/b/data.json`` is mounted at ``data.a.b`` (a root
``data.json`` at ``data``). The revision is the SHA-256 over the sorted (relative path,
bytes) pairs of the files that are *served* (tests excluded), so a change to any policy or
data file changes it and a change to a test does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import PolicyLoadError

#: Hex digits of the SHA-256 kept as the revision (64 bits; used everywhere consistently).
REVISION_HEX_CHARS = 16
TEST_SUFFIX = "_test.rego"


@dataclass(frozen=True, slots=True)
class PolicyModule:
    """One Rego source file: its path relative to the bundle root, and its text."""

    path: str
    text: str


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """The policy modules and merged data document of one directory at one moment.

    Attributes:
        root: The directory it was read from.
        modules: Served modules, sorted by path.
        test_modules: ``*_test.rego`` modules (only when read with ``include_tests``).
        data: The merged data document (``data.*``).
        data_files: Relative path -> mount path (``a/b/data.json`` -> ``a/b``).
        revision: Short hex SHA-256 of the served files.
    """

    root: Path
    modules: tuple[PolicyModule, ...]
    test_modules: tuple[PolicyModule, ...]
    data: Mapping[str, Any]
    data_files: Mapping[str, str]
    revision: str

    @property
    def data_json(self) -> str:
        """The merged data document as JSON."""
        return json.dumps(self.data, sort_keys=True)


def _served_files(root: Path) -> list[Path]:
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and ((p.suffix == ".rego" and not p.name.endswith(TEST_SUFFIX)) or p.name == "data.json")
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def compute_revision(root: Path) -> str:
    """Return the revision of the served files under ``root`` (see module docstring).

    Raises:
        PolicyLoadError: the directory cannot be read.
    """
    try:
        pairs = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in _served_files(root)]
    except OSError as e:
        raise PolicyLoadError(f"cannot read policy directory {root}: {e}") from e
    return _hash_pairs(pairs)


def _hash_pairs(pairs: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for rel, body in sorted(pairs):
        name = rel.encode()
        # Length-prefixed so (path, bytes) boundaries are unambiguous.
        h.update(len(name).to_bytes(8, "big") + name + len(body).to_bytes(8, "big") + body)
    return h.hexdigest()[:REVISION_HEX_CHARS]


def mount_data(data: dict[str, Any], mount: list[str], value: Any, rel: str) -> None:
    """Merge the ``data.json`` at ``rel`` (its ``value``) into ``data`` at path ``mount``.

    Raises:
        PolicyLoadError: a root file that is not an object, or a path or key defined twice.
    """
    if not mount:
        if not isinstance(value, dict):
            raise PolicyLoadError(f"{rel}: a root data.json must hold a JSON object")
        _merge(data, value, rel)
        return
    node = data
    for key in mount[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise PolicyLoadError(f"{rel}: data path {'/'.join(mount)} conflicts with a value")
        node = child
    if mount[-1] in node and isinstance(node[mount[-1]], dict) and isinstance(value, dict):
        _merge(node[mount[-1]], value, rel)
    elif mount[-1] in node:
        raise PolicyLoadError(f"{rel}: data path {'/'.join(mount)} defined twice")
    else:
        node[mount[-1]] = value


def _merge(into: dict[str, Any], new: Mapping[str, Any], rel: str) -> None:
    for k, v in new.items():
        if k in into and isinstance(into[k], dict) and isinstance(v, dict):
            _merge(into[k], v, rel)
        elif k in into:
            raise PolicyLoadError(f"{rel}: data key {k!r} defined twice")
        else:
            into[k] = v


def load_bundle(root: Path, *, include_tests: bool = False) -> PolicyBundle:
    """Read the policy directory ``root``.

    Args:
        root: The bundle root (``policies_rego/``).
        include_tests: Also read ``*_test.rego`` modules (for the test runner).

    Raises:
        PolicyLoadError: unreadable files, invalid JSON, overlapping data, or no module.
    """
    root = Path(root)
    if not root.is_dir():
        raise PolicyLoadError(f"policy directory {root} does not exist")
    files = _served_files(root)
    modules: list[PolicyModule] = []
    data: dict[str, Any] = {}
    data_files: dict[str, str] = {}
    pairs: list[tuple[str, bytes]] = []
    try:
        for p in files:
            rel = p.relative_to(root).as_posix()
            body = p.read_bytes()
            pairs.append((rel, body))
            if p.suffix == ".rego":
                modules.append(PolicyModule(rel, body.decode("utf-8")))
            else:
                mount = list(p.relative_to(root).parent.parts)
                try:
                    value = json.loads(body.decode("utf-8"))
                except json.JSONDecodeError as e:
                    raise PolicyLoadError(f"{rel}: invalid JSON: {e}") from e
                mount_data(data, mount, value, rel)
                data_files[rel] = "/".join(mount)
        tests = (
            tuple(
                PolicyModule(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
                for p in sorted(root.rglob("*" + TEST_SUFFIX))
                if not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            if include_tests
            else ()
        )
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyLoadError(f"cannot read policy directory {root}: {e}") from e
    if not modules:
        raise PolicyLoadError(f"policy directory {root} holds no .rego module")
    return PolicyBundle(
        root=root,
        modules=tuple(modules),
        test_modules=tests,
        data=data,
        data_files=data_files,
        revision=_hash_pairs(pairs),
    )

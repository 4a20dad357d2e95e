"""Decisions from a real OPA server over its REST Data API (``policy.opa_url``).

At start and on ``reload`` the bundle is pushed: every module with
``PUT /v1/policies/<id>`` and every data file with ``PUT /v1/data/<mount>``; modules that
are no longer in the directory are deleted. Each decision is
``POST /v1/data/sharing/decision`` with ``{"input": ...}`` and the configured timeout (pushes
use ``LOAD_TIMEOUT_S``: OPA compiles every module on each policy PUT).
A network error, timeout, non-2xx answer or missing ``result`` is a ``PolicyEngineError``
(UNAVAILABLE, nothing disclosed).

OPA cannot swap a multi-module bundle atomically over this API; a reload therefore pushes
while holding a lock and the revision is only advanced once every PUT succeeded. The
revision is computed locally from the same files.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy.bundle import PolicyBundle, load_bundle
from gateway.policy.decision import DECISION_HTTP_PATH, PolicyDecision, parse_decision

#: Prefix of the policy ids this gateway owns on the OPA server.
POLICY_ID_PREFIX = "share-gateway"
#: Timeout of the bundle pushes: OPA compiles every module on each policy PUT, which takes
#: far longer than a decision (``timeout_s`` bounds decisions only).
LOAD_TIMEOUT_S = 30.0


def policy_id(path: str) -> str:
    """The OPA policy id of the module at relative ``path`` (``sharing/decision.rego``)."""
    return f"{POLICY_ID_PREFIX}/{path}"


class OpaServerEngine:
    """Evaluates the decision on an OPA server.

    Args:
        policy_dir: The bundle root pushed to the server.
        url: ``http(s)://host:port`` of the server.
        timeout_s: Timeout of every HTTP request.
        retries: Retries of the HTTP client for connection errors (0: fail fast).

    Raises:
        PolicyLoadError: the server refuses the bundle (its compiler message is kept).
        PolicyEngineError: the server cannot be reached.
    """

    def __init__(
        self, *, policy_dir: Path, url: str, timeout_s: float = 1.0, retries: int = 0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyLoadError(f"invalid OPA url {url!r}")
        self._dir = Path(policy_dir)
        self._timeout = timeout_s
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ssl = parts.scheme == "https"
        self._client = OpaClient(host=host, port=port, ssl=ssl, timeout=timeout_s, retries=retries)
        self._admin = OpaClient(
            host=host, port=port, ssl=ssl, timeout=max(timeout_s, LOAD_TIMEOUT_S), retries=retries
        )
        self._lock = threading.Lock()
        self._pushed: frozenset[str] = frozenset()
        self._revision = ""
        self._bundle: PolicyBundle | None = None
        self.reload()

    @property
    def revision(self) -> str:
        return self._revision

    @property
    def policy_dir(self) -> Path:
        return self._dir

    def _put_modules(self, bundle: PolicyBundle) -> None:
        # OPA compiles all its modules on every PUT, so a module that needs a rule from a
        # module not pushed yet is refused: retry refused modules until a pass makes no
        # progress (then the last refusal is the compiler's real message).
        pending = list(bundle.modules)
        while pending:
            refused: list[tuple[Any, Exception]] = []
            for m in pending:
                try:
                    self._admin.update_policy_from_string(
                        m.text, policy_id(m.path), rego_compat=False
                    )
                except requests.RequestException:
                    raise
                except Exception as e:  # opa_client's error types carry OPA's message
                    refused.append((m, e))
            if len(refused) == len(pending):
                module, err = refused[-1]
                raise PolicyLoadError(f"OPA refused {module.path}: {err}") from err
            pending = [m for m, _ in refused]

    def _push(self, bundle: PolicyBundle) -> None:
        ids = frozenset(policy_id(m.path) for m in bundle.modules)
        try:
            self._put_modules(bundle)
            for rel, mount in sorted(bundle.data_files.items()):
                value = _at(bundle.data, mount)
                if not isinstance(value, dict):
                    raise PolicyLoadError(f"{rel}: OPA data must be a JSON object")
                self._admin.update_or_create_data(value, mount)
            for stale in sorted(self._pushed - ids):
                self._admin.delete_policy(stale)
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server unreachable while loading policies: {e}") from e
        except PolicyLoadError:
            raise
        except Exception as e:
            raise PolicyLoadError(f"OPA refused policy data: {e}") from e
        self._pushed = ids

    def _restore(self, new: PolicyBundle) -> None:
        """Best effort: put the previous bundle back after a refused reload."""
        old = self._bundle
        if old is None:
            return
        try:
            for pid in sorted(frozenset(policy_id(m.path) for m in new.modules) - self._pushed):
                self._admin.delete_policy(pid)
        except Exception:
            pass
        with contextlib.suppress(Exception):
            self._push(old)

    def reload(self) -> str:
        with self._lock:
            bundle = load_bundle(self._dir)
            try:
                self._push(bundle)
            except PolicyLoadError:
                self._restore(bundle)
                raise
            self._bundle = bundle
            self._revision = bundle.revision
            return bundle.revision

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        revision = self._revision
        package, _, rule = DECISION_HTTP_PATH.rpartition("/")
        try:
            answer = self._client.query_rule(dict(input), package, rule)
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server failed: {type(e).__name__}: {e}") from e
        except ValueError as e:  # not JSON
            raise PolicyEngineError(f"OPA server answered with invalid JSON: {e}") from e
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyEngineError("OPA server returned no result for sharing/decision")
        return parse_decision(answer["result"], revision=revision)

    def close(self) -> None:
        self._client.close_connection()
        self._admin.close_connection()


def _at(data: Mapping[str, Any], mount: str) -> Any:
    node: Any = data
    for key in (k for k in mount.split("/") if k):
        node = node[key]
    return node

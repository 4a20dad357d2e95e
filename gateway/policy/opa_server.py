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

Bundle mode (``policy.opa_bundle``; production): the OPA server runs the archive written by
``share-gateway policy build`` (``opa run --server --bundle``, or a bundle service), and the
gateway pushes nothing. Before it serves (start, reload) it reads the activated bundles'
manifests (``GET /v1/data/system/bundles``) and refuses to start unless one carries the
revision of its own policy directory; every decision is asked with ``?provenance=true`` and
fails closed unless OPA answered from that revision. As the revision is only the manifest's
label, the modules and data OPA shows under the bundle's roots (``GET /v1/policies``,
``GET /v1/data/<root>``) must also be the directory's own. Each decision keeps OPA's
``decision_id`` (returned when decision logging is on), so OPA's decision log and the
ledger join on it.
"""

from __future__ import annotations

import contextlib
import re
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
from gateway.policy.opa_bundle import bundle_roots

#: Prefix of the policy ids this gateway owns on the OPA server.
POLICY_ID_PREFIX = "share-gateway"
#: Timeout of the bundle pushes: OPA compiles every module on each policy PUT, which takes
#: far longer than a decision (``timeout_s`` bounds decisions only).
LOAD_TIMEOUT_S = 30.0
#: Longest decision id kept (OPA's are UUIDs, 36 characters).
MAX_DECISION_ID = 64
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def _revision_in(doc: object) -> str:
    """The ``revision`` of a bundle manifest or provenance entry as OPA sent it; "" when it
    has none or the server answers another shape ("" is never a revision: fail closed)."""
    revision = doc.get("revision") if isinstance(doc, dict) else None
    return revision if isinstance(revision, str) else ""


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
        bundle_mode: The server runs our bundle archive: check its revision, push nothing.

    Raises:
        PolicyLoadError: the server refuses the bundle (its compiler message is kept), or
            (bundle mode) does not serve this revision.
        PolicyEngineError: the server cannot be reached.
    """

    def __init__(
        self,
        *,
        policy_dir: Path,
        url: str,
        timeout_s: float = 1.0,
        retries: int = 0,
        bundle_mode: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyLoadError(f"invalid OPA url {url!r}")
        self._dir = Path(policy_dir)
        self._url = f"{parts.scheme}://{parts.netloc}"
        self._timeout = timeout_s
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ssl = parts.scheme == "https"
        self._client = OpaClient(host=host, port=port, ssl=ssl, timeout=timeout_s, retries=retries)
        self._admin = OpaClient(
            host=host, port=port, ssl=ssl, timeout=max(timeout_s, LOAD_TIMEOUT_S), retries=retries
        )
        self._bundle_mode = bundle_mode
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

    def served_revisions(self) -> dict[str, str]:
        """Bundle name -> revision of every bundle the server has activated.

        Raises:
            PolicyEngineError: the server cannot be reached or answers nonsense.
        """
        try:
            answer = self._admin.get_data("system/bundles")
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server unreachable: {e}") from e
        except Exception:  # opa_client raises when the document is undefined: no bundle
            return {}
        bundles = answer.get("result")
        if not isinstance(bundles, dict):
            raise PolicyEngineError("OPA server answered data.system.bundles with no object")
        return {
            str(name): _revision_in(b.get("manifest"))
            for name, b in bundles.items()
            if isinstance(b, dict)
        }

    def _check_served(self, bundle: PolicyBundle) -> None:
        served = self.served_revisions()
        if bundle.revision not in served.values():
            raise PolicyLoadError(
                f"OPA serves bundle revision(s) {sorted(set(served.values())) or 'none'}, "
                f"expected {bundle.revision}: deploy the archive of `share-gateway policy build`"
            )
        self._check_contents(bundle)

    def _check_contents(self, bundle: PolicyBundle) -> None:
        """The modules and data OPA serves under the bundle's roots are the policy
        directory's, byte for byte and value for value: a manifest revision is only a label,
        which a tampered or hand-made bundle (or a module PUT beside it) can carry.

        Raises:
            PolicyLoadError: naming what differs (never the served text).
            PolicyEngineError: the server cannot be reached or answers nonsense.
        """
        roots = set(bundle_roots(bundle))
        packages = {m.path.split("/")[0] for m in bundle.modules}
        try:
            answer = requests.get(f"{self._url}/v1/policies", timeout=LOAD_TIMEOUT_S)
            answer.raise_for_status()
            policies = answer.json().get("result")
            data = {r: self._admin.get_data(r).get("result") for r in sorted(roots - packages)}
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server unreachable: {e}") from e
        except Exception as e:  # not JSON, no result, undefined data
            raise PolicyLoadError(f"OPA does not show the bundle's modules and data: {e}") from e
        if not isinstance(policies, list):
            raise PolicyEngineError("OPA server answered /v1/policies with no list")
        texts = []
        for p in policies:
            raw = p.get("raw") if isinstance(p, dict) else None
            if not isinstance(raw, str):
                raise PolicyEngineError("OPA server answered /v1/policies without module text")
            match = _PACKAGE.search(raw)
            if match is None or match.group(1) in roots:
                texts.append(raw)
        if sorted(texts) != sorted(m.text for m in bundle.modules):
            raise PolicyLoadError(
                f"OPA serves modules under {sorted(roots)} that differ from revision "
                f"{bundle.revision} of the policy directory (a tampered or foreign bundle)"
            )
        for root, value in data.items():
            if value != bundle.data.get(root):
                raise PolicyLoadError(
                    f"OPA serves data.{root} that differs from revision {bundle.revision} "
                    f"of the policy directory (a tampered or foreign bundle)"
                )

    def _probe(self, bundle: PolicyBundle) -> None:
        """Ask one decision with the load timeout: the bundle must answer the contract, and
        OPA prepares the decision query now, not on the first request (whose timeout is
        ``timeout_s``)."""
        from gateway.policy.embedded import PROBE_INPUTS

        package, _, rule = DECISION_HTTP_PATH.rpartition("/")
        try:
            answer = self._admin.query_rule(dict(PROBE_INPUTS[1]), package, rule)
            parse_decision(answer.get("result"), revision=bundle.revision)
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server unreachable while loading policies: {e}") from e
        except PolicyEngineError as e:
            raise PolicyLoadError(f"OPA does not evaluate the bundle: {e.message}") from e

    def reload(self) -> str:
        with self._lock:
            bundle = load_bundle(self._dir)
            if self._bundle_mode:
                self._check_served(bundle)
                self._probe(bundle)
                self._bundle, self._revision = bundle, bundle.revision
                return bundle.revision
            try:
                self._push(bundle)
                self._probe(bundle)
            except PolicyLoadError:
                self._restore(bundle)
                raise
            self._bundle = bundle
            self._revision = bundle.revision
            return bundle.revision

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        revision = self._revision
        package, _, rule = DECISION_HTTP_PATH.rpartition("/")
        params = {"provenance": "true"} if self._bundle_mode else None
        try:
            answer = self._client.query_rule(dict(input), package, rule, query_params=params)
        except requests.RequestException as e:
            raise PolicyEngineError(f"OPA server failed: {type(e).__name__}: {e}") from e
        except ValueError as e:  # not JSON
            raise PolicyEngineError(f"OPA server answered with invalid JSON: {e}") from e
        if not isinstance(answer, dict) or "result" not in answer:
            raise PolicyEngineError("OPA server returned no result for sharing/decision")
        if self._bundle_mode:
            provenance = answer.get("provenance")
            bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
            served = (
                {_revision_in(b) for b in bundles.values()} if isinstance(bundles, dict) else set()
            )
            served.discard("")
            if revision not in served:
                raise PolicyEngineError(
                    f"OPA answered from bundle revision(s) {sorted(served) or 'none'}, "
                    f"expected {revision}"
                )
        decision_id = answer.get("decision_id", "")
        if not isinstance(decision_id, str) or len(decision_id) > MAX_DECISION_ID:
            # It goes into the ledger entry: never an unbounded value from the network.
            raise PolicyEngineError("OPA server returned a malformed decision_id")
        return parse_decision(answer["result"], revision=revision, decision_id=decision_id)

    def close(self) -> None:
        self._client.close_connection()
        self._admin.close_connection()


def _at(data: Mapping[str, Any], mount: str) -> Any:
    node: Any = data
    for key in (k for k in mount.split("/") if k):
        node = node[key]
    return node

"""A stand-in OPA server for tests: OPA's REST API, evaluated by OPA's own Go evaluator.

No ``opa`` binary can be installed here, so this HTTP server speaks the subset of OPA's REST
API that ``opa_server`` and operators use, and evaluates with OPA's ``rego`` package in-process
(``gateway.policy.opa_go``, docs/adr/0006): every test of the OPA-server path runs OPA's
semantics. What it does not reproduce is OPA's HTTP layer itself (auth, gzip, metrics).
Endpoints:

- ``PUT /v1/policies/<id>`` (text body): compile all modules with the new one; 400 with
  OPA's compiler message when that fails (the module is then not stored).
- ``GET /v1/policies/<id>``, ``DELETE /v1/policies/<id>``, ``GET /v1/policies``.
- ``PUT /v1/data/<path>`` (JSON body) -> 204.
- ``POST /v1/data/<path>`` with ``{"input": ...}`` -> ``{"result": ..., "decision_id": ...}``
  (OPA returns a decision id when decision logging is on), ``{"decision_id": ...}`` when
  undefined, 500 on an evaluation error; with ``?provenance=true`` also
  ``"provenance": {"bundles": {name: {"revision": ...}}}``.
- ``GET /v1/data/system/bundles``: the manifests of activated bundles, keyed by bundle name.

``load_bundle(archive)`` does what ``opa run --server --bundle archive`` does: verifies the
signature when given a key, and activates the archive's modules and data under its name.
- ``GET /health``.

Switches for tests: ``down`` (drop every connection without an answer), ``delay_s``
(sleep before answering queries), ``status`` (answer queries with this HTTP status).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.errors import PolicyEngineError, PolicyLoadError
from gateway.policy.opa_bundle import read_archive
from gateway.policy.opa_go import compile_modules, evaluate_opa


class FakeOpa:
    """A threaded HTTP server on ``127.0.0.1`` (port 0 by default); use as a context manager."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.modules: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.down = False
        self.delay_s = 0.0
        self.status: int | None = None
        self.queries = 0
        #: What OPA's decision log would hold: {"decision_id", "path", "revisions"} per query.
        self.decision_log: list[dict[str, Any]] = []
        #: Activated bundles: name -> {"manifest": {...}} (``data.system.bundles``).
        self.bundles: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._engine: Any = None
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeOpa:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeOpa:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------

    def put_policy(self, pid: str, text: str) -> str | None:
        """Store module ``pid`` if everything still compiles; return the error otherwise."""
        with self._lock:
            modules = dict(self.modules, **{pid: text})
            try:
                engine = compile_modules(modules, self.data)
            except PolicyLoadError as e:
                return e.message
            self.modules = modules
            self._engine = engine
            return None

    def _recompile(self) -> None:
        # As OPA does at write time: a query never waits for a compilation (its timeout is
        # the decision's). Under the lock; a failure is reported by the next query.
        try:
            self._engine = compile_modules(self.modules, self.data) if self.modules else None
        except PolicyLoadError:
            self._engine = None

    def load_bundle(
        self, archive: Path, *, name: str | None = None, verify_key: bytes | str | None = None
    ) -> None:
        """Activate a bundle archive (replacing everything), as ``opa run --bundle`` does.

        Raises:
            PolicyLoadError: the archive is unreadable, fails verification or does not compile.
        """
        contents = read_archive(archive, verify_key=verify_key)
        engine = compile_modules(contents.modules, contents.data)
        with self._lock:
            self.modules = dict(contents.modules)
            self.data = dict(contents.data)
            self.bundles = {name or archive.name: {"manifest": dict(contents.manifest)}}
            self._engine = engine

    def delete_policy(self, pid: str) -> bool:
        with self._lock:
            if pid not in self.modules:
                return False
            del self.modules[pid]
            self._recompile()
            return True

    def put_data(self, path: list[str], value: Any) -> None:
        with self._lock:
            if not path:
                self.data = value
            else:
                node = self.data
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = value
            self._recompile()

    def _provenance(self) -> dict[str, Any]:
        revisions = {
            name: {"revision": b.get("manifest", {}).get("revision", "")}
            for name, b in self.bundles.items()
        }
        return {"version": "fake_opa (OPA Go evaluator)", "bundles": revisions}

    def query(
        self, path: list[str], input: Any, *, provenance: bool = False
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.queries += 1
            engine = self._engine
            if engine is None:
                try:
                    engine = self._engine = compile_modules(self.modules, self.data)
                except PolicyLoadError as e:
                    return 500, {"code": "internal_error", "message": e.message}
        decision_id = str(uuid.uuid4())
        if path[:2] == ["system", "bundles"]:
            return 200, {"result": _at(self.bundles, path[2:]), "decision_id": decision_id}
        try:
            value = evaluate_opa(engine, input, "data." + ".".join(path))
        except PolicyEngineError as e:
            return 500, {"code": "internal_error", "message": e.message}
        answer: dict[str, Any] = {"decision_id": decision_id}
        with self._lock:
            self.decision_log.append(
                {
                    "decision_id": decision_id,
                    "path": "/".join(path),
                    "revisions": self._provenance()["bundles"],
                }
            )
        if provenance:
            answer["provenance"] = self._provenance()
        if value is not None:
            answer["result"] = value
        return 200, answer

    # -- HTTP ----------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, body: Any = None) -> None:
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _gate(self) -> bool:
                if fake.down:
                    self.close_connection = True
                    self.connection.close()
                    return False
                return True

            def _route(self) -> tuple[str, list[str]]:
                path = self.path.split("?")[0]
                parts = [p for p in path.split("/") if p]
                if parts[:2] == ["v1", "policies"]:
                    return "policies", parts[2:]
                if parts[:2] == ["v1", "data"]:
                    return "data", parts[2:]
                if parts == ["health"]:
                    return "health", []
                return "", parts

            def do_GET(self) -> None:
                if not self._gate():
                    return
                kind, rest = self._route()
                if kind == "health":
                    self._send(200, {})
                elif kind == "policies" and not rest:
                    self._send(
                        200,
                        {"result": [{"id": k, "raw": v} for k, v in sorted(fake.modules.items())]},
                    )
                elif kind == "policies":
                    pid = "/".join(rest)
                    if pid in fake.modules:
                        self._send(200, {"result": {"id": pid, "raw": fake.modules[pid]}})
                    else:
                        self._send(404, {"code": "resource_not_found", "message": pid})
                elif kind == "data":
                    status, body = fake.query(rest, None)
                    self._send(status, body)
                else:
                    self._send(404, {"code": "resource_not_found", "message": self.path})

            def do_PUT(self) -> None:
                if not self._gate():
                    return
                kind, rest = self._route()
                body = self._body()
                if kind == "policies" and rest:
                    err = fake.put_policy("/".join(rest), body.decode("utf-8"))
                    if err is None:
                        self._send(200, {})
                    else:
                        self._send(
                            400,
                            {
                                "code": "invalid_parameter",
                                "message": "error(s) occurred while compiling module(s)",
                                "errors": [{"code": "rego_parse_error", "message": err}],
                            },
                        )
                elif kind == "data":
                    try:
                        value = json.loads(body or b"null")
                    except ValueError as e:
                        self._send(400, {"code": "invalid_parameter", "message": str(e)})
                        return
                    fake.put_data(rest, value)
                    self._send(204)
                else:
                    self._send(404, {"code": "resource_not_found", "message": self.path})

            def do_DELETE(self) -> None:
                if not self._gate():
                    return
                kind, rest = self._route()
                if kind == "policies" and fake.delete_policy("/".join(rest)):
                    self._send(200, {})
                else:
                    self._send(404, {"code": "resource_not_found", "message": self.path})

            def do_POST(self) -> None:
                if not self._gate():
                    return
                kind, rest = self._route()
                body = self._body()
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fake.status is not None:
                    self._send(fake.status, {"code": "internal_error", "message": "simulated"})
                    return
                if kind != "data":
                    self._send(404, {"code": "resource_not_found", "message": self.path})
                    return
                try:
                    doc = json.loads(body or b"{}")
                except ValueError as e:
                    self._send(400, {"code": "invalid_parameter", "message": str(e)})
                    return
                status, answer = fake.query(
                    rest,
                    doc.get("input") if isinstance(doc, dict) else None,
                    provenance="provenance=true" in self.path.partition("?")[2].lower(),
                )
                self._send(status, answer)

        return Handler


def _at(node: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node

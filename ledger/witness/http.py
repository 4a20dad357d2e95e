"""The witness's HTTP interface (c2sp.org/tlog-witness), on the standard library's server.

``POST <prefix>/add-checkpoint`` and ``GET <prefix>/<origin hash>/checkpoint``; one thread
per connection, keep-alive (HTTP/1.1). Bodies over 64 KiB are refused (413).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ledger.witness.service import Response, Witness

MAX_BODY = 64 * 1024
_CHECKPOINT_PATH = re.compile(r"^/([0-9a-f]{64})/checkpoint$")


def create_witness_server(address: str, witness: Witness) -> tuple[ThreadingHTTPServer, int]:
    """Bind ``HOST:PORT`` (port 0: any free port); return the server and its port.

    Serve with ``server.serve_forever()``; stop with ``server.shutdown()``.
    """
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, r: Response) -> None:
            data = r.body.encode("utf-8")
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != "/add-checkpoint":
                self._send(Response(status=404, body="not found\n"))
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(Response(status=411, body="Content-Length required\n"))
                return
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._send(Response(status=413, body="request too large\n"))
                return
            self._send(witness.add_checkpoint(self.rfile.read(length)))

        def do_GET(self) -> None:
            m = _CHECKPOINT_PATH.match(self.path)
            if m is None:
                self._send(Response(status=404, body="not found\n"))
                return
            self._send(witness.checkpoint(m.group(1)))

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are not logged: a witness's answers are its record

    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    return server, int(server.server_address[1])


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, embedded use)."""
    t = threading.Thread(target=server.serve_forever, name="witness-http", daemon=True)
    t.start()
    return t

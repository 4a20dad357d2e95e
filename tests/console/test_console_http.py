"""The console over HTTP, as an attacker and as an auditor would use it (no browser)."""

from __future__ import annotations

import csv
import http.cookiejar
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import pytest
import structlog

from gateway.console.app import create_app
from gateway.console.client import AuditClient, client_files
from gateway.console.serving import running_console
from gateway.settings import Settings
from partner_gateway.v1 import audit_pb2
from tests.console.conftest import Rig


@dataclass
class Browser:
    """A cookie-keeping HTTP client that reads CSRF tokens from the pages it gets."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    csrf: str = ""

    def __post_init__(self) -> None:
        self._open = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar)).open

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, final URL, body)."""
        try:
            with self._open(self.base + path) as r:
                return self._read(r)
        except urllib.error.HTTPError as e:
            return e.code, e.url, e.read().decode()

    def post(
        self, path: str, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self._open(req) as r:
                return self._read(r)
        except urllib.error.HTTPError as e:
            return e.code, e.url, e.read().decode()

    def _read(self, r: object) -> tuple[int, str, str]:
        body = r.read().decode()  # type: ignore[attr-defined]
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        if m:
            self.csrf = m.group(1)
        return r.status, r.url, body  # type: ignore[attr-defined]

    def login(self, token: str) -> tuple[int, str, str]:
        self.get("/login")
        return self.post("/login", {"csrf": self.csrf, "token": token})


def test_pages_need_a_login(rig: Rig) -> None:
    """Without a session every page and receipt redirects to the login form."""
    b = Browser(rig.url)
    for path in ("/", "/disclosures", "/subject", "/refusals", "/charts", "/entry/0"):
        status, url, _ = b.get(path)
        assert (status, url) == (200, rig.url + "/login"), path
    assert b.get("/entry/0/receipt.json")[1] == rig.url + "/login"


def test_only_an_auditor_token_logs_in(rig: Rig) -> None:
    """A service token and a made-up token are refused by the gateway; an auditor's works."""
    for token in (rig.service_token, "sgw_made-up"):
        status, _, body = Browser(rig.url).login(token)
        assert status == 401 and "not a valid auditor token" in body
    status, url, body = Browser(rig.url).login(rig.auditor_token)
    assert (status, url) == (200, rig.url + "/") and 'id="ledger-size"' in body


def test_guessing_tokens_is_throttled_before_the_gateway_is_asked(rig: Rig) -> None:
    """With 3 attempts a minute per address, the 4th login, even with a valid auditor token,
    is 429 with Retry-After and never reaches the gateway; a valid token earlier clears the
    count."""
    asked: list[str] = []

    class Counting(AuditClient):
        async def checkpoint(self, token: str) -> audit_pb2.Checkpoint:
            asked.append(token)
            return await super().checkpoint(token)

    settings = Settings.load(
        env={},
        overrides={
            "data_dir": str(rig.gw.pki.parent),
            "console": {"gateway": rig.gw.address, "login_rate": "3 per minute"},
        },
    )
    files = client_files(settings.console, pki=settings.pki_dir)
    app = create_app(
        settings=settings.console,
        connect=lambda: Counting.connect(target=rig.gw.address, files=files, timeout_s=10),
    )
    with running_console(app) as console:
        assert Browser(console.url).login("sgw_guess-1")[0] == 401
        assert Browser(console.url).login(rig.auditor_token)[0] == 200  # clears the count
        for n in range(3):
            assert Browser(console.url).login(f"sgw_guess-{n + 2}")[0] == 401
        b = Browser(console.url)
        b.get("/login")
        before = len(asked)
        req = urllib.request.Request(
            console.url + "/login",
            data=urllib.parse.urlencode({"csrf": b.csrf, "token": rig.auditor_token}).encode(),
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(urllib.request.HTTPCookieProcessor(b.jar)).open(req)
        assert refused.value.code == 429
        assert 1 <= int(refused.value.headers["retry-after"]) <= 61
        assert "Too many log-in attempts" in refused.value.read().decode()
        assert len(asked) == before  # the gateway was not asked
    guesses = [t for t in asked if t != rig.auditor_token]
    assert guesses == ["sgw_guess-1", "sgw_guess-2", "sgw_guess-3", "sgw_guess-4"]


def test_post_without_the_sessions_csrf_token_is_refused(rig: Rig) -> None:
    """A form posted without, or with another session's, CSRF token is 403 and does nothing."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    other = Browser(rig.url)
    other.get("/login")
    for csrf in ("", other.csrf):
        status, _, _ = b.post("/subject", {"csrf": csrf, "subject": "u1001"})
        assert status == 403
    status, _, _ = b.post("/logout", {"csrf": other.csrf})
    assert status == 403 and b.get("/")[1] == rig.url + "/"  # still logged in


def test_cross_origin_post_is_refused_even_with_the_token(rig: Rig) -> None:
    """A POST whose Origin is another site is 403 even if it carries a valid CSRF token."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    status, _, _ = b.post(
        "/subject", {"csrf": b.csrf, "subject": "u1001"}, {"Origin": "https://evil.example"}
    )
    assert status == 403


def test_forged_or_ended_session_cookie_names_nobody(rig: Rig) -> None:
    """An altered cookie, and the cookie of a logged-out session, lead back to the login."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    [cookie] = list(b.jar)
    stolen = cookie.value
    cookie.value = stolen[:-2] + ("AA" if not stolen.endswith("AA") else "BB")
    assert b.get("/")[1] == rig.url + "/login"
    b2 = Browser(rig.url)
    b2.login(rig.auditor_token)
    [c2] = list(b2.jar)
    old = c2.value
    b2.post("/logout", {"csrf": b2.csrf})
    replay = Browser(rig.url)
    replay.jar.set_cookie(c2)
    c2.value = old
    assert replay.get("/")[1] == rig.url + "/login"


def test_session_cookie_is_httponly_strict_and_rotated_at_login(rig: Rig) -> None:
    """The cookie is HttpOnly and SameSite=Strict; logging in issues a new session id."""
    b = Browser(rig.url)
    b.get("/login")
    [before] = list(b.jar)
    b.login(rig.auditor_token)
    [after] = list(b.jar)
    assert before.value != after.value
    assert after.has_nonstandard_attr("HttpOnly")
    req = urllib.request.Request(rig.url + "/login")
    with urllib.request.urlopen(req) as r:
        set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie


def test_every_response_carries_a_strict_csp(rig: Rig) -> None:
    """Pages and static files forbid inline script, third-party origins and framing."""
    for path in ("/login", "/static/verify.js"):
        with urllib.request.urlopen(rig.url + path) as r:
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"


def test_no_page_holds_inline_script_or_style(rig: Rig) -> None:
    """Every page passes its own CSP: no inline <script> body, no style attribute."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    pages = [b.get(p)[2] for p in ("/", "/disclosures", "/refusals", "/charts", "/entry/1")]
    pages.append(b.post("/subject", {"csrf": b.csrf, "subject": "u1001"})[2])
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert " style=" not in html and "<style" not in html


def test_subject_report_names_recipients_and_erasure_state(rig: Rig) -> None:
    """The report lists who got u1001's data; an unknown subject is 'not linkable'."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    status, url, html = b.post("/subject", {"csrf": b.csrf, "subject": "u1001"})
    assert status == 200 and "u1001" not in url
    recipients = re.search(r'id="recipients">([^<]*)<', html)
    assert recipients is not None and recipients.group(1) == "adco, logiship"
    assert "linkable: the ledger can still find" in html
    _, _, unknown = b.post("/subject", {"csrf": b.csrf, "subject": "nobody-at-all"})
    assert "not linkable" in unknown


def test_export_holds_exactly_the_rows_shown(rig: Rig) -> None:
    """CSV and JSON exports of a filtered page have exactly that page's indexes."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    form = {"csrf": b.csrf, "decision": "DENY", "reason": "R2"}
    _, _, html = b.post("/disclosures", form)
    shown = [int(i) for i in re.findall(r'<td><a href="/entry/(\d+)">', html)]
    assert shown
    last = str(shown[-1])
    _, _, as_json = b.post("/disclosures", {**form, "export": "json", "last": last})
    rows = json.loads(as_json)
    assert [r["index"] for r in rows] == shown
    assert all(
        r["decision"] == "DENY" and any(c.startswith("R2") for c in r["reasons"]) for r in rows
    )
    _, _, as_csv = b.post("/disclosures", {**form, "export": "csv", "last": last})
    table = list(csv.DictReader(io.StringIO(as_csv)))
    assert [int(r["index"]) for r in table] == shown


def test_cursor_pages_cover_the_ledger_once(rig: Rig) -> None:
    """Following 'next page' visits every entry exactly once, in order."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    seen: list[int] = []
    before = rig.gw.gateway.ledger.size
    _, _, html = b.get("/disclosures")
    while True:
        seen += [int(i) for i in re.findall(r'<td><a href="/entry/(\d+)">', html)]
        m = re.search(
            r'<input type="hidden" name="cursor" value="(\d+)">\s*<button type="submit" '
            r'id="next-page"',
            html,
        )
        if not m:
            break
        _, _, html = b.post("/disclosures", {"csrf": b.csrf, "cursor": m.group(1)})
    # Counted refusals may be flushed to the ledger meanwhile: the walk sees a prefix that is
    # at least the ledger as it was before.
    assert seen == list(range(len(seen))) and before <= len(seen) <= rig.gw.gateway.ledger.size


def test_bad_filter_values_are_400_with_the_reason(rig: Rig) -> None:
    """An unknown decision or a malformed time is refused with a message, not a crash."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    status, _, html = b.post("/disclosures", {"csrf": b.csrf, "decision": "MAYBE"})
    assert status == 400 and "decision must be ALLOW or DENY" in html
    status, _, html = b.post("/disclosures", {"csrf": b.csrf, "since": "yesterday"})
    assert status == 400 and "since must be a date" in html
    assert b.get("/refusals?days=9999")[0] == 400
    assert b.get("/entry/999999")[0] == 404


def test_each_page_view_is_an_auditor_read_logged_by_the_gateway(rig: Rig) -> None:
    """The gateway logs the console's reads as the logged-in auditor, via the console."""
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    with structlog.testing.capture_logs() as logs:
        assert b.get("/entry/2")[0] == 200
    reads = [e for e in logs if e.get("event") == "audit.read"]
    assert {(e["rpc"], e["principal"], e["via"]) for e in reads} == {
        ("GetReceipt", "auditor:alice", "console:web")
    }


def test_share_gateway_console_process_serves_a_running_gateway(rig: Rig) -> None:
    """`share-gateway console --gateway ... --listen ...` (the README's command) starts, lets
    the auditor log in, and stops on SIGTERM (uvicorn shuts down, then re-raises it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SHARE_GATEWAY_DATA_DIR": str(rig.gw.gateway.settings.data_dir)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", "console"),
            *("--gateway", rig.gw.address, "--listen", f"127.0.0.1:{port}"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        b = Browser(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                if b.get("/login")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        status, url, body = b.login(rig.auditor_token)
        assert (status, url) == (200, f"http://127.0.0.1:{port}/")
        assert re.search(r'id="ledger-size">\d+<', body)
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)


def test_consistency_proofs_need_a_login_and_valid_sizes(rig: Rig) -> None:
    """/consistency.json answers the logged-in auditor only, and 400 for sizes that are not."""
    anonymous = Browser(rig.url)
    assert anonymous.get("/consistency.json?old=1&new=2")[1] == rig.url + "/login"
    b = Browser(rig.url)
    b.login(rig.auditor_token)
    status, _, body = b.get("/consistency.json?old=1&new=3")
    assert status == 200 and json.loads(body)["new_size"] == 3
    assert b.get("/consistency.json?old=-1&new=3")[0] == 400
    assert b.get("/consistency.json?old=5&new=3")[0] == 400  # the gateway refuses

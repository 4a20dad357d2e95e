"""The console's web application: login, the six pages, and the browser-side proof check.

Invariants (ADR 0008):
- Every page that reveals ledger data first needs a live logged-in session; its data comes
  from AuditService calls made with that session's auditor token (an auditor read the
  gateway logs), never from a cache shared between sessions.
- Every POST carries the session's CSRF token and a same-origin ``Origin`` (when sent);
  filters that may hold a subject id travel only in POST bodies.
- Every response carries a strict CSP (scripts and styles only from ``/static``, no inline
  script or style, no third-party origin), ``no-store`` caching and no referrer.
- The entry page hands the browser the raw receipt; ``static/verify.js`` checks it there
  with a verifier key the auditor entered, and checks the checkpoint's consistency with the
  last one that browser verified (``/consistency.json``), so a lying console server, or a log
  showing this browser a forked history, shows red.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.console import charts
from gateway.console.client import AuditClient
from gateway.console.disclosures import (
    ACTIONS,
    COLUMNS,
    DECISIONS,
    DisclosureQuery,
    QueryError,
    entry_row,
    fetch_page,
    iso,
    rows_csv,
    rows_json,
)
from gateway.console.sessions import LoginThrottle, Session, SessionsFull, SessionStore
from gateway.console.tally import tally_disclosures, tally_refusals, window
from gateway.services.audit import receipt_document_from_message
from gateway.settings import ConsoleSettings
from partner_gateway.v1 import audit_pb2

_log = structlog.get_logger("gateway.console")

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_DAY_CHOICES = (7, 30, 90, 365)
_RECENT = 50  # entries the overview reads to find the policy revision in force
_EM_DASH = "\u2014"


class LoginRequired(Exception):
    """No live logged-in session: answered with a redirect to the login page."""


class SecurityHeaders:
    """ASGI middleware: the same protective headers on every response, static files too."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self._app = app
        headers = {
            "content-security-policy": CSP,
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
            "x-frame-options": "DENY",
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-resource-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=()",
            "cache-control": "no-store",
        }
        if https:
            headers["strict-transport-security"] = "max-age=31536000"
        self._headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self._app(scope, receive, send_with_headers)


def note_signatures(note: str) -> list[tuple[str, str]]:
    """``(name, key id hex)`` of each signature line of a C2SP signed note (unverified:
    for display; the log's own and any witness cosignatures)."""
    sep = note.rfind("\n\n")
    out = []
    for line in note[sep + 2 :].splitlines() if sep >= 0 else []:
        if not line.startswith(_EM_DASH + " "):
            continue
        name, _, sig = line[2:].partition(" ")
        try:
            raw = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        out.append((name, raw[:4].hex()))
    return out


def _age(t: datetime, now: datetime) -> str:
    s = int((now - t).total_seconds())
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def create_app(
    *,
    settings: ConsoleSettings,
    connect: Callable[[], AuditClient],
    https: bool = False,
) -> ASGIApp:
    """Build the console.

    Args:
        settings: Console settings (session lifetimes, scan limit).
        connect: Opens the AuditService client; called once on the server's event loop.
        https: The console is served over TLS: cookies are ``Secure`` and ``__Host-``.
    """
    store = SessionStore(
        idle_s=settings.session_idle_s,
        max_s=settings.session_max_s,
        max_sessions=settings.max_sessions,
    )
    throttle = LoginThrottle(settings.login_rate)
    templates = Jinja2Templates(directory=HERE / "templates")
    cookie = "__Host-sgw-console" if https else "sgw-console"
    clients: dict[str, AuditClient] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients["audit"] = connect()
        try:
            yield
        finally:
            await clients["audit"].close()

    def audit() -> AuditClient:
        return clients["audit"]

    def set_cookie(response: Response, session: Session) -> Response:
        response.set_cookie(
            cookie,
            store.cookie_value(session),
            max_age=int(settings.session_max_s),
            path="/",
            secure=https,
            httponly=True,
            samesite="strict",
        )
        return response

    def session_of(request: Request) -> Session | None:
        return store.from_cookie(request.cookies.get(cookie))

    def logged_in(request: Request) -> tuple[Session, str]:
        session = session_of(request)
        if session is None or session.token is None:
            raise LoginRequired
        request.state.session = session
        return session, session.token

    async def posted(request: Request, session: Session | None) -> FormData:
        """The form of a POST whose CSRF token and origin check out."""
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise HTTPException(403, "cross-origin form post refused")
        form = await request.form(max_files=0, max_fields=50)
        presented = form.get("csrf")
        if session is None or not isinstance(presented, str) or not session.csrf_ok(presented):
            raise HTTPException(403, "the form is stale or not from this console: reload it")
        return form

    def page(
        request: Request,
        name: str,
        session: Session | None,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
    ) -> Response:
        ctx = {
            "csrf": session.csrf if session else "",
            "logged_in": bool(session and session.token),
        }
        ctx.update(context or {})
        ctx["nav"] = request.url.path
        return templates.TemplateResponse(request, name, ctx, status_code=status_code)

    # -- login --------------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        session = session_of(request) or store.new()
        return set_cookie(page(request, "login.html", session), session)

    async def login(request: Request) -> Response:
        session = session_of(request)
        form = await posted(request, session)
        assert session is not None
        token = str(form.get("token", "")).strip()
        address = request.client.host if request.client else "unknown"
        error = ""
        if not token:
            error = "empty"
        elif (wait := throttle.attempt(address)) is not None:
            _log.warning("console_login_throttled", client=address, retry_after_s=wait)
            response = page(request, "login.html", session, {"error": "throttled"}, 429)
            response.headers["retry-after"] = str(wait)
            return response
        else:
            try:
                await audit().checkpoint(token)  # the gateway decides: an auditor's token?
            except grpc.RpcError as e:
                code = e.code()
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    error = "refused"
                else:
                    raise
        if error:
            return page(request, "login.html", session, {"error": error}, status_code=401)
        throttle.succeeded(address)
        new = store.login(session, token)
        return set_cookie(RedirectResponse("/", status_code=303), new)

    async def logout(request: Request) -> Response:
        session = session_of(request)
        await posted(request, session)
        if session is not None:
            store.end(session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie, path="/", secure=https, httponly=True, samesite="strict")
        return response

    # -- pages --------------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        session, token = logged_in(request)
        cp = await audit().checkpoint(token)
        recent: list[audit_pb2.LedgerEntry] = []
        if cp.size:
            # The last entries (the cursor is exclusive: after index size - 1 - n).
            n = min(cp.size, _RECENT)
            after = str(cp.size - 1 - n) if cp.size > n else ""
            resp = await audit().query(
                token, audit_pb2.DisclosureFilter(), page_token=after, page_size=n
            )
            recent = list(resp.entries)
        newest = recent[-1] if recent else None
        revision = next((e.policy_revision for e in reversed(recent) if e.policy_revision), "")
        now = datetime.now(UTC)
        newest_time = newest.time.ToDatetime(tzinfo=UTC) if newest else None
        return page(
            request,
            "overview.html",
            session,
            {
                "cp": cp,
                "root_hex": cp.root.hex(),
                "signatures": note_signatures(cp.note),
                "newest": newest,
                "revision": revision,
                "newest_time": iso(newest.time) if newest else "",
                "newest_age": _age(newest_time, now) if newest_time else "",
                "now": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            },
        )

    async def disclosures(request: Request) -> Response:
        session, token = logged_in(request)
        q = DisclosureQuery()
        if request.method == "POST":
            form = await posted(request, session)
            try:
                q = DisclosureQuery.from_form(form)
            except QueryError as e:
                return page(
                    request,
                    "disclosures.html",
                    session,
                    _disclosure_ctx(q, [], "", error=str(e)),
                    status_code=400,
                )
            export = form.get("export")
            if export in ("csv", "json"):
                last = str(form.get("last", ""))
                if not last.isdigit():
                    raise HTTPException(400, "export needs the last shown index")
                entries, _ = await fetch_page(audit(), token, q, last_index=int(last))
                rows = [entry_row(e) for e in entries]
                body = rows_csv(rows) if export == "csv" else rows_json(rows)
                media = "text/csv" if export == "csv" else "application/json"
                return Response(
                    body,
                    media_type=f"{media}; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="disclosures.{export}"'},
                )
        entries, next_cursor = await fetch_page(audit(), token, q)
        return page(
            request,
            "disclosures.html",
            session,
            _disclosure_ctx(q, [entry_row(e) for e in entries], next_cursor),
        )

    async def subject(request: Request) -> Response:
        session, token = logged_in(request)
        ctx: dict[str, Any] = {"subject": "", "report": None}
        if request.method == "POST":
            form = await posted(request, session)
            subject_id = str(form.get("subject", "")).strip()
            if not subject_id or len(subject_id) > 200:
                raise HTTPException(400, "enter a subject id (at most 200 characters)")
            report = await audit().subject_report(token, subject_id)
            ctx = {
                "subject": subject_id,
                "report": report,
                "rows": [
                    {
                        "index": d.ledger_index,
                        "time": iso(d.time),
                        "partner": d.partner_id,
                        "purpose": d.purpose,
                        "action": d.action,
                        "mode": d.mode,
                        "categories": list(d.categories),
                    }
                    for d in report.disclosures
                ],
                "printed": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        return page(request, "subject.html", session, ctx)

    async def scan(
        request: Request, decision: str
    ) -> tuple[Session, list[date], list[audit_pb2.LedgerEntry], dict[str, Any]]:
        """The logged-in session, the window's days (``?days=``), the window's entries of one
        decision (at most ``max_scan_entries``) and the page context they share."""
        session, token = logged_in(request)
        raw = request.query_params.get("days", "30")
        if not raw.isdigit() or int(raw) not in _DAY_CHOICES:
            raise HTTPException(400, f"days must be one of {_DAY_CHOICES}")
        days = window(int(raw))
        since = Timestamp()
        since.FromDatetime(datetime.combine(days[0], datetime.min.time(), tzinfo=UTC))
        flt = audit_pb2.DisclosureFilter(decision=decision, since=since)
        out: list[audit_pb2.LedgerEntry] = []
        truncated = False
        async for e in audit().stream(token, flt):
            if len(out) >= settings.max_scan_entries:
                truncated = True
                break
            out.append(e)
        ctx = {"days": int(raw), "choices": _DAY_CHOICES, "truncated": truncated}
        return session, days, out, ctx

    async def refusals(request: Request) -> Response:
        session, days, entries, ctx = await scan(request, "DENY")
        t = tally_refusals(entries)
        return page(
            request,
            "refusals.html",
            session,
            {
                **ctx,
                "tally": t,
                "by_rule_chart": charts.stacked_bars(
                    charts.top_series(t.rule_days), days, label="Refusals per day by rule"
                ),
                "by_partner_chart": charts.stacked_bars(
                    charts.top_series(t.partner_days), days, label="Refusals per day by partner"
                ),
            },
        )

    async def chart_page(request: Request) -> Response:
        session, days, entries, ctx = await scan(request, "ALLOW")
        t = tally_disclosures(entries)
        partner = charts.top_series(t.by_partner)
        purpose = charts.top_series(t.by_purpose)
        return page(
            request,
            "charts.html",
            session,
            {
                **ctx,
                "day_list": days,
                "tally": t,
                "tables": (("partner", partner), ("purpose", purpose)),
                "by_partner_chart": charts.stacked_bars(
                    partner, days, label="Disclosures per day by partner"
                ),
                "by_purpose_chart": charts.stacked_bars(
                    purpose, days, label="Disclosures per day by purpose"
                ),
            },
        )

    async def entry(request: Request) -> Response:
        session, token = logged_in(request)
        index = int(request.path_params["index"])
        receipt = await audit().receipt(token, index)
        doc = receipt_document_from_message(receipt)
        return page(
            request,
            "entry.html",
            session,
            {
                "index": index,
                "row": entry_row(receipt.entry),
                "entry": receipt.entry,
                "receipt_json": json.dumps(doc, ensure_ascii=False),
            },
        )

    async def receipt_file(request: Request) -> Response:
        """The receipt as the CLI saves it, for ``share-gateway audit verify-receipt``."""
        _, token = logged_in(request)
        index = int(request.path_params["index"])
        doc = receipt_document_from_message(await audit().receipt(token, index))
        return Response(
            json.dumps(doc, ensure_ascii=False, indent=1) + "\n",
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="receipt-{index}.json"'},
        )

    async def consistency(request: Request) -> Response:
        """An RFC 9162 consistency proof between two tree sizes, for verify.js."""
        _, token = logged_in(request)
        sizes = [request.query_params.get(k, "") for k in ("old", "new")]
        if not all(s.isdigit() and len(s) <= 19 for s in sizes):
            raise HTTPException(400, "old and new must be tree sizes")
        proof = await audit().consistency(token, int(sizes[0]), int(sizes[1]))
        doc = {
            "old_size": proof.old_size,
            "new_size": proof.new_size,
            "proof": [h.hex() for h in proof.proof],
        }
        return Response(json.dumps(doc), media_type="application/json")

    # -- errors -------------------------------------------------------------------------

    async def to_login(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    async def rpc_failed(request: Request, exc: Exception) -> Response:
        code = exc.code() if isinstance(exc, grpc.RpcError) else None
        session = getattr(request.state, "session", None)
        if code is grpc.StatusCode.UNAUTHENTICATED:
            if session is not None:  # the token was revoked: the session ends with it
                store.end(session)
            return RedirectResponse("/login", status_code=303)
        status = {
            grpc.StatusCode.PERMISSION_DENIED: 403,
            grpc.StatusCode.INVALID_ARGUMENT: 400,
            grpc.StatusCode.OUT_OF_RANGE: 400,
            grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
            grpc.StatusCode.NOT_FOUND: 404,
            grpc.StatusCode.UNAVAILABLE: 503,
            grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        }.get(code, 502)  # type: ignore[arg-type]
        details = exc.details() if isinstance(exc, grpc.RpcError) else ""
        message = f"gateway: {code.name if code else 'error'}: {details}"
        return page(request, "error.html", session, {"message": message}, status_code=status)

    async def sessions_full(request: Request, exc: Exception) -> Response:
        _log.warning("console_sessions_full", max_sessions=settings.max_sessions)
        message = "Too many logged-in sessions: try again later."
        response = page(request, "error.html", None, {"message": message}, status_code=503)
        response.headers["retry-after"] = "60"
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        session = getattr(request.state, "session", None) or session_of(request)
        return page(
            request, "error.html", session, {"message": exc.detail}, status_code=exc.status_code
        )

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview, methods=["GET"]),
        Route("/disclosures", disclosures, methods=["GET", "POST"]),
        Route("/subject", subject, methods=["GET", "POST"]),
        Route("/refusals", refusals, methods=["GET"]),
        Route("/charts", chart_page, methods=["GET"]),
        Route("/entry/{index:int}", entry, methods=["GET"]),
        Route("/entry/{index:int}/receipt.json", receipt_file, methods=["GET"]),
        Route("/consistency.json", consistency, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            LoginRequired: to_login,
            grpc.RpcError: rpc_failed,
            HTTPException: http_error,
            SessionsFull: sessions_full,
        },
    )
    return SecurityHeaders(app, https=https)


def _disclosure_ctx(
    q: DisclosureQuery, rows: list[dict[str, Any]], next_cursor: str, *, error: str = ""
) -> dict[str, Any]:
    return {
        "q": q,
        "rows": rows,
        "columns": COLUMNS,
        "next_cursor": next_cursor,
        "actions": ACTIONS,
        "decisions": DECISIONS,
        "error": error,
        "last_index": rows[-1]["index"] if rows else None,
    }

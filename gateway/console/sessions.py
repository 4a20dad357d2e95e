"""Console sessions: server-side, short-lived, named by a signed random cookie.

Invariants:
- The auditor's bearer token lives only in this process's memory, never in a cookie, a URL
  or a page. The cookie holds a random session id signed with a per-process key
  (itsdangerous): a forged or altered cookie names no session. A restart ends every session.
- A session ends ``idle_s`` after its last request and ``max_s`` after it was made,
  whichever comes first; an ended session is gone, not merely flagged.
- Logging in replaces the session id (no fixation); every session has its own CSRF token,
  compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer


@dataclass(kw_only=True)
class Session:
    """One browser's session; ``token`` is set once an auditor logged in."""

    id: str
    csrf: str
    created: float
    last_seen: float
    token: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.token is not None

    def csrf_ok(self, presented: str) -> bool:
        """True if ``presented`` is this session's CSRF token (constant-time compare)."""
        return hmac.compare_digest(self.csrf.encode(), presented.encode())


class SessionStore:
    """In-memory sessions with idle and absolute expiry.

    Args:
        idle_s: Seconds without a request after which a session ends.
        max_s: Seconds after creation after which a session ends regardless.
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self, *, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle = idle_s
        self._max = max_s
        self._clock = clock
        self._signer = Signer(secrets.token_bytes(32), salt="share-gateway-console-session")
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self) -> Session:
        """A fresh anonymous session (it carries the CSRF token of the login form)."""
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now, last_seen=now
        )
        with self._lock:
            self._purge(now)
            self._sessions[session.id] = session
        return session

    def cookie_value(self, session: Session) -> str:
        return self._signer.sign(session.id).decode()

    def from_cookie(self, value: str | None) -> Session | None:
        """The live session the cookie names, its idle timer restarted; else ``None``."""
        if not value:
            return None
        try:
            sid = self._signer.unsign(value).decode()
        except BadSignature:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[sid]
                return None
            session.last_seen = now
            return session

    def login(self, old: Session, token: str) -> Session:
        """Replace ``old`` by a new logged-in session holding ``token``."""
        self.end(old)
        session = self.new()
        session.token = token
        return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self._idle or now - session.created > self._max

    def _purge(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[sid]

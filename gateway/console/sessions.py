"""Console sessions: server-side, short-lived, named by a signed random cookie.

Invariants:
- The auditor's bearer token lives only in this process's memory, never in a cookie, a URL
  or a page. The cookie holds a random session id signed with a per-process key
  (itsdangerous): a forged or altered cookie names no session. A restart ends every session.
- A session ends ``idle_s`` after its last request and ``max_s`` after it was made,
  whichever comes first; an ended session is gone, not merely flagged.
- Logging in replaces the session id (no fixation); every session has its own CSRF token,
  compared in constant time.
- Memory is bounded: at most ``max_sessions`` live sessions. Anyone can make an anonymous
  session (every login form is one), so when the store is full the oldest anonymous session
  makes room; logged-in sessions are never evicted, and when every slot holds one, a new
  session is refused (``SessionsFull``).
- Guessing tokens is throttled per client address (``LoginThrottle``): every login attempt
  counts, a successful one clears the address's count, and an exhausted address is answered
  without asking the gateway.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import limits
from itsdangerous import BadSignature, Signer
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class SessionsFull(Exception):
    """Every session slot holds a logged-in session: no new session can be made now."""


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
        max_sessions: Live sessions kept at most (anonymous and logged in).
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        *,
        idle_s: float,
        max_s: float,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_s
        self._max = max_s
        self._capacity = max_sessions
        self._clock = clock
        self._signer = Signer(secrets.token_bytes(32), salt="share-gateway-console-session")
        self._sessions: dict[str, Session] = {}
        self._anonymous: OrderedDict[str, None] = OrderedDict()  # oldest first
        self._purged = clock()
        self._lock = threading.Lock()

    def new(self, *, token: str | None = None) -> Session:
        """A fresh session: anonymous (it carries the login form's CSRF token) or, with
        ``token``, logged in.

        Raises:
            SessionsFull: every slot holds a logged-in session.
        """
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            token=token,
        )
        with self._lock:
            if len(self._sessions) >= self._capacity or now - self._purged > 1.0:
                self._purge(now)  # a full scan: at most once a second, or when full
            if len(self._sessions) >= self._capacity:
                if not self._anonymous:
                    raise SessionsFull
                oldest, _ = self._anonymous.popitem(last=False)
                del self._sessions[oldest]
            self._sessions[session.id] = session
            if token is None:
                self._anonymous[session.id] = None
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
                self._drop(sid)
                return None
            session.last_seen = now
            return session

    def login(self, old: Session, token: str) -> Session:
        """Replace ``old`` by a new logged-in session holding ``token``.

        Raises:
            SessionsFull: every slot holds a logged-in session.
        """
        self.end(old)
        return self.new(token=token)

    def end(self, session: Session) -> None:
        with self._lock:
            self._drop(session.id)

    def _drop(self, sid: str) -> None:
        self._sessions.pop(sid, None)
        self._anonymous.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self._idle or now - session.created > self._max

    def _purge(self, now: float) -> None:
        self._purged = now
        for sid in [s.id for s in self._sessions.values() if self._expired(s, now)]:
            self._drop(sid)


class LoginThrottle:
    """Login attempts per client address in a moving window (the ``limits`` library).

    Args:
        rate: A ``limits`` rate string, e.g. ``"10 per minute"``.
    """

    def __init__(self, rate: str) -> None:
        self._item = limits.parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def attempt(self, address: str) -> int | None:
        """Count one attempt from ``address``; None if allowed, else seconds to wait."""
        if self._limiter.hit(self._item, address):
            return None
        reset = self._limiter.get_window_stats(self._item, address).reset_time
        return max(1, int(reset - time.time()) + 1)

    def succeeded(self, address: str) -> None:
        """A valid token was presented from ``address``: its earlier attempts are forgiven."""
        self._limiter.clear(self._item, address)

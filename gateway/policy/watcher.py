"""Reload policies when their files change, without a restart (issue 3 item 5)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from gateway.errors import GatewayError, PolicyLoadError
from gateway.policy.bundle import compute_revision
from gateway.policy.engine import PolicyEngine

_log = logging.getLogger(__name__)


class PolicyWatcher:
    """Polls the policy directory and calls ``engine.reload()`` when its revision changes.

    The revision is the hash of the served files, so an edit that restores the old bytes
    is no change. A bundle that fails to load is logged once per bad revision and the
    engine keeps serving the previous one.

    Args:
        engine: The engine to reload.
        policy_dir: The directory the engine reads.
        interval_s: Polling interval; ``0`` disables ``start()``.
    """

    def __init__(self, *, engine: PolicyEngine, policy_dir: Path, interval_s: float) -> None:
        self._engine = engine
        self._dir = Path(policy_dir)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = engine.revision
        self.last_error: str | None = None

    def check_once(self) -> bool:
        """Compare the directory with the last seen revision; reload if it changed.

        Returns:
            True when a new revision was loaded.
        """
        try:
            on_disk = compute_revision(self._dir)
        except GatewayError as e:
            _log.warning("policy watch: cannot read %s: %s", self._dir, e.message)
            return False
        if on_disk == self._seen:
            return False
        self._seen = on_disk  # a bad revision is reported once, not every tick
        try:
            loaded = self._engine.reload()
        except PolicyLoadError as e:
            self.last_error = e.message
            _log.error(
                "policy reload refused, revision %s keeps serving: %s",
                self._engine.revision,
                e.message,
            )
            return False
        except GatewayError as e:  # e.g. OPA unreachable: retry next tick
            self._seen = self._engine.revision
            _log.error("policy reload failed: %s", e.message)
            return False
        self.last_error = None
        _log.info("policy reloaded: revision %s", loaded)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check_once()
            except Exception:  # the watcher must never die silently
                _log.exception("policy watch failed")

    def start(self) -> None:
        """Start polling in a daemon thread (no-op when the interval is 0)."""
        if self._interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="policy-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

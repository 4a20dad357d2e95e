"""Partner outboxes (R17): encrypted staging, pull-time re-decision, acknowledgement.

Public API: ``Outbox`` (the workflow), ``OutboxStore`` (encrypted storage), ``StagedShare``,
``Pulled``, ``parse_cursor`` and ``OutboxIntegrityError``.
"""

from __future__ import annotations

from gateway.outbox.delivery import Outbox, Pulled, parse_cursor
from gateway.outbox.errors import OutboxIntegrityError
from gateway.outbox.store import OutboxStore, StagedShare

__all__ = ["Outbox", "OutboxIntegrityError", "OutboxStore", "Pulled", "StagedShare", "parse_cursor"]

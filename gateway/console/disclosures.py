"""The Disclosures page's query: form fields in, AuditService filter and table rows out.

Pure except ``fetch_page``, which pages through ``AuditClient.query``.

Invariants:
- A filter is only ever submitted in a POST body, never a URL: a subject id is personal data.
- The reason-code filter is applied here (the AuditService has none): the console reads
  server pages until it has a page of matches, and its cursor is the last index it read, so
  paging never skips or repeats an entry.
- An export carries the page's start cursor and last shown index and re-reads exactly that
  span: the file holds exactly the rows that were on the screen.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auditing import ENTRY_COLUMNS
from gateway.console.client import AuditClient
from partner_gateway.v1 import audit_pb2

ACTIONS = ("SHARE", "TRANSFER", "PUBLIC_DISCLOSURE")
DECISIONS = ("ALLOW", "DENY")
PAGE_SIZE = 50
# Server pages read per view while filtering by reason code; the cursor resumes after them.
_MAX_SCAN_PAGES = 20
_SCAN_PAGE = 500
COLUMNS = ENTRY_COLUMNS


class QueryError(ValueError):
    """A form value that is not a valid filter (shown to the auditor, HTTP 400)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DisclosureQuery:
    """The Disclosures form; empty strings mean "any"."""

    subject: str = ""
    partner: str = ""
    purpose: str = ""
    action: str = ""
    decision: str = ""
    reason: str = ""
    since: str = ""  # YYYY-MM-DDTHH:MM (UTC) or YYYY-MM-DD
    until: str = ""
    cursor: str = ""  # the page starts after this index; "" = from the start

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> DisclosureQuery:
        """Read and validate the form.

        Raises:
            QueryError: an unknown action or decision, a bad time or cursor, an overlong value.
        """
        values = {}
        for f in fields(cls):
            raw = form.get(f.name, "")
            value = raw.strip() if isinstance(raw, str) else ""
            if len(value) > 200:
                raise QueryError(f"{f.name} is longer than 200 characters")
            values[f.name] = value
        q = cls(**values)
        if q.action and q.action.upper() not in ACTIONS:
            raise QueryError(f"action must be one of {', '.join(ACTIONS)}")
        if q.decision and q.decision.upper() not in DECISIONS:
            raise QueryError("decision must be ALLOW or DENY")
        if q.cursor and not (q.cursor.isdigit() and len(q.cursor) <= 19):
            raise QueryError("cursor must be a ledger index")
        parse_time(q.since, "since")
        parse_time(q.until, "until")
        return q

    def at(self, cursor: str) -> DisclosureQuery:
        """The same filter starting after ``cursor``."""
        return replace(self, cursor=cursor)

    def hidden(self) -> dict[str, str]:
        """The fields to repost (pagination, export), empty ones left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def to_filter(self) -> audit_pb2.DisclosureFilter:
        flt = audit_pb2.DisclosureFilter(
            subject_id=self.subject,
            partner_id=self.partner,
            purpose=self.purpose,
            action=self.action.upper(),
            decision=self.decision.upper(),
        )
        for name, text in (("since", self.since), ("until", self.until)):
            t = parse_time(text, name)
            if t is not None:
                ts = Timestamp()
                ts.FromDatetime(t)
                getattr(flt, name).CopyFrom(ts)
        return flt

    def matches_reason(self, entry: audit_pb2.LedgerEntry) -> bool:
        """No reason filter, or a reason code equal to it or within it (``R12`` matches
        ``R12.cross_border_not_authorised``)."""
        r = self.reason
        return not r or any(c == r or c.startswith(r + ".") for c in entry.reason_codes)


def parse_time(text: str, name: str) -> datetime | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, read as UTC; ``""`` is ``None``.

    Raises:
        QueryError: not such a time.
    """
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise QueryError(f"{name} must be a date or date and time (UTC)") from e
    if t.tzinfo is not None:
        return t.astimezone(UTC)
    return t.replace(tzinfo=UTC)


async def fetch_page(
    client: AuditClient,
    token: str,
    q: DisclosureQuery,
    *,
    page_size: int = PAGE_SIZE,
    last_index: int | None = None,
) -> tuple[list[audit_pb2.LedgerEntry], str]:
    """One page of matching entries after ``q.cursor`` and the cursor of the next page
    (``""`` after the last page). ``last_index`` stops at that index (exports).
    """
    rows: list[audit_pb2.LedgerEntry] = []
    cursor = q.cursor
    flt = q.to_filter()
    server_page = _SCAN_PAGE if q.reason else page_size
    for _ in range(_MAX_SCAN_PAGES):
        resp = await client.query(token, flt, page_token=cursor, page_size=server_page)
        for e in resp.entries:
            if last_index is not None and e.index > last_index:
                return rows, ""
            if not q.matches_reason(e):
                continue
            rows.append(e)
            if len(rows) == page_size:
                return rows, str(e.index)
        if not resp.next_page_token:
            return rows, ""
        cursor = resp.next_page_token
    return rows, cursor


def iso(ts: Timestamp) -> str:
    """UTC to the second, as the pages and exports show times."""
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def entry_row(e: audit_pb2.LedgerEntry) -> dict[str, Any]:
    """The table row of an entry (``COLUMNS``); lists stay lists."""
    return {
        "index": e.index,
        "time": iso(e.time),
        "decision": e.decision,
        "partner": e.partner_id,
        "purpose": e.purpose,
        "action": e.action,
        "mode": e.mode,
        "records": e.record_count,
        "categories": list(e.categories_disclosed),
        "reasons": list(e.reason_codes),
    }


def _cell(value: Any) -> str:
    text = " ".join(value) if isinstance(value, list) else str(value)
    # A cell a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV with a header line; list cells space-separated."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in rows:
        w.writerow([_cell(row[c]) for c in COLUMNS])
    return out.getvalue()


def rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON array of objects with the ``COLUMNS`` keys."""
    return json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n"

"""Counts over ledger entries for the Refusals and Charts pages. Pure: no I/O.

The AuditService has no aggregation RPC; the console streams the entries of the chosen
window (an auditor read like any other) and counts here. Days are UTC calendar days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gateway.auditing import DISCLOSING_MODES
from partner_gateway.v1 import audit_pb2

Series = dict[str, Counter[date]]
"""Label -> per-day counts."""


def rule_of(reason_code: str) -> str:
    """The rule a reason code belongs to: ``R12.cross_border_not_authorised`` -> ``R12``."""
    return reason_code.partition(".")[0]


def entry_day(entry: audit_pb2.LedgerEntry) -> date:
    return entry.time.ToDatetime(tzinfo=UTC).date()


def window(days: int, *, today: date | None = None) -> list[date]:
    """The ``days`` UTC days ending today, oldest first."""
    end = today or datetime.now(UTC).date()
    return [end - timedelta(days=n) for n in reversed(range(days))]


@dataclass(kw_only=True)
class RefusalTally:
    """Refusals (DENY entries) counted by rule, partner and day, and their reason codes."""

    total: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_partner: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    rule_days: Series = field(default_factory=dict)
    partner_days: Series = field(default_factory=dict)

    def top_reasons(self, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` most frequent reason codes, most frequent first, ties by name."""
        return sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def tally_refusals(entries: Iterable[audit_pb2.LedgerEntry]) -> RefusalTally:
    """Count DENY entries; an entry with several rules counts once for each of its rules."""
    t = RefusalTally()
    for e in entries:
        if e.decision != "DENY":
            continue
        day = entry_day(e)
        partner = e.partner_id or "(none)"
        t.total += 1
        t.by_partner[partner] += 1
        t.partner_days.setdefault(partner, Counter())[day] += 1
        rules = sorted({rule_of(r) for r in e.reason_codes}) or ["(none)"]
        for rule in rules:
            t.by_rule[rule] += 1
            t.rule_days.setdefault(rule, Counter())[day] += 1
        t.by_reason.update(e.reason_codes)
    return t


@dataclass(kw_only=True)
class DisclosureTally:
    """Disclosures (ALLOW entries where data left: modes share and pull) per day."""

    total: int = 0
    by_partner: Series = field(default_factory=dict)
    by_purpose: Series = field(default_factory=dict)


def tally_disclosures(entries: Iterable[audit_pb2.LedgerEntry]) -> DisclosureTally:
    """Count disclosures per partner and per purpose per day (staging is not a disclosure)."""
    t = DisclosureTally()
    for e in entries:
        if e.decision != "ALLOW" or e.mode not in DISCLOSING_MODES:
            continue
        day = entry_day(e)
        t.total += 1
        t.by_partner.setdefault(e.partner_id, Counter())[day] += 1
        t.by_purpose.setdefault(e.purpose, Counter())[day] += 1
    return t

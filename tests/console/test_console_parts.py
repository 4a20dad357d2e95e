"""The console's pure parts: sessions, filters, exports, counts, charts; and its certificate."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.console.app import note_signatures
from gateway.console.charts import OTHER, stacked_bars, top_series
from gateway.console.disclosures import DisclosureQuery, QueryError, entry_row, rows_csv
from gateway.console.sessions import LoginThrottle, SessionsFull, SessionStore
from gateway.console.tally import tally_disclosures, tally_refusals
from gateway.security.tls import channel_credentials
from ledger.checkpoint import Checkpoint, NoteSigner
from partner_gateway.v1 import audit_pb2, audit_pb2_grpc
from tests.console.conftest import Rig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_ends_after_idle_time_and_after_max_age() -> None:
    """Idle for longer than idle_s, or older than max_s though busy: the session is gone."""
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=300, clock=clock)
    s = store.login(store.new(), "tok")
    cookie = store.cookie_value(s)
    clock.now += 59
    assert store.from_cookie(cookie) is s
    clock.now += 61
    assert store.from_cookie(cookie) is None
    busy = store.login(store.new(), "tok")
    cookie = store.cookie_value(busy)
    for _ in range(7):  # 350 s in steps of 50: never idle, but past max_s
        clock.now += 50
        found = store.from_cookie(cookie)
    assert found is None and clock.now - busy.created > 300


def test_session_cookie_from_another_console_process_is_refused() -> None:
    """A cookie signed by another process's key names no session here."""
    mine, theirs = SessionStore(idle_s=60, max_s=60), SessionStore(idle_s=60, max_s=60)
    s = theirs.new()
    assert mine.from_cookie(theirs.cookie_value(s)) is None
    assert mine.from_cookie(s.id) is None  # the bare id, unsigned


def test_login_replaces_the_session_id() -> None:
    """The pre-login session id is dead after login (no fixation)."""
    store = SessionStore(idle_s=60, max_s=60)
    before = store.new()
    after = store.login(before, "tok")
    assert after.id != before.id and after.csrf != before.csrf
    assert store.from_cookie(store.cookie_value(before)) is None


def test_a_flood_of_login_forms_cannot_grow_the_store_or_evict_logged_in_auditors() -> None:
    """Anyone can open the login form (an anonymous session each): past max_sessions the
    oldest anonymous session makes room; logged-in sessions stay; when every slot holds one,
    a new session is refused."""
    store = SessionStore(idle_s=60, max_s=300, max_sessions=100)
    auditors = [store.login(store.new(), f"tok{i}") for i in range(40)]
    for _ in range(10_000):
        store.new()
    assert len(store) == 100
    assert all(store.from_cookie(store.cookie_value(a)) is a for a in auditors)
    for i in range(60):
        store.login(store.new(), f"more{i}")
    with pytest.raises(SessionsFull):
        store.new()


def test_login_attempts_are_counted_per_address_and_forgiven_after_a_valid_token() -> None:
    """Three attempts per address and window: the fourth waits (seconds given); another
    address is not affected; a valid token clears the address's count."""
    throttle = LoginThrottle("3 per minute")
    assert [throttle.attempt("10.0.0.9") for _ in range(3)] == [None, None, None]
    wait = throttle.attempt("10.0.0.9")
    assert wait is not None and 1 <= wait <= 61
    assert throttle.attempt("10.0.0.10") is None
    throttle.succeeded("10.0.0.9")
    assert throttle.attempt("10.0.0.9") is None


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"decision": "MAYBE"}, "decision"),
        ({"action": "SELL"}, "action"),
        ({"since": "2026-13-01"}, "since"),
        ({"cursor": "-1"}, "cursor"),
        ({"partner": "x" * 201}, "partner"),
    ],
)
def test_bad_filter_values_are_refused(form: dict[str, str], message: str) -> None:
    """Each malformed filter field raises QueryError naming it."""
    with pytest.raises(QueryError, match=message):
        DisclosureQuery.from_form(form)


def test_filter_times_are_utc_and_reason_matches_by_rule() -> None:
    """A naive time is UTC; reason 'R12' matches 'R12.x' but not 'R1.y'."""
    q = DisclosureQuery.from_form({"since": "2026-11-01T10:00", "reason": "R12"})
    assert q.to_filter().since.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert q.matches_reason(audit_pb2.LedgerEntry(reason_codes=["R12.cross_border"]))
    assert not q.matches_reason(audit_pb2.LedgerEntry(reason_codes=["R1.all_excluded"]))


def test_csv_export_quotes_cells_a_spreadsheet_would_run() -> None:
    """A value starting with = + - @ is exported with a leading quote (CSV injection)."""
    e = audit_pb2.LedgerEntry(index=3, partner_id="=HYPERLINK(1)", purpose="-2+3", decision="DENY")
    [row] = list(csv.DictReader(io.StringIO(rows_csv([entry_row(e)]))))
    assert row["partner"] == "'=HYPERLINK(1)" and row["purpose"] == "'-2+3"


def _entry(
    decision: str, partner: str, day: int, *, reasons: tuple[str, ...] = (), mode: str = "share"
) -> audit_pb2.LedgerEntry:
    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 11, day, 12, tzinfo=UTC))
    return audit_pb2.LedgerEntry(
        decision=decision, partner_id=partner, purpose="p", mode=mode, time=ts, reason_codes=reasons
    )


def test_refusals_are_counted_once_per_rule_and_by_partner_and_day() -> None:
    """An entry with two reasons of one rule counts once for that rule."""
    t = tally_refusals(
        [
            _entry("DENY", "adco", 1, reasons=("R4.opted_out", "R4.withdrawn")),
            _entry("DENY", "adco", 2, reasons=("R2.unknown",)),
            _entry("ALLOW", "adco", 2),
        ]
    )
    assert t.total == 2 and t.by_rule == {"R4": 1, "R2": 1}
    assert t.partner_days["adco"] == {date(2026, 11, 1): 1, date(2026, 11, 2): 1}
    assert t.top_reasons(2) == [("R2.unknown", 1), ("R4.opted_out", 1)]


def test_only_shares_and_pulls_count_as_disclosures() -> None:
    """A staged share and a refusal are not disclosures."""
    t = tally_disclosures(
        [_entry("ALLOW", "a", 1), _entry("ALLOW", "a", 1, mode="stage"), _entry("DENY", "a", 1)]
    )
    assert t.total == 1 and t.by_partner == {"a": {date(2026, 11, 1): 1}}


def test_chart_labels_are_escaped_and_small_series_are_grouped() -> None:
    """A partner id with markup is text in the SVG; series past the palette become (other)."""
    days = [date(2026, 11, 1)]
    svg = str(stacked_bars({"<script>x</script>": {days[0]: 2}}, days, label="t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    many = {f"p{i}": {days[0]: i + 1} for i in range(10)}
    grouped = top_series(many, limit=3)
    assert list(grouped) == ["p9", "p8", "p7", OTHER] and grouped[OTHER][days[0]] == sum(
        range(1, 8)
    )


def test_note_signatures_lists_the_log_and_cosigners() -> None:
    """Each signature line of a note is listed with its key id."""
    log, witness = NoteSigner.generate("log.example"), NoteSigner.generate("witness.example")
    note = log.sign(Checkpoint(origin="log.example", size=1, root=b"\0" * 32).body())
    cosigned = note + witness.sign(note.split("\n\n")[0] + "\n").split("\n\n")[1]
    assert note_signatures(cosigned) == [
        ("log.example", log.verifier.key_id.hex()),
        ("witness.example", witness.verifier.key_id.hex()),
    ]


def test_a_stolen_console_certificate_reads_nothing_by_itself(rig: Rig) -> None:
    """The console's certificate without an auditor's token is UNAUTHENTICATED at the gateway."""
    pki = rig.gw.pki
    creds = channel_credentials(
        ca=pki / "ca.crt", cert=pki / "console-web.crt", key=pki / "console-web.key"
    )
    stub = audit_pb2_grpc.AuditServiceStub(grpc.secure_channel(rig.gw.address, creds))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCheckpoint(
            audit_pb2.GetCheckpointRequest(),
            metadata=(("authorization", f"Bearer {rig.service_token}"),),
        )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

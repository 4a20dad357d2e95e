"""Bad input: Hypothesis fuzzing of every RPC never yields INTERNAL or UNKNOWN.

Requests are generated from the protobuf descriptors of every service the gateway serves
(Share, Admin, Audit, and Partner when the outbox is on): random and hostile strings,
unknown enum values, out-of-range numbers, empty and oversized batches, references to
partners, schemas and subjects that do not exist, and callers with the wrong role. Each is
sent over mTLS to a real server; the answer may be anything but INTERNAL or UNKNOWN. The
server must still answer health checks afterwards and the ledger must verify. The default
run draws a bounded number of examples; ``slow`` draws many more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.workload import ad_record, ad_share
from gateway.testing import RunningGateway, running_gateway
from ledger.fsck import verify_url
from partner_gateway.v1 import (
    admin_pb2,
    audit_pb2,
    audit_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)

NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
IDENTITIES = ("service-checkout", "admin-ops", "auditor-audit-team", "partner-adco")
OWNER = {
    "ShareService": "service-checkout",
    "AdminService": "admin-ops",
    "AuditService": "auditor-audit-team",
    "PartnerService": "partner-adco",
}
METHODS: list[MethodDescriptor] = [
    m
    for mod in (share_pb2, admin_pb2, audit_pb2, partner_pb2)
    for svc in mod.DESCRIPTOR.services_by_name.values()
    for m in svc.methods
]
#: Server-streaming calls that may legitimately wait for data (long poll) until the deadline.
WAITING = {"Pull", "StreamDisclosures"}

KNOWN = [
    "adco",
    "logiship",
    "admetrics",
    "nobody-inc",
    "customer_profile",
    "delivery_order",
    "u1001",
    "u1002",
    "u1007",
    "o-5001",
    "ad_delivery",
    "delivery",
    "phone",
    "name",
    "birth_date",
    "user.contact.phone",
    "SHARE",
    "AD_PARTNER",
    "2026-01-01",
]
HOSTILE = [
    "",
    " ",
    "\x00",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%s%n",
    "${jndi:ldap://x}",
    "<script>",
    "\u202e",
    "🙂" * 50,
    "9" * 400,
    "x" * 5_000,
    "ä" * 3_000,
]
texts = st.one_of(st.sampled_from(KNOWN), st.sampled_from(HOSTILE), st.text(max_size=40))

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return texts
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=40), st.just(b"\x00" * 32), st.just(b"\xff" * 5000))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        # Known values, and unknown ones (proto3 enums are open).
        known = [v.number for v in f.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 10_000))
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(allow_nan=True, width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    lo, hi = _INT_RANGES[t]
    edges = [v for v in (0, 1, -1, lo, hi, 2**31 - 1) if lo <= v <= hi]
    return st.one_of(st.integers(lo, hi), st.sampled_from(edges))


@st.composite
def messages(draw: st.DrawFn, desc: Descriptor, depth: int = 0) -> Any:
    """A random instance of the message type ``desc`` (every field optional, bounded depth)."""
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if not draw(st.booleans()):
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key_f, val_f = (
                f.message_type.fields_by_name["key"],
                f.message_type.fields_by_name["value"],
            )
            if val_f.message_type is not None:
                continue
            for k, v in draw(st.dictionaries(_scalar(key_f), _scalar(val_f), max_size=4)).items():
                getattr(msg, f.name)[k] = v
        elif f.message_type is not None:
            if depth >= 3 or f.message_type.full_name.startswith("google.protobuf"):
                continue
            n = draw(st.integers(0, 3)) if f.is_repeated else 1
            for _ in range(n):
                sub = draw(messages(f.message_type, depth + 1))
                if f.is_repeated:
                    getattr(msg, f.name).add().CopyFrom(sub)
                else:
                    getattr(msg, f.name).CopyFrom(sub)
        elif f.is_repeated:
            getattr(msg, f.name).extend(draw(st.lists(_scalar(f), max_size=4)))
        else:
            setattr(msg, f.name, draw(_scalar(f)))
    return msg


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("fuzz")) as g:
        yield g


@pytest.fixture(scope="module")
def channels(gw: RunningGateway) -> Iterator[dict[str, grpc.Channel]]:
    chans = {i: gw.channel(*i.split("-", 1)) for i in IDENTITIES}
    yield chans
    for c in chans.values():
        c.close()


def _call(ch: grpc.Channel, m: MethodDescriptor, requests: list[Any]) -> grpc.StatusCode:
    path = f"/{m.containing_service.full_name}/{m.name}"
    timeout = 3.0 if m.name in WAITING else 20.0
    payloads = [r.SerializeToString() for r in requests]
    try:
        if m.client_streaming and m.server_streaming:
            for _ in ch.stream_stream(path)(iter(payloads), timeout=timeout):
                pass
        elif m.client_streaming:
            ch.stream_unary(path)(iter(payloads), timeout=timeout)
        elif m.server_streaming:
            for _ in ch.unary_stream(path)(payloads[0], timeout=timeout):
                pass
        else:
            ch.unary_unary(path)(payloads[0], timeout=timeout)
    except grpc.RpcError as e:
        code: grpc.StatusCode = e.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and m.name in WAITING:
            return grpc.StatusCode.OK
        return code
    return grpc.StatusCode.OK


@st.composite
def calls(draw: st.DrawFn) -> tuple[MethodDescriptor, str, list[Any]]:
    m = draw(st.sampled_from(METHODS))
    owner = OWNER.get(m.containing_service.name, "service-checkout")
    identity = draw(st.one_of(st.just(owner), st.sampled_from(IDENTITIES)))
    n = draw(st.integers(0, 4)) if m.client_streaming else 1
    reqs = [draw(messages(m.input_type)) for _ in range(n)]
    return m, identity, reqs


def _check(gw: RunningGateway) -> None:
    stub = health_pb2_grpc.HealthStub(gw.channel("service", "checkout"))
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    report = verify_url(gw.gateway.settings.ledger_url, vkey=gw.gateway.ledger.verifier_key)
    assert report.ok, report.summary()


def _fuzz(gw: RunningGateway, channels: dict[str, grpc.Channel], examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(call=calls())
    def run(call: tuple[MethodDescriptor, str, list[Any]]) -> None:
        m, identity, reqs = call
        code = _call(channels[identity], m, reqs)
        seen[code.name] = seen.get(code.name, 0) + 1
        assert code not in NEVER, f"{m.full_name} as {identity} -> {code.name}"

    seen: dict[str, int] = {}
    run()
    print("fuzz status codes:", seen)
    # The generator reaches past authentication into the services' own validation.
    assert seen.get("INVALID_ARGUMENT", 0) + seen.get("NOT_FOUND", 0) + seen.get("OK", 0) > 0
    _check(gw)


def test_random_and_hostile_requests_to_every_rpc_never_fail_internally(
    gw: RunningGateway, channels: dict[str, grpc.Channel]
) -> None:
    """100 generated calls across all RPCs: no INTERNAL/UNKNOWN; server up; ledger verifies."""
    _fuzz(gw, channels, examples=100)


def test_huge_and_empty_batches_are_refused_with_client_errors(
    gw: RunningGateway, channels: dict[str, grpc.Channel]
) -> None:
    """Empty, over-limit and oversized batches get client-error codes, never INTERNAL."""
    share = [m for m in METHODS if m.containing_service.name == "ShareService"]
    unary = next(m for m in share if m.name == "Share")
    evaluate = next(m for m in share if m.name == "Evaluate")
    stream = next(m for m in share if m.name == "ShareStream")
    ch = channels["service-checkout"]
    over = ad_share(0)
    over.records.extend(ad_record(i % 10_000) for i in range(5_001))
    huge_value = ad_share(1)
    huge_value.records[0].fields["tags"] = "x" * 100_000
    many_fields = ad_share(1)
    for i in range(200):
        many_fields.records[0].fields[f"f{i}"] = "v"
    for m in (unary, evaluate):
        assert _call(ch, m, [ad_share(0)]) == grpc.StatusCode.INVALID_ARGUMENT
        assert _call(ch, m, [over]) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _call(ch, m, [huge_value]) == grpc.StatusCode.INVALID_ARGUMENT
        assert _call(ch, m, [many_fields]) == grpc.StatusCode.INVALID_ARGUMENT
    assert _call(ch, stream, []) == grpc.StatusCode.INVALID_ARGUMENT
    assert _call(ch, stream, [share_pb2.ShareChunk()]) == grpc.StatusCode.INVALID_ARGUMENT
    assert _call(ch, stream, [share_pb2.ShareChunk(header=ad_share(0))]) in (
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    two_headers = [
        share_pb2.ShareChunk(header=ad_share(1)),
        share_pb2.ShareChunk(header=ad_share(1)),
    ]
    assert _call(ch, stream, two_headers) == grpc.StatusCode.INVALID_ARGUMENT
    big_msg = share_pb2.ShareChunk(records=[ad_record(0)] * 1)
    big_msg.records[0].fields["tags"] = "y" * (9 * 1024 * 1024)  # beyond max_message_bytes
    code = _call(ch, stream, [share_pb2.ShareChunk(header=ad_share(1)), big_msg])
    assert code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
    _check(gw)


@pytest.mark.slow
def test_many_random_requests_to_every_rpc_never_fail_internally(
    gw: RunningGateway, channels: dict[str, grpc.Channel]
) -> None:
    """3,000 generated calls across all RPCs: no INTERNAL/UNKNOWN; server up; ledger verifies."""
    _fuzz(gw, channels, examples=3_000)


# --- bad values of every parsed field: INVALID_ARGUMENT with a stable reason ----------------

#: Strings that look like cursors to a careless parser: "²" is a digit to ``str.isdigit``,
#: 9999999999999999999 has 19 digits but overflows a BIGINT.
CURSOR_TRAPS = [
    "²",
    "9999999999999999999",
    "9223372036854775808",
    "9223372036854775807",
    "99999999999999999999",
    "-1",
    " 1",
    "1 ",
    "+1",
    "1e3",
    "0x10",
    "1.0",
    "١٢",
    "\uff11\uff12",  # fullwidth digits
    "\x00",
    "0",
    "17",
]
MIN_S, MAX_S = -62_135_596_800, 253_402_300_799  # 0001-01-01 .. 9999-12-31T23:59:59
cursor_texts = st.one_of(st.sampled_from(CURSOR_TRAPS), st.text(max_size=22))
timestamps = st.builds(
    lambda s, n: (s, n),
    st.one_of(
        st.sampled_from([MIN_S - 1, MIN_S, 0, MAX_S, MAX_S + 1, -(2**63), 2**63 - 1]),
        st.integers(-(2**63), 2**63 - 1),
    ),
    st.one_of(
        st.sampled_from([-1, 0, 999_999_999, 10**9, 2_000_000_000]),
        st.integers(-(2**31), 2**31 - 1),
    ),
)
ENUMS = {
    "action": share_pb2.Action,
    "legal_basis.kind": share_pb2.LegalBasisKind,
    "delivery": share_pb2.DeliveryMode,
}


def _valid_cursor(text: str) -> bool:
    """The oracle: 1-19 ASCII digits within a signed 64-bit integer (or empty)."""
    return text == "" or (
        len(text) <= 19 and all("0" <= c <= "9" for c in text) and int(text) < 2**63
    )


def _status(call: Any) -> tuple[grpc.StatusCode, str]:
    """Run ``call``; return its code and ErrorInfo reason (``""`` for OK or none)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    except grpc.RpcError as e:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
        for detail in status.details if status else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return e.code(), info.reason
        return e.code(), ""
    return grpc.StatusCode.OK, ""


@st.composite
def bad_value_calls(draw: st.DrawFn) -> tuple[str, str, Any, bool, str]:
    """``(identity, label, call factory, value is valid, reason if invalid)``."""
    kind = draw(st.sampled_from(["page_token", "stream_token", "pull", "ack", "time", "enum"]))
    if kind in ("page_token", "stream_token", "pull", "ack"):
        text = draw(cursor_texts)
        valid = _valid_cursor(text)
        if kind == "page_token":
            req: Any = audit_pb2.QueryDisclosuresRequest(page_token=text)
            return (
                "auditor-audit-team",
                kind,
                ("AuditService", "QueryDisclosures", req),
                valid,
                "audit.bad_page_token",
            )
        if kind == "stream_token":
            req = audit_pb2.StreamDisclosuresRequest(page_token=text)
            return (
                "auditor-audit-team",
                kind,
                ("AuditService", "StreamDisclosures", req),
                valid,
                "audit.bad_page_token",
            )
        if kind == "pull":
            req = partner_pb2.PullRequest(cursor=text, max_items=1)
            return "partner-adco", kind, ("PartnerService", "Pull", req), valid, "outbox.bad_cursor"
        req = partner_pb2.AckRequest(cursor=text)
        return "partner-adco", kind, ("PartnerService", "Ack", req), valid, "outbox.bad_cursor"
    if kind == "time":
        (seconds, nanos), which = draw(timestamps), draw(st.sampled_from(["since", "until"]))
        flt = audit_pb2.DisclosureFilter()
        getattr(flt, which).seconds = seconds
        getattr(flt, which).nanos = nanos
        valid = MIN_S <= seconds <= MAX_S and 0 <= nanos <= 999_999_999
        req = audit_pb2.QueryDisclosuresRequest(filter=flt)
        return (
            "auditor-audit-team",
            kind,
            ("AuditService", "QueryDisclosures", req),
            valid,
            "request.bad_timestamp",
        )
    field = draw(st.sampled_from(sorted(ENUMS)))
    known = [v.number for v in ENUMS[field].DESCRIPTOR.values]
    number = draw(st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1)))
    req = ad_share(1)
    if field == "legal_basis.kind":
        req.legal_basis.kind = number
    else:
        setattr(req, field, number)
    return (
        "service-checkout",
        kind,
        ("ShareService", "Evaluate", req),
        number in known,
        "request.bad_enum",
    )


def test_bad_cursors_timestamps_and_enums_are_invalid_argument(
    gw: RunningGateway, channels: dict[str, grpc.Channel]
) -> None:
    """Page tokens, cursors, since/until and enum numbers: a bad value is INVALID_ARGUMENT
    with its reason, a good one never INTERNAL (traps: "²", 9999999999999999999, nanos -1)."""
    stubs = {
        "AuditService": audit_pb2_grpc.AuditServiceStub,
        "PartnerService": partner_pb2_grpc.PartnerServiceStub,
        "ShareService": share_pb2_grpc.ShareServiceStub,
    }

    @settings(max_examples=150, deadline=None, database=None)
    @given(call=bad_value_calls())
    def run(call: tuple[str, str, Any, bool, str]) -> None:
        identity, label, (service, method, req), valid, reason = call
        rpc = getattr(stubs[service](channels[identity]), method)
        code, got = _status(lambda: rpc(req, timeout=10))
        assert code not in NEVER, f"{label} {req} -> {code.name}"
        if valid:
            assert got != reason, f"{label} valid value refused: {req}"
        else:
            assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason), f"{label} {req}"

    run()
    _check(gw)

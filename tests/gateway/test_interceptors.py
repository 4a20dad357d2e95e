"""CallInterceptor (issue 16): a method's handler is wrapped once, every call keeps its own
request id and status, and the access log line is written after the answer is handed to
grpc, not on its path."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from gateway.errors import InvalidRequestError
from gateway.interceptors import REQUEST_ID_FORMAT, CallInterceptor
from gateway.testing import serving

METHOD = "/partner_gateway.v1.ShareService/Share"


class FakeContext:
    """The parts of a grpc.aio ``ServicerContext`` the interceptor uses."""

    def __init__(self, metadata: dict[str, str]) -> None:
        self._metadata = tuple(metadata.items())
        self.aborted: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = code
        raise grpc.aio.AbortError()  # what grpc.aio raises from abort


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: dict[str, str]) -> None:
        self.method = method
        self.invocation_metadata = tuple(metadata.items())


async def answer(request: bytes, context: Any) -> bytes:
    if request == b"bad":
        raise InvalidRequestError("malformed", reason="request.malformed")
    return b"answer to " + request


def test_access_log_is_written_after_the_answer_is_handed_to_grpc() -> None:
    """When the behaviour's answer goes back to grpc no log line is written yet; the loop's
    next turn writes it, with the call's request id, method and status."""

    async def scenario() -> tuple[bytes, list[dict[str, Any]], list[dict[str, Any]]]:
        handler = grpc.unary_unary_rpc_method_handler(answer)
        wrapped = await CallInterceptor().intercept_service(serving(handler), Details(METHOD, {}))
        assert wrapped is not None and wrapped.unary_unary is not None
        with capture_logs() as logs:
            response = await wrapped.unary_unary(b"r", FakeContext({"x-request-id": "r-1"}))
            at_answer = list(logs)
            await asyncio.sleep(0)
        return response, at_answer, logs

    response, at_answer, logs = asyncio.run(scenario())
    assert response == b"answer to r"
    assert at_answer == []
    assert [(e["event"], e["request_id"], e["rpc"], e["code"]) for e in logs] == [
        ("rpc.end", "r-1", METHOD, "OK")
    ]


def test_a_methods_handler_is_wrapped_once_and_each_call_keeps_its_own_id_and_status() -> None:
    """Calls of one method share one wrapped handler, yet each logs its own request id (or a
    generated one) and its own status code."""
    handler = grpc.unary_unary_rpc_method_handler(answer)
    interceptor = CallInterceptor()

    async def scenario() -> list[dict[str, Any]]:
        first = await interceptor.intercept_service(serving(handler), Details(METHOD, {}))
        second = await interceptor.intercept_service(serving(handler), Details(METHOD, {}))
        assert first is second and first is not None and first.unary_unary is not None
        failing = FakeContext({"x-request-id": "r-bad"})
        with capture_logs() as logs:
            calls = await asyncio.gather(
                first.unary_unary(b"bad", failing),
                first.unary_unary(b"ok", FakeContext({"x-request-id": "r-ok"})),
                first.unary_unary(b"ok", FakeContext({})),
                return_exceptions=True,
            )
            await asyncio.sleep(0)
        assert isinstance(calls[0], grpc.aio.AbortError)
        assert failing.aborted == grpc.StatusCode.INVALID_ARGUMENT
        assert calls[1:] == [b"answer to ok", b"answer to ok"]
        return logs

    logs = asyncio.run(scenario())
    ended = {e["request_id"]: e["code"] for e in logs if e["event"] == "rpc.end"}
    generated = [rid for rid in ended if rid not in ("r-bad", "r-ok")]
    assert len(generated) == 1 and REQUEST_ID_FORMAT.fullmatch(generated[0])
    assert ended == {"r-bad": "INVALID_ARGUMENT", "r-ok": "OK", generated[0]: "OK"}


def test_another_handler_for_the_method_is_wrapped_afresh() -> None:
    """An inner interceptor that hands out a new handler per call (tracing does) gets its
    own behaviour run, never a stale wrapped one."""

    async def other(request: bytes, context: Any) -> bytes:
        return b"other"

    interceptor = CallInterceptor()

    async def scenario() -> list[bytes]:
        out = []
        for behaviour in (answer, other):
            handler = grpc.unary_unary_rpc_method_handler(behaviour)
            wrapped = await interceptor.intercept_service(serving(handler), Details(METHOD, {}))
            assert wrapped is not None and wrapped.unary_unary is not None
            out.append(await wrapped.unary_unary(b"x", FakeContext({})))
        return out

    assert asyncio.run(scenario()) == [b"answer to x", b"other"]


@pytest.mark.parametrize("given", ["", "has space", "x" * 65])
def test_a_malformed_request_id_is_replaced(given: str) -> None:
    """A caller's x-request-id outside the allowed format is not logged; a generated id is."""
    handler = grpc.unary_unary_rpc_method_handler(answer)

    async def scenario() -> list[dict[str, Any]]:
        wrapped = await CallInterceptor().intercept_service(serving(handler), Details(METHOD, {}))
        assert wrapped is not None and wrapped.unary_unary is not None
        with capture_logs() as logs:
            await wrapped.unary_unary(b"x", FakeContext({"x-request-id": given}))
            await asyncio.sleep(0)
        return logs

    (line,) = asyncio.run(scenario())
    assert line["request_id"] != given and REQUEST_ID_FORMAT.fullmatch(line["request_id"])

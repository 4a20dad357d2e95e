"""Cross-cutting call handling: request ids, access logs, and the one error → status mapping.

Every ``GatewayError`` and ``LedgerError`` becomes its gRPC status with a
``google.rpc.Status`` carrying an ``ErrorInfo`` (stable reason) and any protobuf details the
error holds (for a policy refusal: the decision and its ledger receipt). Anything else is a
bug: it is logged by type only (an exception message might hold a field value) and answered
``INTERNAL`` with the request id, never ``UNKNOWN``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import os
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway import metrics
from gateway.errors import GatewayError, PolicyDeniedError
from ledger import LedgerError

ERROR_DOMAIN = "share-gateway"
REQUEST_ID_HEADER = "x-request-id"

_log = structlog.get_logger("gateway.rpc")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


#: Generated request ids: a random per-process prefix and a counter (32 hex digits, like a
#: UUID's). Unique, not secret; ``uuid4`` cost a ``getrandom`` system call per RPC.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


#: The only ``x-request-id`` values taken from a caller (issue 14.5). Anything else is replaced
#: by a generated id and dropped unread: the header reaches the ledger and every log line,
#: so free text there could put personal data in both.
REQUEST_ID_FORMAT = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(metadata: dict[str, Any]) -> str:
    """The caller's ``x-request-id`` if it matches ``REQUEST_ID_FORMAT``, else a new id."""
    given = metadata.get(REQUEST_ID_HEADER)
    if isinstance(given, str) and REQUEST_ID_FORMAT.fullmatch(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """A request id unique across calls and (with overwhelming probability) processes."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def current_request_id() -> str:
    """The id of the RPC being served (from ``x-request-id`` metadata, else generated)."""
    return _request_id.get() or new_request_id()


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str, str]:
    """Map an exception to ``(code, message, reason)``; the single mapping in the gateway."""
    if isinstance(error, GatewayError):
        return error.code, error.message, error.reason
    if isinstance(error, LedgerError):
        return grpc.StatusCode[error.grpc_code], str(error), error.reason
    return grpc.StatusCode.INTERNAL, "internal error", "internal"


def _error_status(error: BaseException) -> tuple[grpc.StatusCode, grpc.Status]:
    """The status (with ``ErrorInfo`` and details) that ``error`` becomes; logged here once."""
    code, message, reason = status_for(error)
    details = [error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)]
    if isinstance(error, PolicyDeniedError):
        details.extend(d for d in error.details if isinstance(d, Message))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    log = _log.warning if code != grpc.StatusCode.INTERNAL else _log.error
    log("rpc.error", code=code.name, reason=reason, error_type=type(error).__name__)
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )
    return code, status


class _CallStatus:
    """The status code a call ended with, for the access log (an aio server's sync context
    has no ``code()``)."""

    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK


def _abort(context: grpc.ServicerContext, error: BaseException, status: _CallStatus) -> NoReturn:
    status.code, st = _error_status(error)
    # What ``abort_with_status`` does, spelled out so grpc_testing's context supports it too.
    context.set_trailing_metadata(st.trailing_metadata)
    context.abort(st.code, st.details)
    raise AssertionError("unreachable")  # abort always raises


#: Never turned into a status: interpreter shutdown, generator close, task cancellation, and
#: an abort already under way (grpc.aio raises ``AbortError`` from ``context.abort``).
_PASS_THROUGH = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
    grpc.aio.AbortError,
)


def map_errors_unary(
    behavior: Callable[[Any, Any], Any], status: _CallStatus | None = None
) -> Callable[[Any, Any], Any]:
    """Wrap a plain unary-response behaviour (run in the thread pool) so errors become
    statuses."""
    status = status or _CallStatus()

    def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request_or_iterator, context)
        except _PASS_THROUGH:
            raise
        except BaseException as e:  # native extensions (pyo3) panic with a BaseException
            _abort(context, e, status)

    return wrapper


def _ended_by_caller(context: Any) -> grpc.StatusCode:
    """How a cancelled call ended, for the access log: its deadline lapsed, or the caller
    (or the server's shutdown) cancelled it."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


async def _abort_async(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException, status: _CallStatus
) -> NoReturn:
    status.code, st = _error_status(error)
    context.set_trailing_metadata(st.trailing_metadata)
    await context.abort(st.code, st.details)
    raise AssertionError("unreachable")  # abort always raises


def map_errors_async(
    behavior: Callable[[Any, Any], Awaitable[Any]], status: _CallStatus
) -> Callable[[Any, Any], Awaitable[Any]]:
    """``map_errors_unary`` for a coroutine behaviour (grpc.aio's ``abort`` is awaited)."""

    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except asyncio.CancelledError:  # the caller went away (a queued entry still commits)
            status.code = _ended_by_caller(context)
            raise
        except _PASS_THROUGH:
            raise
        except BaseException as e:  # native extensions (pyo3) panic with a BaseException
            await _abort_async(context, e, status)

    return wrapper


def map_errors_stream(
    behavior: Callable[[Any, Any], AsyncGenerator[Any, None]], status: _CallStatus
) -> Callable[[Any, Any], Awaitable[None]]:
    """Run an async-generator behaviour as a grpc.aio reader/writer coroutine, so errors
    (also mid-stream) become statuses.

    The coroutine writes each response itself, so a cancellation (caller gone, deadline,
    server stop) arrives in this call's task wherever the stream is, and the behaviour is
    closed here (``aclose``: its ``finally`` blocks run in this call's context) instead of
    being left suspended for the garbage collector.
    """

    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        responses = behavior(request, context)
        try:
            async for response in responses:
                await context.write(response)
        except asyncio.CancelledError:
            status.code = _ended_by_caller(context)
            raise
        except _PASS_THROUGH:
            raise
        except BaseException as e:  # native extensions (pyo3) panic with a BaseException
            await _abort_async(context, e, status)
        finally:
            await responses.aclose()

    return wrapper


@contextmanager
def _call_scope(
    method: str, request_id: str, status: _CallStatus, *, on_loop: bool
) -> Iterator[None]:
    """Bind the request id (``current_request_id``, every log line), then write the access
    log line and count the call (``gateway.metrics``) with the status it ended with.

    ``on_loop`` (a behaviour on the event loop): the line and the count are written in the
    loop's next turn (``call_soon``), after grpc has taken the answer to send it, so the
    answer does not wait for them (issue 16). Their duration still ends where the behaviour
    ended; the code is the one the call ended with.
    """
    token = _request_id.set(request_id)
    start = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id, rpc=method):
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            _request_id.reset(token)
            if on_loop:
                asyncio.get_running_loop().call_soon(
                    _end_of_call, method, request_id, status.code.name, seconds
                )
            else:
                _end_of_call(method, request_id, status.code.name, seconds)


def _end_of_call(method: str, request_id: str, code: str, seconds: float) -> None:
    """The access log line and the RPC metrics of one call (ids passed in: on the loop's next
    turn the call's context is no longer bound)."""
    _log.info("rpc.end", request_id=request_id, rpc=method, code=code, ms=round(seconds * 1000, 3))
    metrics.observe_rpc(method, code, seconds)


def _with_call_context(
    behavior: Callable[[Any, Any], Any], method: str
) -> Callable[[Any, Any], Any]:
    """Error mapping inside request id binding and the access log, for the kinds of
    behaviour the gateway has: a plain function (unary response, run in the thread pool), a
    coroutine (unary response, or a reader/writer stream such as ``Health.Watch``, on the
    loop) and an async generator (response stream, on the loop). Built once per method: the
    request id and the status are each call's own (``_call_of``).

    Raises:
        TypeError: a plain generator: grpc.aio would run it in one pool thread for the
            stream's whole life, and that thread is lost when the caller goes away (ADR 0007).
    """
    if inspect.isasyncgenfunction(behavior):

        async def stream_wrapper(req: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            request_id, status = _call_of(context)
            with _call_scope(method, request_id, status, on_loop=True):
                await map_errors_stream(behavior, status)(req, context)

        return stream_wrapper

    if inspect.iscoroutinefunction(behavior):

        async def async_wrapper(req: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id, status = _call_of(context)
            with _call_scope(method, request_id, status, on_loop=True):
                return await map_errors_async(behavior, status)(req, context)

        return async_wrapper

    def unary_wrapper(req: Any, context: grpc.ServicerContext) -> Any:
        request_id, status = _call_of(context)
        with _call_scope(method, request_id, status, on_loop=False):
            return map_errors_unary(behavior, status)(req, context)

    return unary_wrapper


def _call_of(context: Any) -> tuple[str, _CallStatus]:
    """One call's request id (from its metadata) and its status, not yet ended."""
    return request_id_from(dict(context.invocation_metadata() or ())), _CallStatus()


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Callable[[Callable[[Any, Any], Any]], Callable[[Any, Any], Any]],
) -> grpc.RpcMethodHandler[Any, Any]:
    """Return ``handler`` with its behaviour replaced by ``wrap(behaviour)``.

    Raises:
        TypeError: a streaming behaviour that is neither an async generator nor a reader/writer
            coroutine (ADR 0007).
    """
    replace: Any = handler._replace  # type: ignore[attr-defined]  # a namedtuple underneath
    if handler.unary_unary:
        return replace(unary_unary=wrap(handler.unary_unary))  # type: ignore[no-any-return]
    if handler.stream_unary:
        return replace(stream_unary=wrap(handler.stream_unary))  # type: ignore[no-any-return]
    behavior = handler.unary_stream or handler.stream_stream
    assert behavior is not None
    if not is_async(behavior):
        raise TypeError(
            f"streaming behaviour {behavior!r} must be an async generator or a coroutine"
        )
    if handler.unary_stream:
        return replace(unary_stream=wrap(handler.unary_stream))  # type: ignore[no-any-return]
    return replace(stream_stream=wrap(behavior))  # type: ignore[no-any-return]


def is_async(behavior: Callable[..., Any]) -> bool:
    """A coroutine or async-generator behaviour runs on the event loop; grpc.aio runs a
    plain function in its thread pool."""
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


class WrappedHandlers:
    """Handlers wrapped once per method, not on every call (issue 16: wrapping allocated a
    handler and its closures per call).

    A method's wrapped handler is kept while grpc hands out the same handler for it; another
    handler (an interceptor further in that wraps per call, such as tracing's) is wrapped
    afresh and replaces it. One entry per served method: bounded.

    Args:
        wrap: ``wrap(method, handler)``: the wrapped handler; it must read everything
            call-specific (metadata, peer) from the call's context, never capture it.
    """

    def __init__(
        self,
        wrap: Callable[[str, grpc.RpcMethodHandler[Any, Any]], grpc.RpcMethodHandler[Any, Any]],
    ) -> None:
        self._wrap = wrap
        self._by_method: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def get(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` of ``method``, wrapped (once while grpc keeps handing out this one)."""
        cached = self._by_method.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._by_method[method] = (handler, self._wrap(method, handler))
        return cached[1]


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: request id + access log + error → status mapping.

    Works for every kind of behaviour the gateway has: coroutines and async generators (on
    the event loop) and plain unary functions (in the thread pool).
    """

    def __init__(self) -> None:
        self._handlers = WrappedHandlers(
            lambda method, handler: wrap_handler(handler, lambda b: _with_call_context(b, method))
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._handlers.get(handler_call_details.method, handler)


class ErrorMappedServicer:
    """Proxy giving a servicer the interceptor's error mapping, for ``grpc_testing`` tests.

    ``grpc_testing`` runs servicers without interceptors; wrapping with the same functions
    the interceptor uses lets unit tests observe the real status mapping. Unary methods only
    (streams are tested against a real server).
    """

    def __init__(self, servicer: object) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Any:
        behavior = getattr(self._servicer, name)
        if inspect.iscoroutinefunction(behavior):  # grpc_testing calls behaviours synchronously
            coroutine = behavior

            def behavior(request: Any, context: Any) -> Any:
                return asyncio.run(coroutine(request, context))

        return map_errors_unary(behavior)

"""The one interceptor that authenticates and authorizes every RPC (issue 5.1, 5.2).

``intercept_service`` sees only the method name and metadata, not the TLS peer, so the
interceptor wraps the handler's behaviour: the wrapper reads ``context.auth_context()``,
authenticates, checks the authorization table and only then runs the real behaviour with the
principal bound. Every behaviour it returns is a coroutine or an async generator (what the
OpenTelemetry interceptor in front of it can wrap): a plain unary behaviour's body runs in the
executor (the server's thread pool) in a copied ``contextvars.Context``
(``principal_context``), so the binding never leaks into another call on that thread; a
coroutine or async-generator behaviour (``Share``, every stream) runs in its call's own
asyncio task, whose context is its own.

Refusals: no identity -> UNAUTHENTICATED; a role no rule allows -> PERMISSION_DENIED.
Each is passed to ``on_refused(principal, method, error, peer)`` (the server writes it to the
ledger as a refused attempt, unauthenticated ones counted per peer; not for health and
reflection, which hold no data), then raised as the ``GatewayError``: install this
interceptor *after* ``gateway.interceptors.CallInterceptor``, the one place errors become
statuses.
Unregistered methods are left to grpc: UNIMPLEMENTED, nothing recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import grpc
import structlog

from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from gateway.interceptors import WrappedHandlers, is_async
from gateway.security.authn import Authenticator
from gateway.security.authz import AuthorizationTable
from gateway.security.identity import Principal, bind_principal, principal_context

OnRefused = Callable[[Principal | None, str, GatewayError, str], None]

_log = structlog.get_logger("gateway.security")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate the caller, authorize the method, bind the principal.

    Args:
        authenticator: Resolves the caller from the TLS auth context and metadata.
        table: Which roles may call which method; default ``AuthorizationTable()``.
        on_refused: Called once per refused call with the principal (``None`` if unknown),
            the full method name, the error and the peer (``context.peer()``); failures in it
            are logged, never hide the refusal.
        executor: Where plain (blocking) behaviours and refusal records run: the server's
            thread pool (``None``: the loop's default executor).
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        table: AuthorizationTable | None = None,
        on_refused: OnRefused | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._table = table or AuthorizationTable()
        self._on_refused = on_refused
        self._executor = executor
        self._handlers = WrappedHandlers(
            lambda method, handler: _wrap(
                handler, lambda context: self._admit(method, context), executor
            )
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
            # Not served here: grpc answers UNIMPLEMENTED (what grpcurl's reflection fallback
            # expects). Nothing is recorded: no service was reached, no data is behind it.
            return None
        return self._handlers.get(handler_call_details.method, handler)

    def _check(
        self, method: str, metadata: Any, context: Any
    ) -> tuple[Principal | None, GatewayError | None]:
        """Authenticate and authorize: ``(principal, None)`` to admit (principal ``None`` for
        a public method), or ``(principal or None, error)`` to refuse."""
        principal: Principal | None = None
        try:
            principal = self._authenticator.authenticate(context.auth_context(), metadata)
            if self._table.is_public(method):
                return principal, None
            if principal is None:
                raise UnauthenticatedError(
                    "this RPC needs a client certificate or a bearer token",
                    reason="auth.unauthenticated",
                )
            if not self._table.allows(principal.role, method):
                raise PermissionDeniedError(
                    f"role {principal.role.value} may not call {method}",
                    reason="auth.role_not_allowed",
                )
            return principal, None
        except GatewayError as error:
            return principal, error

    async def _admit(self, method: str, context: Any) -> Principal | None:
        """Return the principal to bind (``None`` for a public method), or record the refusal
        (a ledger append, in the executor) and raise it."""
        metadata = tuple(context.invocation_metadata() or ())
        principal, error = self._check(method, metadata, context)
        if error is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._record, principal, method, error, context.peer()
            )
            # Mapped to its status (with ErrorInfo reason) by the outer ``CallInterceptor``.
            raise error
        return principal

    def _record(
        self, principal: Principal | None, method: str, error: GatewayError, peer: str
    ) -> None:
        _log.warning(
            "auth.refused",
            method=method[:128],
            principal=principal.id if principal else None,
            reason=error.reason,
            code=error.code.name,
        )
        if self._on_refused is not None and not self._table.is_tooling(method):
            try:
                self._on_refused(principal, method, error, peer)
            except Exception:  # the refusal stands even if recording it fails
                _log.exception(
                    "auth.refusal_not_recorded", method=method[:128], reason=error.reason
                )


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    admit: Callable[[Any], Awaitable[Principal | None]],
    executor: Executor | None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """Rebuild ``handler`` so its behaviour runs after ``admit`` with the principal bound.

    Every rebuilt behaviour is a coroutine or an async generator on the event loop: a plain
    behaviour's body runs in ``executor`` (in a copied context with the principal bound, so
    the binding never leaks into another call on that thread), and its errors come back to
    the loop, where the ``CallInterceptor`` maps them. The rebuilt handler receives raw bytes
    and deserializes only *after* ``admit``: an unauthenticated caller never reaches the
    protobuf parser, and a malformed message from an authorized caller is INVALID_ARGUMENT
    instead of gRPC's INTERNAL.

    Raises:
        TypeError: a streaming behaviour that is not an async generator (ADR 0007).
    """
    parse = _parser(handler.request_deserializer)
    unary_request = not handler.request_streaming

    def request_of(raw: Any) -> Any:
        if unary_request:
            return parse(raw)
        return _parse_each(parse, raw)  # grpc.aio hands an async behaviour an async iterator

    def unary_response(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        if is_async(behaviour):
            # On the event loop: every call is its own task, with its own context copy.
            async def wrapped_async(raw: Any, context: Any) -> Any:
                principal = await admit(context)
                with bind_principal(principal):
                    return await behaviour(request_of(raw), context)

            return wrapped_async

        if not unary_request:
            raise TypeError(f"request-streaming behaviour {behaviour!r} must be async")

        async def wrapped_blocking(raw: Any, context: Any) -> Any:
            principal = await admit(context)
            run = principal_context(principal).run
            return await asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(run, behaviour, request_of(raw), context)
            )

        return wrapped_blocking

    def stream_response(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(behaviour):  # reader/writer API (``Health.Watch``)
            return unary_response(behaviour)
        if not inspect.isasyncgenfunction(behaviour):
            raise TypeError(f"streaming behaviour {behaviour!r} must be an async generator")

        # The outer CallInterceptor closes this generator in the call's own task (``aclose``),
        # so the binding is undone in the context that made it.
        async def wrapped(raw: Any, context: Any) -> AsyncIterator[Any]:
            principal = await admit(context)  # eager: refuse before the first response
            with bind_principal(principal):
                async with contextlib.aclosing(behaviour(request_of(raw), context)) as responses:
                    async for response in responses:
                        yield response

        return wrapped

    kw = {"response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kw)
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kw)


async def _parse_each(
    parse: Callable[[bytes], Any], raw: AsyncIterator[bytes]
) -> AsyncIterator[Any]:
    async for message in raw:
        yield parse(message)


def _parser(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    if deserializer is None:
        return lambda raw: raw

    def parse(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as e:  # DecodeError and friends: the message, not the server
            raise InvalidRequestError(
                "request message cannot be parsed", reason="request.malformed"
            ) from e

    return parse

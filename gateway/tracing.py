"""OpenTelemetry tracing of RPCs, configured by the standard ``OTEL_*`` variables (issue 13.5).

Off unless the environment asks for it: ``OTEL_TRACES_EXPORTER`` set to an exporter (or, with
it unset, ``OTEL_SERVICE_NAME``/``OTEL_EXPORTER_OTLP_ENDPOINT``/
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, which selects the spec's default ``otlp``);
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keep it off. The exporter is
looked up by name among the ``opentelemetry_traces_exporter`` entry points, as the SDK's own
auto-configuration does (``console`` ships with opentelemetry-sdk; ``otlp`` needs
``opentelemetry-exporter-otlp``); the resource comes from ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``; exporters read their own ``OTEL_EXPORTER_*`` settings.

Spans are made by ``opentelemetry-instrumentation-grpc``'s aio server interceptor
(``server_interceptor``), one per RPC, with the caller's propagated trace context. Health
checks are not traced (probe noise; also, that interceptor cannot wrap ``Health.Watch``'s
reader/writer coroutine, open-telemetry/opentelemetry-python-contrib#3066).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gateway.errors import ConfigError

_ENABLING = (
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def tracer_provider_from_env(environ: Mapping[str, str]) -> TracerProvider | None:
    """A tracer provider exporting spans as ``environ`` asks, or ``None`` (tracing off).

    Raises:
        ConfigError: ``OTEL_TRACES_EXPORTER`` names an exporter that is not installed.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not name and any(environ.get(k) for k in _ENABLING):
        name = "otlp"
    if not name or name == "none":
        return None
    if "," in name:
        raise ConfigError(f"invalid setting OTEL_TRACES_EXPORTER: one exporter, not {name!r}")
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ConfigError(
            f"invalid setting OTEL_TRACES_EXPORTER: no exporter {name!r} is installed "
            "(otlp: pip install opentelemetry-exporter-otlp)"
        )
    exporter = next(iter(found)).load()()
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def server_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    """The instrumentation's aio server interceptor, health excluded. Install it inside the
    ``CallInterceptor`` and in front of the ``AuthInterceptor``, whose behaviours are all
    coroutines or async generators (what it can wrap)."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider,
        filter_=filters.negate(filters.service_name("grpc.health.v1.Health")),
    )
    return interceptor

"""OpenTelemetry tracing through opentelemetry-instrumentation-grpc, by OTEL_* variables."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bench import procs
from gateway.demo import ad_request
from gateway.errors import ConfigError
from gateway.tracing import tracer_provider_from_env
from partner_gateway.v1 import share_pb2_grpc


def test_tracing_is_off_without_otel_variables() -> None:
    """No OTEL_* variable (or OTEL_SDK_DISABLED / exporter none): no tracer provider."""
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert (
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})
        is None
    )


def test_an_exporter_that_is_not_installed_is_a_start_error() -> None:
    """A named exporter that no installed package provides fails at start, naming it."""
    with pytest.raises(ConfigError, match="nosuchexporter"):
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "nosuchexporter"})


def test_a_share_is_traced_with_the_configured_service_name(tmp_path: Path) -> None:
    """With OTEL_TRACES_EXPORTER=console a served Share produces a server span named after
    the method, under OTEL_SERVICE_NAME, flushed at shutdown."""
    procs.ensure_pki(tmp_path / "pki")
    port = procs.free_port()
    cfg = procs.gateway_config(tmp_path / "gateway.toml", data_dir=tmp_path, port=port)
    proc = procs.gateway_process("traced", cfg, port, tmp_path / "gateway.log")
    proc.env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "sgw-under-test"}
    proc.start()
    try:
        proc.wait_ready(tmp_path / "pki", procs.HEALTH_CHECK)
        with procs.client_channel(proc.address, tmp_path / "pki") as ch:
            share_pb2_grpc.ShareServiceStub(ch).Share(ad_request("adco", "u1001"), timeout=20)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    log = (tmp_path / "gateway.log").read_text()
    spans = _console_spans(log)
    share = [s for s in spans if s["name"] == "/partner_gateway.v1.ShareService/Share"]
    assert share, log[-2000:]
    assert share[0]["kind"] == "SpanKind.SERVER"
    assert share[0]["resource"]["attributes"]["service.name"] == "sgw-under-test"
    assert not [s for s in spans if s["name"].startswith("/grpc.health.v1.Health/")]


def _console_spans(text: str) -> list[dict]:  # type: ignore[type-arg]
    """The JSON objects ConsoleSpanExporter printed (multi-line, among JSON log lines)."""
    decoder, spans, i = json.JSONDecoder(), [], 0
    while (i := text.find("{\n", i)) != -1:
        obj, end = decoder.raw_decode(text, i)
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            spans.append(obj)
        i = end
    return spans

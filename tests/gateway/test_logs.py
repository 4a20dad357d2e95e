"""gateway.logs: one JSON line per event, written whole."""

from __future__ import annotations

import io
import json

import structlog

from gateway.logs import configure_logging


class RecordingStream(io.StringIO):
    """A text stream that keeps every ``write`` call apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_each_log_line_is_one_write_with_its_newline() -> None:
    """A line and its newline go out in one write, so lines of threads or worker processes
    sharing the stream cannot interleave."""
    stream = RecordingStream()
    try:
        configure_logging(level="info", json=True, stream=stream)
        structlog.get_logger("test").info("rpc.end", code="OK", ms=1.5)
    finally:
        structlog.reset_defaults()
    (line,) = stream.writes
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) | {"timestamp": "t"} == {
        "event": "rpc.end",
        "code": "OK",
        "ms": 1.5,
        "level": "info",
        "timestamp": "t",
    }

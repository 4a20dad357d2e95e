"""structlog configuration: JSON lines, a request id on every line, no personal data.

Only ids, codes, counts, categories and durations are logged; record field values, subject
ids in clear and tokens never are (tests scan a full demo run's output to prove it).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(
    *, level: str = "info", json: bool = True, stream: TextIO | None = None
) -> None:
    """Configure structlog once per process."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        # One write(2) per line (``print`` made two: the line, then its newline), so lines of
        # several threads or worker processes sharing the stream never interleave, and each
        # line costs one system call.
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )

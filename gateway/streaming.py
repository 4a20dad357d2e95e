"""Streaming RPCs on the event loop: blocking steps in the pool, nothing held in between
(ADR 0007).

Every streaming handler is an async generator that grpc.aio runs on its event loop. Its
blocking work (database reads, a ledger commit it must wait for) runs in the server's thread
pool one *step* at a time through ``in_pool``. Between two steps no thread belongs to the
stream, so a stream whose caller cancels, whose deadline lapses or that fails is dropped at
the next step boundary, and a slow reader holds only the memory of one step's items.

Invariant: a step that has started always runs to its end in its thread (a started ledger
append is committed); the iterator is closed after it, never while it runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

_T = TypeVar("_T")


def _take(items: Iterator[_T], n: int) -> list[_T]:
    return list(itertools.islice(items, n))


async def in_pool(items: Iterator[_T], executor: Executor, *, batch: int = 1) -> AsyncIterator[_T]:
    """Yield ``items``, taking ``batch`` of them per step in a thread of ``executor``.

    Each step runs in a copy of the caller's context (principal, request id). When the
    consumer stops early (cancellation, deadline, error, ``aclose``), a step still queued is
    cancelled, a step already running finishes in its thread, and then ``items`` is closed.

    Args:
        items: A blocking iterator; its cleanup (``close``) must not block.
        executor: Where the steps run (the server's thread pool).
        batch: Items taken per step (1 when each item is itself a commit).
    """
    step: Future[list[_T]] | None = None
    try:
        while True:
            step = executor.submit(contextvars.copy_context().run, _take, items, batch)
            chunk = await asyncio.wrap_future(step)
            for item in chunk:
                yield item
            if len(chunk) < batch:
                return
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            if step is not None and not step.done():
                # Still running in its thread: a generator cannot be closed mid-step.
                step.add_done_callback(lambda _: close())
            else:
                close()

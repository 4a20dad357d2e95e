"""Group commit: callers queue disclosures; one writer thread commits them in batches.

While one transaction commits, newly arriving disclosures queue up and go into the next
one. A caller is woken only once its batch is committed (or failed): ``append`` returns only
durable receipts. Beyond ``max_pending`` waiting entries, appends are refused with pushback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ledger.entry import Disclosure, validate_disclosure
from ledger.errors import (
    InvalidArgumentError,
    LedgerClosedError,
    LedgerError,
    LedgerPushbackError,
)
from ledger.pseudonym import Pseudonymizer
from ledger.writer import Item, Receipt

WriteFn = Callable[[list[Item]], list[Receipt]]
#: ``observer(entries, tree_size, seconds)`` after each committed batch (metrics).
CommitObserver = Callable[[int, int, float], None]


class _Batch:
    """Appends committed together, and their waiting callers.

    A thread blocks by acquiring its own already-held raw lock; the writer releases it. That
    is one futex wake-up per caller, where ``threading.Event`` would also make every woken
    caller queue for the event's condition lock (64 callers: 64 serialized hand-offs).
    A coroutine awaits a future; the writer resolves all of one event loop's futures with
    one ``call_soon_threadsafe`` per batch.
    """

    __slots__ = ("count", "error", "items", "receipts", "waiters")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.count = 0
        self.waiters: list[Any] = []
        self.receipts: list[Receipt] = []
        self.error: LedgerError | None = None

    def finish(self) -> None:
        futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for w in self.waiters:
            if isinstance(w, asyncio.Future):
                futures.setdefault(w.get_loop(), []).append(w)
            else:
                w.release()
        for loop, fs in futures.items():  # one wake-up per event loop and batch
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fs)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():  # a cancelled caller stopped waiting; its entry is committed anyway
            f.set_result(None)


def _receipts(batch: _Batch, start: int, n: int) -> list[Receipt]:
    if batch.error is not None:
        raise batch.error
    return batch.receipts[start : start + n]


class Sequencer:
    """The append queue and its writer thread.

    Args:
        write: Commits one batch and returns its receipts (``BatchWriter.write``); read
            from this attribute for every batch, so tests may wrap it.
        pz: Subject pseudonymizer, for preparing items in the callers' threads.
        max_batch: At most this many entries per transaction.
        max_pending: Appends waiting beyond this many are refused with pushback.
    """

    def __init__(
        self, *, write: WriteFn, pz: Pseudonymizer, max_batch: int, max_pending: int
    ) -> None:
        if max_batch <= 0 or max_pending <= 0:
            raise InvalidArgumentError("max_batch and max_pending must be positive")
        self.write = write
        self._pz = pz
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._cv = threading.Condition()
        # Batches waiting for the writer, oldest first; appends join the newest while it has
        # room. The writer takes a whole batch at once (group commit).
        self._queue: deque[_Batch] = deque()
        self._pending = 0
        self._closed = False
        self.observers: list[CommitObserver] = []
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish queued appends and stop the writer. Idempotent."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def pending(self) -> int:
        """Entries queued and not yet taken by the writer."""
        with self._cv:
            return self._pending

    def queued_batches(self) -> int:
        """Batches waiting for the writer (not counting the one being written)."""
        with self._cv:
            return len(self._queue)

    def append(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        """See ``Ledger.append``."""
        waiter = _allocate_lock()
        waiter.acquire()
        queued = self._enqueue(disclosures, waiter)
        if queued is None:
            return []
        waiter.acquire()  # released by the writer once the batch is committed (or failed)
        return _receipts(*queued)

    async def append_async(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        """See ``Ledger.append_async``."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._enqueue(disclosures, done)
        if queued is None:
            return []
        await done
        return _receipts(*queued)

    def _enqueue(
        self, disclosures: Sequence[Disclosure], waiter: Any
    ) -> tuple[_Batch, int, int] | None:
        """Validate and encode in the caller's thread, then join the newest batch.

        Returns ``(batch, start, n)`` (``None`` for nothing to append). Once the batch is
        committed or failed, the writer releases ``waiter`` (a held lock) or resolves it (an
        asyncio future).
        """
        ds = list(disclosures)
        if not ds:
            return None
        for d in ds:
            validate_disclosure(d)
        if len(ds) > self._max_pending:
            raise InvalidArgumentError(f"{len(ds)} disclosures exceed max_pending")
        items = [Item(d, self._pz) for d in ds]  # encoding work, off the writer's path
        n = len(items)
        with self._cv:
            if self._closed:
                raise LedgerClosedError("ledger is closed")
            if self._pending + n > self._max_pending:
                raise LedgerPushbackError(f"{self._pending} appends already waiting")
            batch = self._queue[-1] if self._queue else None
            if batch is None or (batch.count and batch.count + n > self._max_batch):
                batch = _Batch()
                self._queue.append(batch)
            start = batch.count
            batch.items += items
            batch.count += n
            batch.waiters.append(waiter)
            self._pending += n
            self._cv.notify()
        return batch, start, n

    def _observe(self, batch: _Batch, seconds: float) -> None:
        for observer in self.observers:
            try:
                observer(batch.count, batch.receipts[-1].index + 1, seconds)
            except Exception:  # an observer never fails a committed batch
                continue

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return  # closed and drained
                batch = self._queue.popleft()  # later appends start a new batch
                self._pending -= batch.count
            self._commit(batch)
            batch.finish()

    def _commit(self, batch: _Batch) -> None:
        """Write ``batch`` in one transaction: its receipts, or its error (never raises)."""
        try:
            start = time.perf_counter()
            batch.receipts = self.write(batch.items)
            self._observe(batch, time.perf_counter() - start)
        except LedgerError as e:
            batch.error = e
        except Exception as e:  # never let the writer die with callers waiting
            err = LedgerError(f"internal error while appending: {type(e).__name__}: {e}")
            err.__cause__ = e
            batch.error = err

"""``Ledger.append_async``: the asyncio twin of ``append`` used by the gateway's event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from ledger import Disclosure, Ledger, LedgerClosedError, LedgerUnavailableError
from ledger.testing import stalled_writer

Factory = Callable[..., Disclosure]


def test_concurrent_async_appends_share_batches_and_stay_dense(
    ledger: Ledger, disclosure: Factory
) -> None:
    """200 coroutines appending at once get distinct, gap-free indexes in fewer transactions
    than appends (group commit), mixed with a thread using the sync ``append``."""
    batches: list[int] = []
    original = ledger._sequencer.write

    def counting(items):  # type: ignore[no-untyped-def]
        batches.append(len(items))
        return original(items)

    ledger._sequencer.write = counting

    async def main() -> list[int]:
        receipts = await asyncio.gather(*(ledger.append_async([disclosure(i)]) for i in range(200)))
        return [r.index for (r,) in receipts]

    sync_index: list[int] = []

    def sync_append() -> None:
        (r,) = ledger.append([disclosure(900)])
        sync_index.append(r.index)

    t = threading.Thread(target=sync_append)
    t.start()
    got = asyncio.run(main())
    t.join()
    assert sorted(got + sync_index) == list(range(201))
    assert ledger.size == 201
    assert len(batches) < 201  # appends waiting together were committed together


def test_async_receipts_match_what_is_stored(ledger: Ledger, disclosure: Factory) -> None:
    """Each receipt names the entry stored for that disclosure."""

    async def main() -> None:
        for n in range(3):
            (r,) = await ledger.append_async([disclosure(n)])
            stored = ledger.get_entry(r.index)
            assert stored.leaf_hash == r.leaf_hash
            assert stored.entry.request_id == f"req-{n}"

    asyncio.run(main())


def test_cancelled_waiter_still_gets_its_entry_committed(
    ledger: Ledger, disclosure: Factory
) -> None:
    """Cancelling the caller stops the wait, never the append: once queued, a decision is
    recorded (and resolving the cancelled future does not break the writer)."""

    async def main() -> None:
        with stalled_writer(ledger) as stall:
            task = asyncio.create_task(ledger.append_async([disclosure(0)]))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stall.release.set()
            (r,) = await ledger.append_async([disclosure(1)])
            assert r.index == 1

    asyncio.run(main())
    assert ledger.size == 2


def test_async_append_errors_are_the_sync_errors(
    open_ledger: Callable[..., Ledger], disclosure: Factory
) -> None:
    """A storage failure raises UNAVAILABLE in the awaiting coroutine; a closed ledger refuses."""
    led = open_ledger()

    def broken(items):  # type: ignore[no-untyped-def]
        raise LedgerUnavailableError("ledger storage failed: OperationalError")

    led._sequencer.write = broken
    with pytest.raises(LedgerUnavailableError):
        asyncio.run(led.append_async([disclosure(0)]))
    led.close()
    with pytest.raises(LedgerClosedError):
        asyncio.run(led.append_async([disclosure(1)]))
    assert asyncio.run(led.append_async([])) == []

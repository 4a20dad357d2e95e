"""Cost of content inspection (R19) per record: µs per 10-field record.

Run: ``python -m bench.inspection``. Inspects three kinds of 10-field records with
``gateway.inspection.identifiers_in_record`` and prints µs per record over ``--runs`` runs of
``--records`` records each: CPU time of this process (``time.process_time``, which a busy
machine's other processes do not inflate; min and median of the runs) and wall time (median):

- ``clean``: an ordinary customer profile (names, tags, dates, order numbers, a price), the
  common case: most fields are dismissed by the single candidate scan;
- ``numeric``: ten fields full of digit runs (order and tracking numbers, timestamps, SKUs)
  that reach the number checks but are no identifiers;
- ``hits``: a phone number, an e-mail, a resident id, a card and an IP among ordinary fields.

The issue's target is ≤ 20 µs per 10-field record (``clean``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from gateway.inspection import identifiers_in_record

RECORDS: dict[str, dict[str, str]] = {
    "clean": {
        "name": "Li Wei",
        "tags": "outdoor,coffee,running",
        "city": "Shanghai",
        "birth_date": "1990-04-12",
        "account_id": "acct-1001",
        "device_id": "dev-a1b2c3",
        "browsing": "viewed:trail-shoes",
        "items": "trail shoes x1",
        "amount": "¥1,299.00",
        "order": "ORD-2026-000123",
    },
    "numeric": {
        "order": "20261129000123456",
        "tracking": "773123456789012",
        "sf": "SF1234567890123",
        "time": "2026-11-29T12:34:56Z",
        "epoch": "1732871696123",
        "sku": "SKU-20261129-0042",
        "uuid": "550e8400-e29b-41d4-a716-446655440000",
        "price": "1299.00",
        "date": "2026-11-29 12:34:56",
        "isbn": "9787111213823",
    },
    "hits": {
        "tags": "coffee 13800131001",
        "email": "li.wei@example.cn",
        "id": "11010519491231002X",
        "card": "4111 1111 1111 1111",
        "ip": "192.168.1.20",
        "city": "Shanghai",
        "birth_date": "1990-04-12",
        "account_id": "acct-1001",
        "items": "trail shoes x1",
        "amount": "¥1,299.00",
    },
}


def micros_per_record(record: dict[str, str], n: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per record over ``n`` inspections of ``record``."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        identifiers_in_record(record)
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"µs per 10-field record, {args.runs} runs x {args.records} records")
    for name, record in RECORDS.items():
        assert len(record) == 10
        micros_per_record(record, 1_000)  # warm-up (regex and metadata caches)
        runs = [micros_per_record(record, args.records) for _ in range(args.runs)]
        cpu = [c for c, _ in runs]
        wall = [w for _, w in runs]
        print(
            f"{name:8s} CPU min {min(cpu):7.2f}  median {statistics.median(cpu):7.2f}"
            f"   wall median {statistics.median(wall):7.2f}"
        )


if __name__ == "__main__":
    main()

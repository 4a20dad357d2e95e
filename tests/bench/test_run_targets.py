"""The benchmark's targets table (issue 16): every round shown, tails judged on every round."""

from __future__ import annotations

from typing import Any

from bench.run import markdown, summarize, targets


def _closed(rps: float, p50: float = 5.0, p99: float = 10.0) -> dict[str, Any]:
    return {"ok": 1, "errors": {}, "seconds": 1.0, "rps": rps, "p50_ms": p50, "p99_ms": p99}


def _result(rounds: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"rounds": rounds, "scenarios": summarize(rounds), **extra}
    result["targets"] = targets(result)
    return result


def _target(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(t for t in result["targets"] if t["target"].startswith(prefix))


def test_ratio_target_is_judged_on_the_median_of_same_round_ratios() -> None:
    """Share's ratio is per round against that round's echo; the median decides."""
    result = _result(
        {
            "echo-sync": [_closed(1000), _closed(2000), _closed(1000)],
            "share-ad5-sqlite": [_closed(600), _closed(600), _closed(400)],
        }
    )
    t = _target(result, "Share, ad")
    assert t["rounds"] == "0.60, 0.30, 0.40"
    assert t["met"] is False


def test_tail_target_fails_if_any_round_exceeds_it() -> None:
    """One round with a p99 above 5 ms at 500 rps misses the target, whatever the median."""
    result = _result(
        {
            "share-ad5-rate-500": [
                _closed(500, p99=3.0),
                _closed(500, p99=4.0),
                _closed(500, p99=9.0),
            ]
        }
    )
    t = _target(result, "Open loop 500")
    assert t["rounds"] == "3.0, 4.0, 9.0 ms"
    assert t["met"] is False
    assert "ratio_to_echo_sync" not in result["scenarios"]["share-ad5-rate-500"]


def test_workers_target_needs_a_dense_verified_ledger() -> None:
    """Two workers at 1.5x one worker still miss the target if the ledger did not verify."""
    rounds = {
        "share-ad5-pg": [_closed(100), _closed(100), _closed(100)],
        "share-ad5-pg-w2": [_closed(150), _closed(150), _closed(150)],
    }
    check = {"entries": 10, "dense": True, "verified": False, "verify_s": 0.1}
    failed = _result(rounds, ledger_checks={"gw-pg-w2": check})
    assert _target(failed, "`serve --workers 2`")["met"] is False
    ok = _result(rounds, ledger_checks={"gw-pg-w2": {**check, "verified": True}})
    assert _target(ok, "`serve --workers 2`")["met"] is True


def test_markdown_has_a_targets_table_with_every_round() -> None:
    """The generated section lists each target with its rounds and a met mark."""
    result = _result(
        {
            "share-ad5-unloaded": [
                _closed(300, p50=0.9),
                _closed(300, p50=1.2),
                _closed(300, p50=0.8),
            ]
        },
        machine={
            "nproc": 2,
            "cpu": "x",
            "python": "3.11",
            "grpcio": "1",
            "platform": "p",
            "loadavg_at_start": [0.0, 0.0, 0.0],
            "date": "d",
        },
        args={
            "processes": 2,
            "concurrency": 16,
            "duration": 1,
            "warmup": 1,
            "rounds": 3,
            "rate": 0,
        },
        command="python -m bench.run",
    )
    md = markdown(result)
    assert (
        "| Share p50 unloaded (1 call in flight) ≤ 1 ms | p50 0.9 ms (median round) "
        "| 0.90, 1.20, 0.80 ms | ✓ |" in md
    )

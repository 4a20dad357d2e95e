"""Several processes appending to one database get dense indexes and lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app

REPO = Path(__file__).resolve().parents[2]
PER_PROCESS = 300

_CHILD = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime
    from pathlib import Path
    from ledger import Disclosure, Ledger

    url, keys, tag, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    led = Ledger.open(url, keys_dir=keys, origin="test.example/ledger", max_batch=50)
    def work(t):
        for i in range(n // 4):
            led.append([Disclosure(time=datetime.now(UTC), decision="ALLOW",
                                   request_id=f"{tag}-{t}-{i}", subject_ids=(f"s{i % 7}",))])
    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    led.checkpoint()
    led.close()
    """
)


def test_two_processes_append_densely(db_url: str, keys_dir: Path) -> None:
    """Two processes x 4 threads append at once: indexes 0..N-1, all present, verify passes."""
    Ledger.open(db_url, keys_dir=keys_dir, origin="test.example/ledger").close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, db_url, str(keys_dir), tag, str(PER_PROCESS)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for tag in ("p1", "p2")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Ledger.open(db_url, keys_dir=keys_dir, origin="test.example/ledger") as led:
        assert led.size == 2 * PER_PROCESS
        ids = sorted(
            e.entry.request_id
            for i in range(0, led.size, 1000)
            for e in led.query(after_index=i - 1, limit=1000)
        )
        assert len(ids) == 2 * PER_PROCESS == len(set(ids))
        assert sum(i.startswith("p1-") for i in ids) == PER_PROCESS
    res = CliRunner().invoke(app, ["verify", "--db", db_url, "--keys-dir", str(keys_dir)])
    assert res.exit_code == 0, res.output

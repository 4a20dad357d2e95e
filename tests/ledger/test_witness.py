"""Witnesses (c2sp.org/tlog-witness, tlog-cosignature/v1) and the log's use of them."""

from __future__ import annotations

import base64
import json
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ledger import Disclosure, Ledger
from ledger.checkpoint import Checkpoint, NoteSigner, SignedCheckpoint
from ledger.cli import app
from ledger.cosignature import Cosigner, split_note
from ledger.errors import WitnessRefusedError
from ledger.merkle import EMPTY_ROOT
from ledger.testing import running_witness
from ledger.witness.client import WitnessClient, WitnessConfig, fetch_witnessed
from ledger.witness.http import create_witness_server, serve_in_thread
from ledger.witness.service import SIZE_CONTENT_TYPE, Witness, WitnessStore, origin_hash
from tests.ledger.conftest import ORIGIN
from tests.ledger.test_tamper import _tamper

Factory = Callable[..., Disclosure]


def _request(old: int, proof: list[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n{lines}\n{note}".encode()


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


@pytest.fixture
def witness(tmp_path: Path, log_signer: NoteSigner) -> Witness:
    store = WitnessStore(tmp_path / "witness.db")
    return Witness(
        cosigner=Cosigner.generate("witness.test/w1"),
        logs={ORIGIN: [log_signer.verifier]},
        store=store,
    )


def test_witness_cosigns_a_first_checkpoint_with_a_timestamped_cosignature(
    witness: Witness, log_signer: NoteSigner
) -> None:
    """old 0 and no proof: 200 and one cosignature/v1 line that verifies, timestamp > 0."""
    cp = log_signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT))
    r = witness.add_checkpoint(_request(0, [], cp.note))
    assert r.status == 200, r.body
    body, _ = split_note(cp.note)
    assert witness.cosigner.verifier.verify_line(body, r.body.strip()) is not None


def _five_cosigned(
    ledger: Ledger, disclosure: Factory, witness: Witness, log_signer: NoteSigner
) -> SignedCheckpoint:
    """Append five entries and have the witness cosign their checkpoint."""
    ledger.append([disclosure(i) for i in range(5)])
    cp = log_signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=5, root=ledger.root()))
    assert witness.add_checkpoint(_request(0, [], cp.note)).status == 200
    return cp


def test_witness_answers_409_with_its_size_to_a_stale_old_size(
    ledger: Ledger, disclosure: Factory, witness: Witness, log_signer: NoteSigner
) -> None:
    """A request whose old size is not what the witness last cosigned gets 409 and the size."""
    cp = _five_cosigned(ledger, disclosure, witness, log_signer)
    r = witness.add_checkpoint(_request(0, [], cp.note))
    assert (r.status, r.body, r.content_type) == (409, "5\n", SIZE_CONTENT_TYPE)


def test_witness_refuses_a_fork_with_422(
    ledger: Ledger, disclosure: Factory, witness: Witness, log_signer: NoteSigner
) -> None:
    """A larger tree whose consistency proof does not lead from the cosigned root: 422."""
    _five_cosigned(ledger, disclosure, witness, log_signer)
    ledger.append([disclosure(i) for i in range(5, 9)])
    forged = bytes(32)  # a root that does not extend the first five entries
    cp9 = log_signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=9, root=forged))
    r = witness.add_checkpoint(_request(5, ledger.consistency_proof(5, 9), cp9.note))
    assert r.status == 422, r.body
    good = log_signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=9, root=ledger.root()))
    assert (
        witness.add_checkpoint(_request(5, ledger.consistency_proof(5, 9), good.note)).status == 200
    )


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (
            lambda note, other: other.sign(
                Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT).body()
            ),
            403,
        ),
        (lambda note, other: note.replace(ORIGIN, "other.test/log"), 404),
        (lambda note, other: note.replace("\n\n", "\n"), 400),
        (lambda note, other: note.replace("\n0\n", "\n1\n", 1), 403),
    ],
    ids=["unknown_key", "unknown_origin", "malformed", "bad_signature"],
)
def test_witness_refuses_unauthenticated_or_malformed_checkpoints(
    witness: Witness, log_signer: NoteSigner, mutate: Callable[[str, NoteSigner], str], status: int
) -> None:
    """Spec statuses: 403 no valid log signature, 404 unknown origin, 400 malformed."""
    cp = log_signer.sign_checkpoint(Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT))
    r = witness.add_checkpoint(_request(0, [], mutate(cp.note, NoteSigner.generate(ORIGIN))))
    assert r.status == status, r.body


# -- two witnesses, one offline, k = 1 ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def witness_url(tmp_path: Path, keys_dir: Path, ledger: Ledger) -> Iterator[tuple[str, str]]:
    """A witness HTTP server on port 0 that trusts the test ledger's key: (url, vkey)."""
    with running_witness(
        "witness.test/online",
        origin=ORIGIN,
        log_vkey=ledger.verifier_key,
        store=tmp_path / "online.db",
    ) as w:
        yield w.url, w.vkey


def _verify(url: str, keys_dir: Path, witness: tuple[str, str], *extra: str) -> dict[str, Any]:
    res = CliRunner().invoke(
        app,
        [
            "verify",
            "--db",
            url,
            "--keys-dir",
            str(keys_dir),
            "--json",
            "--witness-url",
            witness[0],
            "--witness-vkey",
            witness[1],
            *extra,
        ],
    )
    out: dict[str, Any] = json.loads(res.output)
    out["exit_code"] = res.exit_code
    return out


def test_rollback_is_refused_by_the_witness_and_caught_by_verify(
    open_ledger: Callable[..., Ledger],
    ledger: Ledger,
    disclosure: Factory,
    db_url: str,
    keys_dir: Path,
    witness_url: tuple[str, str],
) -> None:
    """Two witnesses, one offline, k = 1: checkpoints get published with one cosignature.
    Deleting entries and checkpoints after the witnessed checkpoint 10 (and re-appending a
    different history) is refused by the witness (it holds size 20) and fails verify at
    index 10, the first entry after the last checkpoint both sides agree on."""
    offline = WitnessConfig(
        url=f"http://127.0.0.1:{_free_port()}", vkey=Cosigner.generate("witness.test/offline").vkey
    )
    online = WitnessConfig(url=witness_url[0], vkey=witness_url[1])
    ledger.close()
    led = open_ledger(witnesses=[online, offline], witness_quorum=1, witness_interval_s=0)
    assert led.witness_publisher is not None
    led.append([disclosure(i) for i in range(10)])
    pub = led.witness_publisher.publish()
    assert pub.published and pub.cosigned_by == ["witness.test/online"], pub
    assert "witness.test/offline" in pub.unavailable
    led.append([disclosure(i) for i in range(10, 20)])
    assert led.witness_publisher.publish().published
    cosigned = led.cosigned_checkpoint(1)
    assert cosigned is not None and cosigned.size == 20
    out = _verify(db_url, keys_dir, witness_url)
    assert out["exit_code"] == 0 and out["witnessed_size"] == 20, out
    led.close()

    _tamper(
        db_url,
        "DELETE FROM ledger_entry WHERE idx >= 10",
        "DELETE FROM ledger_node WHERE ((idx + 1) << level) > 10",
        "DELETE FROM ledger_checkpoint WHERE size > 10",
        "DELETE FROM ledger_cosignature WHERE size > 10",
        "DELETE FROM ledger_subject_index WHERE idx >= 10",
    )
    out = _verify(db_url, keys_dir, witness_url)
    assert out["exit_code"] == 1 and out["first_bad_index"] == 10, out
    assert out["problems"][0]["kind"] == "truncated" and "witness" in out["problems"][0]["detail"]

    with pytest.raises(WitnessRefusedError, match="rolled back"):  # refused at open
        open_ledger(witnesses=[online, offline], witness_quorum=1, witness_interval_s=0)
    forked = open_ledger(
        witnesses=[online, offline], witness_quorum=1, witness_interval_s=0, witness_check=False
    )
    forked.append([disclosure(100 + i) for i in range(15)])  # a different history, size 25
    assert forked.witness_publisher is not None
    pub = forked.witness_publisher.publish()
    assert not pub.published and "witness.test/online" in pub.refused, pub
    out = _verify(db_url, keys_dir, witness_url)
    assert out["exit_code"] == 1 and out["first_bad_index"] == 10, out
    [problem] = [p for p in out["problems"] if p["kind"] == "root_mismatch"]
    assert "[10, 20)" in problem["detail"], problem
    assert fetch_witnessed(witness_url[0], ORIGIN) is not None  # the witness kept size 20


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            (
                "DELETE FROM ledger_entry WHERE idx >= 6",
                "DELETE FROM ledger_node WHERE ((idx + 1) << level) > 6",
                "DELETE FROM ledger_checkpoint WHERE size > 6",
                "DELETE FROM ledger_cosignature WHERE size > 6",
                "DELETE FROM ledger_subject_index WHERE idx >= 6",
            ),
            id="truncated-to-a-witnessed-size",
        ),
        pytest.param(
            (
                "DELETE FROM ledger_entry",
                "DELETE FROM ledger_node",
                "DELETE FROM ledger_checkpoint",
                "DELETE FROM ledger_cosignature",
                "DELETE FROM ledger_subject_index",
            ),
            id="wiped",
        ),
    ],
)
def test_a_rolled_back_or_forked_log_does_not_open_while_its_witness_remembers(
    open_ledger: Callable[..., Ledger],
    ledger: Ledger,
    disclosure: Factory,
    db_url: str,
    witness_url: tuple[str, str],
    tamper: tuple[str, ...],
) -> None:
    """An operator restores an older database (or empties it) and restarts: the log refuses
    to open, naming the witness and its size; re-appending a different history past the old
    size (a fork) is refused the same way. An unreachable second witness changes nothing."""
    online = WitnessConfig(url=witness_url[0], vkey=witness_url[1])
    offline = WitnessConfig(
        url=f"http://127.0.0.1:{_free_port()}", vkey=Cosigner.generate("witness.test/offline").vkey
    )
    ledger.close()
    led = open_ledger(witnesses=[online, offline], witness_interval_s=0)
    led.append([disclosure(i) for i in range(6)])
    assert led.witness_publisher is not None and led.witness_publisher.publish().published
    led.append([disclosure(i) for i in range(6, 12)])
    assert led.witness_publisher.publish().published  # the witness holds size 12
    led.close()

    _tamper(db_url, *tamper)
    with pytest.raises(WitnessRefusedError) as refused:
        open_ledger(witnesses=[online, offline], witness_interval_s=0)
    assert "witness.test/online" in refused.value.message
    assert "cosigned size 12" in refused.value.message

    forked = open_ledger(witnesses=[online], witness_interval_s=0, witness_check=False)
    forked.append([disclosure(100 + i) for i in range(20)])  # another history, past size 12
    forked.close()
    with pytest.raises(WitnessRefusedError, match=r"witness\.test/online"):
        open_ledger(witnesses=[online], witness_interval_s=0)
    assert open_ledger().size == forked.size  # without witnesses nothing can tell


def test_verify_fails_on_a_forged_stored_cosignature(
    open_ledger: Callable[..., Ledger],
    ledger: Ledger,
    disclosure: Factory,
    db_url: str,
    keys_dir: Path,
    witness_url: tuple[str, str],
) -> None:
    """A stored cosignature line by a configured witness that does not verify is named."""
    ledger.close()
    led = open_ledger(
        witnesses=[WitnessConfig(url=witness_url[0], vkey=witness_url[1])], witness_interval_s=0
    )
    led.append([disclosure(0)])
    assert led.witness_publisher is not None and led.witness_publisher.publish().published
    with sa.create_engine(db_url, poolclass=sa.NullPool).connect() as conn:
        line = str(conn.execute(sa.text("SELECT line FROM ledger_cosignature")).scalar())
    bad = line[:-8] + ("A" if line[-8] != "A" else "B") + line[-7:]
    _tamper(db_url, f"UPDATE ledger_cosignature SET line = '{bad}'")
    out = _verify(db_url, keys_dir, witness_url)
    assert out["exit_code"] == 1, out
    assert any(p["table"] == "ledger_cosignature" for p in out["problems"]), out


def test_witness_serve_process_cosigns_and_keeps_its_state_across_restarts(
    tmp_path: Path, ledger: Ledger, disclosure: Factory
) -> None:
    """`share-gateway witness serve` is a process of its own (own key, own store): it cosigns,
    stops on SIGTERM, and after a restart still refuses to go back to a smaller tree."""
    exe = Path(sys.executable).parent / "share-gateway"
    data = tmp_path / "w"

    def start() -> tuple[subprocess.Popen[str], str, str]:
        proc = subprocess.Popen(
            [
                str(exe),
                "witness",
                "serve",
                "--data-dir",
                str(data),
                "--name",
                "w.test/proc",
                "--listen",
                "127.0.0.1:0",
                "--log",
                ledger.verifier_key,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        url = proc.stderr.readline().strip().rsplit(" ", 1)[1]
        vkey = proc.stderr.readline().strip().rsplit(" ", 1)[1]
        return proc, url, vkey

    ledger.append([disclosure(i) for i in range(4)])
    cp4 = ledger.latest_checkpoint()
    assert cp4 is not None
    proc, url, vkey = start()
    try:
        client = WitnessClient(config=WitnessConfig(url=url, vkey=vkey))
        client.add_checkpoint(cp4, ledger.consistency_proof)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert stat.S_IMODE((data / "witness.key").stat().st_mode) == 0o600
    proc, url, vkey2 = start()
    try:
        assert vkey2 == vkey  # its own key, kept in its data dir
        ledger.append([disclosure(4)])
        cp5 = ledger.latest_checkpoint()
        assert cp5 is not None
        fresh = WitnessClient(config=WitnessConfig(url=url, vkey=vkey))  # knows no size
        fresh.add_checkpoint(cp5, ledger.consistency_proof)  # 409 -> proof from 4 -> 200
        assert fresh.known_size == 5
        with pytest.raises(WitnessRefusedError):
            WitnessClient(config=WitnessConfig(url=url, vkey=vkey)).add_checkpoint(
                cp4, ledger.consistency_proof
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_witness_http_refuses_oversized_and_unsized_bodies_and_keeps_serving(
    witness: Witness,
) -> None:
    """A caller that sends 1 MiB, or no Content-Length, gets 413 / 411 and nothing is read
    or stored; an ordinary request on a new connection is still answered."""
    server, port = create_witness_server("127.0.0.1:0", witness)
    serve_in_thread(server)
    try:

        def post(headers: bytes, body: bytes = b"") -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\n" + headers + b"\r\n")
                if body:
                    s.sendall(body)
                return s.recv(200)

        huge = post(b"Content-Length: 1048576\r\n", b"x" * 4096)
        assert huge.startswith(b"HTTP/1.0 413") or huge.startswith(b"HTTP/1.1 413")
        unsized = post(b"")
        assert b" 411 " in unsized.split(b"\r\n", 1)[0]
        malformed = post(b"Content-Length: 5\r\n", b"hello")
        assert b" 400 " in malformed.split(b"\r\n", 1)[0]
        assert witness.checkpoint(origin_hash(ORIGIN)).status == 404  # nothing stored
    finally:
        server.shutdown()

"""The remote auditor CLI: `share-gateway audit ... --server` over AuditService, verifying
every answer against the verifier key it holds and the last checkpoint it verified."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gateway.audit_client import CheckpointStore
from gateway.cli import app
from gateway.demo import ad_request, delivery_request
from gateway.testing import RunningGateway, running_gateway
from ledger import open_checkpoint
from ledger.checkpoint import Checkpoint, NoteSigner
from partner_gateway.v1 import share_pb2_grpc

runner = CliRunner()
# The in-process gateway logs to stdout with structlog's default configuration.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[.*\n", re.M)


def stdout(res: Result) -> str:
    """The command's own standard output."""
    return _LOG_LINE.sub("", res.stdout)


def share(gw: RunningGateway, n: int = 1) -> None:
    stub = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    for _ in range(n):
        stub.Share(delivery_request(), timeout=10)


def remote_args(gw: RunningGateway, state: Path, *, vkey: str | None = None) -> list[str]:
    """Auditor options: the dev PKI's auditor certificate, the key, the state dir."""
    pki = gw.pki
    return [
        "--server",
        gw.address,
        "--ca",
        str(pki / "ca.crt"),
        "--cert",
        str(pki / "auditor-audit-team.crt"),
        "--key",
        str(pki / "auditor-audit-team.key"),
        "--vkey",
        vkey or gw.gateway.ledger.verifier_key,
        "--state-dir",
        str(state),
    ]


def local_args(gw: RunningGateway) -> list[str]:
    data = gw.gateway.settings.data_dir
    return ["--db", gw.gateway.settings.ledger_url, "--keys-dir", str(data / "keys")]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with inline shares and one refusal in its ledger."""
    with running_gateway(tmp_path_factory.mktemp("remote")) as running:
        share(running, 2)
        stub = share_pb2_grpc.ShareServiceStub(running.channel("service", "checkout"))
        stub.Share(ad_request("adco", "u1001", "u1002"), timeout=10)
        with pytest.raises(Exception):  # noqa: B017 - refused and recorded, any status
            stub.Share(ad_request("nobody-inc", "u1001"), timeout=10)
        yield running


def saved_notes(state: Path) -> list[str]:
    return sorted(p.read_text() for p in (state / "checkpoints").glob("*.checkpoint"))


def test_remote_answers_equal_the_local_ones(gw: RunningGateway, tmp_path: Path) -> None:
    """query, report and recipients over AuditService give what the database gives."""
    r = remote_args(gw, tmp_path)
    for cmd in (
        ["query", "--all", "--json"],
        ["query", "--decision", "deny", "--json"],
        ["report", "--subject", "u1001", "--json"],
        ["recipients", "--subject", "u1001", "--json"],
    ):
        remote = runner.invoke(app, ["audit", *cmd, *r])
        local = runner.invoke(app, ["audit", *cmd, *local_args(gw)])
        assert remote.exit_code == 0, remote.output
        assert json.loads(stdout(remote)) == json.loads(stdout(local)), cmd


def test_remote_query_pages_with_a_more_results_line(gw: RunningGateway, tmp_path: Path) -> None:
    """--limit over the wire stops with the server's page token; continuing gives the rest."""
    r = remote_args(gw, tmp_path)
    everything = json.loads(stdout(runner.invoke(app, ["audit", "query", "--all", "--json", *r])))
    first = runner.invoke(app, ["audit", "query", "--limit", "1", "--json", *r])
    token = json.loads(stdout(first))[0]["index"]
    assert f"more results: use --all or --page-token {token}" in first.stderr
    rest = runner.invoke(app, ["audit", "query", "--all", "--json", "--page-token", str(token), *r])
    assert json.loads(stdout(first)) + json.loads(stdout(rest)) == everything


def test_checkpoint_is_saved_and_each_call_proves_consistency(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """The first call saves the verified note; after growth the next proves it extends it."""
    r = remote_args(gw, tmp_path)
    res = runner.invoke(app, ["audit", "checkpoint", *r])
    assert res.exit_code == 0 and "first checkpoint saved" in stdout(res)
    (note,) = saved_notes(tmp_path)
    old = open_checkpoint(note, gw.gateway.ledger.verifier_key)
    share(gw)
    res = runner.invoke(app, ["audit", "consistency", *r])
    assert res.exit_code == 0, res.output
    assert f"extends size {old.size}" in stdout(res)
    (note,) = saved_notes(tmp_path)
    assert open_checkpoint(note, gw.gateway.ledger.verifier_key).size > old.size


def test_remote_receipt_is_verified_then_verifies_offline(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """A receipt fetched remotely is checked before it is written, and verifies offline."""
    out = tmp_path / "r.json"
    res = runner.invoke(
        app, ["audit", "receipt", "1", "--out", str(out), *remote_args(gw, tmp_path)]
    )
    assert res.exit_code == 0 and "(verified)" in stdout(res), res.output
    res = runner.invoke(
        app, ["audit", "verify-receipt", str(out), "--key", gw.gateway.ledger.verifier_key]
    )
    assert res.exit_code == 0 and stdout(res).startswith("OK: entry 1 ")


def test_remote_export_hashes_to_the_checkpoint_root(gw: RunningGateway, tmp_path: Path) -> None:
    """The export is folded into the Merkle root of the verified checkpoint and written."""
    out = tmp_path / "ledger.jsonl"
    res = runner.invoke(app, ["audit", "export", "--out", str(out), *remote_args(gw, tmp_path)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert [json.loads(ln)["index"] for ln in lines] == list(range(len(lines)))
    assert len(lines) >= gw.gateway.ledger.size - 1


def test_a_checkpoint_signed_by_another_key_is_refused(gw: RunningGateway, tmp_path: Path) -> None:
    """With a key the gateway did not sign with: FAILED, exit 1, nothing saved."""
    other = NoteSigner.generate(gw.gateway.ledger.verifier_key.split("+")[0]).vkey
    res = runner.invoke(app, ["audit", "checkpoint", *remote_args(gw, tmp_path, vkey=other)])
    assert res.exit_code == 1
    assert res.stderr.startswith("FAILED: ") and "reports verifier key" in res.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_without_a_verifier_key_remote_mode_refuses(gw: RunningGateway, tmp_path: Path) -> None:
    """No --vkey and no key directory at hand: a clear error, never the server's key."""
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "elsewhere"}"\n', encoding="utf-8")
    args = [a for a in remote_args(gw, tmp_path) if a != gw.gateway.ledger.verifier_key]
    args.remove("--vkey")
    res = runner.invoke(app, ["audit", "checkpoint", "--config", str(cfg), *args])
    assert res.exit_code == 2 and "--vkey" in res.stderr


def test_a_tampered_saved_checkpoint_is_refused(gw: RunningGateway, tmp_path: Path) -> None:
    """Someone edited the saved checkpoint: the CLI refuses it instead of trusting it."""
    r = remote_args(gw, tmp_path)
    assert runner.invoke(app, ["audit", "checkpoint", *r]).exit_code == 0
    (path,) = (tmp_path / "checkpoints").glob("*.checkpoint")
    lines = path.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1000)
    path.write_text("\n".join(lines))
    res = runner.invoke(app, ["audit", "checkpoint", *r])
    assert res.exit_code == 1 and "does not verify" in res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rollback_and_fork_of_the_server_are_caught(tmp_path: Path) -> None:
    """The operator restores an old backup (rollback), then writes a different history on it
    (fork): each call fails with exit 1 and the saved checkpoint stays the verified one."""
    port = _free_port()
    live, backup, state = tmp_path / "live", tmp_path / "backup", tmp_path / "state"
    with running_gateway(live, listen=f"127.0.0.1:{port}") as gw:
        share(gw, 3)
        vkey = gw.gateway.ledger.verifier_key
    shutil.copytree(live, backup)
    with running_gateway(live, listen=f"127.0.0.1:{port}") as gw:
        share(gw, 3)
        res = runner.invoke(app, ["audit", "checkpoint", *remote_args(gw, state)])
        assert res.exit_code == 0, res.output
    (saved,) = saved_notes(state)
    size = open_checkpoint(saved, vkey).size

    with running_gateway(backup, listen=f"127.0.0.1:{port}") as old:
        assert old.gateway.ledger.size < size
        res = runner.invoke(app, ["audit", "checkpoint", *remote_args(old, state)])
        assert res.exit_code == 1 and "rollback" in res.stderr, res.output
        assert saved_notes(state) == [saved]

        share(old, size - old.gateway.ledger.size + 1)  # another history, now longer
        res = runner.invoke(app, ["audit", "query", *remote_args(old, state)])
        assert res.exit_code == 1 and "fork" in res.stderr, res.output
        assert saved_notes(state) == [saved]


def test_state_file_is_the_signed_note_ledger_checkpoint_prints(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """One format: the saved file is the C2SP signed note, owner-only."""
    assert runner.invoke(app, ["audit", "checkpoint", *remote_args(gw, tmp_path)]).exit_code == 0
    store = CheckpointStore(directory=tmp_path)
    origin = gw.gateway.ledger.verifier_key.split("+")[0]
    path = store.path(gw.address, origin)
    assert path.stat().st_mode & 0o777 == 0o600
    assert open_checkpoint(path.read_text(), gw.gateway.ledger.verifier_key).origin == origin


def test_consistency_from_a_checkpoint_file_of_ledger_checkpoint(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """A note printed by `ledger checkpoint` is a trusted starting point; a forged one fails."""
    data = gw.gateway.settings.data_dir
    local = ["--db", gw.gateway.settings.ledger_url, "--keys-dir", str(data / "keys")]
    note = stdout(runner.invoke(app, ["ledger", "checkpoint", "--sign", *local]))
    trusted = tmp_path / "trusted.checkpoint"
    trusted.write_text(note, encoding="utf-8")
    share(gw)
    r = remote_args(gw, tmp_path / "state")
    res = runner.invoke(app, ["audit", "consistency", "--trusted-checkpoint", str(trusted), *r])
    assert res.exit_code == 0 and "extends size" in stdout(res), res.output

    # Same key, same size, another root: what a forked log would have signed.
    from ledger.keys import load_signer

    signer = load_signer(data / "keys")
    cp = open_checkpoint(note, gw.gateway.ledger.verifier_key)
    forged = signer.sign_checkpoint(Checkpoint(origin=cp.origin, size=cp.size, root=bytes(32)))
    trusted.write_text(forged.note, encoding="utf-8")
    before = saved_notes(tmp_path / "state")
    res = runner.invoke(app, ["audit", "consistency", "--trusted-checkpoint", str(trusted), *r])
    assert res.exit_code == 1 and "fork" in res.stderr, res.output
    assert saved_notes(tmp_path / "state") == before


def test_remote_auditor_with_a_bearer_token(tmp_path: Path) -> None:
    """Against a server-TLS listener an auditor's token works; a wrong one is one error line."""
    tokens = tmp_path / "tokens.json"
    res = runner.invoke(
        app,
        ["certs", "mint-token", "auditor:ext", "--role", "auditor", "--tokens-file", str(tokens)],
    )
    token = res.stdout.strip()
    with running_gateway(tmp_path / "d", client_certs=False, tokens_file=str(tokens)) as gw:
        base = [
            "--server",
            gw.address,
            "--ca",
            str(gw.pki / "ca.crt"),
            "--vkey",
            gw.gateway.ledger.verifier_key,
            "--state-dir",
            str(tmp_path / "state"),
        ]
        res = runner.invoke(app, ["audit", "checkpoint", "--token", token, *base])
        assert res.exit_code == 0 and stdout(res).startswith("OK: "), res.output
        res = runner.invoke(app, ["audit", "query", "--token", "not-a-token", *base])
        assert res.exit_code == 2 and "UNAUTHENTICATED" in res.stderr


def test_saved_checkpoint_is_a_trusted_checkpoint_for_ledger_verify(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """One file format: the auditor's saved note is a `ledger verify --trusted-checkpoint`;
    a forged one (same key, another root) fails that verify."""
    assert runner.invoke(app, ["audit", "checkpoint", *remote_args(gw, tmp_path)]).exit_code == 0
    (saved,) = (tmp_path / "checkpoints").glob("*.checkpoint")
    share(gw)
    res = runner.invoke(
        app, ["ledger", "verify", *local_args(gw), "--trusted-checkpoint", str(saved)]
    )
    assert res.exit_code == 0, res.output

    from ledger.keys import load_signer

    cp = open_checkpoint(saved.read_text(), gw.gateway.ledger.verifier_key)
    signer = load_signer(gw.gateway.settings.data_dir / "keys")
    forged = tmp_path / "forged.checkpoint"
    forged.write_text(
        signer.sign_checkpoint(Checkpoint(origin=cp.origin, size=cp.size, root=bytes(32))).note
    )
    res = runner.invoke(
        app, ["ledger", "verify", *local_args(gw), "--trusted-checkpoint", str(forged)]
    )
    assert res.exit_code == 1, res.output

"""The auditor's surface end to end: AuditService over mTLS and the `audit` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from gateway.cli.audit import app as audit_cli
from gateway.demo import ad_request, delivery_request
from gateway.services.audit import receipt_document_from_message
from gateway.testing import RunningGateway, running_gateway
from ledger.checkpoint import open_checkpoint
from ledger.merkle import leaf_hash
from ledger.verify import verify_consistency
from partner_gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2_grpc,
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway whose ledger holds inline shares, a staged-and-pulled share and a refusal."""
    with running_gateway(tmp_path_factory.mktemp("audit")) as running:
        share = share_pb2_grpc.ShareServiceStub(running.channel("service", "checkout"))
        share.Share(delivery_request())  # u1001 -> logiship
        share.Share(ad_request("adco", "u1001", "u1002"))  # u1001 -> adco; u1002 opted out
        share.Share(ad_request("admetrics", "u1007", outbox=True))  # staged only...
        partner = partner_pb2_grpc.PartnerServiceStub(running.channel("partner", "admetrics"))
        list(
            partner.Pull(partner_pb2.PullRequest(), timeout=10)
        )  # ...then pulled: u1007 -> admetrics
        with pytest.raises(grpc.RpcError):
            share.Share(ad_request("nobody-inc", "u1001"))  # refused, recorded
        yield running


@pytest.fixture(scope="module")
def audit(gw: RunningGateway) -> audit_pb2_grpc.AuditServiceStub:
    return audit_pb2_grpc.AuditServiceStub(gw.channel("auditor", "audit-team"))


def cli_args(gw: RunningGateway) -> list[str]:
    data = gw.gateway.settings.data_dir
    return ["--db", gw.gateway.settings.ledger_url, "--keys-dir", str(data / "keys")]


def test_auditor_finds_a_subjects_disclosures_by_subject_id(
    audit: audit_pb2_grpc.AuditServiceStub,
) -> None:
    """Querying by clear subject id returns that subject's entries and no clear id."""
    resp = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(filter=audit_pb2.DisclosureFilter(subject_id="u1001"))
    )
    partners = {e.partner_id for e in resp.entries}
    assert {"logiship", "adco", "nobody-inc"} <= partners
    assert "admetrics" not in partners
    assert all(b"u1001" not in e.data for e in resp.entries)
    allowed = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(
            filter=audit_pb2.DisclosureFilter(
                subject_id="u1001", decision="ALLOW", partner_id="adco"
            )
        )
    )
    assert [e.partner_id for e in allowed.entries] == ["adco"]


def test_time_range_filter_is_half_open(audit: audit_pb2_grpc.AuditServiceStub) -> None:
    """`since` is inclusive and `until` exclusive: an entry's own time selects exactly it."""
    from google.protobuf.timestamp_pb2 import Timestamp

    first = audit.QueryDisclosures(audit_pb2.QueryDisclosuresRequest(page_size=1)).entries[0]
    later = Timestamp(seconds=first.time.seconds + 3600)
    only_before = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(filter=audit_pb2.DisclosureFilter(until=first.time))
    )
    assert first.index not in [e.index for e in only_before.entries]
    window = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(
            filter=audit_pb2.DisclosureFilter(since=first.time, until=later)
        )
    )
    assert window.entries[0].index == first.index
    none = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(filter=audit_pb2.DisclosureFilter(since=later))
    )
    assert not none.entries


def test_subject_report_lists_who_received_the_data(audit: audit_pb2_grpc.AuditServiceStub) -> None:
    """The report names recipients, purposes and categories; exclusions and staging do not count."""
    report = audit.SubjectReport(audit_pb2.SubjectReportRequest(subject_id="u1001"))
    assert list(report.recipients) == ["adco", "logiship"]
    adco = next(d for d in report.disclosures if d.partner_id == "adco")
    assert adco.purpose == "ad_delivery" and "user.profile.tags" in adco.categories
    pulled = audit.SubjectReport(audit_pb2.SubjectReportRequest(subject_id="u1007"))
    assert [(d.partner_id, d.mode) for d in pulled.disclosures] == [("admetrics", "pull")]
    opted_out = audit.SubjectReport(audit_pb2.SubjectReportRequest(subject_id="u1002"))
    assert not opted_out.disclosures


def test_receipt_verifies_offline_with_only_the_verifier_key(
    gw: RunningGateway, audit: audit_pb2_grpc.AuditServiceStub, tmp_path: Path
) -> None:
    """A receipt saved from GetReceipt verifies with the CLI and the vkey; a changed byte fails."""
    [entry] = audit.QueryDisclosures(
        audit_pb2.QueryDisclosuresRequest(
            filter=audit_pb2.DisclosureFilter(subject_id="u1001", partner_id="logiship")
        )
    ).entries
    receipt = audit.GetReceipt(audit_pb2.GetReceiptRequest(index=entry.index))
    assert receipt.entry.leaf_hash == leaf_hash(receipt.entry.data)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt_document_from_message(receipt)), encoding="utf-8")
    vkey = gw.gateway.ledger.verifier_key
    ok = CliRunner().invoke(audit_cli, ["verify-receipt", str(path), "--key", vkey])
    assert ok.exit_code == 0, ok.output
    assert f"entry {entry.index}" in ok.output
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["entry"] = doc["entry"].replace('"logiship"', '"logiship2"')
    path.write_text(json.dumps(doc), encoding="utf-8")
    bad = CliRunner().invoke(audit_cli, ["verify-receipt", str(path), "--key", vkey])
    assert bad.exit_code == 1 and "FAILED" in bad.output


def test_cli_receipt_file_verifies_and_fails_under_another_key(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """`audit receipt` writes a file that verifies offline, and not under a different key."""
    from ledger.checkpoint import NoteSigner

    path = tmp_path / "r.json"
    made = CliRunner().invoke(audit_cli, ["receipt", "0", "--out", str(path), *cli_args(gw)])
    assert made.exit_code == 0, made.output
    runner = CliRunner()
    ok = runner.invoke(
        audit_cli, ["verify-receipt", str(path), "--key", gw.gateway.ledger.verifier_key]
    )
    assert ok.exit_code == 0, ok.output
    other = NoteSigner.generate(gw.gateway.ledger.origin).vkey
    assert runner.invoke(audit_cli, ["verify-receipt", str(path), "--key", other]).exit_code == 1


def test_consistency_proof_between_two_checkpoints_verifies(
    gw: RunningGateway, audit: audit_pb2_grpc.AuditServiceStub
) -> None:
    """Two checkpoints taken around new shares are proven consistent."""
    old = audit.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    share.Share(ad_request("adco", "u1001"))
    new = audit.GetCheckpoint(audit_pb2.GetCheckpointRequest())
    assert new.size > old.size
    for cp in (old, new):
        open_checkpoint(cp.note, cp.verifier_key)
    proof = audit.GetConsistencyProof(
        audit_pb2.GetConsistencyProofRequest(old_size=old.size, new_size=new.size)
    )
    verify_consistency(old.size, new.size, old.root, new.root, list(proof.proof))


def test_pagination_returns_every_entry_exactly_once(
    gw: RunningGateway, audit: audit_pb2_grpc.AuditServiceStub
) -> None:
    """Walking pages of 3 yields each index once, the same as the stream and the ledger size."""
    seen: list[int] = []
    token = ""
    while True:
        page = audit.QueryDisclosures(
            audit_pb2.QueryDisclosuresRequest(page_size=3, page_token=token)
        )
        seen.extend(e.index for e in page.entries)
        token = page.next_page_token
        if not token:
            break
    size = gw.gateway.ledger.size
    assert seen == list(range(size))
    streamed = [
        e.index for e in audit.StreamDisclosures(audit_pb2.StreamDisclosuresRequest(), timeout=10)
    ]
    assert streamed == seen


def test_partner_and_service_cannot_call_the_audit_service(gw: RunningGateway) -> None:
    """AuditService is for the auditor role only."""
    for kind, name in (("partner", "adco"), ("service", "checkout")):
        stub = audit_pb2_grpc.AuditServiceStub(gw.channel(kind, name))
        with pytest.raises(grpc.RpcError) as info:
            stub.GetCheckpoint(audit_pb2.GetCheckpointRequest())
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_bad_page_token_and_unknown_index_are_client_errors(
    audit: audit_pb2_grpc.AuditServiceStub,
) -> None:
    """A forged page token is INVALID_ARGUMENT; a receipt for a missing index is NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as info:
        audit.QueryDisclosures(audit_pb2.QueryDisclosuresRequest(page_token="abc"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        audit.GetReceipt(audit_pb2.GetReceiptRequest(index=10**9))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_recipients_report_and_query_answer_from_the_ledger(gw: RunningGateway) -> None:
    """`audit recipients`, `report --json` and `query --csv/--json` agree with the ledger."""
    runner = CliRunner()
    rec = runner.invoke(audit_cli, ["recipients", "--subject", "u1001", *cli_args(gw)])
    assert rec.exit_code == 0, rec.output
    assert rec.output.split() == ["adco", "logiship"]
    rep = runner.invoke(audit_cli, ["report", "--subject", "u1007", "--json", *cli_args(gw)])
    assert [r["partner"] for r in json.loads(rep.output)] == ["admetrics"]
    csv_out = runner.invoke(
        audit_cli, ["query", "--decision", "deny", "--csv", "--all", *cli_args(gw)]
    )
    lines = csv_out.output.strip().splitlines()
    assert lines[0].startswith("index,time,decision") and all(",DENY," in ln for ln in lines[1:])
    js = runner.invoke(audit_cli, ["query", "--subject", "u1001", "--json", *cli_args(gw)])
    assert all("u1001" not in json.dumps(e) for e in json.loads(js.output))
    table = runner.invoke(audit_cli, ["query", "--partner", "logiship", *cli_args(gw)])
    assert table.exit_code == 0 and "logiship" in table.output


def test_cli_export_writes_every_entry_with_a_matching_leaf_hash(
    gw: RunningGateway, tmp_path: Path
) -> None:
    """Each exported line re-encodes canonically to bytes whose leaf hash is the one exported."""
    out = tmp_path / "ledger.jsonl"
    res = CliRunner().invoke(audit_cli, ["export", "--out", str(out), *cli_args(gw)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in out.read_text(encoding="utf-8").splitlines()]
    assert [ln["index"] for ln in lines] == list(range(gw.gateway.ledger.size))
    for ln in lines:
        data = json.dumps(ln["entry"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert leaf_hash(data.encode()).hex() == ln["leaf_hash"]

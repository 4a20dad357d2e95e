"""DeleteSubject erases (issue 14.4): no byte of the salt or the subject's data is left in
any file of the data dir, and on PostgreSQL the rows are gone."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from gateway.demo import ad_request
from gateway.testing import RunningGateway, running_gateway
from ledger import Disclosure, Filter
from partner_gateway.v1 import admin_pb2, admin_pb2_grpc, share_pb2_grpc

SUBJECT = "erase-me-4711"
BIRTH_DATE = "1931-07-13"
ORDER = "order-erase-4711"
LEDGER_ONLY = "court-named-4712"


def _register_and_share(gw: RunningGateway) -> admin_pb2_grpc.AdminServiceStub:
    """Register SUBJECT (birth date, consent, order), share about it, and log LEDGER_ONLY as
    a subject disclosed under a legal obligation that the registry never held."""
    admin = admin_pb2_grpc.AdminServiceStub(gw.channel("admin", "ops"))
    admin.PutSubject(
        admin_pb2.PutSubjectRequest(
            subject=admin_pb2.SubjectFacts(
                subject_id=SUBJECT,
                birth_date=BIRTH_DATE,
                consents=[
                    admin_pb2.Consent(
                        purpose="ad_delivery", scope="SHARE", categories=["user.profile.tags"]
                    )
                ],
                orders=[admin_pb2.Order(order_id=ORDER, merchant_id="shopmall")],
            )
        ),
        timeout=10,
    )
    share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
    request = ad_request("adco")
    request.records.add(subject_id=SUBJECT, fields={"tags": "coffee"})
    with contextlib.suppress(grpc.RpcError):  # allowed or refused, the entry names it
        share.Share(request, timeout=10)
    gw.gateway.ledger.append(
        [
            Disclosure(
                time=datetime.now(UTC),
                decision="ALLOW",
                legal_basis="LEGAL_OBLIGATION",
                subject_ids=(LEDGER_ONLY,),
            )
        ]
    )
    assert gw.gateway.ledger.query(Filter(subject_id=SUBJECT))
    assert gw.gateway.ledger.query(Filter(subject_id=LEDGER_ONLY))
    return admin


def _salts(gw: RunningGateway) -> set[bytes]:
    with gw.gateway.ledger.engine.connect() as conn:
        return {bytes(r[0]) for r in conn.exec_driver_sql("SELECT salt FROM ledger_subject_salt")}


def _erase_both(gw: RunningGateway, admin: admin_pb2_grpc.AdminServiceStub) -> set[bytes]:
    """DeleteSubject for SUBJECT and LEDGER_ONLY; returns the two deleted salts."""
    before = _salts(gw)
    for subject in (SUBJECT, LEDGER_ONLY):
        ack = admin.DeleteSubject(admin_pb2.DeleteSubjectRequest(subject_id=subject), timeout=10)
        assert "unlinked" in ack.message
    deleted = before - _salts(gw)
    assert len(deleted) == 2
    assert gw.gateway.ledger.query(Filter(subject_id=SUBJECT)) == []
    assert gw.gateway.ledger.query(Filter(subject_id=LEDGER_ONLY)) == []
    return deleted


def _traces(data_dir: Path, needles: list[bytes]) -> list[str]:
    """Every (file, needle) where a needle occurs in a file under ``data_dir``."""
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes()
        found += [f"{path.name}: {n!r}" for n in needles if n in content]
    return found


def test_no_file_of_the_data_dir_holds_an_erased_subject(tmp_path: Path) -> None:
    """After DeleteSubject, no file (db, -wal, -shm, keys) holds the deleted salts, the id,
    the birth date or the order id, while serving and after shutdown."""
    with running_gateway(tmp_path) as gw:
        admin = _register_and_share(gw)
        needles = [SUBJECT.encode(), BIRTH_DATE.encode(), ORDER.encode(), LEDGER_ONLY.encode()]
        assert _traces(tmp_path, needles)  # the scan finds them before erasure
        needles += sorted(_erase_both(gw, admin))
        assert _traces(tmp_path, needles) == []
        facts = admin.GetSubject(admin_pb2.GetSubjectRequest(subject_id=SUBJECT), timeout=10)
        assert facts.account_deleted and not facts.birth_date and not facts.consents
    assert _traces(tmp_path, needles) == []


def test_erasure_is_idempotent_and_unknown_subjects_are_not_found(tmp_path: Path) -> None:
    """A repeated DeleteSubject succeeds; an id no store ever held is NOT_FOUND."""
    with running_gateway(tmp_path) as gw:
        admin = _register_and_share(gw)
        _erase_both(gw, admin)
        ack = admin.DeleteSubject(admin_pb2.DeleteSubjectRequest(subject_id=SUBJECT), timeout=10)
        assert "no entries" in ack.message
        with pytest.raises(grpc.RpcError) as info:
            admin.DeleteSubject(admin_pb2.DeleteSubjectRequest(subject_id="never-seen"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_erased_subject_is_left_out_of_later_shares(tmp_path: Path) -> None:
    """The tombstone keeps the account deleted (R14) although no data about it remains."""
    with running_gateway(tmp_path) as gw:
        admin = _register_and_share(gw)
        _erase_both(gw, admin)
        facts = gw.gateway.registry.subjects([SUBJECT])
        assert facts[SUBJECT].account_deleted and facts[SUBJECT].birth_date == ""


@pytest.mark.postgres
def test_on_postgresql_the_rows_are_gone(tmp_path: Path, postgres_url: str) -> None:
    """On PostgreSQL the salts and the registry rows are deleted; only a tombstone remains."""
    with running_gateway(tmp_path, ledger={"url": postgres_url}) as gw:
        admin = _register_and_share(gw)
        deleted = _erase_both(gw, admin)
        with gw.gateway.ledger.engine.connect() as conn:

            def count(sql: str, **params: object) -> int:
                return int(conn.execute(sa.text(sql), params).scalar_one())

            assert (
                count("SELECT count(*) FROM registry_subjects WHERE subject_id = :s", s=SUBJECT)
                == 0
            )
            assert (
                count("SELECT count(*) FROM registry_consents WHERE subject_id = :s", s=SUBJECT)
                == 0
            )
            assert count("SELECT count(*) FROM registry_orders WHERE order_id = :o", o=ORDER) == 0
            assert count("SELECT count(*) FROM registry_erased_subjects") == 2
            for salt in deleted:
                assert (
                    count("SELECT count(*) FROM ledger_subject_salt WHERE salt = :b", b=salt) == 0
                )

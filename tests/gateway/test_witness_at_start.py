"""A gateway whose database was rolled back does not start while a witness remembers more."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.demo import delivery_request
from gateway.server import Gateway
from gateway.settings import Settings
from gateway.testing import running_gateway
from ledger.errors import WitnessRefusedError
from ledger.testing import running_witness
from partner_gateway.v1 import share_pb2_grpc
from tests.ledger.test_tamper import _tamper


def test_gateway_restarted_on_a_restored_older_database_refuses_to_start(tmp_path: Path) -> None:
    """Shares are witnessed; the operator restores a copy of the database taken earlier and
    restarts: Gateway.open raises WitnessRefusedError naming the witness (``serve`` prints it
    as one line and exits 1); with the start check turned off it opens, for inspection."""
    data = tmp_path / "gw"
    with running_gateway(data) as gw:
        origin, vkey = gw.gateway.ledger.origin, gw.gateway.ledger.verifier_key
        db = gw.gateway.settings.ledger_url
    with running_witness(
        "witness.test/w1", origin=origin, log_vkey=vkey, store=tmp_path / "w1.db"
    ) as w:
        witnessed = {
            "witnesses": [{"name": "witness.test/w1", "url": w.url, "vkey": w.vkey}],
            "witness_interval_s": 3600,
        }
        with running_gateway(data, ledger=witnessed) as gw:
            share = share_pb2_grpc.ShareServiceStub(gw.channel("service", "checkout"))
            share.Share(delivery_request(), timeout=10)
            restore_point = gw.gateway.ledger.size
            for _ in range(3):
                share.Share(delivery_request(), timeout=10)
            publisher = gw.gateway.ledger.witness_publisher
            assert publisher is not None and publisher.publish().published
            witnessed_size = gw.gateway.ledger.size

        _tamper(
            db,
            f"DELETE FROM ledger_entry WHERE idx >= {restore_point}",
            f"DELETE FROM ledger_node WHERE ((idx + 1) << level) > {restore_point}",
            f"DELETE FROM ledger_checkpoint WHERE size > {restore_point}",
            f"DELETE FROM ledger_cosignature WHERE size > {restore_point}",
            f"DELETE FROM ledger_subject_index WHERE idx >= {restore_point}",
        )
        settings = Settings.load(env={}, overrides={"data_dir": str(data), "ledger": witnessed})
        with pytest.raises(WitnessRefusedError) as refused:
            Gateway.open(settings)
        assert f"cosigned size {witnessed_size}" in refused.value.message
        assert "witness.test/w1" in refused.value.message

        inspect = Settings.load(
            env={},
            overrides={
                "data_dir": str(data),
                "ledger": {**witnessed, "witness_check_at_start": False},
            },
        )
        gateway = Gateway.open(inspect)
        try:
            assert gateway.ledger.size == restore_point
        finally:
            gateway.close()

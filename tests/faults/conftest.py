"""Fault-test fixtures: a real ``share-gateway serve`` subprocess (see ``support``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench import procs
from tests.faults.support import GatewayProc


@pytest.fixture
def gateway_proc(tmp_path: Path) -> Iterator[Callable[..., GatewayProc]]:
    """Factory: ``gateway_proc(**config)`` writes settings and starts a gateway subprocess."""
    made: list[GatewayProc] = []

    def make(**config: object) -> GatewayProc:
        data = tmp_path / f"gw{len(made)}"
        procs.ensure_pki(data / "pki")
        port = procs.free_port()
        cfg = procs.gateway_config(
            data / "gateway.toml",
            data_dir=data,
            port=port,
            **config,  # type: ignore[arg-type]
        )
        gp = GatewayProc(data_dir=data, config=cfg, port=port)
        made.append(gp)
        return gp.start()

    yield make
    for gp in made:
        gp.stop()

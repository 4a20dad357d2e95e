"""The pure verifier against the RFC 9162 golden probes (transparency-dev/merkle testdata)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import VerificationError
from ledger.verify import verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rfc9162-merkle"
if not VECTORS.is_dir():  # the tree may be checked out elsewhere
    VECTORS = Path("/work/shared/testdata/rfc9162-merkle")
PROBES = sorted(VECTORS.rglob("*.json"))


def _b(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def _run(probe: dict[str, Any]) -> None:
    proof = [_b(p) for p in probe.get("proof") or []]
    if "leafIdx" in probe:
        verify_inclusion(
            probe["leafIdx"], probe["treeSize"], _b(probe["leafHash"]), proof, _b(probe["root"])
        )
    else:
        verify_consistency(
            probe["size1"], probe["size2"], _b(probe["root1"]), _b(probe["root2"]), proof
        )


def test_all_probes_are_present() -> None:
    """All 196 probes (98 inclusion, 98 consistency) are found."""
    assert len(PROBES) == 196
    assert sum("inclusion" in p.parts for p in PROBES) == 98


@pytest.mark.parametrize("path", PROBES, ids=lambda p: "/".join(p.relative_to(VECTORS).parts))
def test_probe_outcome_matches_want_err(path: Path) -> None:
    """The verifier accepts wantErr:false probes and rejects wantErr:true probes."""
    probe = json.loads(path.read_text())
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            _run(probe)
    else:
        _run(probe)

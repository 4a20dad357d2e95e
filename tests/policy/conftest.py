"""Fixtures for the policy engine tests: a private copy of policies_rego and a fake OPA."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RUST_BACKTRACE", "0")

from gateway.policy.fake_opa import FakeOpa

REPO = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO / "policies_rego"


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A writable copy of policies_rego/ (tests edit it to exercise reload)."""
    dst = tmp_path / "policies_rego"
    shutil.copytree(POLICY_DIR, dst)
    return dst


@pytest.fixture(scope="session")
def fake_opa() -> Iterator[FakeOpa]:
    """One fake OPA server (OPA's Go evaluator) for the session, on 127.0.0.1 port 0."""
    with FakeOpa() as server:
        yield server


@pytest.fixture
def private_opa() -> Iterator[FakeOpa]:
    """A fake OPA server for tests that break it (down, slow, reloaded)."""
    with FakeOpa() as server:
        yield server

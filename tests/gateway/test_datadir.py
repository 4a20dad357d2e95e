"""The data dir is 0700 and its files 0600, created that way and checked at start (14.6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.server import Gateway
from gateway.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _settings(data_dir: Path) -> Settings:
    return Settings.load(env={}, overrides={"data_dir": str(data_dir)})


def _open_and_close(data_dir: Path) -> None:
    Gateway.open(_settings(data_dir)).close()


def test_fresh_data_dir_is_owner_only_under_a_permissive_umask(tmp_path: Path) -> None:
    """With umask 000, the data dir, keys dir and database files are still 0700/0600."""
    data = tmp_path / "data"
    old = os.umask(0)
    try:
        gateway = Gateway.open(_settings(data))
        try:
            files = {p.name: _mode(p) for p in data.iterdir() if p.name.startswith("gateway.db")}
        finally:
            gateway.close()
    finally:
        os.umask(old)
    assert _mode(data) == 0o700 and _mode(data / "keys") == 0o700
    assert files == {"gateway.db": 0o600, "gateway.db-wal": 0o600, "gateway.db-shm": 0o600}


@pytest.mark.parametrize(
    ("relative", "mode"),
    [(".", 0o755), ("keys", 0o750), ("gateway.db", 0o644), ("gateway.db-wal", 0o640)],
)
def test_start_refuses_a_wider_mode_naming_path_and_mode(
    tmp_path: Path, relative: str, mode: int
) -> None:
    """A data dir, keys dir or database file readable by others stops the start, naming it."""
    data = tmp_path / "data"
    _open_and_close(data)
    target = (data / relative).resolve()
    if not target.exists():  # -wal is removed on a clean close: a leftover one is checked too
        target.touch(mode=0o600)
    os.chmod(target, mode)
    with pytest.raises(ConfigError) as info:
        _open_and_close(data)
    assert str(target) in info.value.message and f"{mode:04o}" in info.value.message
    assert info.value.reason == "config.file_mode"

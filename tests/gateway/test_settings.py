"""Settings: one typed object from file, environment and overrides, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import Settings


def test_defaults_are_the_embedded_default() -> None:
    """Without file or environment: loopback listener, SQLite ledger, Rego in-process."""
    s = Settings.load(env={})
    assert s.listen == "127.0.0.1:50051"
    assert s.ledger_url.startswith("sqlite:///")
    assert s.policy.opa_url is None


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """SHARE_GATEWAY_* variables (nested with __) win over the TOML file."""
    f = tmp_path / "gw.toml"
    f.write_text('listen = "127.0.0.1:6000"\n[ledger]\nmax_batch = 10\n', encoding="utf-8")
    s = Settings.load(f, env={"SHARE_GATEWAY_LEDGER__MAX_BATCH": "20", "OTHER": "x"})
    assert s.listen == "127.0.0.1:6000"
    assert s.ledger.max_batch == 20


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"SHARE_GATEWAY_LEDGER__MAX_BATCH": "0"}, "ledger.max_batch"),
        ({"SHARE_GATEWAY_LISTEN": "no-port"}, "listen"),
        ({"SHARE_GATEWAY_POLICY__OPA_URL": "opa:8181"}, "policy.opa_url"),
        (
            {"SHARE_GATEWAY_LIMITS__MAX_RECORDS_PER_REQUEST": "many"},
            "limits.max_records_per_request",
        ),
        ({"SHARE_GATEWAY_NO_SUCH_SETTING": "1"}, "no_such_setting"),
    ],
)
def test_invalid_settings_name_the_field(env: dict[str, str], field: str) -> None:
    """A bad value or an unknown key is a ConfigError that names the field."""
    with pytest.raises(ConfigError) as info:
        Settings.load(env=env)
    assert f"invalid setting {field}:" in info.value.message


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing or malformed settings file is reported, not ignored."""
    with pytest.raises(ConfigError):
        Settings.load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("listen = ", encoding="utf-8")
    with pytest.raises(ConfigError):
        Settings.load(bad, env={})

"""Pseudonymization keys: owner-only files, key ids, rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.enforcement import pseudonym
from gateway.errors import ConfigError, InvalidRequestError, NotFoundError
from gateway.security.keys import PseudonymKeys


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_an_owner_only_key(tmp_path: Path) -> None:
    """current() creates a 32-byte key, file 0600 in 0700 directories."""
    keys = PseudonymKeys(directory=tmp_path / "keys" / "pseudonym")
    key_id, key = keys.current("adco")
    assert key_id == "adco.v1" and len(key) == 32
    ring = tmp_path / "keys" / "pseudonym" / "adco"
    assert _mode(ring / "adco.v1.key") == 0o600
    assert _mode(ring) == 0o700 and _mode(ring.parent) == 0o700
    assert keys.current("adco") == (key_id, key)


def test_partners_get_independent_keys(tmp_path: Path) -> None:
    """Two partners never share a key (their pseudonyms cannot be joined)."""
    keys = PseudonymKeys(directory=tmp_path)
    assert keys.current("adco")[1] != keys.current("admetrics")[1]


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    """A new PseudonymKeys over the same directory reads the same current key."""
    first = PseudonymKeys(directory=tmp_path).current("adco")
    assert PseudonymKeys(directory=tmp_path).current("adco") == first


def test_rotation_changes_current_and_keeps_old_keys(tmp_path: Path) -> None:
    """After rotate() new shares use the new key; the old key still explains old pseudonyms."""
    keys = PseudonymKeys(directory=tmp_path)
    old_id, old_key = keys.current("adco")
    old_pseudonym = pseudonym(old_key, "user.account.id", "acct-1001")

    new_id = keys.rotate("adco")

    assert new_id == "adco.v2" and keys.current("adco")[0] == new_id
    assert keys.current("adco")[1] != old_key
    # An old receipt names old_id: its pseudonyms are reproducible after rotation.
    assert pseudonym(keys.get("adco", old_id), "user.account.id", "acct-1001") == old_pseudonym
    assert PseudonymKeys(directory=tmp_path).current("adco")[0] == new_id


def test_unknown_key_id_is_not_found(tmp_path: Path) -> None:
    """get() of a key id that does not exist (or belongs to another partner) is NotFound."""
    keys = PseudonymKeys(directory=tmp_path)
    keys.current("adco")
    keys.current("logiship")
    with pytest.raises(NotFoundError):
        keys.get("adco", "adco.v9")
    with pytest.raises(NotFoundError):
        keys.get("adco", "logiship.v1")


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    """A key file others can read is refused, naming the file, never showing the key."""
    keys = PseudonymKeys(directory=tmp_path)
    key_id, _ = keys.current("adco")
    path = tmp_path / "adco" / f"{key_id}.key"
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="owner-only"):
        PseudonymKeys(directory=tmp_path).current("adco")


def test_path_like_partner_id_is_refused(tmp_path: Path) -> None:
    """A partner id cannot escape the keys directory."""
    with pytest.raises(InvalidRequestError):
        PseudonymKeys(directory=tmp_path).current("../etc")


def test_environment_key_takes_precedence_and_cannot_rotate(tmp_path: Path) -> None:
    """GATEWAY_PSEUDONYM_KEY_<PARTNER> supplies the current key; rotation is refused."""
    env = {"GATEWAY_PSEUDONYM_KEY_AFFILIATE_CLOUD": "ac.env1:" + "ab" * 32}
    keys = PseudonymKeys(directory=tmp_path, env=env)
    assert keys.current("affiliate-cloud") == ("ac.env1", bytes.fromhex("ab" * 32))
    assert keys.get("affiliate-cloud", "ac.env1") == bytes.fromhex("ab" * 32)
    with pytest.raises(ConfigError):
        keys.rotate("affiliate-cloud")


def test_malformed_environment_key_names_the_variable_not_the_value(tmp_path: Path) -> None:
    """A bad environment key is a ConfigError naming the variable only."""
    with pytest.raises(ConfigError) as info:
        PseudonymKeys(directory=tmp_path, env={"GATEWAY_PSEUDONYM_KEY_ADCO": "k1:zz-secret"})
    assert "GATEWAY_PSEUDONYM_KEY_ADCO" in str(info.value)
    assert "secret" not in str(info.value)

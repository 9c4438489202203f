"""Beyond the original: TTLs, rotate_token, staged rotation, the version
lifecycle (activate, retire, destroy), version info, persisting a
manager's keyring."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dotenv import dotenv_values

from secrets_manager import SecretsConfig, SecretsManager, SecretsManagerError

from conftest import FAST, fernet_for, run_seed_model


def test_ttl(manager: SecretsManager) -> None:
    now = int(time.time())
    _, old = manager.encrypt_at_time(b"old", now - 100)
    assert manager.decrypt(old, ttl=1000) == ("v1", b"old")
    assert manager.decrypt(old) == ("v1", b"old")
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
        manager.decrypt(old, ttl=10)
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
        manager.decrypt(old, "v1", ttl=10)
    _, future = manager.encrypt_at_time(b"future", now + 600)
    assert manager.decrypt(future) == ("v1", b"future")
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
        manager.decrypt(future, ttl=10_000)
    with pytest.raises(ValueError):
        manager.decrypt(old, ttl=-1)


def test_rotate_token_keeps_the_timestamp(manager: SecretsManager, events) -> None:
    _, token = manager.encrypt_at_time(b"payload", 1_700_000_000)
    manager.rotate_to_new_version("v2", "pw2", b"salt2")
    events.clear()
    version, fresh = manager.rotate_token(token)
    assert version == "v2"
    assert manager.decrypt(fresh) == ("v2", b"payload")
    assert manager.get_fernet("v2").extract_timestamp(fresh) == 1_700_000_000
    assert fernet_for("pw2", b"salt2", FAST).extract_timestamp(fresh) == 1_700_000_000
    assert events[:2] == [
        ("decryption", {"version": "v1", "was_hint": False}),
        ("encryption", {"version": "v2", "size": 7}),
    ]
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
        manager.rotate_token(b"garbage")


def test_staged_rotation_then_activation(manager: SecretsManager, events) -> None:
    manager.rotate_to_new_version("v2", "pw2", b"salt2", activate=False)
    assert manager.get_active_version() == "v1" and manager.config.active_version == "v1"
    assert manager.encrypt(b"x")[0] == "v1"
    staged = fernet_for("pw2", b"salt2", FAST).encrypt(b"from elsewhere")
    assert manager.decrypt(staged) == ("v2", b"from elsewhere")
    manager.activate_version("V2")
    assert manager.config.active_version == "v2"
    assert manager.encrypt(b"y")[0] == "v2"
    assert ("version_added", {"version": "v2"}) in events
    assert ("activation", {"version": "v2"}) in events
    info = {i["version"]: i for i in manager.get_version_info()}
    assert info["v2"]["active"] and info["v2"]["activated_at"] is not None


def test_retire(make_config, events) -> None:
    config = make_config({"v1": ("p1", b"s1"), "v2": ("p2", b"s2")}, "v2")
    config.audit_callback = lambda e, m: events.append((e, m))
    manager = SecretsManager(config)
    old = fernet_for("p1", b"s1", FAST).encrypt(b"old")
    with pytest.raises(SecretsManagerError, match="'v2' está ativa"):
        manager.retire_version("v2")
    with pytest.raises(SecretsManagerError, match="Versão 'v9' não encontrada"):
        manager.retire_version("v9")
    manager.retire_version("v1")
    assert "v1" not in config.keys
    assert manager.get_all_versions() == ["v2"]
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar.*v1.*retired"):
        manager.decrypt(old)
    states = {i["version"]: i["state"] for i in manager.get_version_info()}
    assert states == {"v1": "retired", "v2": "usable"}
    assert ("retirement", {"version": "v1"}) in events
    with pytest.raises(SecretsManagerError):
        manager.activate_version("v1")
    assert manager.encrypt(b"still")[0] == "v2"


def test_destroy(make_config) -> None:
    manager = SecretsManager(make_config({"v1": ("p1", b"s1"), "v2": ("p2", b"s2")}, "v2"))
    old = fernet_for("p1", b"s1", FAST).encrypt(b"old")
    manager.destroy_version("v1")
    assert "v1" not in manager.config.keys
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar.*destroyed.*v1"):
        manager.decrypt(old)
    info = {i["version"]: i for i in manager.get_version_info()}
    assert info["v1"]["state"] == "destroyed" and info["v1"]["kind"] is None
    with pytest.raises(SecretsManagerError, match="'v2' está ativa"):
        manager.destroy_version("v2")
    with pytest.raises(SecretsManagerError, match="Versão 'v1' não encontrada"):
        manager.get_fernet("v1")


def test_lifecycle_persisted_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / ".env.secrets"
    SecretsConfig(
        keys={"v1": {"key": "p1", "salt": b"s1"}, "v2": {"key": "p2", "salt": b"s2"}, "v3": {"key": "p3", "salt": b"s3"}},
        active_version="v1",
    ).to_file(path)
    manager = SecretsManager(SecretsConfig.from_file(path))
    v1_token = fernet_for("p1", b"s1").encrypt(b"one").decode()
    manager.activate_version("v3", persist_to_file=path)
    manager.retire_version("v1", persist_to_file=path)
    manager.destroy_version("v2", persist_to_file=path)
    values = dotenv_values(path)
    assert values["ACTIVE_ENCRYPTION_VERSION"] == "v3"
    assert values["ENCRYPTION_STATE__v1"] == "retired"
    assert values["ENCRYPTION_STATE__v2"] == "destroyed" and "ENCRYPTION_KEYS__v2" not in values
    assert values["ENCRYPTION_KEYS__v1"] == "p1"  # a retired version keeps its key
    reloaded = SecretsConfig.from_file(path)
    assert list(reloaded.keys) == ["v3"] and reloaded.active_version == "v3"
    # The Python package ignores the state: to it, v1 is an ordinary version.
    read = run_seed_model({"mode": "read", "path": str(path), "tokens": {"v1": v1_token}})
    assert read["decrypted"] == {"v1": "one"} and read["active"] == "v3"
    # Replacing the file from a configuration keeps the states and the tombstone.
    reloaded.to_file(path)
    values = dotenv_values(path)
    assert values["ENCRYPTION_STATE__v1"] == "retired" and values["ENCRYPTION_STATE__v2"] == "destroyed"
    assert "ENCRYPTION_KEYS__v2" not in values


def test_persist_a_managers_keyring(tmp_path: Path, manager: SecretsManager) -> None:
    path = tmp_path / "out.env"
    manager.rotate_to_new_version("v2", "pw2", b"s2")
    manager.persist_to_file(path)
    config = SecretsConfig.from_file(path)
    assert sorted(config.keys) == ["v1", "v2"] and config.active_version == "v2"
    assert config.kdf_iterations == FAST


def test_version_info_never_shows_a_secret(manager: SecretsManager) -> None:
    info = manager.get_version_info()
    assert info == [
        {
            "version": "v1",
            "active": True,
            "state": "usable",
            "activated_at": None,
            "kind": "password",
            "kdf_iterations": FAST,
            "decryptions": 0,
        }
    ]
    assert "my-secret-password" not in repr(info) and "my-secret-password" not in repr(manager)

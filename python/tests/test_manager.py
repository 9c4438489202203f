"""SecretsManager: the original's behaviour, call by call."""

from __future__ import annotations

import hashlib
import logging

import pytest

from secrets_manager import SecretsConfig, SecretsManager, SecretsManagerError

from conftest import FAST, fernet_for


def test_encrypt_returns_the_version_and_a_bytes_token(manager: SecretsManager) -> None:
    version, token = manager.encrypt(b"sensitive data")
    assert version == "v1"
    assert isinstance(token, bytes) and token.startswith(b"gAAAAA")
    assert manager.decrypt(token) == ("v1", b"sensitive data")
    assert manager.decrypt(token.decode()) == ("v1", b"sensitive data")
    assert manager.encrypt(bytearray(b"x"))[0] == "v1"
    assert manager.encrypt(b"") and manager.decrypt(manager.encrypt(b"")[1]) == ("v1", b"")


def test_plaintext_must_be_bytes(manager: SecretsManager) -> None:
    with pytest.raises(TypeError):
        manager.encrypt("text")  # type: ignore[arg-type]


def test_tokens_are_derived_as_the_original_derives_them(manager: SecretsManager) -> None:
    python = fernet_for("my-secret-password", b"random-salt-value", FAST)
    _, token = manager.encrypt(b"ours")
    assert python.decrypt(token) == b"ours"
    assert manager.decrypt(python.encrypt(b"theirs")) == ("v1", b"theirs")


def test_decrypt_tries_the_hint_then_the_active_then_the_rest(make_config, events) -> None:
    config = make_config({"v1": ("p1", "s1"), "v2": ("p2", "s2"), "v3": ("p3", "s3")}, "v2")
    config.audit_callback = lambda e, m: events.append((e, m))
    manager = SecretsManager(config)
    tokens = {v: fernet_for(p, s.encode(), FAST).encrypt(v.encode()) for v, p, s in [("v1", "p1", "s1"), ("v2", "p2", "s2"), ("v3", "p3", "s3")]}
    assert manager.decrypt(tokens["v3"], version_hint="v3") == ("v3", b"v3")
    assert manager.decrypt(tokens["v1"], version_hint="v3") == ("v1", b"v1")
    assert manager.decrypt(tokens["v1"]) == ("v1", b"v1")
    assert manager.decrypt(tokens["v2"], version_hint="nope") == ("v2", b"v2")
    assert manager.decrypt(tokens["v3"], "V3") == ("v3", b"v3")
    assert [m for e, m in events if e == "decryption"] == [
        {"version": "v3", "was_hint": True},
        {"version": "v1", "was_hint": False},
        {"version": "v1", "was_hint": False},
        {"version": "v2", "was_hint": False},
        {"version": "v3", "was_hint": True},
    ]


def test_decrypt_failing_with_every_version(manager: SecretsManager) -> None:
    stranger = fernet_for("other", b"salt", FAST).encrypt(b"x")
    for token in [stranger, b"not a token", b"", "gAAAAA"]:
        with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
            manager.decrypt(token)


def test_manager_refuses_a_configuration_without_keys_or_active(config: SecretsConfig) -> None:
    config.active_version = "v2"
    with pytest.raises(SecretsManagerError, match="Versão ativa 'v2' não existe"):
        SecretsManager(config)
    config.active_version = "v1"
    config.keys.clear()
    with pytest.raises(SecretsManagerError, match="Nenhuma chave de criptografia configurada"):
        SecretsManager(config)


def test_the_same_errors_on_a_later_call(manager: SecretsManager) -> None:
    manager.config.active_version = "v2"
    with pytest.raises(SecretsManagerError, match="Versão ativa 'v2' não existe"):
        manager.encrypt(b"x")
    manager.config.active_version = "v1"
    assert manager.encrypt(b"x")[0] == "v1"
    manager.config.keys.clear()
    with pytest.raises(SecretsManagerError, match="Nenhuma chave de criptografia configurada"):
        manager.encrypt(b"x")


def test_rotation(manager: SecretsManager, events) -> None:
    _, old = manager.encrypt(b"important data")
    manager.rotate_to_new_version("v2", "new-password", b"new-salt")
    assert manager.get_active_version() == "v2"
    assert manager.config.active_version == "v2"
    assert manager.config.keys["v2"] == {"key": "new-password", "salt": b"new-salt"}
    version, new = manager.encrypt(b"new data")
    assert version == "v2"
    assert manager.decrypt(old) == ("v1", b"important data")
    assert manager.decrypt(new) == ("v2", b"new data")
    assert fernet_for("new-password", b"new-salt", FAST).decrypt(new) == b"new data"
    assert ("rotation", {"new_version": "v2"}) in events
    assert manager.get_all_versions() == ["v1", "v2"]


def test_rotation_without_a_salt_reuses_the_first_versions_salt(make_config) -> None:
    config = make_config({"v1": ("p1", b"first-salt"), "v2": ("p2", b"second")}, "v2")
    manager = SecretsManager(config)
    manager.rotate_to_new_version("V3", "p3")
    assert config.keys["v3"]["salt"] == b"first-salt"
    _, token = manager.encrypt(b"m")
    assert fernet_for("p3", b"first-salt", FAST).decrypt(token) == b"m"


def test_rotation_without_a_salt_and_no_version_to_take_it_from(manager: SecretsManager) -> None:
    manager.config.keys.clear()
    with pytest.raises(SecretsManagerError, match="Nenhuma configuração existente"):
        manager.rotate_to_new_version("v2", "pw")


def test_rotation_to_an_existing_name_is_refused_and_changes_nothing(manager: SecretsManager) -> None:
    _, token = manager.encrypt(b"keep")
    with pytest.raises(SecretsManagerError, match="'v1' já existe"):
        manager.rotate_to_new_version("V1", "another-password", b"s")
    assert manager.config.keys["v1"]["key"] == "my-secret-password"
    assert manager.decrypt(token) == ("v1", b"keep")


def test_get_fernet(manager: SecretsManager) -> None:
    fernet = manager.get_fernet("V1")
    token = fernet.encrypt(b"direct")
    assert manager.decrypt(token) == ("v1", b"direct")
    assert fernet_for("my-secret-password", b"random-salt-value", FAST).decrypt(token) == b"direct"
    with pytest.raises(SecretsManagerError, match="Versão 'v2' não encontrada"):
        manager.get_fernet("v2")
    before = manager.get_statistics()
    manager.get_fernet("v1")
    after = manager.get_statistics()
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert after["cache_misses"] == before["cache_misses"]


def test_statistics(make_config) -> None:
    salt_hash = hashlib.sha256(b"salt").hexdigest()
    config = make_config({"v1": ("p", b"salt")}, "v1")
    config.keys["v1"]["salt_hash"] = salt_hash
    manager = SecretsManager(config)
    stats = manager.get_statistics()
    assert set(stats) == {"encryptions", "decryptions", "cache_hits", "cache_misses", "integrity_checks"}
    assert (stats["encryptions"], stats["decryptions"], stats["cache_misses"]) == (0, 0, 0)
    tokens = [manager.encrypt(b"%d" % i)[1] for i in range(5)]
    for t in tokens[:3]:
        manager.decrypt(t)
    with pytest.raises(SecretsManagerError):
        manager.decrypt(b"garbage")
    stats = manager.get_statistics()
    assert stats["encryptions"] == 5
    assert stats["decryptions"] == 3
    assert stats["cache_misses"] == 1
    assert stats["cache_hits"] == 7
    assert stats["integrity_checks"] >= 1
    manager.clear_cache()
    manager.encrypt(b"again")
    stats = manager.get_statistics()
    assert (stats["encryptions"], stats["cache_misses"]) == (6, 2)


def test_statistics_survive_configuration_changes(manager: SecretsManager) -> None:
    manager.encrypt(b"a")
    manager.config.keys["v1"]["key"] = "changed"  # a different key: the store is rebuilt
    manager.encrypt(b"b")
    manager.config.kdf_iterations = FAST + 1
    manager.encrypt(b"c")
    assert manager.get_statistics()["encryptions"] == 3


def test_salt_integrity(make_config) -> None:
    config = make_config({"v1": ("p", b"salt")}, "v1")
    config.keys["v1"]["salt_hash"] = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(ValueError, match="Integridade do salt comprometida"):
        SecretsManager(config)
    config.verify_salt_integrity = False
    manager = SecretsManager(config)
    assert manager.encrypt(b"x")[0] == "v1"
    assert manager.get_statistics()["integrity_checks"] == 0
    manager.config.verify_salt_integrity = True
    with pytest.raises(ValueError, match="Integridade do salt comprometida"):
        manager.encrypt(b"x")


def test_audit_events(manager: SecretsManager, events) -> None:
    _, token = manager.encrypt(b"12345")
    manager.decrypt(token, version_hint="v1")
    manager.rotate_to_new_version("v2", "pw", b"salt")
    assert events == [
        ("encryption", {"version": "v1", "size": 5}),
        ("decryption", {"version": "v1", "was_hint": True}),
        ("rotation", {"new_version": "v2"}),
    ]


def test_a_raising_audit_callback_is_logged_and_the_operation_succeeds(
    config: SecretsConfig, warnings_log: pytest.LogCaptureFixture
) -> None:
    def broken(event, metadata):
        raise RuntimeError("audit sink down")

    config.audit_callback = broken
    manager = SecretsManager(config)
    _, token = manager.encrypt(b"still works")
    assert manager.decrypt(token) == ("v1", b"still works")
    manager.rotate_to_new_version("v2", "pw", b"s")
    messages = [r.getMessage() for r in warnings_log.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    assert all("Erro no callback de auditoria" in m and "audit sink down" in m for m in messages)


def test_a_configured_logger_receives_the_warning(config: SecretsConfig) -> None:
    records = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("app.secrets")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    config.logger = logger
    config.audit_callback = lambda e, m: 1 / 0
    SecretsManager(config).encrypt(b"x")
    assert any("Erro no callback de auditoria" in r.getMessage() for r in records)


def test_config_is_read_live(manager: SecretsManager, events) -> None:
    config = manager.config
    _, t1 = manager.encrypt(b"one")
    # A key added to config.keys becomes usable; the active version follows
    # config.active_version between calls.
    config.keys["v2"] = {"key": "second", "salt": "c2FsdA=="}
    config.active_version = "v2"
    version, t2 = manager.encrypt(b"two")
    assert version == "v2"
    assert fernet_for("second", b"salt", FAST).decrypt(t2) == b"two"
    assert manager.get_active_version() == "v2"
    config.active_version = "V1"
    assert manager.encrypt(b"three")[0] == "v1"
    assert manager.decrypt(t2) == ("v2", b"two")
    # An entry changed in place, and one removed.
    config.keys["v2"]["key"] = "replaced"
    with pytest.raises(SecretsManagerError, match="Falha ao descriptografar"):
        manager.decrypt(t2)
    del config.keys["v2"]
    assert manager.get_all_versions() == ["v1"]
    assert manager.decrypt(t1) == ("v1", b"one")
    # A whole new configuration object.
    manager.config = SecretsConfig(keys={"x": {"key": "k", "salt": "s"}}, active_version="x", kdf_iterations=FAST)
    assert manager.encrypt(b"new")[0] == "x"
    with pytest.raises(SecretsManagerError):
        manager.decrypt(t1)
    # Settings are read live too.
    manager.config.kdf_iterations = 2 * FAST
    _, t3 = manager.encrypt(b"slow")
    assert fernet_for("k", b"s", 2 * FAST).decrypt(t3) == b"slow"
    assert [e for e, _ in events].count("encryption") == 3  # the new config has no callback


def test_keys_replaced_wholesale_and_via_update(manager: SecretsManager) -> None:
    manager.config.keys = {"a": {"key": "ka", "salt": b"sa"}, "b": {"key": "kb", "salt": b"sb"}}
    manager.config.active_version = "b"
    assert manager.encrypt(b"x")[0] == "b"
    manager.config.keys.update({"c": {"key": "kc", "salt": b"sc"}})
    manager.config.active_version = "c"
    assert manager.encrypt(b"x")[0] == "c"
    manager.config.keys.pop("a")
    assert manager.get_all_versions() == ["b", "c"]
    manager.config.keys.setdefault("d", {"key": "kd", "salt": b"sd"})
    manager.config.keys |= {"e": {"key": "ke", "salt": b"se"}}
    assert manager.get_all_versions() == ["b", "c", "d", "e"]


def test_an_invalid_entry_added_later_is_reported_on_use(manager: SecretsManager) -> None:
    manager.config.keys["v2"] = "oops"
    with pytest.raises(ValueError, match="deve ser um dicionário"):
        manager.encrypt(b"x")
    manager.config.keys["v2"] = {"key": "k", "salt": 3.5}
    with pytest.raises(TypeError, match="Salt da versão 'v2' deve ser bytes"):
        manager.encrypt(b"x")
    manager.config.keys["v2"] = {"key": "k"}
    with pytest.raises(ValueError, match="deve conter 'key' e 'salt'"):
        manager.encrypt(b"x")
    del manager.config.keys["v2"]
    assert manager.encrypt(b"x")[0] == "v1"


def test_clear_cache_and_cleanup_keep_the_manager_working(manager: SecretsManager) -> None:
    _, token = manager.encrypt(b"before")
    manager.clear_cache()
    assert manager.decrypt(token) == ("v1", b"before")
    manager.cleanup()
    assert manager.decrypt(token) == ("v1", b"before")
    assert manager.encrypt(b"after")[0] == "v1"
    with manager as same:
        assert same.encrypt(b"x")[0] == "v1"
    assert manager.get_statistics()["encryptions"] == 3


def test_get_active_and_all_versions_follow_the_configuration(make_config) -> None:
    manager = SecretsManager(make_config({"b": ("p", "s"), "a": ("q", "t")}, "a"))
    assert manager.get_active_version() == "a"
    assert manager.get_all_versions() == ["b", "a"]


def test_rotation_into_an_emptied_configuration(manager: SecretsManager) -> None:
    manager.config.keys.clear()
    manager.rotate_to_new_version("v2", "pw", b"salt")
    assert manager.get_all_versions() == ["v2"]
    assert manager.encrypt(b"x")[0] == "v2"

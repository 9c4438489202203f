"""SecretsConfig and KeyConfiguration: validation, normalisation, the
dataclass feel, and the environment."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle

import pytest

from secrets_manager import KeyConfiguration, SecretsConfig, SecretsManager
from secrets_manager.utils import compute_salt_hash, normalize_salt

from conftest import FAST


def test_salts_are_normalised_to_bytes_as_the_original_does() -> None:
    config = SecretsConfig(
        keys={
            "hex": {"key": "a", "salt": "73616c74"},
            "b64": {"key": "b", "salt": "c2FsdA=="},
            "b64url": {"key": "c", "salt": "-_8="},
            "short": {"key": "d", "salt": "s1"},
            "text": {"key": "e", "salt": "random-salt-value"},
            "raw": {"key": "f", "salt": b"\x00\xffraw"},
            "array": {"key": "g", "salt": bytearray(b"arr")},
        },
        active_version="hex",
    )
    salts = {name: entry["salt"] for name, entry in config.keys.items()}
    assert salts == {
        "hex": b"salt",
        "b64": b"salt",
        "b64url": b"\xfb\xff",
        "short": b"s1",
        "text": b"random-salt-value",
        "raw": b"\x00\xffraw",
        "array": b"arr",
    }
    assert all(type(s) is bytes for s in salts.values())
    assert normalize_salt("73616c74") == b"salt"
    assert compute_salt_hash(b"salt") == hashlib.sha256(b"salt").hexdigest()


def test_version_names_and_the_active_version_are_case_insensitive() -> None:
    config = SecretsConfig(keys={"V1": {"key": "k", "salt": "s"}}, active_version=" 'V1' ")
    assert list(config.keys) == ["v1"]
    assert config.active_version == "v1"


def test_defaults() -> None:
    config = SecretsConfig(keys={"v1": {"key": "k", "salt": "s"}}, active_version="v1")
    assert config.kdf_iterations == 100_000
    assert config.verify_salt_integrity is True
    assert config.audit_callback is None and config.logger is None


@pytest.mark.parametrize(
    "keys, active, error, fragment",
    [
        ({}, "v1", ValueError, "Pelo menos uma chave"),
        ({"v1": {"key": "k", "salt": "s"}}, "v2", ValueError, "Versão ativa 'v2' não existe"),
        ({"v1": "not a dict"}, "v1", ValueError, "deve ser um dicionário"),
        ({"v1": {"salt": "s"}}, "v1", ValueError, "deve conter 'key' e 'salt'"),
        ({"v1": {"key": "k"}}, "v1", ValueError, "deve conter 'key' e 'salt'"),
        ({"v1": {"key": "k", "salt": 12345}}, "v1", TypeError, "Salt da versão 'v1' deve ser bytes"),
        ({"v1": {"key": "k", "salt": None}}, "v1", TypeError, "Salt da versão 'v1' deve ser bytes"),
        ({"v 1": {"key": "k", "salt": "s"}}, "v 1", ValueError, "Nome de versão inválido"),
    ],
)
def test_construction_validates(keys, active, error, fragment) -> None:
    with pytest.raises(error) as raised:
        SecretsConfig(keys=keys, active_version=active)
    assert type(raised.value) is error
    assert fragment in str(raised.value)


def test_the_active_version_message_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"Versão ativa 'v9' não existe.*v1, v2"):
        SecretsConfig(keys={"v1": {"key": "a", "salt": "s"}, "v2": {"key": "b", "salt": "s"}}, active_version="v9")


def test_zero_iterations_are_refused() -> None:
    with pytest.raises(ValueError, match="kdf_iterations"):
        SecretsConfig(keys={"v1": {"key": "k", "salt": "s"}}, active_version="v1", kdf_iterations=0)


def test_it_is_a_mutable_dataclass() -> None:
    config = SecretsConfig(keys={"v1": {"key": "k", "salt": b"s"}}, active_version="v1")
    assert dataclasses.is_dataclass(config)
    assert [f.name for f in dataclasses.fields(config)] == [
        "keys",
        "active_version",
        "kdf_iterations",
        "verify_salt_integrity",
        "audit_callback",
        "logger",
    ]
    config.kdf_iterations = 5
    config.keys["v2"] = {"key": "k2", "salt": b"t"}
    config.active_version = "v2"
    assert (config.kdf_iterations, config.active_version) == (5, "v2")
    assert config.keys["v2"] == {"key": "k2", "salt": b"t"}
    assert dataclasses.asdict(config)["keys"] == {
        "v1": {"key": "k", "salt": b"s"},
        "v2": {"key": "k2", "salt": b"t"},
    }
    other = dataclasses.replace(config, active_version="v1")
    assert other.active_version == "v1" and other.keys == config.keys
    assert config == copy.deepcopy(config)
    assert copy.copy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config


def test_repr_shows_no_password() -> None:
    config = SecretsConfig(keys={"v1": {"key": "hunter2-secret", "salt": "s"}}, active_version="v1")
    assert "hunter2" not in repr(config)
    assert "v1" in repr(config)
    key = KeyConfiguration("v1", "hunter2-secret", b"salt")
    assert "hunter2" not in repr(key)


def test_copies_are_independent_of_managers_of_the_original() -> None:
    config = SecretsConfig(keys={"v1": {"key": "k", "salt": "s"}}, active_version="v1", kdf_iterations=FAST)
    manager = SecretsManager(config)
    twin = copy.copy(config)
    twin.keys["v2"] = {"key": "k2", "salt": "t"}
    twin.active_version = "v2"
    assert manager.encrypt(b"x")[0] == "v1"
    assert "v2" not in config.keys


# -- from_environment -------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith(("ENCRYPTION_", "ACTIVE_ENCRYPTION")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_from_environment_reads_the_keyring(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ENCRYPTION_KEYS__v1", "pw1")
    clean_env.setenv("ENCRYPTION_SALT__v1", "c2FsdA==")
    clean_env.setenv("ENCRYPTION_SALT_HASH__v1", hashlib.sha256(b"salt").hexdigest())
    clean_env.setenv("ENCRYPTION_KEYS__V2", "pw2")
    clean_env.setenv("ENCRYPTION_SALT__V2", "73616c74")
    clean_env.setenv("ENCRYPTION_KEYS__v3", "")  # empty: ignored
    clean_env.setenv("ACTIVE_ENCRYPTION_VERSION", '"V2"')
    config = SecretsConfig.from_environment(kdf_iterations=FAST)
    assert config.active_version == "v2"
    assert config.keys == {
        "v1": {"key": "pw1", "salt": b"salt", "salt_hash": hashlib.sha256(b"salt").hexdigest()},
        "v2": {"key": "pw2", "salt": b"salt"},
    }
    assert config.kdf_iterations == FAST


def test_from_environment_single_version_is_active(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ENCRYPTION_KEYS__only", "pw")
    clean_env.setenv("ENCRYPTION_SALT__only", "salt")
    assert SecretsConfig.from_environment().active_version == "only"


def test_from_environment_errors(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="Nenhuma chave de criptografia encontrada"):
        SecretsConfig.from_environment()
    clean_env.setenv("ENCRYPTION_KEYS__v1", "")
    with pytest.raises(ValueError, match="Nenhuma chave de criptografia encontrada"):
        SecretsConfig.from_environment()
    clean_env.setenv("ENCRYPTION_KEYS__v1", "pw")
    with pytest.raises(ValueError, match="Salt não encontrado"):
        SecretsConfig.from_environment()
    clean_env.setenv("ENCRYPTION_SALT__v1", "s")
    clean_env.setenv("ENCRYPTION_KEYS__v2", "pw")
    clean_env.setenv("ENCRYPTION_SALT__v2", "s")
    with pytest.raises(ValueError, match="Versão ativa não configurada"):
        SecretsConfig.from_environment()
    clean_env.setenv("ACTIVE_ENCRYPTION_VERSION", "v7")
    with pytest.raises(ValueError, match="Versão ativa 'v7' não existe"):
        SecretsConfig.from_environment()


# -- KeyConfiguration --------------------------------------------------------


def test_key_configuration_holds_the_key_in_a_bytearray_and_zeroes_it() -> None:
    salt_hash = hashlib.sha256(b"salt").hexdigest()
    key = KeyConfiguration("v1", "password", "c2FsdA==", salt_hash)
    assert key.key == bytearray(b"password") and type(key.key) is bytearray
    assert key.salt == b"salt"
    held = key.key
    key.cleanup()
    assert held is key.key and len(held) == 8 and not any(held)


def test_key_configuration_refuses_a_wrong_salt_hash() -> None:
    with pytest.raises(ValueError, match="Integridade do salt comprometida"):
        KeyConfiguration("v1", "password", b"salt", hashlib.sha256(b"other").hexdigest())
    # Upper-case hex is the same hash.
    KeyConfiguration("v1", "password", b"salt", hashlib.sha256(b"salt").hexdigest().upper())

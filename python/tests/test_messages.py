"""Every message fragment of the original package that applications match
on (SEED.md's table), with its exception type: one test per row."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import pytest

from secrets_manager import SecretsConfig, SecretsManager, SecretsManagerError

from conftest import FAST

KEYS = {"v1": {"key": "pw", "salt": "s"}}


def manager() -> SecretsManager:
    return SecretsManager(SecretsConfig(keys=dict(KEYS), active_version="v1", kdf_iterations=FAST))


def emptied_config() -> SecretsConfig:
    config = SecretsConfig(keys=dict(KEYS), active_version="v1")
    config.keys.clear()
    return config


def config_with_active(active: str) -> SecretsConfig:
    config = SecretsConfig(keys=dict(KEYS), active_version="v1")
    config.active_version = active
    return config


def env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in list(os.environ):
        if name.startswith(("ENCRYPTION_", "ACTIVE_ENCRYPTION")):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def tampered_file(tmp: Path) -> Path:
    path = tmp / "tampered.env"
    SecretsConfig(keys=dict(KEYS), active_version="v1").to_file(path)
    path.write_text(path.read_text().replace('ENCRYPTION_KEYS__v1="pw"', 'ENCRYPTION_KEYS__v1="px"'))
    return path


def rotation_without_any_version() -> None:
    m = manager()
    m.config.keys.clear()
    m.rotate_to_new_version("v2", "pw2")


ROWS = [
    ("every version failed to decrypt", SecretsManagerError, "Falha ao descriptografar",
     lambda tmp, mp: manager().decrypt(b"gAAAAABnot-a-token")),
    ("manager built with no keys", SecretsManagerError, "Nenhuma chave de criptografia configurada",
     lambda tmp, mp: SecretsManager(emptied_config())),
    ("manager's active version unknown", SecretsManagerError, "Versão ativa 'v2' não existe",
     lambda tmp, mp: SecretsManager(config_with_active("v2"))),
    ("version not found", SecretsManagerError, "Versão 'v2' não encontrada",
     lambda tmp, mp: manager().get_fernet("v2")),
    ("rotation without salt and no version to reuse one from", SecretsManagerError, "Nenhuma configuração existente",
     lambda tmp, mp: rotation_without_any_version()),
    ("config with no keys", ValueError, "Pelo menos uma chave",
     lambda tmp, mp: SecretsConfig(keys={}, active_version="v1")),
    ("config's active version unknown", ValueError, r"Versão ativa .*não existe",
     lambda tmp, mp: SecretsConfig(keys=dict(KEYS), active_version="v2")),
    ("entry without key or salt", ValueError, "deve conter 'key' e 'salt'",
     lambda tmp, mp: SecretsConfig(keys={"v1": {"key": "pw"}}, active_version="v1")),
    ("entry not a dict", ValueError, "deve ser um dicionário",
     lambda tmp, mp: SecretsConfig(keys={"v1": ["pw", "s"]}, active_version="v1")),
    ("salt of a wrong type", TypeError, "Salt da versão 'v1' deve ser bytes",
     lambda tmp, mp: SecretsConfig(keys={"v1": {"key": "pw", "salt": 42}}, active_version="v1")),
    ("environment: a version without its salt", ValueError, "Salt não encontrado",
     lambda tmp, mp: (env(mp, ENCRYPTION_KEYS__v1="pw"), SecretsConfig.from_environment())),
    ("environment: no keys", ValueError, "Nenhuma chave de criptografia encontrada",
     lambda tmp, mp: (env(mp), SecretsConfig.from_environment())),
    ("environment: several versions, no active one", ValueError, "Versão ativa não configurada",
     lambda tmp, mp: (env(mp, ENCRYPTION_KEYS__v1="a", ENCRYPTION_SALT__v1="s",
                          ENCRYPTION_KEYS__v2="b", ENCRYPTION_SALT__v2="t"),
                      SecretsConfig.from_environment())),
    ("file missing", FileNotFoundError, "Arquivo .env não encontrado",
     lambda tmp, mp: SecretsConfig.from_file(tmp / "missing.env")),
    ("checksum mismatch", ValueError, "Checksum do arquivo .env inválido",
     lambda tmp, mp: SecretsConfig.from_file(tampered_file(tmp))),
    ("wrong salt hash", ValueError, "Integridade do salt comprometida",
     lambda tmp, mp: SecretsManager(SecretsConfig(
         keys={"v1": {"key": "pw", "salt": b"s", "salt_hash": hashlib.sha256(b"t").hexdigest()}},
         active_version="v1"))),
]


@pytest.mark.parametrize("situation, error, fragment, action", ROWS, ids=[r[0] for r in ROWS])
def test_message(
    situation: str,
    error: type,
    fragment: str,
    action: Callable,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(error, match=fragment) as raised:
        action(tmp_path, monkeypatch)
    if error is not SecretsManagerError:
        assert type(raised.value) is error, situation
    else:
        assert type(raised.value) is SecretsManagerError, situation


def test_message_audit_callback_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="secrets_manager")

    def broken(event, metadata):
        raise KeyError("boom")

    config = SecretsConfig(keys=dict(KEYS), active_version="v1", kdf_iterations=FAST, audit_callback=broken)
    SecretsManager(config).encrypt(b"x")
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "Erro no callback de auditoria" in record.getMessage()

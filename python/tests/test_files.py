"""Keyring files: from_file, to_file (replace and append), rotation with
persist_to_file, through the Rust reader and writer."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from dotenv import dotenv_values

from secrets_manager import SecretsConfig, SecretsManager, SecretsManagerError
from secrets_manager.utils import ENV_CHECKSUM_KEY

from conftest import FAST, fernet_for


def python_checksum(values: dict) -> str:
    """The checksum exactly as the Python package computes it."""
    lines = [f"{k}={v}" for k, v in sorted(values.items()) if k != ENV_CHECKSUM_KEY]
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def assert_sound(path: Path) -> dict:
    """python-dotenv reads the file, and its checksum is the Python one."""
    values = dotenv_values(path)
    assert values[ENV_CHECKSUM_KEY] == python_checksum(values)
    return values


def leftovers(directory: Path) -> list:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


def test_round_trip(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env.secrets"
    config = make_config({"v1": ("p1", b"salt-1"), "v2": ("p2", "c2FsdA==")}, "v2")
    config.to_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = assert_sound(path)
    assert values["ENCRYPTION_KEYS__v1"] == "p1"
    assert values["ENCRYPTION_SALT_HASH__v2"] == hashlib.sha256(b"salt").hexdigest()
    assert values["ACTIVE_ENCRYPTION_VERSION"] == "v2"
    loaded = SecretsConfig.from_file(path)
    assert loaded.keys["v1"]["salt"] == b"salt-1" and loaded.keys["v2"]["salt"] == b"salt"
    assert loaded.keys["v1"]["key"] == "p1"
    assert loaded.active_version == "v2"
    assert loaded.kdf_iterations == FAST  # the file records the count
    assert SecretsManager(loaded).decrypt(SecretsManager(config).encrypt(b"m")[1]) == ("v2", b"m")


def test_from_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.env"
    with pytest.raises(FileNotFoundError, match="Arquivo .env não encontrado"):
        SecretsConfig.from_file(missing)

    tampered = tmp_path / "tampered.env"
    SecretsConfig(keys={"v1": {"key": "p", "salt": "s"}}, active_version="v1").to_file(tampered)
    tampered.write_text(tampered.read_text().replace('ENCRYPTION_KEYS__v1="p"', 'ENCRYPTION_KEYS__v1="q"'))
    with pytest.raises(ValueError, match="Checksum do arquivo .env inválido"):
        SecretsConfig.from_file(tampered)

    binary = tmp_path / "binary.env"
    binary.write_bytes(b'ENCRYPTION_KEYS__v1="p\xff"\n')
    with pytest.raises(UnicodeDecodeError) as raised:
        SecretsConfig.from_file(binary)
    assert raised.value.start == 22

    no_salt = tmp_path / "nosalt.env"
    no_salt.write_text('ENCRYPTION_KEYS__v1="p"\n')
    with pytest.raises(ValueError, match="Salt não encontrado"):
        SecretsConfig.from_file(no_salt)

    several = tmp_path / "several.env"
    several.write_text("ENCRYPTION_KEYS__v1=a\nENCRYPTION_SALT__v1=s\nENCRYPTION_KEYS__v2=b\nENCRYPTION_SALT__v2=t\n")
    with pytest.raises(ValueError, match="Versão ativa não configurada"):
        SecretsConfig.from_file(several)

    empty = tmp_path / "empty.env"
    empty.write_text("DATABASE_URL=postgres://\n")
    with pytest.raises(ValueError, match="Nenhuma chave de criptografia encontrada"):
        SecretsConfig.from_file(empty)


def test_from_file_single_version_is_active_and_empty_passwords_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("ENCRYPTION_KEYS__Only=pw\nENCRYPTION_SALT__Only=c2FsdA==\n")
    config = SecretsConfig.from_file(path)
    assert (config.active_version, config.keys) == ("only", {"only": {"key": "pw", "salt": b"salt"}})
    assert config.kdf_iterations == 100_000


def test_to_file_replaces_the_file_with_the_keyring(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env"
    path.write_text("# my settings\nDATABASE_URL=postgres://db\nDEBUG=1\n")
    os.chmod(path, 0o640)
    make_config({"v1": ("p1", b"s1")}, "v1").to_file(path)
    values = assert_sound(path)
    assert "DATABASE_URL" not in values and "# my settings" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file's mode is kept
    assert leftovers(tmp_path) == []


def test_to_file_append_keeps_everything_else_byte_for_byte(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env"
    before = "# my settings\nDATABASE_URL='postgres://db'   # inline\nexport DEBUG=1\nHOME_DIR=${HOME}\n"
    path.write_text(before)
    make_config({"v1": ("p1", b"s1")}, "v1").to_file(path, append=True)
    text = path.read_text()
    assert text.startswith(before)
    values = assert_sound(path)
    assert values["DATABASE_URL"] == "postgres://db" and values["ENCRYPTION_KEYS__v1"] == "p1"
    assert SecretsConfig.from_file(path).keys["v1"]["key"] == "p1"


def test_replacing_never_loses_a_version_the_file_holds(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env"
    path.write_text("# comment\nOTHER=1\n")
    make_config({"v0": ("p0", b"s0")}, "v0").to_file(path, append=True)
    make_config({"v1": ("p1", b"s1")}, "v1").to_file(path)
    values = assert_sound(path)
    assert values["ENCRYPTION_KEYS__v0"] == "p0" and values["ENCRYPTION_KEYS__v1"] == "p1"
    assert values["ACTIVE_ENCRYPTION_VERSION"] == "v1"
    assert "OTHER" not in values
    assert sorted(SecretsConfig.from_file(path).keys) == ["v0", "v1"]


@pytest.mark.parametrize("append", [False, True])
def test_a_version_with_other_material_is_a_conflict_and_nothing_is_written(
    tmp_path: Path, make_config, append: bool
) -> None:
    path = tmp_path / ".env"
    make_config({"v1": ("original", b"s")}, "v1").to_file(path)
    before = path.read_bytes()
    with pytest.raises(SecretsManagerError, match="'v1' já existe"):
        make_config({"v1": ("impostor", b"s")}, "v1").to_file(path, append=append)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_the_same_material_again_changes_nothing(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env"
    config = make_config({"v1": ("p", b"s")}, "v1")
    config.to_file(path)
    before = path.read_bytes()
    config.to_file(path, append=True)
    assert path.read_bytes() == before


def test_values_python_dotenv_would_misread(tmp_path: Path, make_config) -> None:
    path = tmp_path / ".env"
    tricky = 'quote " back\\slash \\n $HOME ends\\'
    make_config({"v1": (tricky, b"s")}, "v1").to_file(path)
    assert dotenv_values(path)["ENCRYPTION_KEYS__v1"] == tricky
    assert SecretsConfig.from_file(path).keys["v1"]["key"] == tricky
    # python-dotenv would expand ${...}: refused, nothing written.
    other = tmp_path / "other.env"
    with pytest.raises(ValueError, match="python-dotenv"):
        make_config({"v1": ("pass${HOME}word", b"s")}, "v1").to_file(other)
    assert not other.exists()


def test_a_symbolic_link_is_written_through(tmp_path: Path, make_config) -> None:
    real = tmp_path / "real.env"
    real.write_text("OTHER=1\n")
    link = tmp_path / "link.env"
    link.symlink_to(real)
    make_config({"v1": ("p", b"s")}, "v1").to_file(link)
    assert link.is_symlink()
    assert dotenv_values(real)["ENCRYPTION_KEYS__v1"] == "p"


def test_writing_to_a_directory_fails_cleanly(tmp_path: Path, make_config) -> None:
    with pytest.raises(OSError):
        make_config({"v1": ("p", b"s")}, "v1").to_file(tmp_path)


def test_rotation_persists_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env.secrets"
    path.write_text("# keep me\nAPP=1\n")
    config = SecretsConfig(keys={"v1": {"key": "p1", "salt": b"s1"}}, active_version="v1")
    config.to_file(path, append=True)
    manager = SecretsManager(SecretsConfig.from_file(path))
    _, old = manager.encrypt(b"old")
    manager.rotate_to_new_version("v2", "p2", b"s2", persist_to_file=path)
    text = path.read_text()
    assert text.startswith("# keep me\nAPP=1\n")
    values = assert_sound(path)
    assert values["ACTIVE_ENCRYPTION_VERSION"] == "v2"
    reloaded = SecretsManager(SecretsConfig.from_file(path))
    assert reloaded.get_active_version() == "v2"
    assert reloaded.decrypt(old) == ("v1", b"old")
    assert fernet_for("p2", b"s2").decrypt(manager.encrypt(b"new")[1]) == b"new"


def test_a_refused_persisted_rotation_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    SecretsConfig(keys={"v1": {"key": "p1", "salt": b"s1"}, "v2": {"key": "other", "salt": b"x"}}, active_version="v1").to_file(path)
    before = path.read_bytes()
    manager = SecretsManager(SecretsConfig(keys={"v1": {"key": "p1", "salt": b"s1"}}, active_version="v1"))
    with pytest.raises(SecretsManagerError, match="'v2' já existe"):
        manager.rotate_to_new_version("v2", "mine", b"y", persist_to_file=path)
    assert path.read_bytes() == before
    assert manager.get_active_version() == "v1" and "v2" not in manager.config.keys


def test_concurrent_writers_lose_no_version(tmp_path: Path) -> None:
    """Rotations of several managers into one file, while the file is
    replaced over and over: every version survives."""
    path = tmp_path / ".env"
    base = SecretsConfig(keys={"v0": {"key": "p0", "salt": b"s0"}}, active_version="v0", kdf_iterations=FAST)
    base.to_file(path)
    errors: list = []

    def rotate(i: int) -> None:
        try:
            manager = SecretsManager(SecretsConfig.from_file(path, kdf_iterations=FAST))
            for j in range(3):
                manager.rotate_to_new_version(f"t{i}-{j}", f"p{i}{j}", b"s", persist_to_file=path)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def replace() -> None:
        try:
            for _ in range(10):
                base.to_file(path)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=rotate, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=replace))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = set(SecretsConfig.from_file(path).keys)
    assert names == {"v0"} | {f"t{i}-{j}" for i in range(4) for j in range(3)}
    assert_sound(path)
    assert leftovers(tmp_path) == []


def test_a_reference_in_the_keyring_is_never_expanded_into_the_file(
    tmp_path: Path, make_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyring line written by hand as ${NAME}: replacing the file would
    have to write the expanded value (another variable's secret) in its
    place, so it is refused; merging keeps the line as it is."""
    monkeypatch.setenv("PASSWORD_FROM_ELSEWHERE", "do-not-copy-me")
    path = tmp_path / ".env"
    original = "ENCRYPTION_KEYS__v0=${PASSWORD_FROM_ELSEWHERE}\nENCRYPTION_SALT__v0=c2FsdA==\n"
    path.write_text(original)
    assert SecretsConfig.from_file(path).keys["v0"]["key"] == "do-not-copy-me"
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"ENCRYPTION_KEYS__v0 .*referência.*append=True"):
        make_config({"v1": ("p1", b"s1")}, "v1").to_file(path)
    assert path.read_bytes() == before
    make_config({"v1": ("p1", b"s1")}, "v1").to_file(path, append=True)
    text = path.read_text()
    assert text.startswith(original) and "do-not-copy-me" not in text
    assert sorted(SecretsConfig.from_file(path).keys) == ["v0", "v1"]
    assert leftovers(tmp_path) == []

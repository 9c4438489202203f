"""A maintenance script (python/examples/keyring_maintenance.py): generate a
keyring file, rotate it, list the versions, set the active one, all through
SecretsConfig.from_file and to_file; an application reading the file after
each step decrypts everything it could before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values

from secrets_manager import SecretsConfig, SecretsManager

from conftest import run_seed_model

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "keyring_maintenance.py"


def tool(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path), *args], capture_output=True, text=True, check=False
    )


def app(path: Path) -> SecretsManager:
    """What an application does at start-up."""
    return SecretsManager(SecretsConfig.from_file(path))


def test_generate_rotate_list_activate(tmp_path: Path) -> None:
    path = tmp_path / ".env.secrets"
    assert tool(path, "generate", "v1").returncode == 0
    assert tool(path, "list").stdout == "* v1\n"
    tokens = {"v1": app(path).encrypt(b"first")[1]}

    assert tool(path, "rotate", "v2").returncode == 0
    assert tool(path, "list").stdout == "  v1\n* v2\n"
    manager = app(path)
    version, tokens["v2"] = manager.encrypt(b"second")
    assert version == "v2"
    assert manager.decrypt(tokens["v1"]) == ("v1", b"first")

    refused = tool(path, "rotate", "V2")
    assert refused.returncode == 1 and "exists already" in refused.stderr

    assert tool(path, "rotate", "v3").returncode == 0
    assert tool(path, "activate", "v1").returncode == 0
    assert tool(path, "list").stdout == "* v1\n  v2\n  v3\n"
    manager = app(path)
    assert manager.encrypt(b"x")[0] == "v1"
    assert manager.decrypt(tokens["v2"]) == ("v2", b"second")

    unknown = tool(path, "activate", "v9")
    assert unknown.returncode == 1 and "Versão ativa 'v9' não existe" in unknown.stderr
    assert tool(path, "list").stdout == "* v1\n  v2\n  v3\n"

    # The file is the Python package's format: python-dotenv reads it and
    # the plain-Python model opens the tokens.
    values = dotenv_values(path)
    assert values["ACTIVE_ENCRYPTION_VERSION"] == "v1"
    read = run_seed_model(
        {"mode": "read", "path": str(path), "tokens": {k: v.decode() for k, v in tokens.items()}}
    )
    assert read["decrypted"] == {"v1": "first", "v2": "second"}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]

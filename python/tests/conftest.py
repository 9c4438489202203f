"""Shared fixtures: configurations, and the plain-Python implementation the
package must interoperate with (``cryptography`` + ``python-dotenv``, and
the project's model of the original package, ``tests/python/seed_package.py``).
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from secrets_manager import SecretsConfig, SecretsManager

#: Fast derivation for tests that are not about derivation.
FAST = 1_000

REPO = Path(__file__).resolve().parents[2]
SEED_MODEL = REPO / "tests" / "python" / "seed_package.py"


def fernet_for(password: str, salt: bytes, iterations: int = 100_000) -> Any:
    """The original package's key derivation, in plain Python:
    PBKDF2HMAC(SHA-256) -> base64url -> ``cryptography`` ``Fernet``."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(password.encode("utf-8"))))


def run_seed_model(request: Dict[str, Any]) -> Dict[str, Any]:
    """Runs the project's plain-Python model of the original package."""
    done = subprocess.run(
        [sys.executable, str(SEED_MODEL)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"seed model failed: {done.stderr.strip()}")
    result: Dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def events() -> List[Tuple[str, Dict[str, Any]]]:
    return []


@pytest.fixture
def config(events: List[Tuple[str, Dict[str, Any]]]) -> SecretsConfig:
    return SecretsConfig(
        keys={"v1": {"key": "my-secret-password", "salt": "random-salt-value"}},
        active_version="v1",
        kdf_iterations=FAST,
        audit_callback=lambda event, metadata: events.append((event, metadata)),
    )


@pytest.fixture
def manager(config: SecretsConfig) -> SecretsManager:
    return SecretsManager(config)


@pytest.fixture
def make_config() -> Callable[..., SecretsConfig]:
    def make(versions: Dict[str, Tuple[str, Any]], active: str, **settings: Any) -> SecretsConfig:
        settings.setdefault("kdf_iterations", FAST)
        keys = {name: {"key": pw, "salt": salt} for name, (pw, salt) in versions.items()}
        return SecretsConfig(keys=keys, active_version=active, **settings)

    return make


@pytest.fixture
def warnings_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="secrets_manager")
    return caplog

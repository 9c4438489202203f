"""Thread-safe secrets manager: Fernet tokens, PBKDF2 key derivation and
multi-version key rotation, with ``.env`` keyring files.

A drop-in for the Python *SecretsManager* package: same classes, methods,
exceptions and messages, same tokens and files, both ways. The work is done
by a Rust core (``secrets_manager._native``).

>>> from secrets_manager import SecretsConfig, SecretsManager
>>> config = SecretsConfig(
...     keys={"v1": {"key": "my-secret-password", "salt": "random-salt-value"}},
...     active_version="v1",
... )
>>> manager = SecretsManager(config)
>>> version, token = manager.encrypt(b"sensitive data")
>>> manager.decrypt(token)
('v1', b'sensitive data')
"""

from . import utils
from ._native import Fernet, InvalidToken, SecretsManagerError
from .config import KeyConfiguration, SecretsConfig
from .manager import SecretsManager


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("secrets-manager")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "0"


__version__ = _version()

__all__ = [
    "Fernet",
    "InvalidToken",
    "KeyConfiguration",
    "SecretsConfig",
    "SecretsManager",
    "SecretsManagerError",
    "utils",
]

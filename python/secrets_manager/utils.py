"""Names and helpers of the ``.env`` keyring format.

``ENV_CHECKSUM_KEY`` is the variable that holds the file's checksum, as in
the Python SecretsManager package. The helpers normalise and hash salts
exactly as the package does; the work is done by the Rust core.
"""

from __future__ import annotations

from typing import Union

from . import _native

#: The variable holding the checksum of a ``.env`` keyring file.
ENV_CHECKSUM_KEY = "ENCRYPTION_ENV_CHECKSUM"
#: Prefix of the variable holding a version's password.
ENV_KEYS_PREFIX = "ENCRYPTION_KEYS__"
#: Prefix of the variable holding a version's salt (URL-safe base64).
ENV_SALT_PREFIX = "ENCRYPTION_SALT__"
#: Prefix of the variable holding a version's salt hash (hex SHA-256).
ENV_SALT_HASH_PREFIX = "ENCRYPTION_SALT_HASH__"
#: The variable naming the active version.
ENV_ACTIVE_VERSION = "ACTIVE_ENCRYPTION_VERSION"


def normalize_salt(salt: Union[bytes, bytearray, memoryview, str]) -> bytes:
    """A salt as bytes: bytes as they are; a string read as hexadecimal, then
    URL-safe base64 (padding required), then its UTF-8 bytes."""
    if isinstance(salt, str):
        return _native.normalise_salt(salt)
    if isinstance(salt, (bytes, bytearray, memoryview)):
        return bytes(salt)
    raise TypeError(f"salt deve ser bytes ou str, não {type(salt).__name__}")


def compute_salt_hash(salt: Union[bytes, bytearray, memoryview, str]) -> str:
    """The lower-case hex SHA-256 of a salt (after :func:`normalize_salt`)."""
    return _native.salt_hash(normalize_salt(salt))


__all__ = [
    "ENV_ACTIVE_VERSION",
    "ENV_CHECKSUM_KEY",
    "ENV_KEYS_PREFIX",
    "ENV_SALT_HASH_PREFIX",
    "ENV_SALT_PREFIX",
    "compute_salt_hash",
    "normalize_salt",
]

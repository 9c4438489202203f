"""``SecretsConfig`` and ``KeyConfiguration``: the configuration, as the
Python SecretsManager package has it.

``SecretsConfig`` is a mutable dataclass. Managers read it live: every
change (an attribute, ``config.keys[...]``, or a version's entry) bumps a
revision counter, and a manager using the configuration brings its native
key store in step before its next operation. Reading costs nothing; only a
change costs a re-sync.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Type, Union

from . import _native
from .utils import (
    ENV_ACTIVE_VERSION,
    ENV_KEYS_PREFIX,
    ENV_SALT_HASH_PREFIX,
    ENV_SALT_PREFIX,
)

#: ``audit_callback(event, metadata)``.
AuditCallback = Callable[[str, Dict[str, Any]], None]
#: A path to a ``.env`` file.
PathLike = Union[str, "os.PathLike[str]"]

#: The Python package's default PBKDF2 iteration count.
DEFAULT_KDF_ITERATIONS = 100_000

# (version, password, salt bytes, salt_hash) as the native layer takes them.
_NativeEntry = Tuple[str, str, bytes, Optional[str]]


def _touch(owner: Optional["SecretsConfig"]) -> None:
    if owner is not None:
        d = owner.__dict__
        d["_rev"] = d.get("_rev", 0) + 1


class _Tracked(dict):  # type: ignore[type-arg]
    """A dict that tells its configuration when it changes."""

    # A class default rather than slots: unpickling sets items before state.
    _owner: Optional["SecretsConfig"] = None

    def _adopt_value(self, value: Any) -> Any:
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._adopt_value(value))
        _touch(self._owner)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        _touch(self._owner)

    def clear(self) -> None:
        super().clear()
        _touch(self._owner)

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        _touch(self._owner)
        return value

    def popitem(self) -> Tuple[Any, Any]:
        item = super().popitem()
        _touch(self._owner)
        return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, self._adopt_value(value))
        _touch(self._owner)

    def __ior__(self, other: Any) -> "_Tracked":  # type: ignore[misc]
        self.update(other)
        return self

    def copy(self) -> Dict[Any, Any]:
        return dict(self)


class _Entry(_Tracked):
    """One version's entry: ``{"key": ..., "salt": ..., "salt_hash": ...}``."""


class _Keys(_Tracked):
    """``config.keys``: version -> entry; entries assigned into it are
    tracked too."""

    def _adopt_value(self, value: Any) -> Any:
        if isinstance(value, dict) and not (isinstance(value, _Entry) and value._owner is self._owner):
            entry = _Entry(value)
            entry._owner = self._owner
            return entry
        return value


def _adopt_keys(owner: "SecretsConfig", keys: Any) -> Any:
    if not isinstance(keys, dict):
        return keys
    tracked = _Keys()
    tracked._owner = owner
    for name, entry in keys.items():
        dict.__setitem__(tracked, name, tracked._adopt_value(entry))
    return tracked


def _active_name(active: Any) -> str:
    return str(active).strip().strip("\"'").lower()


def _salt_bytes(version: str, salt: Any) -> bytes:
    if isinstance(salt, str):
        return _native.normalise_salt(salt)
    if isinstance(salt, (bytes, bytearray, memoryview)):
        return bytes(salt)
    raise TypeError(f"Salt da versão '{version}' deve ser bytes ou str, não {type(salt).__name__}")


def _check_entry(version: str, entry: Any) -> Tuple[str, bytes, Optional[str]]:
    """Validates one entry: ``(password, salt bytes, salt_hash)``."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"Configuração da versão '{version}' deve ser um dicionário")
    if "key" not in entry or "salt" not in entry:
        raise ValueError(f"Configuração da versão '{version}' deve conter 'key' e 'salt'")
    key = entry["key"]
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("utf-8")
    if not isinstance(key, str):
        raise TypeError(f"Chave da versão '{version}' deve ser str, não {type(key).__name__}")
    salt = _salt_bytes(version, entry["salt"])
    salt_hash = entry.get("salt_hash")
    if salt_hash is not None and not isinstance(salt_hash, str):
        raise TypeError(f"salt_hash da versão '{version}' deve ser str")
    return key, salt, salt_hash or None


def _version(name: Any) -> str:
    checked = _native.version_name(str(name).strip()) if isinstance(name, str) else None
    if checked is None:
        raise ValueError(
            f"Nome de versão inválido: {name!r} (de 1 a 63 bytes, sem espaços, '=', '#' ou caracteres de controle)"
        )
    return checked


def _check_iterations(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"kdf_iterations deve ser um inteiro de 1 a 4294967295 (recebido {value!r})")
    return value


def _snapshot(
    config: "SecretsConfig", error: Type[Exception]
) -> Tuple[List[_NativeEntry], str]:
    """The configuration as the native layer takes it, validated. A missing
    key set or an unknown active version raise ``error`` (``ValueError`` for
    a configuration, ``SecretsManagerError`` for a manager)."""
    keys = config.keys
    if not keys:
        if error is ValueError:
            raise ValueError("Pelo menos uma chave de criptografia deve ser configurada")
        raise error("Nenhuma chave de criptografia configurada")
    entries: List[_NativeEntry] = []
    seen = set()
    for version, entry in list(keys.items()):
        name = _version(version)
        if name in seen:
            raise ValueError(f"Versão '{name}' configurada mais de uma vez (nomes ignoram maiúsculas)")
        seen.add(name)
        key, salt, salt_hash = _check_entry(name, entry)
        entries.append((name, key, salt, salt_hash))
    active = _active_name(config.active_version)
    if active not in seen:
        available = ", ".join(sorted(seen))
        raise error(f"Versão ativa '{active}' não existe. Versões disponíveis: {available}")
    return entries, active


@dataclass(repr=False)
class SecretsConfig:
    """The keys and settings of a :class:`~secrets_manager.SecretsManager`.

    ``keys`` maps a version name to ``{"key": password, "salt": bytes | str,
    "salt_hash": optional hex SHA-256}``. Construction validates it, lower-
    cases version names and turns salts into bytes (strings are read as hex,
    then URL-safe base64, then UTF-8). The object stays mutable; managers
    see changes on their next call.
    """

    keys: Dict[str, Dict[str, Any]]
    active_version: str
    kdf_iterations: int = DEFAULT_KDF_ITERATIONS
    verify_salt_integrity: bool = True
    audit_callback: Optional[AuditCallback] = None
    logger: Optional[logging.Logger] = None
    #: Revision counter, bumped by every change (instances keep their own).
    _rev: ClassVar[int] = 0

    def __post_init__(self) -> None:
        if not isinstance(self.keys, Mapping) or not self.keys:
            raise ValueError("Pelo menos uma chave de criptografia deve ser configurada")
        normalised: Dict[str, Dict[str, Any]] = {}
        for version, entry in self.keys.items():
            name = _version(version)
            key, salt, _ = _check_entry(name, entry)
            if name in normalised:
                raise ValueError(f"Versão '{name}' configurada mais de uma vez (nomes ignoram maiúsculas)")
            fresh = dict(entry)
            fresh["salt"] = salt
            normalised[name] = fresh
        active = _active_name(self.active_version)
        if active not in normalised:
            available = ", ".join(normalised)
            raise ValueError(
                f"Versão ativa '{active}' não existe nas chaves configuradas. Versões disponíveis: {available}"
            )
        _check_iterations(self.kdf_iterations)
        object.__setattr__(self, "keys", _adopt_keys(self, normalised))
        object.__setattr__(self, "active_version", active)
        _touch(self)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "keys" and "_rev" in self.__dict__:
            value = _adopt_keys(self, value)
        object.__setattr__(self, name, value)
        _touch(self)

    def __repr__(self) -> str:
        # Passwords never appear in a repr (the dataclass default would show
        # them); versions and settings do.
        versions = ", ".join(map(str, self.keys)) if isinstance(self.keys, Mapping) else "?"
        return (
            f"SecretsConfig(keys=<{versions}>, active_version={self.active_version!r}, "
            f"kdf_iterations={self.kdf_iterations!r}, "
            f"verify_salt_integrity={self.verify_salt_integrity!r}, "
            f"audit_callback={self.audit_callback!r}, logger={self.logger!r})"
        )

    def __copy__(self) -> "SecretsConfig":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__["keys"] = _adopt_keys(clone, dict(self.keys)) if isinstance(self.keys, dict) else self.keys
        clone.__dict__["_rev"] = 0
        return clone

    # -- loading and saving -------------------------------------------------

    @classmethod
    def from_environment(
        cls,
        *,
        keys_prefix: str = ENV_KEYS_PREFIX,
        salt_prefix: str = ENV_SALT_PREFIX,
        salt_hash_prefix: str = ENV_SALT_HASH_PREFIX,
        active_version_var: str = ENV_ACTIVE_VERSION,
        **settings: Any,
    ) -> "SecretsConfig":
        """The keyring in the process environment: ``ENCRYPTION_KEYS__<v>``
        (password; empty ones are ignored), ``ENCRYPTION_SALT__<v>``,
        optional ``ENCRYPTION_SALT_HASH__<v>``, and
        ``ACTIVE_ENCRYPTION_VERSION`` (optional with a single version).
        Other keyword arguments are ``SecretsConfig`` settings."""
        env = os.environ
        keys: Dict[str, Dict[str, Any]] = {}
        for variable in sorted(env):
            if not variable.startswith(keys_prefix):
                continue
            suffix = variable[len(keys_prefix) :]
            password = env[variable]
            if not suffix or not password:
                continue
            name = suffix.lower()
            salt = env.get(salt_prefix + suffix)
            if salt is None:
                raise ValueError(
                    f"Salt não encontrado para a versão '{name}': defina {salt_prefix}{suffix}"
                )
            entry: Dict[str, Any] = {"key": password, "salt": salt}
            salt_hash = env.get(salt_hash_prefix + suffix)
            if salt_hash:
                entry["salt_hash"] = salt_hash
            keys[name] = entry
        if not keys:
            raise ValueError(
                f"Nenhuma chave de criptografia encontrada nas variáveis de ambiente ({keys_prefix}<versão>)"
            )
        active = env.get(active_version_var, "")
        if not _active_name(active):
            if len(keys) != 1:
                raise ValueError(
                    f"Versão ativa não configurada: defina {active_version_var} "
                    f"(versões: {', '.join(keys)})"
                )
            active = next(iter(keys))
        return cls(keys=keys, active_version=active, **settings)

    @classmethod
    def from_file(cls, path: PathLike = ".env", **settings: Any) -> "SecretsConfig":
        """The keyring in a ``.env`` file, read as python-dotenv reads it,
        its checksum verified. Versions retired or destroyed there, and raw
        Fernet-key versions, are not part of a Python configuration and are
        left out (they stay in the file). Other keyword arguments are
        ``SecretsConfig`` settings; ``kdf_iterations`` defaults to the count
        the file records for its versions, if it records one."""
        versions, active = _native.read_keyring_file(os.fspath(path))
        keys: Dict[str, Dict[str, Any]] = {}
        recorded = set()
        for name, password, salt, salt_hash, iterations, state, kind in versions:
            if kind != "password" or state != "usable" or not password:
                continue
            entry: Dict[str, Any] = {"key": password, "salt": salt}
            if salt_hash:
                entry["salt_hash"] = salt_hash
            keys[name] = entry
            if iterations is not None:
                recorded.add(iterations)
        if not keys:
            raise ValueError(f"Nenhuma chave de criptografia encontrada no arquivo {os.fspath(path)}")
        if len(recorded) > 1:
            raise ValueError(
                f"As versões de {os.fspath(path)} registram contagens de iterações diferentes "
                f"({sorted(recorded)}); uma configuração Python tem um só kdf_iterations"
            )
        if recorded:
            settings.setdefault("kdf_iterations", recorded.pop())
        if active is None:
            active = next(iter(keys))
        return cls(keys=keys, active_version=active, **settings)

    def to_file(self, path: PathLike, append: bool = False) -> None:
        """Writes the keyring (passwords, salts as URL-safe base64, salt
        hashes, the active version and the checksum) to a ``.env`` file.

        With ``append=True`` the keyring is merged into the file: every
        other line, comment and variable is kept byte for byte. Without it
        the file is replaced by the keyring alone, atomically. Either way,
        under the file's lock, no version the file holds is ever lost or
        changed: a version the file has with other key material is refused
        (``SecretsManagerError``) and nothing is written."""
        entries, active = _snapshot(self, ValueError)
        _native.write_keyring_file(
            os.fspath(path),
            entries,
            active,
            _check_iterations(self.kdf_iterations),
            bool(self.verify_salt_integrity),
            bool(append),
        )


@dataclass
class KeyConfiguration:
    """One version's key material: ``key`` is held as a ``bytearray`` so
    :meth:`cleanup` can overwrite it; a ``salt_hash`` that does not match
    the salt raises ``ValueError``."""

    version: str
    key: bytearray
    salt: bytes
    salt_hash: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.key, str):
            self.key = bytearray(self.key.encode("utf-8"))
        elif isinstance(self.key, (bytes, bytearray, memoryview)):
            self.key = bytearray(self.key)
        else:
            raise TypeError(f"Chave da versão '{self.version}' deve ser str ou bytes")
        self.salt = _salt_bytes(self.version, self.salt)
        if self.salt_hash is not None and not _native.salt_matches(self.salt, self.salt_hash):
            raise ValueError(
                f"Integridade do salt comprometida para a versão '{self.version}': "
                "o SHA-256 do salt não confere com salt_hash"
            )

    def __repr__(self) -> str:
        return f"KeyConfiguration(version={self.version!r}, key=[REDACTED], salt_hash={self.salt_hash!r})"

    def cleanup(self) -> None:
        """Overwrites the key with zeros."""
        for i in range(len(self.key)):
            self.key[i] = 0


__all__ = ["AuditCallback", "KeyConfiguration", "SecretsConfig"]

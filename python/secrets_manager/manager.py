"""``SecretsManager``: the Python SecretsManager's manager, on the Rust core.

Every key derivation, token, cache and file write happens in the native
module (``secrets_manager._native``); this class keeps the original's API:
it reads ``self.config`` live, emits audit events to the configuration's
callback, and raises the original's exceptions.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _native
from ._native import Fernet, SecretsManagerError, StaleManager
from .config import PathLike, SecretsConfig, _salt_bytes, _snapshot, _version

_LOG = logging.getLogger("secrets_manager")

#: A token or plaintext argument.
Data = Union[bytes, bytearray]


def _path(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)


class SecretsManager:
    """Encrypts and decrypts with versioned, password-derived Fernet keys,
    and rotates them at runtime. Thread-safe; one manager serves a process.

    ``config`` is read live: a change to ``manager.config`` (its active
    version, its keys, its settings) is in force from the next call.
    """

    def __init__(self, config: SecretsConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        rev = config._rev
        entries, active = _snapshot(config, SecretsManagerError)
        self._core = _native.Core(
            id(config),
            rev,
            entries,
            active,
            config.kdf_iterations,
            bool(config.verify_salt_integrity),
        )
        self._synced: Optional[SecretsConfig] = config
        self._rev: int = rev
        self._logger().debug("SecretsManager inicializado com %d versões (ativa: %s)", len(entries), active)

    # -- keeping the native store in step with the configuration -----------

    def _logger(self) -> logging.Logger:
        logger = getattr(self.config, "logger", None)
        return logger if logger is not None else _LOG

    def _sync(self, force: bool = False) -> None:
        with self._lock:
            config = self.config
            rev = config._rev
            if not force and config is self._synced and rev == self._rev:
                return
            entries, active = _snapshot(config, SecretsManagerError)
            self._core.sync(
                id(config),
                rev,
                entries,
                active,
                config.kdf_iterations,
                bool(config.verify_salt_integrity),
            )
            self._synced = config
            self._rev = rev

    def _audit(self, config: SecretsConfig, event: str, metadata: Dict[str, Any]) -> None:
        callback = config.audit_callback
        if callback is None:
            return
        try:
            callback(event, metadata)
        except Exception as exc:  # the operation itself succeeded
            logger = config.logger if config.logger is not None else _LOG
            logger.warning("Erro no callback de auditoria (%s): %s", event, exc)

    # -- the original's API --------------------------------------------------

    def encrypt(self, plaintext: Data) -> Tuple[str, bytes]:
        """Encrypts under the active version: ``(version, token)``."""
        config = self.config
        if config is not self._synced or config._rev != self._rev:
            self._sync()
        try:
            version, token = self._core.encrypt(plaintext)
        except StaleManager:
            self._sync(force=True)
            version, token = self._core.encrypt(plaintext)
        if config.audit_callback is not None:
            self._audit(config, "encryption", {"version": version, "size": len(plaintext)})
        return version, token

    def decrypt(
        self,
        token: Union[Data, str],
        version_hint: Optional[str] = None,
        *,
        ttl: Optional[int] = None,
    ) -> Tuple[str, bytes]:
        """Decrypts a token: ``(version, plaintext)``. Tries ``version_hint``
        first, then the active version, then the others. With ``ttl``
        (seconds), a token older than that (or more than 60 s in the
        future) fails. Failing with every version raises
        ``SecretsManagerError``."""
        config = self.config
        if config is not self._synced or config._rev != self._rev:
            self._sync()
        try:
            version, plaintext, was_hint = self._core.decrypt(token, version_hint, ttl)
        except StaleManager:
            self._sync(force=True)
            version, plaintext, was_hint = self._core.decrypt(token, version_hint, ttl)
        if config.audit_callback is not None:
            self._audit(config, "decryption", {"version": version, "was_hint": was_hint})
        return version, plaintext

    def rotate_to_new_version(
        self,
        new_version: str,
        new_key: str,
        new_salt: Optional[Union[bytes, str]] = None,
        persist_to_file: Optional[PathLike] = None,
        *,
        activate: bool = True,
    ) -> None:
        """Adds a version derived from ``new_key`` and makes it active; old
        versions keep decrypting. Without ``new_salt`` the first existing
        version's salt is reused, as the original does.

        With ``persist_to_file`` the version is first merged into that
        ``.env`` file under its lock (atomically; every other line kept; no
        version the file holds is ever replaced), and added in memory only
        if that succeeded. A version name that exists already is refused.
        With ``activate=False`` the version is staged: it decrypts, and
        :meth:`activate_version` switches to it later."""
        with self._lock:
            config = self.config
            name = _version(new_version)
            if new_salt is None:
                if not config.keys:
                    raise SecretsManagerError(
                        "Nenhuma configuração existente da qual reutilizar o salt: informe new_salt"
                    )
                new_salt = next(iter(config.keys.values()))["salt"]
            salt = _salt_bytes(name, new_salt)
            if config.keys:
                # Pending changes first (an emptied configuration is replaced
                # by the new version alone, after the rotation).
                self._sync()
            if not isinstance(new_key, str):
                raise TypeError(f"Chave da versão '{name}' deve ser str")
            try:
                self._core.rotate(name, new_key, salt, _path(persist_to_file), activate)
            except StaleManager:
                self._sync(force=True)
                self._core.rotate(name, new_key, salt, _path(persist_to_file), activate)
            config.keys[name] = {"key": new_key, "salt": salt}
            if activate:
                config.active_version = name
            self._sync()
        if activate:
            self._logger().info("Rotação concluída: versão ativa %s", name)
            self._audit(config, "rotation", {"new_version": name})
        else:
            self._logger().info("Versão %s adicionada (não ativa)", name)
            self._audit(config, "version_added", {"version": name})

    def get_active_version(self) -> str:
        """The active version."""
        self._sync()
        return self._core.active_version()

    def get_all_versions(self) -> List[str]:
        """Every version that can decrypt, in the order added."""
        self._sync()
        return [i["version"] for i in self._core.version_info() if i["state"] == "usable"]

    def get_fernet(self, version: str) -> Fernet:
        """A ``Fernet`` for one version (same methods as
        ``cryptography.fernet.Fernet``); derived once, then cached."""
        self._sync()
        config = self.config
        name = str(version).strip().lower()
        entry = None
        for key, value in config.keys.items():
            if str(key).lower() == name:
                entry = value
                break
        if entry is None:
            raise SecretsManagerError(f"Versão '{name}' não encontrada")
        salt = _salt_bytes(name, entry["salt"])
        return self._core.fernet(
            name,
            entry["key"],
            salt,
            entry.get("salt_hash"),
            config.kdf_iterations,
            bool(config.verify_salt_integrity),
        )

    def get_statistics(self) -> Dict[str, int]:
        """``encryptions``, ``decryptions``, ``cache_hits``,
        ``cache_misses`` and ``integrity_checks``, exact under concurrent
        use."""
        return self._core.statistics()

    def clear_cache(self) -> None:
        """Drops (and zeroizes) every derived key; each is derived again on
        first use."""
        self._core.clear_cache()

    def cleanup(self) -> None:
        """Zeroizes every key and password the native store holds. Like the
        original, the manager keeps working: the next call derives again
        from ``config``."""
        with self._lock:
            self._core.cleanup()
            self._rev = -1

    # -- beyond the original -------------------------------------------------

    def encrypt_at_time(self, plaintext: Data, current_time: int) -> Tuple[str, bytes]:
        """As :meth:`encrypt`, with the token stamped ``current_time`` (Unix
        seconds)."""
        config = self.config
        if config is not self._synced or config._rev != self._rev:
            self._sync()
        try:
            version, token = self._core.encrypt_at_time(plaintext, current_time)
        except StaleManager:
            self._sync(force=True)
            version, token = self._core.encrypt_at_time(plaintext, current_time)
        if config.audit_callback is not None:
            self._audit(config, "encryption", {"version": version, "size": len(plaintext)})
        return version, token

    def rotate_token(self, token: Union[Data, str]) -> Tuple[str, bytes]:
        """Re-encrypts a token under the active version, keeping its
        timestamp (so a TTL still counts from the first encryption):
        ``(version, new_token)``. Counted and audited as one decryption and
        one encryption."""
        config = self.config
        if config is not self._synced or config._rev != self._rev:
            self._sync()
        try:
            old, new, fresh, size = self._core.rotate_token(token)
        except StaleManager:
            self._sync(force=True)
            old, new, fresh, size = self._core.rotate_token(token)
        if config.audit_callback is not None:
            self._audit(config, "decryption", {"version": old, "was_hint": False})
            self._audit(config, "encryption", {"version": new, "size": size})
        return new, fresh

    def activate_version(self, version: str, persist_to_file: Optional[PathLike] = None) -> None:
        """Makes an existing version the active one (its key is derived
        first), as setting ``config.active_version`` does, recording when.
        With ``persist_to_file`` the manager's keyring is then merged into
        that file."""
        self._lifecycle("activate", "activation", version, persist_to_file)

    def retire_version(self, version: str, persist_to_file: Optional[PathLike] = None) -> None:
        """Stops a version decrypting (not the active one); its tokens then
        fail with a message that says it was retired. It leaves
        ``config.keys``. With ``persist_to_file`` the state is merged into
        that file (``ENCRYPTION_STATE__<v>=retired``; the key stays there)."""
        self._lifecycle("retire", "retirement", version, persist_to_file)

    def destroy_version(self, version: str, persist_to_file: Optional[PathLike] = None) -> None:
        """Erases a version's key (not the active one's) from memory, and
        with ``persist_to_file`` from that file, where a tombstone keeps the
        name so it is never reused. It leaves ``config.keys``."""
        self._lifecycle("destroy", "destruction", version, persist_to_file)

    def _lifecycle(self, operation: str, event: str, version: str, path: Optional[PathLike]) -> None:
        with self._lock:
            self._sync()
            config = self.config
            name = self._core.lifecycle(operation, str(version).strip(), _path(path))
            if operation == "activate":
                config.active_version = name
            else:
                for key in [k for k in config.keys if str(k).lower() == name]:
                    del config.keys[key]
            self._sync()
        self._logger().info("Versão %s: %s", name, event)
        self._audit(config, event, {"version": name})

    def get_version_info(self) -> List[Dict[str, Any]]:
        """Each version the manager holds, in the order added: ``version``,
        ``active``, ``state`` (``usable``, ``retired``, ``destroyed``),
        ``activated_at``, ``kind``, ``kdf_iterations``, ``decryptions``.
        Never a secret."""
        self._sync()
        return self._core.version_info()

    def persist_to_file(self, path: PathLike) -> None:
        """Merges the manager's whole keyring (versions, their states, the
        active version) into a ``.env`` file under its lock."""
        self._sync()
        self._core.persist_to_file(os.fspath(path))

    def __enter__(self) -> "SecretsManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        try:
            active = self._core.active_version()
        except Exception:  # pragma: no cover - repr must not fail
            active = "?"
        return f"SecretsManager(active_version={active!r})"


__all__ = ["SecretsManager"]

//! Rust errors as the Python package's exceptions, with its messages.
//!
//! The Python SecretsManager's messages are in Portuguese and applications
//! match on fragments of them (SEED.md lists them); each situation keeps its
//! exception type and fragment here. The Rust error's own text follows in
//! parentheses where it adds something (a file, a line, the versions tried);
//! it never contains a secret.

use pyo3::exceptions::{PyException, PyOSError, PyUnicodeDecodeError, PyValueError};
use pyo3::prelude::*;
use secrets_manager::keystore::{KeystoreError, VersionList};
use secrets_manager::persist::PersistError;
use secrets_manager::{Error, Version};

pyo3::create_exception!(
    secrets_manager,
    SecretsManagerError,
    PyException,
    "An operation of the secrets manager failed (the Python package's exception)."
);

pyo3::create_exception!(
    secrets_manager,
    InvalidToken,
    PyException,
    "A token that is malformed, was not made with this key, or is outside its time-to-live."
);

pyo3::create_exception!(
    secrets_manager._native,
    StaleManager,
    SecretsManagerError,
    "Internal: the native manager was cleaned up; the Python layer rebuilds it from the configuration and retries."
);

/// What the failing call was doing, where the message depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Doing {
    /// Decrypting: every failure is "Falha ao descriptografar".
    Decrypt,
    /// Building or changing the manager's keyring.
    Manage,
    /// Reading a keyring file.
    ReadFile,
    /// Writing a keyring file.
    WriteFile,
}

fn quoted(v: &Version) -> String {
    format!("'{v}'")
}

/// The Python exception for a facade error.
pub(crate) fn to_py(e: &Error, doing: Doing) -> PyErr {
    match e {
        Error::Keystore(k) => keystore(k, doing),
        Error::Loaded { source, .. } => keystore(source, doing),
        Error::Persist(p) => persist(p, doing),
        Error::Conflict { origin, version } => SecretsManagerError::new_err(format!(
            "Versão {} já existe em {origin} com outro material de chave; nada foi gravado \
             (versões nunca são substituídas: escolha outro nome) ({e})",
            quoted(version)
        )),
        Error::ZeroIterations => PyValueError::new_err(format!(
            "kdf_iterations deve ser um inteiro de 1 a 4294967295 ({e})"
        )),
        Error::NoActiveVersion { available } => PyValueError::new_err(format!(
            "Versão ativa não configurada (versões: {})",
            VersionList(available)
        )),
        Error::UnknownVersion { version, .. } => {
            SecretsManagerError::new_err(format!("Versão {} não encontrada ({e})", quoted(version)))
        }
        other => SecretsManagerError::new_err(other.to_string()),
    }
}

fn keystore(k: &KeystoreError, doing: Doing) -> PyErr {
    if doing == Doing::Decrypt {
        return match k {
            KeystoreError::CleanedUp => StaleManager::new_err(k.to_string()),
            _ => SecretsManagerError::new_err(format!(
                "Falha ao descriptografar com todas as versões disponíveis ({k})"
            )),
        };
    }
    match k {
        KeystoreError::NoVersions => {
            SecretsManagerError::new_err("Nenhuma chave de criptografia configurada")
        }
        KeystoreError::UnknownActiveVersion { active, available } => {
            SecretsManagerError::new_err(format!(
                "Versão ativa {} não existe. Versões disponíveis: {}",
                quoted(active),
                VersionList(available)
            ))
        }
        KeystoreError::UnknownVersion { version, available } => {
            SecretsManagerError::new_err(format!(
                "Versão {} não encontrada. Versões disponíveis: {}",
                quoted(version),
                VersionList(available)
            ))
        }
        KeystoreError::SaltIntegrity(v) => PyValueError::new_err(format!(
            "Integridade do salt comprometida para a versão {}: o SHA-256 do salt não confere com salt_hash",
            quoted(v)
        )),
        KeystoreError::SaltHash { version, source } => PyValueError::new_err(format!(
            "salt_hash da versão {} inválido ({source})",
            quoted(version)
        )),
        KeystoreError::InvalidVersionName { .. } => {
            PyValueError::new_err(format!("Nome de versão inválido ({k})"))
        }
        KeystoreError::DuplicateVersion(v) => SecretsManagerError::new_err(format!(
            "Versão {} já existe; versões nunca são substituídas: escolha outro nome",
            quoted(v)
        )),
        KeystoreError::ActiveVersion(v) => SecretsManagerError::new_err(format!(
            "Versão {} está ativa: ative outra versão antes de aposentá-la ou destruí-la",
            quoted(v)
        )),
        KeystoreError::VersionRetired(v) => SecretsManagerError::new_err(format!(
            "Versão {} foi aposentada e não pode ser ativada",
            quoted(v)
        )),
        KeystoreError::VersionDestroyed(v) => SecretsManagerError::new_err(format!(
            "Versão {} foi destruída: sua chave não existe mais",
            quoted(v)
        )),
        KeystoreError::CleanedUp => StaleManager::new_err(k.to_string()),
        other => SecretsManagerError::new_err(other.to_string()),
    }
}

fn persist(p: &PersistError, doing: Doing) -> PyErr {
    match p {
        PersistError::Io { path, source, .. } => {
            if doing == Doing::ReadFile && source.kind() == std::io::ErrorKind::NotFound {
                return pyo3::exceptions::PyFileNotFoundError::new_err(format!(
                    "Arquivo .env não encontrado: {}",
                    path.display()
                ));
            }
            let message = format!("Erro de E/S no arquivo .env ({p})");
            match source.raw_os_error() {
                // OSError(errno, message, filename) picks the subclass
                // (PermissionError, FileNotFoundError, ...) from the errno.
                Some(errno) => PyOSError::new_err((errno, message, path.display().to_string())),
                None => PyOSError::new_err(message),
            }
        }
        PersistError::Checksum { .. } => {
            PyValueError::new_err(format!("Checksum do arquivo .env inválido ({p})"))
        }
        PersistError::Missing { variable, .. } if variable.contains("SALT") => {
            PyValueError::new_err(format!("Salt não encontrado: {variable} ({p})"))
        }
        PersistError::NoActive { .. } => {
            PyValueError::new_err(format!("Versão ativa não configurada ({p})"))
        }
        PersistError::Unwritable { .. } => PyValueError::new_err(format!(
            "Valor que o python-dotenv não leria de volta sem alteração; nada foi gravado ({p})"
        )),
        PersistError::NotRegularFile { .. } | PersistError::DanglingSymlink { .. } => {
            PyOSError::new_err(format!("Não é um arquivo .env gravável ({p})"))
        }
        _ if doing == Doing::WriteFile => {
            PyValueError::new_err(format!("Não foi possível gravar o arquivo .env ({p})"))
        }
        _ => PyValueError::new_err(format!("Arquivo .env inválido ({p})")),
    }
}

/// Python's own `UnicodeDecodeError` for a file that is not UTF-8, as
/// reading it in Python would raise.
pub(crate) fn not_utf8(py: Python<'_>, bytes: &[u8], fallback: PyErr) -> PyErr {
    match std::str::from_utf8(bytes) {
        Ok(_) => fallback,
        Err(e) => PyUnicodeDecodeError::new_err_from_utf8(py, bytes, e),
    }
}

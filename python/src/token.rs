//! `Fernet`: one version's key, as `SecretsManager.get_fernet` returns it,
//! with the methods of `cryptography.fernet.Fernet`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use secrets_manager::fernet::{Fernet, Key};

use crate::core::{SMALL, bytes_out, drop_large, plaintext_arg, token_arg, ttl_arg};
use crate::errors::InvalidToken;

/// A Fernet key (the Rust codec): tokens are interchangeable with
/// `cryptography.fernet.Fernet`'s.
#[pyclass(frozen, name = "Fernet", module = "secrets_manager")]
pub(crate) struct PyFernet(Fernet);

impl From<Fernet> for PyFernet {
    fn from(f: Fernet) -> Self {
        Self(f)
    }
}

fn invalid() -> PyErr {
    InvalidToken::new_err("token inválido, de outra chave ou fora do prazo (ttl)")
}

#[pymethods]
impl PyFernet {
    /// A Fernet for a key in its text form (44 characters of URL-safe
    /// base64, as `Fernet.generate_key()` makes).
    #[new]
    fn new(key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text = token_arg(key)?;
        let key = Key::from_base64(&*text).map_err(|e| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "Fernet key must be 32 url-safe base64-encoded bytes ({e})"
            ))
        })?;
        Ok(Self(Fernet::new(&key)))
    }

    /// A new random key, in its text form.
    #[staticmethod]
    fn generate_key(py: Python<'_>) -> Bound<'_, PyBytes> {
        PyBytes::new(py, Key::generate().to_base64().as_bytes())
    }

    /// A token for `data`, stamped with the current time.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = plaintext_arg(data)?;
        let token = if data.len() <= SMALL {
            self.0.encrypt(&data)
        } else {
            py.detach(|| self.0.encrypt(&data))
        };
        bytes_out(py, token.as_bytes())
    }

    /// A token for `data`, stamped with `current_time` (Unix seconds).
    fn encrypt_at_time<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        current_time: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = plaintext_arg(data)?;
        let token = py.detach(|| self.0.encrypt_at_time(&data, current_time));
        bytes_out(py, token.as_bytes())
    }

    /// The message in a token; with `ttl`, only if the token is at most
    /// that many seconds old (and not more than 60 s in the future).
    #[pyo3(signature = (token, ttl=None))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        ttl: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let token = token_arg(token)?;
        let ttl = ttl_arg(ttl)?;
        let open = || match ttl {
            Some(ttl) => self.0.decrypt_with_ttl(&*token, ttl),
            None => self.0.decrypt(&*token),
        };
        let plaintext = if token.len() <= SMALL {
            open()
        } else {
            py.detach(open)
        }
        .map_err(|_| invalid())?;
        let out = bytes_out(py, &plaintext)?;
        drop_large(py, plaintext);
        Ok(out)
    }

    /// As `decrypt`, at `current_time` (Unix seconds) instead of now.
    fn decrypt_at_time<'py>(
        &self,
        py: Python<'py>,
        token: &Bound<'py, PyAny>,
        ttl: i64,
        current_time: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let token = token_arg(token)?;
        let ttl = ttl_arg(Some(ttl))?;
        let plaintext = py
            .detach(|| self.0.decrypt_at_time(&*token, ttl, current_time))
            .map_err(|_| invalid())?;
        let out = bytes_out(py, &plaintext)?;
        drop_large(py, plaintext);
        Ok(out)
    }

    /// The token's timestamp (Unix seconds), after verifying its HMAC.
    fn extract_timestamp(&self, token: &Bound<'_, PyAny>) -> PyResult<u64> {
        let token = token_arg(token)?;
        self.0.extract_timestamp(&*token).map_err(|_| invalid())
    }

    fn __repr__(&self) -> &'static str {
        "Fernet([REDACTED])"
    }
}

//! How to reach the cluster and what to wrap material with: one value,
//! from code or from the environment.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::error::EtcdError;
use crate::kek::Kek;

/// The environment variables [`EtcdOptions::from_env`] reads. The command
/// line's flags take precedence over them.
pub mod env {
    /// The key-encryption key's text (`secrets-manager keygen` makes one).
    pub const KEK: &str = "SECRETS_MANAGER_KEK";
    /// A file holding the key-encryption key (wins over [`KEK`]).
    pub const KEK_FILE: &str = "SECRETS_MANAGER_KEK_FILE";
    /// Earlier key-encryption keys, still accepted for reading during a
    /// switch: their texts, separated by commas.
    pub const KEK_PREVIOUS: &str = "SECRETS_MANAGER_KEK_PREVIOUS";
    /// `1` or `true`: write key material unwrapped when no key-encryption
    /// key is set.
    pub const ALLOW_PLAINTEXT: &str = "SECRETS_MANAGER_ALLOW_PLAINTEXT_STORE";
    /// How long to wait for the cluster (`5s`, `500ms`, `1m`; default 5 s).
    pub const TIMEOUT: &str = "SECRETS_MANAGER_TIMEOUT";
    /// etcd user name (etcd's own authentication).
    pub const USER: &str = "SECRETS_MANAGER_ETCD_USER";
    /// That user's password.
    pub const PASSWORD: &str = "SECRETS_MANAGER_ETCD_PASSWORD";
    /// A file holding that user's password (wins over [`PASSWORD`]).
    pub const PASSWORD_FILE: &str = "SECRETS_MANAGER_ETCD_PASSWORD_FILE";
    /// PEM file of the CA that signed the cluster's certificates: turns on
    /// TLS.
    pub const CACERT: &str = "SECRETS_MANAGER_ETCD_CACERT";
    /// PEM client certificate, for clusters that require one.
    pub const CERT: &str = "SECRETS_MANAGER_ETCD_CERT";
    /// PEM private key of the client certificate.
    pub const KEY: &str = "SECRETS_MANAGER_ETCD_KEY";
    /// The name the cluster's certificates are checked against, when it is
    /// not the endpoint's host.
    pub const TLS_DOMAIN: &str = "SECRETS_MANAGER_ETCD_TLS_DOMAIN";
}

/// The default for [`EtcdOptions::timeout`]: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of an [`EtcdStore`](crate::EtcdStore): the key-encryption keys,
/// whether plaintext may be written, the timeout, and etcd's own
/// authentication and TLS.
///
/// ```
/// use std::time::Duration;
/// use secrets_manager_etcd::{EtcdOptions, Kek};
///
/// let options = EtcdOptions::new()
///     .kek(Kek::generate())
///     .previous_kek(Kek::generate())   // still read during a switch
///     .timeout(Duration::from_secs(2));
/// assert_eq!(options.keks().len(), 2);
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct EtcdOptions {
    pub(crate) timeout: Duration,
    /// The first one wraps; every one unwraps.
    pub(crate) keks: Vec<Kek>,
    has_primary: bool,
    pub(crate) allow_plaintext: bool,
    pub(crate) user: Option<(String, SecretString)>,
    pub(crate) tls: Tls,
}

#[derive(Clone, Default)]
pub(crate) struct Tls {
    pub(crate) ca: Option<Vec<u8>>,
    pub(crate) cert: Option<Vec<u8>>,
    pub(crate) key: Option<Zeroizing<Vec<u8>>>,
    pub(crate) domain: Option<String>,
}

impl Tls {
    pub(crate) fn enabled(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.domain.is_some()
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("timeout", &self.timeout)
            .field("keks", &self.keks)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("tls", &self.tls.enabled())
            .finish()
    }
}

impl EtcdOptions {
    /// No key-encryption key (so no material can be written until one is
    /// given, or plaintext is allowed), a 5 s timeout, no authentication,
    /// no TLS.
    #[must_use]
    pub fn new() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            keks: Vec::new(),
            has_primary: false,
            allow_plaintext: false,
            user: None,
            tls: Tls::default(),
        }
    }

    /// The settings in the environment (see [`env`](mod@env)).
    ///
    /// # Errors
    ///
    /// A variable with a bad value, or a file one names that cannot be
    /// read; the error names the variable, never its value.
    pub fn from_env() -> Result<Self, EtcdError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with each variable's value from
    /// `lookup` (a command line puts its flags in front of the
    /// environment this way). Empty values count as unset.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EtcdError> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut options = Self::new();
        if let Some(path) = var(env::KEK_FILE) {
            options = options.kek(Kek::from_file(path)?);
        } else if let Some(text) = var(env::KEK).map(Zeroizing::new) {
            options = options.kek(Kek::parse(&text, &format!("${}", env::KEK))?);
        }
        if let Some(texts) = var(env::KEK_PREVIOUS).map(Zeroizing::new) {
            for text in texts.split(',').filter(|t| !t.trim().is_empty()) {
                options =
                    options.previous_kek(Kek::parse(text, &format!("${}", env::KEK_PREVIOUS))?);
            }
        }
        if let Some(value) = var(env::ALLOW_PLAINTEXT) {
            options = options.allow_plaintext(parse_bool(&value, env::ALLOW_PLAINTEXT)?);
        }
        if let Some(value) = var(env::TIMEOUT) {
            options =
                options.timeout(parse_duration(&value).map_err(|reason| EtcdError::Setting {
                    setting: format!("${}", env::TIMEOUT),
                    reason,
                })?);
        }
        if let Some(user) = var(env::USER) {
            let password = match (var(env::PASSWORD_FILE), var(env::PASSWORD)) {
                (Some(path), _) => read_password(Path::new(&path))?,
                (None, Some(password)) => SecretString::from(password),
                (None, None) => {
                    return Err(EtcdError::Setting {
                        setting: format!("${}", env::USER),
                        reason: format!(
                            "needs a password: set ${} or ${}",
                            env::PASSWORD_FILE,
                            env::PASSWORD
                        ),
                    });
                }
            };
            options = options.user(&user, password);
        }
        if let Some(path) = var(env::CACERT) {
            options = options.ca_certificate_file(path)?;
        }
        match (var(env::CERT), var(env::KEY)) {
            (Some(cert), Some(key)) => options = options.client_identity_files(cert, key)?,
            (None, None) => {}
            _ => {
                return Err(EtcdError::Setting {
                    setting: format!("${} and ${}", env::CERT, env::KEY),
                    reason: "a client certificate needs both".to_owned(),
                });
            }
        }
        if let Some(domain) = var(env::TLS_DOMAIN) {
            options = options.tls_domain(&domain);
        }
        Ok(options)
    }

    /// How long to wait for the cluster: for each read, and for each write
    /// until it is committed (lost compare-and-swaps are retried without
    /// counting against it). Watches reconnect on their own.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The key-encryption key this process wraps new material with (the
    /// keyring's recorded one is used when this process holds it too, so a
    /// fleet mid-switch keeps writing under one key). Replaces an earlier
    /// one given here; keys given with
    /// [`previous_kek`](Self::previous_kek) stay.
    #[must_use]
    pub fn kek(mut self, kek: Kek) -> Self {
        if self.has_primary {
            self.keks[0] = kek;
        } else {
            self.keks.insert(0, kek);
            self.has_primary = true;
        }
        self
    }

    /// Another key-encryption key accepted for reading (an earlier one,
    /// during a switch to a new one).
    #[must_use]
    pub fn previous_kek(mut self, kek: Kek) -> Self {
        if !self.keks.iter().any(|k| k.id() == kek.id()) {
            self.keks.push(kek);
        }
        self
    }

    /// The key-encryption keys held, the one that wraps first.
    #[must_use]
    pub fn keks(&self) -> &[Kek] {
        &self.keks
    }

    /// Whether key material may be written unwrapped when no key-encryption
    /// key is held (off by default: etcd, its snapshots and backups would
    /// hold passwords and keys in the clear).
    #[must_use]
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// etcd's own user name and password.
    #[must_use]
    pub fn user(mut self, name: &str, password: impl Into<SecretString>) -> Self {
        self.user = Some((name.to_owned(), password.into()));
        self
    }

    /// The CA certificate (PEM) that signed the cluster's: connections use
    /// TLS.
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca = Some(pem.into());
        self
    }

    /// As [`ca_certificate_pem`](Self::ca_certificate_pem), from a file.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn ca_certificate_file(self, path: impl AsRef<Path>) -> Result<Self, EtcdError> {
        Ok(self.ca_certificate_pem(read_file("CA certificate", path.as_ref())?))
    }

    /// A client certificate and its private key (PEM), for clusters that
    /// authenticate clients by certificate.
    #[must_use]
    pub fn client_identity_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.cert = Some(cert.into());
        self.tls.key = Some(Zeroizing::new(key.into()));
        self
    }

    /// As [`client_identity_pem`](Self::client_identity_pem), from files.
    ///
    /// # Errors
    ///
    /// A file cannot be read.
    pub fn client_identity_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, EtcdError> {
        let cert = read_file("client certificate", cert.as_ref())?;
        let key = Zeroizing::new(read_file("client key", key.as_ref())?);
        Ok(self.client_identity_pem(cert, key.to_vec()))
    }

    /// The name the cluster's certificates are checked against, when it is
    /// not the endpoints' host.
    #[must_use]
    pub fn tls_domain(mut self, name: &str) -> Self {
        self.tls.domain = Some(name.to_owned());
        self
    }

    /// The client's connection settings.
    pub(crate) fn connect_options(&self) -> Result<etcd_client::ConnectOptions, EtcdError> {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            // Requests to a member cut off from its leader fail at once
            // (and are retried on another) instead of hanging; a watch on
            // such a member is cancelled and re-made elsewhere.
            .with_require_leader(true)
            // Notices a silently dead member within seconds.
            .with_keep_alive(
                Duration::from_secs(2),
                self.timeout.min(Duration::from_secs(5)),
            )
            .with_keep_alive_while_idle(true);
        if let Some((name, password)) = &self.user {
            options = options
                .with_user(name.clone(), password.expose_secret().to_owned())
                .with_auto_token_refresh(true);
        }
        if self.tls.enabled() {
            let Some(ca) = &self.tls.ca else {
                return Err(EtcdError::Setting {
                    setting: "TLS".to_owned(),
                    reason: format!(
                        "needs the cluster's CA certificate (--etcd-cacert or ${})",
                        env::CACERT
                    ),
                });
            };
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(ca.clone()));
            match (&self.tls.cert, &self.tls.key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(etcd_client::Identity::from_pem(cert.clone(), &**key));
                }
                (None, None) => {}
                _ => {
                    return Err(EtcdError::Setting {
                        setting: "client certificate".to_owned(),
                        reason: "needs both the certificate and its key".to_owned(),
                    });
                }
            }
            if let Some(domain) = &self.tls.domain {
                tls = tls.domain_name(domain.clone());
            }
            options = options.with_tls(tls);
        }
        Ok(options)
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The first line of a password file.
///
/// # Errors
///
/// The file cannot be read, or its first line is empty.
pub fn read_password(path: &Path) -> Result<SecretString, EtcdError> {
    let text = Zeroizing::new(read_file("etcd password file", path)?);
    let text = std::str::from_utf8(&text).map_err(|_| EtcdError::Setting {
        setting: path.display().to_string(),
        reason: "the password file is not UTF-8".to_owned(),
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(EtcdError::Setting {
            setting: path.display().to_string(),
            reason: "the password file's first line is empty".to_owned(),
        });
    }
    Ok(SecretString::from(line.to_owned()))
}

fn parse_bool(value: &str, name: &str) -> Result<bool, EtcdError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(EtcdError::Setting {
            setting: format!("${name}"),
            reason: "must be true or false (1 or 0)".to_owned(),
        }),
    }
}

/// Parses a duration: a number with a unit (`ms`, `s`, `m`, `h`), or a bare
/// number of seconds; decimals allowed (`1.5s`).
///
/// ```
/// use std::time::Duration;
/// use secrets_manager_etcd::parse_duration;
///
/// assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("soon").is_err());
/// ```
///
/// # Errors
///
/// Text that is not a non-negative number with one of those units.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use ms, s, m or h, e.g. 5s or 500ms)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 5s, 500ms, 1m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration(" 10 s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0.25s").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "s", "5 parsecs", "-1s", "1e3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_key_wraps_and_debug_shows_no_secret() {
        let a = Kek::generate();
        let b = Kek::generate();
        let c = Kek::generate();
        let options = EtcdOptions::new()
            .previous_kek(b.clone())
            .kek(a.clone())
            .kek(c.clone())
            .user("app", "etcd-password-sentinel");
        let ids: Vec<&str> = options.keks().iter().map(Kek::id).collect();
        assert_eq!(ids, [c.id(), b.id()]);
        let shown = format!("{options:?}");
        assert!(!shown.contains("etcd-password-sentinel"), "{shown}");
        assert!(!shown.contains(c.to_base64().as_str()), "{shown}");
        assert!(shown.contains("app"));
    }

    #[test]
    fn settings_come_from_the_lookup_and_errors_name_the_variable() {
        let kek = Kek::generate();
        let text = kek.to_base64().to_string();
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let o = EtcdOptions::from_lookup(vars(vec![
            (env::KEK, text.clone()),
            (env::TIMEOUT, "250ms".into()),
            (env::ALLOW_PLAINTEXT, "yes".into()),
            (env::USER, "app".into()),
            (env::PASSWORD, "pw".into()),
        ]))
        .unwrap();
        assert_eq!(o.keks()[0].id(), kek.id());
        assert_eq!(o.timeout, Duration::from_millis(250));
        assert!(o.allow_plaintext);
        assert_eq!(o.user.as_ref().map(|u| u.0.as_str()), Some("app"));
        for (name, value, says) in [
            (
                env::KEK,
                "secret-but-no-key".to_owned(),
                "SECRETS_MANAGER_KEK",
            ),
            (env::TIMEOUT, "soon".to_owned(), "SECRETS_MANAGER_TIMEOUT"),
            (env::ALLOW_PLAINTEXT, "maybe".to_owned(), "true or false"),
            (env::USER, "app".to_owned(), "needs a password"),
            (env::CERT, "/c.pem".to_owned(), "needs both"),
            (
                env::KEK_FILE,
                "/nonexistent/kek".to_owned(),
                "/nonexistent/kek",
            ),
        ] {
            let e = EtcdOptions::from_lookup(vars(vec![(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{name}: {e}");
            assert!(!e.contains("secret-but-no-key"), "{e}");
        }
        assert!(
            EtcdOptions::from_lookup(|_| Some(String::new())).is_ok(),
            "empty is unset"
        );
    }

    #[test]
    fn tls_needs_a_ca() {
        let e = EtcdOptions::new()
            .tls_domain("etcd.internal")
            .connect_options()
            .unwrap_err()
            .to_string();
        assert!(e.contains("CA certificate"), "{e}");
        assert!(EtcdOptions::new().connect_options().is_ok());
    }
}

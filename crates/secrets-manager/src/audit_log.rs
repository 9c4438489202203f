//! A ready-made audit sink: one JSON line per event, appended to a file or
//! written to stderr.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::audit::AuditEvent;
use crate::error::{Error, Result};

/// Appends one JSON line per [`AuditEvent`]: `time` (RFC 3339, UTC),
/// `event`, `version` (or `null`), `pid`, `user` and `keyring`. Never a
/// secret: events carry none.
///
/// ```
/// use secrets_manager::{AuditLog, SecretsConfig, SecretsManager};
///
/// # let dir = std::env::temp_dir().join(format!("audit-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("audit.jsonl");
/// let log = AuditLog::open(&path, "example keyring")?;
/// let manager = SecretsManager::new(
///     SecretsConfig::builder()
///         .key("v1", "password", "salt-value")
///         .kdf_iterations(1_000)
///         .audit_callback(log.callback())
///         .build()?,
/// )?;
/// manager.encrypt(b"x")?;
/// let line = std::fs::read_to_string(&path)?;
/// assert!(line.contains(r#""event":"encryption","version":"v1""#));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuditLog {
    sink: Arc<Mutex<Sink>>,
    keyring: Arc<str>,
    user: Arc<str>,
}

enum Sink {
    File(File),
    Stderr,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Appends to `path` (created with mode 0600 if missing). Each line is
    /// written with one `write` call to a file opened for appending, so
    /// several processes can share one log.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending.
    pub fn open(path: impl AsRef<Path>, keyring: &str) -> Result<Self> {
        let path = path.as_ref();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|source| {
            Error::from(crate::persist::PersistError::Io {
                path: path.to_owned(),
                action: "cannot open the audit log",
                source,
            })
        })?;
        Ok(Self::with_sink(Sink::File(file), keyring))
    }

    /// Writes to stderr.
    #[must_use]
    pub fn stderr(keyring: &str) -> Self {
        Self::with_sink(Sink::Stderr, keyring)
    }

    fn with_sink(sink: Sink, keyring: &str) -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| current_uid());
        Self {
            sink: Arc::new(Mutex::new(sink)),
            keyring: keyring.into(),
            user: user.into(),
        }
    }

    /// The callback for
    /// [`SecretsConfigBuilder::audit_callback`](crate::SecretsConfigBuilder::audit_callback).
    pub fn callback(&self) -> impl Fn(&AuditEvent) + Send + Sync + 'static + use<> {
        let log = self.clone();
        move |event| log.record(event, crate::fernet::unix_time())
    }

    /// Writes one event's line, stamped `unix_secs`. A write that fails is
    /// logged with `tracing`; the operation that raised the event goes on.
    pub fn record(&self, event: &AuditEvent, unix_secs: u64) {
        let line = self.line(event, unix_secs);
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        let written = match &mut *sink {
            Sink::File(f) => f.write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().lock().write_all(line.as_bytes()),
        };
        if let Err(error) = written {
            tracing::warn!(%error, "cannot write the audit log");
        }
    }

    fn line(&self, event: &AuditEvent, unix_secs: u64) -> String {
        let version = event
            .version()
            .map_or_else(|| "null".to_owned(), |v| json_string(v.as_str()));
        format!(
            "{{\"time\":\"{}\",\"event\":\"{}\",\"version\":{version},\"pid\":{},\"user\":{},\"keyring\":{}}}\n",
            rfc3339(unix_secs),
            event.name(),
            std::process::id(),
            json_string(&self.user),
            json_string(&self.keyring),
        )
    }
}

#[cfg(unix)]
fn current_uid() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map_or_else(|_| "unknown".to_owned(), |m| format!("uid {}", m.uid()))
}

#[cfg(not(unix))]
fn current_uid() -> String {
    "unknown".to_owned()
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (proleptic Gregorian, UTC).
fn rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // Days since 1970-01-01 to a civil date, counting in 400-year eras
    // that start on 0000-03-01 (so the leap day ends each year).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn lines_are_json_and_escape_what_they_must() {
        let log = AuditLog::stderr("a \"quoted\"\\path\n");
        let line = log.line(&AuditEvent::Cleanup, 0);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["keyring"], "a \"quoted\"\\path\n");
        assert_eq!(parsed["event"], "cleanup");
        assert!(parsed["version"].is_null());
        assert_eq!(parsed["pid"], std::process::id());
    }
}

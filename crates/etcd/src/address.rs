//! Keyring addresses: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.

use crate::error::EtcdError;

/// A parsed `etcd://` address: the cluster's client endpoints and the key
/// prefix the keyring lives under.
///
/// ```
/// use secrets_manager_etcd::Address;
///
/// let a = Address::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/apps/billing/")?;
/// assert_eq!(a.endpoints(), ["10.0.0.1:2379", "10.0.0.2:2379"]);
/// assert_eq!(a.prefix(), "/apps/billing");
/// assert_eq!(a.to_string(), "etcd://10.0.0.1:2379,10.0.0.2:2379/apps/billing");
/// assert!(Address::parse("etcd://10.0.0.1:2379").is_err()); // no prefix
/// # Ok::<(), secrets_manager_etcd::EtcdError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    endpoints: Vec<String>,
    /// `/` and the prefix, without a trailing `/`.
    prefix: String,
}

impl Address {
    /// Parses an address.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Address`]: not `etcd://`, no host, a host without a
    /// port, credentials in the address, or no prefix.
    pub fn parse(url: &str) -> Result<Self, EtcdError> {
        let bad = |reason: &str| EtcdError::Address {
            address: Self::redacted(url),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("an etcd keyring address starts with etcd://"))?;
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if hosts.contains('@') {
            return Err(bad(
                "credentials do not belong in the address: use --etcd-user and \
                 --etcd-password-file, or $SECRETS_MANAGER_ETCD_USER and \
                 $SECRETS_MANAGER_ETCD_PASSWORD",
            ));
        }
        let mut endpoints = Vec::new();
        for host in hosts.split(',') {
            endpoints.push(endpoint(host).map_err(|reason| bad(&reason))?);
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Err(bad(
                "no key prefix: write etcd://HOST:PORT/PREFIX, e.g. etcd://127.0.0.1:2379/myapp",
            ));
        }
        if prefix
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#'))
        {
            return Err(bad(
                "the prefix may not hold spaces, control characters, '?' or '#'",
            ));
        }
        if prefix.split('/').any(str::is_empty) {
            return Err(bad("the prefix has an empty path segment (`//`)"));
        }
        Ok(Self {
            endpoints,
            prefix: format!("/{prefix}"),
        })
    }

    /// `url` with anything before an `@` in its host part replaced, for
    /// messages: credentials never belong in an address, and an address
    /// that holds some must not print them.
    ///
    /// ```
    /// use secrets_manager_etcd::Address;
    ///
    /// assert_eq!(Address::redacted("etcd://me:pw@h:1/a"), "etcd://[redacted]@h:1/a");
    /// assert_eq!(Address::redacted("etcd://h:1/a"), "etcd://h:1/a");
    /// ```
    #[must_use]
    pub fn redacted(url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (hosts, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        match hosts.rfind('@') {
            Some(at) if scheme.is_empty() => format!("[redacted]{}{path}", &hosts[at..]),
            Some(at) => format!("{scheme}://[redacted]{}{path}", &hosts[at..]),
            None => url.to_owned(),
        }
    }

    /// The client endpoints, `HOST:PORT` each.
    #[must_use]
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The key prefix: `/` and the address's path, without a trailing
    /// `/`. Every key of the keyring starts with it and a `/`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd://{}{}", self.endpoints.join(","), self.prefix)
    }
}

/// Checks one `HOST:PORT` (`[v6]:PORT` for IPv6).
fn endpoint(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("an empty host: write HOST:PORT[,HOST:PORT...]".to_owned());
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (addr, rest) = v6
                .split_once(']')
                .ok_or_else(|| format!("{host}: an IPv6 address needs its closing ']'"))?;
            (addr, rest.strip_prefix(':').unwrap_or(""))
        }
        None => host.rsplit_once(':').unwrap_or((host, "")),
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{host}: not a host name or address"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(host.to_owned()),
        _ => Err(format!(
            "{host}: needs a port (etcd's client port is usually 2379)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        let a = Address::parse("etcd://127.0.0.1:2379/app").unwrap();
        assert_eq!(a.endpoints(), ["127.0.0.1:2379"]);
        assert_eq!(a.prefix(), "/app");
        let a = Address::parse("etcd://[::1]:2379,h:1/a//b").unwrap_err();
        assert!(a.to_string().contains("empty path segment"), "{a}");
        let a = Address::parse("etcd://[::1]:2379,h:1/a/b/").unwrap();
        assert_eq!(a.to_string(), "etcd://[::1]:2379,h:1/a/b");
        for (bad, why) in [
            ("http://h:1/a", "starts with etcd://"),
            ("etcd://h/a", "needs a port"),
            ("etcd://h:0/a", "needs a port"),
            ("etcd://h:99999/a", "needs a port"),
            ("etcd://h:1", "no key prefix"),
            ("etcd://h:1/", "no key prefix"),
            ("etcd://,h:1/a", "empty host"),
            ("etcd://user:pw@h:1/a", "credentials"),
            ("etcd://user:pw@h:1/a", "[redacted]@h:1"),
            ("etcd://h:1/a b", "spaces"),
            ("etcd://[::1:1/a", "closing"),
        ] {
            let e = Address::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }
}

//! What every backend's configuration shares: secrets that never show in
//! `Debug` output, errors or logs, and how environment variables are read.
//!
//! A backend config keeps its password (token, key) as a [`Secret`], shows
//! its address through [`redact_url`], and passes free-form settings through
//! [`shown_setting`] before it prints them:
//!
//! ```
//! use event_backbone_core::config::{redact_url, shown_setting, Secret};
//!
//! assert_eq!(
//!     redact_url("mongodb://app:s3cret@db-1:27017,db-2:27017/?authSource=admin"),
//!     "mongodb://app:***@db-1:27017,db-2:27017/?authSource=admin"
//! );
//! assert_eq!(shown_setting("sasl.password", "s3cret"), "***");
//! assert_eq!(shown_setting("client.id", "billing"), "billing");
//! let key = Secret::new("wJalrXUtnFEMI/K7MDENG");
//! assert_eq!(format!("{key:?} {key}"), "*** ***");
//! assert_eq!(key.expose(), "wJalrXUtnFEMI/K7MDENG");
//! ```

use std::fmt;

/// What a secret looks like when shown.
pub const MASK: &str = "***";

/// Parts of a setting's name (or of a URL query parameter's) that mark its
/// value as secret, compared in lower case.
const SECRET_MARKERS: [&str; 13] = [
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "private",
    "key.pem",
    "jaas",
    "oauthbearer.config",
];

/// A password, token or key. `Debug` and `Display` show `***`; only
/// [`Secret::expose`] gives the value, for the driver that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: hand it to the driver, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Whether a setting with this name holds a secret: its name contains
/// `password`, `secret`, `token`, `credential`, `apikey`, `access_key`,
/// `private`, `key.pem`, `jaas` or `oauthbearer.config` (any case).
///
/// ```
/// use event_backbone_core::config::is_secret_setting;
/// assert!(is_secret_setting("ssl.key.password"));
/// assert!(is_secret_setting("AWS_SECRET_ACCESS_KEY"));
/// assert!(!is_secret_setting("bootstrap.servers"));
/// ```
pub fn is_secret_setting(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| name.contains(m))
}

/// A setting's value as it may be shown: `***` for a secret one.
pub fn shown_setting<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_setting(name) {
        MASK
    } else {
        value
    }
}

/// A URL as it may be shown: the password of its user info
/// (`scheme://user:password@host`) and the values of secret query
/// parameters (`?password=...`, `&apiKey=...`, any value naming a token)
/// become `***`. Works on any scheme (`redis://`, `mongodb+srv://`,
/// `couchbases://`, ...) and on several hosts; a URL it cannot read is
/// masked more, never less.
///
/// ```
/// use event_backbone_core::config::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("couchbases://cb.example.com"), "couchbases://cb.example.com");
/// assert_eq!(
///     redact_url("mongodb+srv://app@cluster0.example.net/?authMechanismProperties=AWS_SESSION_TOKEN:abc"),
///     "mongodb+srv://app@cluster0.example.net/?authMechanismProperties=***"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // The user info ends at the last '@': hosts never hold one, passwords
    // that are not percent-encoded may.
    let (credentials, location) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut shown = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    if let Some(credentials) = credentials {
        match credentials.split_once(':') {
            Some((user, _password)) => {
                shown.push_str(user);
                shown.push(':');
                shown.push_str(MASK);
            }
            None => shown.push_str(credentials),
        }
        shown.push('@');
    }
    match location.split_once('?') {
        Some((path, query)) => {
            shown.push_str(path);
            shown.push('?');
            shown.push_str(&redact_query(query));
        }
        None => shown.push_str(location),
    }
    shown
}

fn redact_query(query: &str) -> String {
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut out: Vec<String> = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((name, value)) if is_secret_setting(name) || is_secret_setting(value) => {
                out.push(format!("{name}={MASK}"));
            }
            _ => out.push(pair.to_owned()),
        }
    }
    let mut shown = out.join("&");
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// An environment variable's value, trimmed; `None` when it is unset,
/// empty or not Unicode. The backends' `from_env` read their
/// `<NAME>_EVENT_SOURCE_*` variables with it.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_user_info_are_masked_and_the_rest_is_kept() {
        let cases = [
            ("redis://bob:hunter2@db:6379", "redis://bob:***@db:6379"),
            ("rediss://:hunter2@db:6380/2", "rediss://:***@db:6380/2"),
            ("redis://bob@db:6379", "redis://bob@db:6379"),
            ("kafka://k1:9092,k2:9092", "kafka://k1:9092,k2:9092"),
            // An '@' inside the password, not percent-encoded.
            (
                "mongodb://app:p@ss:w@rd@h1,h2/db",
                "mongodb://app:***@h1,h2/db",
            ),
            ("db:6379", "db:6379"),
            (
                "mongodb://h/?password=x&tls=true&apiKey=y#top",
                "mongodb://h/?password=***&tls=true&apiKey=***#top",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn no_secret_survives_any_url_shape() {
        for url in [
            "redis://u:SECRET@h",
            "u:SECRET@h:1",
            "x://u:SECRET@h/p?password=SECRET",
            "x://h/?token=SECRET",
            "x://u:SEC@RET@h",
        ] {
            let shown = redact_url(url);
            assert!(
                !shown.contains("SECRET") && !shown.contains("RET@"),
                "{url} -> {shown}"
            );
        }
    }

    #[test]
    fn settings_are_shown_unless_secret() {
        assert_eq!(shown_setting("sasl.oauthbearer.config", "secret=y"), MASK);
        assert_eq!(shown_setting("ssl.key.pem", "-----BEGIN"), MASK);
        assert_eq!(shown_setting("aws_session_token", "t"), MASK);
        assert_eq!(shown_setting("partitions", "6"), "6");
    }
}

//! Database URLs (with secrets that must never be printed) and etcd endpoints.

use std::fmt;

use sluice_core::redact_url;

/// Port MySQL and MariaDB listen on when a URL names none.
pub const DEFAULT_MYSQL_PORT: u16 = 3306;

/// A validated `mysql://` or `mariadb://` URL:
/// `mysql://[user[:password]@]host[:port][/database][?options]`.
///
/// `Debug` and `Display` print it with the password replaced by `***`
/// ([`sluice_core::redact_url`]); only [`DbUrl::expose`] returns the real
/// text, for handing to a driver. A password containing `/`, `@`, `:`, `?` or
/// `#` must be percent-encoded (`%2F`, `%40`, ...), as in any URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    url: String,
    scheme: String,
    user: Option<String>,
    host: String,
    port: Option<u16>,
    database: Option<String>,
}

impl DbUrl {
    /// Parses and validates a URL. Error messages never contain the password.
    pub fn parse(url: &str) -> Result<DbUrl, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(match bare_address(url) {
                Some(address) => format!(
                    "not a URL: write mysql://USER@{address} (mysql://USER:PASSWORD@{address} with a password)"
                ),
                None => "expected a URL like mysql://user:password@host:3306".into(),
            });
        };
        if scheme != "mysql" && scheme != "mariadb" {
            return Err(format!(
                "unsupported scheme `{scheme}://` (use mysql:// or mariadb://)"
            ));
        }
        // Same split as `redact_url`: the authority ends at the first '/',
        // the userinfo at the last '@' before it.
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        // Options may follow the host directly: `mysql://h:3306?ssl-mode=...`.
        let (hostport, query_after_host) = match hostport.find('?') {
            Some(q) => (&hostport[..q], true),
            None => (hostport, false),
        };
        let user = match userinfo {
            Some(info) => {
                let user = info.split(':').next().unwrap_or_default();
                if user.is_empty() {
                    return Err("empty user name before `@`".into());
                }
                Some(user.to_string())
            }
            None => None,
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err("missing host (expected mysql://user:password@host:3306)".into());
        }
        let database = if query_after_host {
            None
        } else {
            let path = tail.strip_prefix('/').unwrap_or(tail);
            let db = path.split(['?', '#']).next().unwrap_or_default();
            if db.contains('/') {
                return Err(
                    "unexpected `/` in the database part (percent-encode `/` in passwords as %2F)"
                        .into(),
                );
            }
            (!db.is_empty()).then(|| db.to_string())
        };
        Ok(DbUrl {
            url: url.to_string(),
            scheme: scheme.to_string(),
            user,
            host: host.to_string(),
            port,
            database,
        })
    }

    /// The URL with its password, for a driver. Never log this.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with its password and with the scheme spelled `mysql://`
    /// (some drivers, e.g. `mysql_async`, only accept that spelling).
    pub fn expose_mysql_scheme(&self) -> String {
        format!("mysql{}", &self.url[self.scheme.len()..])
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// `mysql` or `mariadb`, as written.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The user name, if the URL has one (percent-encoding kept).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, [`DEFAULT_MYSQL_PORT`] when the URL names none.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_MYSQL_PORT)
    }

    /// The default database, if the URL names one.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// `host:port`, for messages (`[v6]:port` for IPv6 hosts).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({:?})", self.redacted())
    }
}

/// Splits `host[:port]` / `[v6][:port]`; the port, when present, must be
/// 1..=65535.
fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some(close) = v6.find(']') else {
            return Err("unclosed `[` in IPv6 host".into());
        };
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("unexpected text after `]`".into()),
        };
        (&v6[..close], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    // The message does not quote the character: a misplaced password
    // (unencoded `/` or `@`) would otherwise leak into logs.
    if host
        .chars()
        .any(|c| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%')))
    {
        return Err(
            "invalid character in host (percent-encode special characters in passwords)".into(),
        );
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(
                    "invalid port (expected 1..65535; percent-encode `:` `/` `@` in passwords)"
                        .into(),
                )
            }
        },
    };
    Ok((host, port))
}

/// Validates an etcd endpoint `http(s)://host:port` (an optional trailing
/// `/` is dropped) and returns it normalised.
pub fn parse_etcd_endpoint(endpoint: &str) -> Result<String, String> {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(match bare_address(endpoint) {
            Some(address) => {
                format!("not a URL: write http://{address} (https://{address} for TLS)")
            }
            None => "expected http://host:port or https://host:port".into(),
        });
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "unsupported scheme `{scheme}://` (use http:// or https://)"
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("credentials do not belong in an etcd endpoint".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err("an etcd endpoint has no path (expected http://host:port)".into());
    }
    let (host, port) = split_host_port(rest)?;
    if host.is_empty() {
        return Err("missing host (expected http://host:port)".into());
    }
    if port.is_none() {
        return Err(
            "missing port (etcd clients listen on 2379 by default: http://host:2379)".into(),
        );
    }
    Ok(format!("{scheme}://{rest}"))
}

/// `text` when it looks like a bare `host:port` (or a host), so a message can
/// show the URL to write; `None` for anything else, which might be a
/// secret in the wrong place and is not echoed.
fn bare_address(text: &str) -> Option<&str> {
    let looks_like_host = !text.is_empty()
        && text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        && split_host_port(text).is_ok_and(|(host, port)| !host.is_empty() && port.is_some());
    looks_like_host.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let url = DbUrl::parse("mysql://repl:pw@127.0.0.1:13306").unwrap();
        assert_eq!(url.user(), Some("repl"));
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.port(), 13306);
        assert_eq!(url.database(), None);
        assert_eq!(url.expose(), "mysql://repl:pw@127.0.0.1:13306");
        assert_eq!(url.to_string(), "mysql://repl:***@127.0.0.1:13306");
        assert_eq!(
            format!("{url:?}"),
            "DbUrl(\"mysql://repl:***@127.0.0.1:13306\")"
        );

        let url = DbUrl::parse("mariadb://root@db.example/shop?ssl-mode=required").unwrap();
        assert_eq!((url.host(), url.port()), ("db.example", 3306));
        assert_eq!(url.database(), Some("shop"));
        assert_eq!(
            url.expose_mysql_scheme(),
            "mysql://root@db.example/shop?ssl-mode=required"
        );

        let url = DbUrl::parse("mysql://[::1]:3307").unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 3307));
        assert_eq!(url.address(), "[::1]:3307");

        // An unencoded '@' in the password still finds the host.
        let url = DbUrl::parse("mysql://u:p@ss@h:1").unwrap();
        assert_eq!(url.host(), "h");
        assert_eq!(url.to_string(), "mysql://u:***@h:1");
        assert!(DbUrl::parse("mysql://h:1?x=1")
            .unwrap()
            .database()
            .is_none());
    }

    #[test]
    fn bad_database_urls() {
        for (text, needle) in [
            ("127.0.0.1:3306", "write mysql://USER@127.0.0.1:3306"),
            ("postgres://h", "unsupported scheme"),
            ("mysql://", "missing host"),
            ("mysql://u:p@", "missing host"),
            ("mysql://u:p@:3306", "missing host"),
            ("mysql://h:0", "invalid port"),
            ("mysql://h:70000", "invalid port"),
            ("mysql://h:x", "invalid port"),
            ("mysql://:p@h", "empty user"),
            ("mysql://u:a/b@h", "invalid port"),
            ("mysql://[::1", "unclosed"),
            ("mysql://h o", "invalid character"),
        ] {
            let err = DbUrl::parse(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("a/b"), "{err}");
        }
    }

    #[test]
    fn a_bare_address_says_what_to_write() {
        assert_eq!(
            DbUrl::parse("127.0.0.1:13307").unwrap_err(),
            "not a URL: write mysql://USER@127.0.0.1:13307 (mysql://USER:PASSWORD@127.0.0.1:13307 with a password)"
        );
        assert_eq!(
            parse_etcd_endpoint("127.0.0.1:2379").unwrap_err(),
            "not a URL: write http://127.0.0.1:2379 (https://127.0.0.1:2379 for TLS)"
        );
        // Not echoed: it might be a password in the wrong place.
        assert_eq!(
            DbUrl::parse("s3cr3t!pw").unwrap_err(),
            "expected a URL like mysql://user:password@host:3306"
        );
    }

    #[test]
    fn etcd_endpoints() {
        assert_eq!(
            parse_etcd_endpoint("http://127.0.0.1:23790/").unwrap(),
            "http://127.0.0.1:23790"
        );
        assert!(parse_etcd_endpoint("https://[::1]:2379").is_ok());
        for (text, needle) in [
            ("127.0.0.1:2379", "write http://127.0.0.1:2379"),
            ("grpc://h:1", "unsupported scheme"),
            ("http://h", "missing port"),
            ("http://:1", "missing host"),
            ("http://u:p@h:1", "credentials"),
            ("http://h:1/v3", "no path"),
        ] {
            let err = parse_etcd_endpoint(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}

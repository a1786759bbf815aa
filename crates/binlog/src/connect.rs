//! Connection options for a source server: the URL plus `source.tls`.
//!
//! Every connection sluice opens to a source — the replica stream, its
//! preflight, `sluice check`, `sluice positions set --gtid` — is built here,
//! so they all speak TLS the same way.
//!
//! How the modes map onto mysql_async (rustls with the ring provider):
//! - `required`: TLS with a verifier that accepts any certificate (the
//!   handshake signatures are still checked; the peer is not authenticated).
//! - `verify_ca`: the configured `ca` is the only root (the built-in web
//!   roots are off); the host name is not compared. mysql_async's switch
//!   for that (`skip_domain_validation`) matches on an error text that
//!   rustls ≥ 0.23.2x no longer produces, so [`connect`] does it itself:
//!   when the only objection to the certificate is its name — rustls checks
//!   the chain first, so a name error means the chain is trusted — it
//!   connects again checking the name the certificate itself presents.
//! - `verify_identity`: as `verify_ca`, and the URL's host must be named by
//!   the certificate (a DNS name or, for an IP host, an IP SAN).
//!
//! With TLS on, connections stay on TCP: mysql_async would otherwise switch
//! a local connection to the server's Unix socket (`prefer_socket`), where it
//! does not use TLS at all, silently dropping what the configuration asked
//! for.

use std::time::Duration;

use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use sluice_core::{TlsConfig, TlsMode};

use crate::error::BinlogError;

/// Opens a connection to the source at `url` under `tls`, within `timeout`
/// per attempt. Errors name the server (password masked).
pub async fn connect(url: &str, tls: &TlsConfig, timeout: Duration) -> Result<Conn, BinlogError> {
    let opts = source_opts(url, tls)?;
    let first = open(url, opts.clone(), timeout).await;
    let Err(BinlogError::Source { source, .. }) = &first else {
        return first;
    };
    if tls.mode != TlsMode::VerifyCa {
        return first;
    }
    let (Some(name), Some(ssl)) = (name_presented(source), opts.ssl_opts()) else {
        return first;
    };
    tracing::debug!(%name, "verify_ca: the certificate is trusted but names another host; checking it under its own name");
    let ssl = ssl.clone().with_danger_tls_hostname_override(Some(name));
    open(
        url,
        OptsBuilder::from_opts(opts).ssl_opts(ssl).into(),
        timeout,
    )
    .await
}

async fn open(url: &str, opts: Opts, timeout: Duration) -> Result<Conn, BinlogError> {
    let what = || format!("connect to {}", sluice_core::redact_url(url));
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(BinlogError::source(what(), e)),
        Err(_) => Err(BinlogError::Io {
            what: what(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ),
        }),
    }
}

/// A name the server's certificate is valid for, when the TLS handshake
/// failed only because the certificate does not name the host connected
/// to. A wildcard `*.example.com` gives a name under it.
fn name_presented(err: &mysql_async::Error) -> Option<String> {
    use rustls::{CertificateError, Error as TlsError};
    let mysql_async::Error::Io(mysql_async::IoError::Io(io)) = err else {
        return None;
    };
    let tls = io.get_ref()?.downcast_ref::<TlsError>()?;
    let TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
        presented, ..
    }) = tls
    else {
        return None;
    };
    // rustls-webpki renders each SAN as `DnsName("x")` or `IpAddress(1.2.3.4)`.
    presented.iter().find_map(|p| {
        if let Some(dns) = p
            .strip_prefix("DnsName(\"")
            .and_then(|r| r.strip_suffix("\")"))
        {
            Some(match dns.strip_prefix("*.") {
                Some(parent) => format!("sluice-verify-ca.{parent}"),
                None => dns.to_string(),
            })
        } else {
            p.strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_string)
        }
    })
}

/// The driver options for `url` (`mysql://` or `mariadb://`, with its
/// password) under `tls`. Errors never contain the password.
pub fn source_opts(url: &str, tls: &TlsConfig) -> Result<Opts, BinlogError> {
    // mysql_async only knows the `mysql` scheme.
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    };
    let opts = Opts::from_url(&url).map_err(|e| {
        BinlogError::Preflight(format!(
            "invalid source URL {}: {}",
            sluice_core::redact_url(&url),
            sluice_core::redact_url(&e.to_string())
        ))
    })?;
    let builder = OptsBuilder::from_opts(opts);
    Ok(match ssl_opts(tls) {
        Some(ssl) => builder.ssl_opts(ssl).prefer_socket(false),
        None => builder.ssl_opts(None),
    }
    .into())
}

/// mysql_async's TLS options for `tls`; `None` for `disabled`.
pub fn ssl_opts(tls: &TlsConfig) -> Option<SslOpts> {
    let mut ssl = SslOpts::default();
    match tls.mode {
        TlsMode::Disabled => return None,
        TlsMode::Required => ssl = ssl.with_danger_accept_invalid_certs(true),
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            ssl = ssl
                .with_root_certs(tls.ca.iter().map(|ca| ca.clone().into()).collect())
                .with_disable_built_in_roots(true)
                .with_danger_skip_domain_validation(tls.mode == TlsMode::VerifyCa);
        }
    }
    if let Some(client) = &tls.client {
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            client.cert.clone().into(),
            client.key.clone().into(),
        )));
    }
    Some(ssl)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sluice_core::ClientCert;

    use super::*;

    #[test]
    fn modes_map_onto_mysql_async() {
        assert!(ssl_opts(&TlsConfig::disabled()).is_none());
        let opts = source_opts("mariadb://u:pw@127.0.0.1:3306", &TlsConfig::disabled()).unwrap();
        assert!(opts.ssl_opts().is_none());

        let required = ssl_opts(&TlsConfig {
            mode: TlsMode::Required,
            ..TlsConfig::default()
        })
        .unwrap();
        assert!(required.accept_invalid_certs());

        let verify = |mode| TlsConfig {
            mode,
            ca: Some(PathBuf::from("/ca.pem")),
            client: Some(ClientCert {
                cert: "/c.pem".into(),
                key: "/c.key".into(),
            }),
        };
        let ca = ssl_opts(&verify(TlsMode::VerifyCa)).unwrap();
        assert!(!ca.accept_invalid_certs() && ca.skip_domain_validation());
        assert!(ca.disable_built_in_roots());
        assert_eq!(ca.root_certs().len(), 1);
        assert!(ca.client_identity().is_some());
        let identity = ssl_opts(&verify(TlsMode::VerifyIdentity)).unwrap();
        assert!(!identity.accept_invalid_certs() && !identity.skip_domain_validation());

        let opts = source_opts(
            "mysql://u:pw@127.0.0.1:3306",
            &verify(TlsMode::VerifyIdentity),
        )
        .unwrap();
        assert!(opts.ssl_opts().is_some());
        assert!(!opts.prefer_socket());
    }

    #[test]
    fn names_presented_by_a_certificate() {
        use rustls::{CertificateError, Error as TlsError};
        let err = |presented: &[&str]| {
            let tls = TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                presented: presented.iter().map(|s| s.to_string()).collect(),
            });
            mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                tls,
            )))
        };
        assert_eq!(
            name_presented(&err(&["DnsName(\"db.example\")", "IpAddress(10.0.0.1)"])).as_deref(),
            Some("db.example")
        );
        assert_eq!(
            name_presented(&err(&["IpAddress(127.0.0.1)"])).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            name_presented(&err(&["DnsName(\"*.db.example\")"])).as_deref(),
            Some("sluice-verify-ca.db.example")
        );
        // No SAN, or another failure: nothing to retry with.
        assert_eq!(name_presented(&err(&[])), None);
        let untrusted = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TlsError::InvalidCertificate(CertificateError::UnknownIssuer),
        )));
        assert_eq!(name_presented(&untrusted), None);
        assert_eq!(
            crate::error::classify_mysql(&untrusted),
            sluice_core::ErrorClass::Definite
        );
    }

    #[test]
    fn url_errors_hide_the_password() {
        let err = source_opts(
            "mysql://u:s3cret@h:1/?bogus_option=1",
            &TlsConfig::disabled(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }
}

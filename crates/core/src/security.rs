//! Connection security settings shared by the config, the drivers and the
//! CLI: TLS for the source and target servers, TLS and credentials for etcd,
//! and [`Secret`], a string that never prints itself.
//!
//! Plain data only: the crates that own a driver (`sluice-binlog` for
//! mysql_async, `sluice-load` for sqlx, `sluice-coord` for etcd-client) map
//! these onto their driver's options, so every connection to a server —
//! replication, preflight, tools — is built from the same settings.
//!
//! # TLS modes (source and target)
//!
//! The names and meaning follow MySQL's `--ssl-mode`:
//!
//! | mode | encrypted | server certificate checked against `ca` | host name checked |
//! |---|---|---|---|
//! | `disabled` | no | — | — |
//! | `required` | yes (refuses a server without TLS) | no | no |
//! | `verify_ca` | yes | yes | no |
//! | `verify_identity` | yes | yes | yes (the URL's host must be in the certificate's SAN) |

use std::fmt;
use std::path::PathBuf;

/// How a MySQL/MariaDB connection uses TLS; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// `disabled`: plain TCP (the default).
    #[default]
    Disabled,
    /// `required`: TLS, without checking the server's certificate.
    Required,
    /// `verify_ca`: TLS; the server's chain must lead to the configured CA.
    VerifyCa,
    /// `verify_identity`: as `verify_ca`, and the certificate must name the
    /// host the URL connects to.
    VerifyIdentity,
}

impl TlsMode {
    /// Every mode, in the order of [`TlsMode::name`]s listed in messages.
    pub const ALL: [TlsMode; 4] = [
        TlsMode::Disabled,
        TlsMode::Required,
        TlsMode::VerifyCa,
        TlsMode::VerifyIdentity,
    ];

    /// The mode's name in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }

    /// Whether the connection is encrypted at all.
    pub fn encrypts(self) -> bool {
        self != TlsMode::Disabled
    }

    /// Whether the server's certificate chain is checked against the CA.
    pub fn verifies_ca(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client certificate and its private key (PEM files), presented to a
/// server that asks for one (`REQUIRE X509`, etcd `--client-cert-auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// TLS of one MySQL/MariaDB connection (`source.tls`, `target.tls`).
///
/// Invariant (enforced by the config): `ca` is set whenever
/// [`TlsMode::verifies_ca`]; the default is [`TlsMode::Disabled`] with no
/// files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// CA certificate(s), PEM: the only roots trusted by `verify_*`.
    pub ca: Option<PathBuf>,
    /// Client certificate, if the server requires one.
    pub client: Option<ClientCert>,
}

impl TlsConfig {
    /// Plain TCP.
    pub fn disabled() -> Self {
        TlsConfig::default()
    }
}

/// TLS towards etcd (`coordination.etcd.tls`): always verifies the server's
/// certificate and host name against `ca`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    /// CA certificate(s), PEM.
    pub ca: PathBuf,
    /// Client certificate for etcd's `--client-cert-auth`.
    pub client: Option<ClientCert>,
}

/// etcd user/password authentication (`coordination.etcd.user`/`password`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdAuth {
    pub user: String,
    pub password: Secret,
}

/// A secret string (a password). `Debug` and `Display` print `***`; only
/// [`Secret::expose`] gives the value, to hand to a driver.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let auth = EtcdAuth {
            user: "sluice".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert_eq!(auth.password.to_string(), "***");
        assert_eq!(auth.password.expose(), "hunter2");
    }

    #[test]
    fn modes() {
        assert_eq!(TlsConfig::default().mode, TlsMode::Disabled);
        assert!(!TlsMode::Disabled.encrypts());
        assert!(TlsMode::Required.encrypts() && !TlsMode::Required.verifies_ca());
        assert!(TlsMode::VerifyCa.verifies_ca() && TlsMode::VerifyIdentity.verifies_ca());
        let names: Vec<_> = TlsMode::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            ["disabled", "required", "verify_ca", "verify_identity"]
        );
    }
}

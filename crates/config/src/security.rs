//! The security keys: `source.tls`, `target.tls`, `coordination.etcd.tls`,
//! `coordination.etcd.user`/`password`, and TLS options smuggled into URLs.
//!
//! Decisions:
//! - A relative certificate or key path is relative to the pipeline file's
//!   directory (like `coordination.local.dir`), so the file means the same
//!   thing whatever the working directory.
//! - Files are checked to exist (as regular files) when the pipeline is
//!   validated: a missing CA found at 3 a.m. by a reconnect is worse than
//!   one found by `sluice validate`.
//! - Combinations that would silently do less than written are refused: files
//!   with `mode: disabled`, a `ca` with `mode: required` (which verifies
//!   nothing), `cert` without `key`, `tls` with `http://` etcd endpoints.
//! - TLS settings in a database URL's query (`?ssl-mode=`, `?require_ssl=`,
//!   ...) are refused: each driver reads its own spelling, and `source.tls`
//!   must be the one place that decides.

use std::path::{Path, PathBuf};

use sluice_core::{ClientCert, EtcdAuth, EtcdTls, Secret, TlsConfig, TlsMode};

use crate::url::DbUrl;
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::Pos;

/// `source.tls` / `target.tls` (`path` is the key path of the block).
pub fn db_tls(
    cx: &mut Cx<'_>,
    field: Field<'_>,
    path: &str,
    base_dir: Option<&Path>,
) -> Option<TlsConfig> {
    let mut map = cx.map(
        field.node,
        path,
        field.key_pos,
        &["mode", "ca", "cert", "key"],
    )?;
    let mode_field = map.optional("mode");
    let mode = match mode_field {
        Some(f) => {
            let names: Vec<&str> = TlsMode::ALL.iter().map(|m| m.name()).collect();
            cx.choice(f.node, &format!("{path}.mode"), &names)
                .map(|i| TlsMode::ALL[i])
        }
        None => Some(TlsMode::Disabled),
    };
    let ca_field = map.optional("ca");
    let ca = optional_file(cx, ca_field, &format!("{path}.ca"), base_dir);
    let cert_field = map.optional("cert");
    let key_field = map.optional("key");
    let client = client_cert(cx, (cert_field, key_field), path, base_dir);
    map.finish(cx);
    let (mode, ca, client) = (mode?, ca?, client?);

    let mode_pos = mode_field.map_or(field.key_pos, |f| f.node.pos);
    let mut ok = true;
    match mode {
        TlsMode::Disabled => {
            if let Some(f) = ca_field.or(cert_field).or(key_field) {
                cx.invalid(
                    f.key_pos,
                    path,
                    "certificate files have no effect with mode `disabled` (set `mode` to `required`, `verify_ca` or `verify_identity`)",
                );
                ok = false;
            }
        }
        TlsMode::Required => {
            if let Some(f) = ca_field {
                cx.invalid(
                    f.key_pos,
                    &format!("{path}.ca"),
                    "mode `required` does not verify the server, so `ca` would be ignored (use `verify_ca` or `verify_identity`, or drop `ca`)",
                );
                ok = false;
            }
        }
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            if ca.is_none() {
                cx.invalid(
                    mode_pos,
                    &format!("{path}.mode"),
                    format!("mode `{mode}` needs `ca`: the CA certificate (PEM) that signed the server's certificate"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(TlsConfig { mode, ca, client })
}

/// `coordination.etcd.tls`.
pub fn etcd_tls(cx: &mut Cx<'_>, field: Field<'_>, base_dir: Option<&Path>) -> Option<EtcdTls> {
    const PATH: &str = "coordination.etcd.tls";
    let mut map = cx.map(field.node, PATH, field.key_pos, &["ca", "cert", "key"])?;
    let ca = map
        .required(cx, "ca")
        .and_then(|f| file(cx, f, &format!("{PATH}.ca"), base_dir));
    let fields = (map.optional("cert"), map.optional("key"));
    let client = client_cert(cx, fields, PATH, base_dir);
    map.finish(cx);
    Some(EtcdTls {
        ca: ca?,
        client: client?,
    })
}

/// `coordination.etcd.user` and `password` (read from the etcd mapping).
/// `Some(None)` when neither is given.
pub fn etcd_auth(cx: &mut Cx<'_>, map: &mut MapReader<'_>) -> Option<Option<EtcdAuth>> {
    let user_field = map.optional("user");
    let password_field = map.optional("password");
    let user = match user_field {
        Some(f) => cx
            .nonempty_string(f.node, "coordination.etcd.user")
            .map(|t| Some(t.value)),
        None => Some(None),
    };
    // Never echoed: `nonempty_string` only ever quotes the `${VAR}` text.
    let password = match password_field {
        Some(f) => cx
            .nonempty_string(f.node, "coordination.etcd.password")
            .map(|t| Some(Secret::new(t.value))),
        None => Some(None),
    };
    match (user?, password?) {
        (None, None) => Some(None),
        (Some(user), Some(password)) => Some(Some(EtcdAuth { user, password })),
        (Some(_), None) => {
            let pos = user_field.map_or(map.owner, |f| f.key_pos);
            cx.error(
                pos,
                "coordination.etcd.password",
                crate::error::ErrorKind::MissingKey,
                "missing `password`, required with `user` (e.g. password: ${ETCD_PASSWORD})",
            );
            None
        }
        (None, Some(_)) => {
            let pos = password_field.map_or(map.owner, |f| f.key_pos);
            cx.invalid(pos, "coordination.etcd.password", "`password` needs `user`");
            None
        }
    }
}

/// Cross-checks the endpoints' schemes against `tls`: `https://` needs
/// `tls` (with `ca`), `tls` needs `https://`, and all endpoints use one
/// scheme. `endpoints` pairs each normalised endpoint with its position.
pub fn check_etcd_schemes(cx: &mut Cx<'_>, endpoints: &[(String, Pos)], tls: Option<Pos>) -> bool {
    let Some((first, _)) = endpoints.first() else {
        return true;
    };
    let https = first.starts_with("https://");
    for (i, (endpoint, pos)) in endpoints.iter().enumerate().skip(1) {
        if endpoint.starts_with("https://") != https {
            cx.invalid(
                *pos,
                &format!("coordination.etcd.endpoints[{i}]"),
                "all endpoints must use the same scheme (http:// or https://)",
            );
            return false;
        }
    }
    match (https, tls) {
        (true, None) => {
            cx.invalid(
                endpoints[0].1,
                "coordination.etcd.endpoints[0]",
                "an https:// endpoint needs `coordination.etcd.tls` with `ca` (the CA certificate that signed etcd's)",
            );
            false
        }
        (false, Some(pos)) => {
            cx.invalid(
                pos,
                "coordination.etcd.tls",
                "TLS needs https:// endpoints (the endpoints use http://)",
            );
            false
        }
        _ => true,
    }
}

/// Refuses TLS options in a database URL's query string; `source.tls` or
/// `target.tls` (`tls_key`) is the one place for them. Names the parameter,
/// never its value.
pub fn refuse_url_tls_options(
    cx: &mut Cx<'_>,
    url: &DbUrl,
    pos: Pos,
    path: &str,
    tls_key: &str,
) -> bool {
    let text = url.expose();
    // The query follows the authority (after the userinfo's last '@').
    let after_userinfo = match text.rfind('@') {
        Some(at) => &text[at + 1..],
        None => text.split_once("://").map_or(text, |(_, rest)| rest),
    };
    let Some((_, query)) = after_userinfo.split_once('?') else {
        return true;
    };
    let query = query.split('#').next().unwrap_or_default();
    for param in query.split('&') {
        let name = param.split('=').next().unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        if lower.contains("ssl")
            || lower.contains("tls")
            || matches!(
                lower.as_str(),
                "verify_ca" | "verify_identity" | "built_in_roots"
            )
        {
            cx.invalid(
                pos,
                path,
                format!("URL option `{name}`: configure TLS in `{tls_key}` instead of the URL"),
            );
            return false;
        }
    }
    true
}

/// `cert` and `key` of a TLS block: both or neither.
fn client_cert(
    cx: &mut Cx<'_>,
    (cert_field, key_field): (Option<Field<'_>>, Option<Field<'_>>),
    path: &str,
    base_dir: Option<&Path>,
) -> Option<Option<ClientCert>> {
    let cert = optional_file(cx, cert_field, &format!("{path}.cert"), base_dir);
    let key = optional_file(cx, key_field, &format!("{path}.key"), base_dir);
    match (cert_field, key_field) {
        (Some(f), None) => {
            cx.invalid(
                f.key_pos,
                &format!("{path}.key"),
                "`cert` needs `key` (the client certificate's private key)",
            );
            return None;
        }
        (None, Some(f)) => {
            cx.invalid(
                f.key_pos,
                &format!("{path}.cert"),
                "`key` needs `cert` (the client certificate)",
            );
            return None;
        }
        _ => {}
    }
    match (cert?, key?) {
        (Some(cert), Some(key)) => Some(Some(ClientCert { cert, key })),
        _ => Some(None),
    }
}

fn optional_file(
    cx: &mut Cx<'_>,
    field: Option<Field<'_>>,
    path: &str,
    base_dir: Option<&Path>,
) -> Option<Option<PathBuf>> {
    match field {
        Some(f) => file(cx, f, path, base_dir).map(Some),
        None => Some(None),
    }
}

/// A path to an existing regular file, resolved against `base_dir`.
fn file(cx: &mut Cx<'_>, field: Field<'_>, path: &str, base_dir: Option<&Path>) -> Option<PathBuf> {
    let text = cx.nonempty_string(field.node, path)?;
    let given = PathBuf::from(&text.value);
    let resolved = match base_dir {
        Some(base) if given.is_relative() => base.join(&given),
        _ => given,
    };
    let problem = match std::fs::metadata(&resolved) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("not a regular file".to_string()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(problem) = problem {
        let shown = if text.shown == text.value && resolved.as_os_str() != text.value.as_str() {
            format!("`{}` ({})", text.shown, resolved.display())
        } else {
            format!("`{}`", text.shown)
        };
        cx.invalid(text.pos, path, format!("cannot use {shown}: {problem}"));
        return None;
    }
    Some(resolved)
}

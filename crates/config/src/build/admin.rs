//! Operations: the `admin` endpoint and `alarms` with their webhooks.

use std::time::Duration;

use crate::error::ErrorKind;
use crate::model::{Admin, Alarms, Webhook};
use crate::walk::{Cx, Field, MapReader};
use crate::yaml::{Kind, Node};

use super::{section, HOUR, MINUTE, SECOND};

pub(super) fn admin(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Admin> {
    let mut map = section(cx, root, "admin", field, &["listen", "token"])?;
    let listen = map.required(cx, "listen").and_then(|f| {
        let text = cx.nonempty_string(f.node, "admin.listen")?;
        match text.value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.invalid(
                    text.pos,
                    "admin.listen",
                    format!(
                        "invalid listen address `{}` (expected IP:PORT, e.g. 127.0.0.1:9090)",
                        text.shown
                    ),
                );
                None
            }
        }
    });
    let token = match map.optional("token") {
        Some(f) => cx.nonempty_string(f.node, "admin.token").and_then(|text| {
            // It goes into an HTTP header comparison: visible ASCII only.
            if text.value.bytes().all(|b| b.is_ascii_graphic()) {
                Some(Some(text.value))
            } else {
                cx.invalid(
                    text.pos,
                    "admin.token",
                    "use visible ASCII characters only (no spaces)",
                );
                None
            }
        }),
        None => Some(None),
    };
    map.finish(cx);
    Some(Admin {
        listen: listen?,
        token: token?,
    })
}

pub(super) fn alarms(cx: &mut Cx<'_>, root: &MapReader<'_>, field: Field<'_>) -> Option<Alarms> {
    let mut map = section(cx, root, "alarms", field, &["lag_threshold", "webhooks"])?;
    let defaults = Alarms::default();
    let lag_threshold = match map.optional("lag_threshold") {
        Some(f) => cx.duration(f.node, "alarms.lag_threshold", SECOND, 7 * 24 * HOUR),
        None => Some(defaults.lag_threshold),
    };
    let webhooks = match map.optional("webhooks") {
        Some(f) => cx.seq(f.node, "alarms.webhooks").and_then(|items| {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match webhook(cx, item, &format!("alarms.webhooks[{i}]")) {
                    Some(w) => out.push(w),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }),
        None => Some(Vec::new()),
    };
    map.finish(cx);
    Some(Alarms {
        lag_threshold: lag_threshold?,
        webhooks: webhooks?,
    })
}

fn webhook(cx: &mut Cx<'_>, node: &Node, path: &str) -> Option<Webhook> {
    const KEYS: &[&str] = &["url", "headers", "timeout"];
    let mut map = cx.map(node, path, node.pos, KEYS)?;
    let url = map.required(cx, "url").and_then(|f| {
        let url_path = format!("{path}.url");
        let text = cx.nonempty_string(f.node, &url_path)?;
        match check_webhook_url(&text.value) {
            Ok(()) => Some(text.value),
            Err(why) => {
                // Hook URLs often carry their secret: show the text as
                // written (`${VAR}` stays unexpanded) only up to the host.
                let shown = Webhook {
                    url: text.shown.clone(),
                    headers: Vec::new(),
                    timeout: Duration::ZERO,
                }
                .shown_url();
                cx.invalid(text.pos, &url_path, format!("invalid URL `{shown}`: {why}"));
                None
            }
        }
    });
    let headers = match map.optional("headers") {
        Some(f) => webhook_headers(cx, f, &format!("{path}.headers")),
        None => Some(Vec::new()),
    };
    let timeout = match map.optional("timeout") {
        Some(f) => cx.duration(
            f.node,
            &format!("{path}.timeout"),
            Duration::from_millis(100),
            MINUTE,
        ),
        None => Some(5 * SECOND),
    };
    map.finish(cx);
    Some(Webhook {
        url: url?,
        headers: headers?,
        timeout: timeout?,
    })
}

/// `http(s)://host[:port][/path][?query]`, nothing the HTTP client would
/// refuse later.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected http://host/path or https://host/path".into());
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "unsupported scheme `{scheme}://` (use http:// or https://)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("credentials do not belong in the URL (use `headers`)".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("URLs cannot contain spaces or control characters".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if let Some(port) = authority.rsplit_once(':').map(|(_, p)| p) {
        if !authority.ends_with(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid port `{port}`"));
        }
    }
    Ok(())
}

fn webhook_headers(cx: &mut Cx<'_>, field: Field<'_>, path: &str) -> Option<Vec<(String, String)>> {
    let Kind::Map(entries) = &field.node.kind else {
        cx.map(field.node, path, field.key_pos, &[])?;
        return Some(Vec::new());
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut ok = true;
    for entry in entries {
        let entry_path = format!("{path}.{}", entry.key);
        // RFC 9110 token characters.
        let valid_name = !entry.key.is_empty()
            && entry
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            cx.invalid(entry.key_pos, &entry_path, "invalid HTTP header name");
            ok = false;
            continue;
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&entry.key)) {
            cx.error(
                entry.key_pos,
                &entry_path,
                ErrorKind::DuplicateKey,
                "header given twice",
            );
            ok = false;
            continue;
        }
        match cx.string(&entry.value, &entry_path) {
            Some(text)
                if text
                    .value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
            {
                out.push((entry.key.clone(), text.value));
            }
            Some(text) => {
                cx.invalid(
                    text.pos,
                    &entry_path,
                    "header values take printable ASCII only",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

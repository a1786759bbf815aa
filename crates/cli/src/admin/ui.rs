//! The operator console: `GET /ui` and what it needs.
//!
//! * `GET /ui` — the page (server-rendered HTML, one inline style sheet,
//!   one small inline script).
//! * `GET /ui/live` — the page's live part, which the script swaps in every
//!   [`render::REFRESH_MS`].
//! * `GET /ui/history` — the chart's samples as JSON (`{"sample_every_s",
//!   "samples": [{unix_ms, lag_seconds, rows_per_second, basis}]}`).
//! * `POST /ui/login` (form field `token`), `GET /ui?token=…` — sign in;
//!   `POST /ui/logout` — sign out.
//!
//! # Access (with `admin.token`)
//!
//! Every `/ui` path needs the token, like `/status`: as `Authorization:
//! Bearer` (scripts, tests) or as the session cookie a sign-in sets. The
//! sign-in page is the only thing served without it, and it shows no data.
//! The cookie (`sluice_session_<pipeline>`: `HttpOnly`, `SameSite=Strict`,
//! `Path=/`, ends with the browser session) holds a SHA-256 digest of the
//! token, not the token: the same on every node of the pipeline (they share
//! the file), useless for `Authorization`, and changed by changing the
//! token. `/status` and `/metrics` accept it too (the page's script reads
//! nothing else, but a signed-in operator may follow the footer's links).
//! A sign-in by URL answers 303 to the bare `/ui`, so the token leaves the
//! address bar at once; no response ever contains the token, every
//! response is `Cache-Control: no-store`, and nothing here logs a URL.
//!
//! # Nothing from another origin
//!
//! Every response carries a Content-Security-Policy that allows only the
//! page's own inline style and script (by SHA-256 hash), requests to its
//! own origin, and forms posting to it: `default-src 'none'` for the rest,
//! no frames (`frame-ancestors 'none'`). The page names no other origin.

use std::sync::{Arc, OnceLock};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::cluster::Cluster;
use super::history::{History, SAMPLE_EVERY};
use super::render;
use super::AdminState;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// What the console adds to the admin state.
pub struct Console {
    pub cluster: Cluster,
    pub history: History,
    /// `alarms.lag_threshold` in seconds.
    pub lag_threshold_s: u64,
    /// The session cookie's name and value (with `admin.token`).
    session: Option<(String, String)>,
}

impl Console {
    pub fn new(
        pipeline: &str,
        token: Option<&str>,
        cluster: Cluster,
        history: History,
        lag_threshold_s: u64,
    ) -> Console {
        Console {
            cluster,
            history,
            lag_threshold_s,
            session: token.map(|t| (format!("sluice_session_{pipeline}"), session_value(t))),
        }
    }

    /// Whether `headers` carry this console's session cookie.
    pub fn has_session(&self, headers: &HeaderMap) -> bool {
        let Some((name, value)) = &self.session else {
            return false;
        };
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == name && super::constant_time_eq(v.as_bytes(), value.as_bytes()))
    }
}

/// The session cookie's value for `token`: hex SHA-256 of a fixed context
/// and the token.
fn session_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"sluice admin console session v1\n")
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The Content-Security-Policy of every console response.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            hash_source(JS),
            hash_source(CSS)
        )
    })
}

fn headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(csp())
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

fn html(code: StatusCode, body: String) -> Response {
    (code, headers("text/html; charset=utf-8"), body).into_response()
}

fn allowed(state: &AdminState, request: &HeaderMap) -> bool {
    super::authorized(state, request)
}

fn login_page(state: &AdminState, message: Option<&str>) -> Response {
    html(
        StatusCode::UNAUTHORIZED,
        render::login(state.status.pipeline(), state.status.node(), message, CSS),
    )
}

/// The value of `name` in an `application/x-www-form-urlencoded` text.
fn form_value(text: &str, name: &str) -> Option<String> {
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name)
            .then(|| percent_decode(v))
            .flatten()
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Signs in with `given` (303 to `/ui` with the cookie) or shows the
/// sign-in page again.
fn sign_in(state: &AdminState, given: &str) -> Response {
    let (Some(want), Some((name, value))) = (state.token.as_deref(), &state.console.session) else {
        return redirect(None);
    };
    if super::constant_time_eq(given.as_bytes(), want.as_bytes()) {
        redirect(Some(format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict"
        )))
    } else {
        login_page(state, Some("That is not the admin token."))
    }
}

fn redirect(cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        headers("text/plain; charset=utf-8"),
        [(header::LOCATION, HeaderValue::from_static("/ui"))],
        "see /ui\n",
    )
        .into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn snapshot_parts(
    state: &AdminState,
) -> (
    serde_json::Value,
    super::cluster::ClusterView,
    Vec<super::history::Sample>,
    u64,
) {
    let now = sluice_core::time::unix_ms();
    (
        state.status.to_json(),
        state.console.cluster.view(),
        state.console.history.recent(now),
        now,
    )
}

/// `GET /ui` (and `GET /ui?token=…`).
pub async fn page(
    State(state): State<Arc<AdminState>>,
    request: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(token) = query.as_deref().and_then(|q| form_value(q, "token")) {
        return sign_in(&state, &token);
    }
    if !allowed(&state, &request) {
        return login_page(&state, None);
    }
    let (status, view, history, now_ms) = snapshot_parts(&state);
    let body = render::page(
        &render::Snapshot {
            status: &status,
            view: &view,
            history: &history,
            now_ms,
            lag_threshold_s: state.console.lag_threshold_s,
            with_token: state.token.is_some(),
        },
        CSS,
        JS,
    );
    html(StatusCode::OK, body)
}

/// `GET /ui/live`.
pub async fn live(State(state): State<Arc<AdminState>>, request: HeaderMap) -> Response {
    if !allowed(&state, &request) {
        return unauthorized();
    }
    let (status, view, history, now_ms) = snapshot_parts(&state);
    html(
        StatusCode::OK,
        render::live(&render::Snapshot {
            status: &status,
            view: &view,
            history: &history,
            now_ms,
            lag_threshold_s: state.console.lag_threshold_s,
            with_token: state.token.is_some(),
        }),
    )
}

/// `GET /ui/history`.
pub async fn history(State(state): State<Arc<AdminState>>, request: HeaderMap) -> Response {
    if !allowed(&state, &request) {
        return unauthorized();
    }
    let now = sluice_core::time::unix_ms();
    let body = serde_json::json!({
        "pipeline": state.status.pipeline(),
        "node": state.status.node(),
        "sample_every_s": SAMPLE_EVERY.as_secs(),
        "samples": state.console.history.recent(now),
    });
    (
        StatusCode::OK,
        headers("application/json"),
        format!("{body}\n"),
    )
        .into_response()
}

/// `POST /ui/login`, form field `token`.
pub async fn login(State(state): State<Arc<AdminState>>, body: String) -> Response {
    sign_in(&state, &form_value(&body, "token").unwrap_or_default())
}

/// `POST /ui/logout`: the cookie expires.
pub async fn logout(State(state): State<Arc<AdminState>>) -> Response {
    let expired = state
        .console
        .session
        .as_ref()
        .map(|(name, _)| format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    redirect(expired)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        headers("text/plain; charset=utf-8"),
        "unauthorized: sign in at /ui, or send Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded() {
        assert_eq!(
            form_value("token=a%2Bb%20c+d", "token").as_deref(),
            Some("a+b c d")
        );
        assert_eq!(form_value("x=1&token=t", "token").as_deref(), Some("t"));
        assert_eq!(form_value("x=1", "token"), None);
        assert_eq!(form_value("token=%zz", "token"), None);
        assert_eq!(form_value("token", "token").as_deref(), Some(""));
    }

    #[test]
    fn the_session_is_not_the_token_and_is_matched_exactly() {
        let console = Console::new(
            "shop",
            Some("s3cret"),
            Cluster::default(),
            History::default(),
            60,
        );
        let (name, value) = console.session.clone().expect("a session");
        assert_eq!(name, "sluice_session_shop");
        assert!(!value.contains("s3cret") && value.len() == 64);
        let mut h = HeaderMap::new();
        assert!(!console.has_session(&h));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {name}={value}")).unwrap(),
        );
        assert!(console.has_session(&h));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{name}=s3cret")).unwrap(),
        );
        assert!(!console.has_session(&h));
        let open = Console::new("shop", None, Cluster::default(), History::default(), 60);
        assert!(!open.has_session(&h));
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let p = csp();
        assert!(p.starts_with("default-src 'none'; "));
        assert!(p.contains(&format!("script-src {};", hash_source(JS))));
        assert!(p.contains(&format!("style-src {};", hash_source(CSS))));
        assert!(!p.contains("unsafe") && !p.contains("http"));
    }
}

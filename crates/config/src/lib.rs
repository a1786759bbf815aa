//! Pipeline configuration: YAML in, a validated [`Pipeline`] out.
//!
//! Owns the pipeline file format and its validation. Validation happens before
//! anything connects, reports *every* problem at once (not the first), and names
//! each one by `file:line:col` and key path, so an operator fixes a file in one
//! pass. Secrets come in through `${VAR}` interpolation, never literals in logs.
//!
//! # Format
//!
//! ```yaml
//! name: shop
//! source: { url: "mysql://repl:${SRC_PASSWORD}@127.0.0.1:13306", server_id: 4001, start: latest }
//! target: { url: "mysql://root@127.0.0.1:13307" }
//! coordination: { etcd: { endpoints: ["http://127.0.0.1:23790"], prefix: /sluice } }
//! filter: { include: ['shop\..*'], exclude: ['shop\.tmp_.*'] }
//! routes: [ { match: 'shop\.(.*)', to: 'shop_copy.$1' } ]
//! columns: [ { table: 'shop\.users', exclude: [password_hash] } ]
//! batch: { max_rows: 2000, max_bytes: 4MiB, max_delay: 20ms }
//! load: { workers: 4, ddl: apply }
//! ```
//!
//! Every key is documented on the field of [`Pipeline`] (and the types it
//! holds) that it fills, with its default. Only `name`, `source` and `target`
//! are required.
//!
//! # Rules
//!
//! - Unknown keys are errors everywhere (with a "did you mean" hint), and so
//!   are duplicate keys and several YAML documents in one file.
//! - `${VAR}` in a value is replaced by the environment variable `VAR`;
//!   `${VAR:-default}` falls back to literal text; `$${` is a literal `${`.
//!   An undefined variable is an error at the `${`'s own line:col — for a
//!   command that uses only some sections, only in those ([`uses`]). See
//!   [`interp`] for the details. Inside `{...}` or `[...]`
//!   quote such values (`{ url: "mysql://u:${PW}@h" }`): YAML does not allow
//!   a bare `{` there.
//! - A value that came from `${VAR}` is typed by its text, so
//!   `server_id: ${SERVER_ID}` works although a quoted literal `"4001"` is
//!   refused as a string where an integer belongs.
//! - Durations: `20ms`, `1s`, `1m30s`, `2h`, `1.5s` (units `ns us ms s m h d`,
//!   largest first; a bare number is refused except `0`). Sizes: `4MiB`,
//!   `512KiB`, `1GB`, or a plain integer of bytes.
//! - Patterns (`filter`, `routes[].match`, `columns[].table`) are regexes
//!   (the `regex` crate's syntax) on the whole source `schema.table`.
//! - Positions in errors are 1-based line:col in characters of the original
//!   text; key paths index lists from 0 (`routes[0].to`).
//! - A YAML syntax error stops the check at that point (the structure after it
//!   is unknown); every other error is collected.
//!
//! # Errors
//!
//! `FILE:LINE:COL: key.path: message`, one per line, sorted by position,
//! e.g. `pipeline.yaml:3:14: source.server_id: expected an integer, found the
//! string "abc"`. Messages never include an interpolated value: they quote
//! the `${VAR}` text instead, and URLs are shown with the password masked.

mod build;
mod error;
pub mod interp;
mod model;
mod rules;
mod security;
pub mod units;
mod url;
pub mod uses;
mod walk;
mod yaml;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use model::{
    tag_server_id, Admin, Alarms, Batch, Bidirectional, ConflictPolicy, Coordination, DdlPolicy,
    Ha, Load, Node, OnNonempty, Pipeline, Snapshot, SnapshotMode, Source, Stage, StagesSettings,
    StartAt, Tagging, Target, VerifySettings, Webhook,
};
pub use rules::{ColumnRule, ColumnRules, Filter, Route, Routes, TablePattern, SYSTEM_SCHEMAS};
pub use url::{parse_etcd_endpoint, DbUrl, DEFAULT_MYSQL_PORT};
pub use uses::{Loaded, Uses};

/// Reads and validates the pipeline file at `path`, taking `${VAR}` values
/// from the process environment. A relative `coordination.local.dir` (and
/// the default `state` directory) is resolved against the file's directory.
/// Every `${VAR}` must be defined (as `sluice run` needs); see [`load_for`].
pub fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    load_for(path, Uses::All).map(|loaded| loaded.pipeline)
}

/// As [`load`], for a command that reads only the sections in `uses`: an
/// undefined `${VAR}` elsewhere is returned in [`Loaded::unresolved`]
/// instead of refusing the file (see [`uses`]).
pub fn load_for(path: &Path, uses: Uses) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    let file_error = |kind, position, message: String| {
        ConfigErrors::new(vec![ConfigError {
            origin: origin.clone(),
            position,
            path: String::new(),
            kind,
            message,
        }])
    };
    let bytes = std::fs::read(path)
        .map_err(|e| file_error(ErrorKind::Io, None, format!("cannot read the file: {e}")))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.valid_up_to();
            return Err(file_error(
                ErrorKind::Encoding,
                Some(text_position(&bytes[..offset])),
                format!(
                    "not valid UTF-8: invalid byte 0x{:02x} at byte offset {offset} (save the file as UTF-8)",
                    bytes[offset]
                ),
            ));
        }
    };
    let base_dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let env = |name: &str| std::env::var(name).ok();
    parse_sections(text, &origin, &env, base_dir.as_deref(), uses)
}

/// Validates pipeline YAML `text`; `origin` names it in errors (usually the
/// file name) and `env` supplies `${VAR}` values (inject a closure in tests;
/// [`load`] uses the process environment). A relative
/// `coordination.local.dir` stays relative here.
pub fn parse(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigErrors> {
    parse_with_base(text, origin, env, None)
}

/// As [`parse`], for a command that reads only the sections in `uses`.
pub fn parse_for(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    uses: Uses,
) -> Result<Loaded, ConfigErrors> {
    parse_sections(text, origin, env, None, uses)
}

fn parse_with_base(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: Option<&Path>,
) -> Result<Pipeline, ConfigErrors> {
    parse_sections(text, origin, env, base_dir, Uses::All).map(|loaded| loaded.pipeline)
}

fn parse_sections(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: Option<&Path>,
    uses: Uses,
) -> Result<Loaded, ConfigErrors> {
    let mut cx = walk::Cx::new(text, origin, env, uses);
    let (root, tree_errors) = yaml::parse(text);
    let fatal = tree_errors.iter().any(|e| e.kind == ErrorKind::Syntax);
    for e in tree_errors {
        cx.error(e.pos, &e.path, e.kind, e.message);
    }
    let pipeline = if fatal {
        None
    } else {
        build::pipeline(&mut cx, root.as_ref(), base_dir)
    };
    match pipeline {
        Some(pipeline) if cx.errors.is_empty() => {
            let mut unresolved = cx.deferred;
            unresolved.sort_by_key(|e| e.position);
            Ok(Loaded {
                pipeline,
                unresolved,
            })
        }
        _ => {
            if cx.errors.is_empty() {
                // Every failed section reports why; reaching this is a bug,
                // but refusing is still the right answer.
                cx.error(
                    yaml::Pos { line: 1, col: 1 },
                    "",
                    ErrorKind::InvalidValue,
                    "invalid pipeline (no further detail; please report this)",
                );
            }
            Err(ConfigErrors::new(cx.errors))
        }
    }
}

/// 1-based line:col (in characters) just after `valid` (valid UTF-8).
fn text_position(valid: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let line = text.matches('\n').count() + 1;
    let last_line = text.rsplit('\n').next().unwrap_or_default();
    (line, last_line.chars().count() + 1)
}

#[cfg(test)]
mod tests;

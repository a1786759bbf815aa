//! Typing the marked tree, one field at a time, collecting every error.
//!
//! Rules for scalars (the YAML 1.2 core schema, applied per field):
//! - string fields take any non-null scalar as its text (so `name: 2024` is
//!   the string `2024`); null (`~`, `null`, nothing) is a wrong type;
//! - integer fields take a plain integer (`4001`, `0x10`); a quoted `"4001"`
//!   is a wrong type, but a value produced by `${VAR}` is typed by its
//!   interpolated text (environment variables are always text);
//! - durations and sizes take their text form; a plain integer is bytes for
//!   a size and allowed only as `0` for a duration;
//! - an optional key whose value is null counts as absent (its default
//!   applies); a required key whose value is null is a wrong type.

use crate::error::{ConfigError, ErrorKind};
use crate::interp::{interpolate, reference_offsets};
use crate::units::{parse_duration, parse_size};
use crate::uses::Uses;
use crate::yaml::{parse_int, Entry, Kind, Node, Plain, Pos, Scalar};
use std::time::Duration;

/// Shared state of one validation run.
pub struct Cx<'a> {
    origin: &'a str,
    chars: Vec<char>,
    env: &'a dyn Fn(&str) -> Option<String>,
    uses: Uses,
    pub errors: Vec<ConfigError>,
    /// Undefined variables in sections outside `uses`, not (yet) errors; see
    /// [`crate::uses`].
    pub deferred: Vec<ConfigError>,
}

/// A string value after interpolation.
pub struct Text {
    pub value: String,
    /// What may be echoed in messages: the value itself, or for interpolated
    /// values the original text (`${SRC_PASSWORD}`), never the secret.
    pub shown: String,
    pub pos: Pos,
    /// An undefined variable was deferred and replaced by the empty string:
    /// the value only has to let its section build.
    pub placeholder: bool,
}

/// A value under a key.
#[derive(Clone, Copy)]
pub struct Field<'n> {
    pub node: &'n Node,
    pub key_pos: Pos,
}

impl<'a> Cx<'a> {
    pub fn new(
        text: &str,
        origin: &'a str,
        env: &'a dyn Fn(&str) -> Option<String>,
        uses: Uses,
    ) -> Self {
        Cx {
            origin,
            chars: text.chars().collect(),
            env,
            uses,
            errors: Vec::new(),
            deferred: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, path: &str, kind: ErrorKind, message: impl Into<String>) {
        // A value that cannot be checked without its deferred variable: the
        // undefined variable is the error, not what the placeholder caused.
        if self.deferred.iter().any(|d| d.path == path) {
            let (undefined, rest) = std::mem::take(&mut self.deferred)
                .into_iter()
                .partition(|d| d.path == path);
            self.deferred = rest;
            self.errors.extend::<Vec<ConfigError>>(undefined);
            return;
        }
        if self.errors.iter().any(|e| {
            e.path == path
                && e.kind == ErrorKind::UndefinedVariable
                && kind != ErrorKind::UndefinedVariable
        }) {
            return; // already explained by its undefined variable
        }
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            position: Some((pos.line, pos.col)),
            path: path.to_string(),
            kind,
            message: message.into(),
        });
    }

    pub fn invalid(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.error(pos, path, ErrorKind::InvalidValue, message);
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let found = describe(node);
        self.error(
            node.pos,
            path,
            ErrorKind::WrongType,
            format!("expected {expected}, found {found}"),
        );
    }

    /// The scalar of `node`, or a wrong-type error naming `expected`. Refuses
    /// null and tags outside the core schema.
    fn scalar<'n>(&mut self, node: &'n Node, path: &str, expected: &str) -> Option<&'n Scalar> {
        match &node.kind {
            Kind::Scalar(s) if s.tag.as_deref().is_some_and(|t| t.starts_with('!')) => {
                let tag = s.tag.as_deref().unwrap_or_default();
                self.error(
                    node.pos,
                    path,
                    ErrorKind::WrongType,
                    format!("unsupported YAML tag `{tag}`"),
                );
                None
            }
            Kind::Scalar(s) if s.resolve() != Plain::Null => Some(s),
            _ => {
                self.wrong_type(node, path, expected);
                None
            }
        }
    }

    /// Interpolates a scalar's value; undefined variables are reported at
    /// their own position in the original text.
    fn interpolated(&mut self, node: &Node, scalar: &Scalar, path: &str) -> Option<Text> {
        match interpolate(&scalar.value, self.env) {
            Ok((value, false)) => Some(Text {
                shown: value.clone(),
                value,
                pos: node.pos,
                placeholder: false,
            }),
            // The value before interpolation: `${VAR}` references, not
            // what they expanded to.
            Ok((value, true)) => Some(Text {
                value,
                shown: scalar.value.clone(),
                pos: node.pos,
                placeholder: false,
            }),
            Err(problems) => {
                let end = node.end.min(self.chars.len());
                let raw = &self.chars[node.start.min(end)..end];
                let offsets = reference_offsets(raw);
                let count = reference_offsets(&scalar.value.chars().collect::<Vec<_>>()).len();
                // Escapes in a double-quoted scalar (`\x24{`) can make the
                // source and the value disagree; then the scalar's own
                // position is the honest answer.
                let positions: Vec<Pos> = problems
                    .iter()
                    .map(|problem| match offsets.get(problem.index) {
                        Some(&offset) if offsets.len() == count => {
                            advance(node.pos, &raw[..offset])
                        }
                        _ => node.pos,
                    })
                    .collect();
                // Only undefined names wait; a malformed reference is wrong
                // whoever reads the file.
                let defer = self.uses.defers(path) && problems.iter().all(|p| p.undefined);
                for (problem, pos) in problems.into_iter().zip(positions) {
                    if defer {
                        self.deferred.push(ConfigError {
                            origin: self.origin.to_string(),
                            position: Some((pos.line, pos.col)),
                            path: path.to_string(),
                            kind: ErrorKind::UndefinedVariable,
                            message: problem.message,
                        });
                    } else {
                        self.error(pos, path, ErrorKind::UndefinedVariable, problem.message);
                    }
                }
                if !defer {
                    return None;
                }
                let env = self.env;
                let unset_is_empty = |name: &str| env(name).or_else(|| Some(String::new()));
                let value = interpolate(&scalar.value, &unset_is_empty)
                    .map(|(v, _)| v)
                    .unwrap_or_default();
                Some(Text {
                    value,
                    shown: scalar.value.clone(),
                    pos: node.pos,
                    placeholder: true,
                })
            }
        }
    }

    /// A string field.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<Text> {
        let scalar = self.scalar(node, path, "a string")?;
        self.interpolated(node, scalar, path)
    }

    /// A non-empty string field.
    pub fn nonempty_string(&mut self, node: &Node, path: &str) -> Option<Text> {
        let text = self.string(node, path)?;
        if text.value.trim().is_empty() && !text.placeholder {
            self.invalid(text.pos, path, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// An integer field within `min..=max`.
    pub fn integer(&mut self, node: &Node, path: &str, min: i128, max: i128) -> Option<i128> {
        let scalar = self.scalar(node, path, "an integer")?;
        let (value, shown) = match scalar.resolve() {
            Plain::Int => match parse_int(&scalar.value) {
                Some(n) => (n, scalar.value.clone()),
                None => {
                    self.invalid(node.pos, path, format!("must be between {min} and {max}"));
                    return None;
                }
            },
            _ if scalar.value.contains("${") => {
                let text = self.interpolated(node, scalar, path)?;
                match parse_int(text.value.trim()) {
                    Some(n) => (n, text.shown),
                    None if text.placeholder => return Some(min),
                    None => {
                        self.invalid(
                            node.pos,
                            path,
                            format!("`{}` does not give an integer", text.shown),
                        );
                        return None;
                    }
                }
            }
            found => {
                let found = match found {
                    Plain::Str => format!("the string {:?}", scalar.value),
                    other => other.describe().to_string(),
                };
                self.error(
                    node.pos,
                    path,
                    ErrorKind::WrongType,
                    format!("expected an integer, found {found}"),
                );
                return None;
            }
        };
        if value < min || value > max {
            self.invalid(
                node.pos,
                path,
                format!("{shown} is out of range (must be between {min} and {max})"),
            );
            return None;
        }
        Some(value)
    }

    /// A duration field within `min..=max`.
    pub fn duration(
        &mut self,
        node: &Node,
        path: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let scalar = self.scalar(node, path, "a duration (e.g. 20ms, 1s, 1m30s)")?;
        if scalar.resolve() == Plain::Bool {
            self.wrong_type(node, path, "a duration (e.g. 20ms, 1s, 1m30s)");
            return None;
        }
        let text = self.interpolated(node, scalar, path)?;
        let value = match parse_duration(&text.value) {
            Ok(d) => d,
            Err(_) if text.placeholder => return Some(min),
            Err(why) => {
                // The parser's detail may quote part of an interpolated value.
                let why = if text.shown == text.value {
                    why
                } else {
                    "the interpolated value is not a duration (e.g. 20ms, 1s, 1m30s)".into()
                };
                self.invalid(
                    node.pos,
                    path,
                    format!("invalid duration `{}`: {why}", text.shown),
                );
                return None;
            }
        };
        if value < min || value > max {
            use crate::units::format_duration as f;
            self.invalid(
                node.pos,
                path,
                format!(
                    "duration `{}` is out of range (must be between {} and {})",
                    text.shown,
                    f(min),
                    f(max)
                ),
            );
            return None;
        }
        Some(value)
    }

    /// A size field (bytes) within `min..=max`.
    pub fn size(&mut self, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
        let scalar = self.scalar(node, path, "a size (e.g. 4MiB, 512KiB, 1GB)")?;
        if matches!(scalar.resolve(), Plain::Bool | Plain::Float) {
            if scalar.resolve() == Plain::Float {
                self.invalid(
                    node.pos,
                    path,
                    format!(
                        "invalid size `{}`: fractional sizes are not supported (write e.g. 1536KiB)",
                        scalar.value
                    ),
                );
            } else {
                self.wrong_type(node, path, "a size (e.g. 4MiB, 512KiB, 1GB)");
            }
            return None;
        }
        let text = self.interpolated(node, scalar, path)?;
        let value = match parse_size(&text.value) {
            Ok(n) => n,
            Err(_) if text.placeholder => return Some(min),
            Err(why) => {
                // The parser's detail may quote part of an interpolated value.
                let why = if text.shown == text.value {
                    why
                } else {
                    "the interpolated value is not a size (e.g. 4MiB, 512KiB, 1GB)".into()
                };
                self.invalid(
                    node.pos,
                    path,
                    format!("invalid size `{}`: {why}", text.shown),
                );
                return None;
            }
        };
        if value < min || value > max {
            self.invalid(
                node.pos,
                path,
                format!(
                    "size `{}` is out of range (must be between {} and {})",
                    text.shown,
                    format_size(min),
                    format_size(max)
                ),
            );
            return None;
        }
        Some(value)
    }

    /// One of a fixed set of words; returns its index in `choices`.
    pub fn choice(&mut self, node: &Node, path: &str, choices: &[&str]) -> Option<usize> {
        let text = self.string(node, path)?;
        match choices.iter().position(|c| *c == text.value) {
            Some(i) => Some(i),
            None if text.placeholder => Some(0),
            None => {
                self.invalid(
                    text.pos,
                    path,
                    format!("`{}` is not one of: {}", text.shown, choices.join(", ")),
                );
                None
            }
        }
    }

    /// A list; null is the empty list.
    pub fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            Kind::Scalar(s) if s.resolve() == Plain::Null && s.tag.is_none() => Some(&[]),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }

    /// A mapping with the given keys; null is the empty mapping. Missing
    /// required keys are reported at `owner` (the key that introduced it, or
    /// the list item's position).
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        owner: Pos,
        keys: &'static [&'static str],
    ) -> Option<MapReader<'n>> {
        let entries: &'n [Entry] = match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Scalar(s) if s.resolve() == Plain::Null && s.tag.is_none() => &[],
            _ => {
                self.wrong_type(node, path, "a mapping");
                return None;
            }
        };
        Some(MapReader {
            entries,
            used: vec![false; entries.len()],
            path: path.to_string(),
            owner,
            keys,
        })
    }
}

/// Moves `pos` past `text` (chars of the original file).
fn advance(mut pos: Pos, text: &[char]) -> Pos {
    for &c in text {
        if c == '\n' {
            pos.line += 1;
            pos.col = 1;
        } else {
            pos.col += 1;
        }
    }
    pos
}

fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Map(_) => "a mapping".into(),
        Kind::Seq(_) => "a list".into(),
        Kind::Scalar(s) => match s.resolve() {
            Plain::Str => format!("the string {:?}", s.value),
            other => other.describe().into(),
        },
    }
}

fn format_size(n: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= factor && n % factor == 0 {
            return format!("{}{unit}", n / factor);
        }
    }
    format!("{n} bytes")
}

/// Reads the keys of one mapping; [`MapReader::finish`] reports the keys
/// nobody asked for.
pub struct MapReader<'n> {
    entries: &'n [Entry],
    used: Vec<bool>,
    pub path: String,
    pub owner: Pos,
    keys: &'static [&'static str],
}

impl<'n> MapReader<'n> {
    /// The key path of `key` in this mapping.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, including an explicit null.
    pub fn raw(&mut self, key: &str) -> Option<Field<'n>> {
        debug_assert!(self.keys.contains(&key), "{key} not declared");
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        let entry = &self.entries[i];
        Some(Field {
            node: &entry.value,
            key_pos: entry.key_pos,
        })
    }

    /// The value of an optional key; null counts as absent.
    pub fn optional(&mut self, key: &str) -> Option<Field<'n>> {
        self.raw(key).filter(|f| {
            !matches!(&f.node.kind, Kind::Scalar(s) if s.resolve() == Plain::Null && s.tag.is_none())
        })
    }

    /// The value of a required key; reports it missing otherwise.
    pub fn required(&mut self, cx: &mut Cx<'_>, key: &str) -> Option<Field<'n>> {
        let field = self.raw(key);
        if field.is_none() {
            let path = self.path_of(key);
            cx.error(
                self.owner,
                &path,
                ErrorKind::MissingKey,
                format!("missing required key `{key}`"),
            );
        }
        field
    }

    /// Reports every key that was never read as unknown.
    pub fn finish(self, cx: &mut Cx<'_>) {
        for (entry, used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let path = self.path_of(&entry.key);
            let hint = match closest(&entry.key, self.keys) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("expected one of: {}", self.keys.join(", ")),
            };
            cx.error(
                entry.key_pos,
                &path,
                ErrorKind::UnknownKey,
                format!("unknown key `{}` ({hint})", entry.key),
            );
        }
    }
}

/// The known key closest to `key` by edit distance, if it is plausibly a typo.
fn closest<'k>(key: &str, keys: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    keys.iter()
        .map(|k| (levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        let keys = &["url", "urls", "server_id", "start", "switch_after"];
        assert_eq!(closest("sever_id", keys), Some("server_id"));
        assert_eq!(closest("Server_ID", keys), Some("server_id"));
        assert_eq!(closest("uri", keys), Some("url"));
        assert_eq!(closest("password", keys), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}

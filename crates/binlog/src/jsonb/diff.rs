//! Partial JSON updates (`sql-common/json_diff.cc`): the owned document
//! [`Node`] a diff is applied to (built by the [`Tree`] sink), parsing a
//! `Json_diff_vector`, and applying each diff exactly as `apply_json_diff()`
//! does (see the parent module's "Partial updates").

use std::cmp::Ordering;

use super::decode::decode;
use super::path::{array_position, parse_path, path_text, Leg};
use super::text::Text;
use super::{JsonError, Scalar, Sink, MAX_DEPTH};

/// An owned JSON document, keeping every value exactly as decoded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    /// An OPAQUE value, already rendered (see [`Scalar::Verbatim`]).
    Verbatim(String),
    Array(Vec<Node>),
    /// Members in stored order.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// How many containers deep the value is (0 for a scalar).
    fn depth(&self) -> usize {
        match self {
            Node::Array(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Node::Object(members) => 1 + members.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
            _ => "a scalar",
        }
    }
}

/// Builds a [`Node`] from the decoder's events.
#[derive(Default)]
pub(super) struct Tree {
    stack: Vec<Frame>,
    pub(super) root: Option<Node>,
}

enum Frame {
    Array(Vec<Node>),
    /// Members so far, and the key of the value being decoded.
    Object(Vec<(String, Node)>, String),
}

impl Tree {
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Array(items)) => items.push(node),
            Some(Frame::Object(members, key)) => members.push((std::mem::take(key), node)),
            None => self.root = Some(node),
        }
    }
}

/// Reserve at most this many slots up front: counts come from untrusted
/// input and real growth is bounded by the decoder's budget instead.
const MAX_PREALLOCATED: usize = 1024;

impl Sink for Tree {
    fn scalar(&mut self, value: Scalar<'_>) {
        let node = match value {
            Scalar::Null => Node::Null,
            Scalar::Bool(b) => Node::Bool(b),
            Scalar::Int(i) => Node::Int(i),
            Scalar::Uint(u) => Node::Uint(u),
            Scalar::Double(d) => Node::Double(d),
            Scalar::Str(s) => Node::Str(s.to_owned()),
            Scalar::Verbatim(s) => Node::Verbatim(s.to_owned()),
        };
        self.attach(node);
    }

    fn begin_object(&mut self, count: usize) {
        self.stack.push(Frame::Object(
            Vec::with_capacity(count.min(MAX_PREALLOCATED)),
            String::new(),
        ));
    }

    fn key(&mut self, _index: usize, key: &str) {
        if let Some(Frame::Object(_, pending)) = self.stack.last_mut() {
            key.clone_into(pending);
        }
    }

    fn end_object(&mut self) {
        if let Some(Frame::Object(members, _)) = self.stack.pop() {
            self.attach(Node::Object(members));
        }
    }

    fn begin_array(&mut self, count: usize) {
        self.stack.push(Frame::Array(Vec::with_capacity(
            count.min(MAX_PREALLOCATED),
        )));
    }

    fn element(&mut self, _index: usize) {}

    fn end_array(&mut self) {
        if let Some(Frame::Array(items)) = self.stack.pop() {
            self.attach(Node::Array(items));
        }
    }
}

pub(super) fn render_node(node: &Node, text: &mut Text) {
    match node {
        Node::Null => text.scalar(Scalar::Null),
        Node::Bool(b) => text.scalar(Scalar::Bool(*b)),
        Node::Int(i) => text.scalar(Scalar::Int(*i)),
        Node::Uint(u) => text.scalar(Scalar::Uint(*u)),
        Node::Double(d) => text.scalar(Scalar::Double(*d)),
        Node::Str(s) => text.scalar(Scalar::Str(s)),
        Node::Verbatim(s) => text.scalar(Scalar::Verbatim(s)),
        Node::Array(items) => {
            text.begin_array(items.len());
            for (i, item) in items.iter().enumerate() {
                text.element(i);
                render_node(item, text);
            }
            text.end_array();
        }
        Node::Object(members) => {
            text.begin_object(members.len());
            for (i, (key, value)) in members.iter().enumerate() {
                text.key(i, key);
                render_node(value, text);
            }
            text.end_object();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Replace,
    Insert,
    Remove,
}

impl Operation {
    pub(super) fn name(self) -> &'static str {
        match self {
            Operation::Replace => "REPLACE",
            Operation::Insert => "INSERT",
            Operation::Remove => "REMOVE",
        }
    }
}

#[derive(Debug)]
pub(super) struct Diff {
    pub(super) operation: Operation,
    pub(super) path: String,
    legs: Vec<Leg>,
    pub(super) value: Option<Node>,
}

fn malformed_diff(offset: usize, reason: impl Into<String>) -> JsonError {
    JsonError::MalformedDiff {
        offset,
        reason: reason.into(),
    }
}

/// `net_field_length_checked`: a length-encoded integer at `pos`. Returns
/// (value, bytes used).
fn read_lenenc(buf: &[u8], pos: usize, what: &str) -> Result<(usize, usize), JsonError> {
    let truncated = || malformed_diff(pos, format!("{what} is truncated"));
    let first = *buf.get(pos).ok_or_else(truncated)?;
    let width = match first {
        0..=250 => return Ok((usize::from(first), 1)),
        252 => 2,
        253 => 3,
        254 => 8,
        _ => {
            return Err(malformed_diff(
                pos,
                format!("{what} has invalid prefix 0x{first:02x}"),
            ))
        }
    };
    let bytes = buf.get(pos + 1..pos + 1 + width).ok_or_else(truncated)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let value = usize::try_from(value)
        .map_err(|_| malformed_diff(pos, format!("{what} {value} is too large")))?;
    Ok((value, 1 + width))
}

pub(super) fn parse_diff_vector(buf: &[u8]) -> Result<Vec<Diff>, JsonError> {
    let mut diffs = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let index = diffs.len();
        let operation = match buf[pos] {
            0 => Operation::Replace,
            1 => Operation::Insert,
            2 => Operation::Remove,
            other => {
                return Err(malformed_diff(
                    pos,
                    format!("diff #{index}: unknown operation {other}"),
                ))
            }
        };
        pos += 1;
        let (path_len, used) = read_lenenc(buf, pos, "path length")?;
        pos += used;
        let raw = pos
            .checked_add(path_len)
            .and_then(|stop| buf.get(pos..stop))
            .ok_or_else(|| {
                malformed_diff(
                    pos,
                    format!(
                        "diff #{index}: path of {path_len} bytes but only {} remain",
                        buf.len() - pos
                    ),
                )
            })?;
        let path = std::str::from_utf8(raw).map_err(|e| {
            malformed_diff(
                pos + e.valid_up_to(),
                format!("diff #{index}: path is not valid UTF-8"),
            )
        })?;
        let legs = parse_path(path).map_err(|(at, why)| {
            malformed_diff(
                pos + at,
                format!("diff #{index}: invalid path {path:?}: {why}"),
            )
        })?;
        pos += path_len;
        let value = if operation == Operation::Remove {
            None
        } else {
            let (value_len, used) = read_lenenc(buf, pos, "value length")?;
            pos += used;
            let bytes = pos
                .checked_add(value_len)
                .and_then(|stop| buf.get(pos..stop))
                .ok_or_else(|| {
                    malformed_diff(
                        pos,
                        format!(
                            "diff #{index}: value of {value_len} bytes but only {} remain",
                            buf.len() - pos
                        ),
                    )
                })?;
            if bytes.is_empty() {
                return Err(malformed_diff(pos, format!("diff #{index}: empty value")));
            }
            let mut tree = Tree::default();
            decode(bytes, &mut tree).map_err(|e| match e {
                JsonError::Malformed { offset, reason } => {
                    malformed_diff(pos + offset, format!("diff #{index}: value: {reason}"))
                }
                other => other,
            })?;
            pos += value_len;
            tree.root
        };
        diffs.push(Diff {
            operation,
            path: path.to_owned(),
            legs,
            value,
        });
    }
    Ok(diffs)
}

/// MySQL's member order (`Json_key_comparator`): length first, then bytes.
pub(super) fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Follows `legs` from `node` without auto-wrapping; on failure returns the
/// index of the leg that found nothing.
fn seek<'n>(mut node: &'n mut Node, legs: &[Leg]) -> Result<&'n mut Node, usize> {
    for (k, leg) in legs.iter().enumerate() {
        node = match (node, leg) {
            (Node::Array(items), Leg::Cell { index, from_end }) => {
                let (position, within) = array_position(*index, *from_end, items.len());
                if !within {
                    return Err(k);
                }
                items.get_mut(position).ok_or(k)?
            }
            (Node::Object(members), Leg::Member(name)) => members
                .iter_mut()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value)
                .ok_or(k)?,
            _ => return Err(k),
        };
    }
    Ok(node)
}

impl Diff {
    pub(super) fn apply(self, index: usize, root: &mut Node) -> Result<(), JsonError> {
        let Diff {
            operation,
            path,
            legs,
            value,
        } = self;
        let fail = |reason: String| JsonError::DiffNotApplicable {
            index,
            operation: operation.name(),
            path: path.clone(),
            reason,
        };
        let Some((last, parents)) = legs.split_last() else {
            return Err(fail(
                "the path is the document root, which a diff never addresses".into(),
            ));
        };
        if let Some(value) = &value {
            let depth = legs.len() + value.depth();
            if depth > MAX_DEPTH {
                return Err(fail(format!(
                    "the result would nest {depth} levels deep (more than {MAX_DEPTH})"
                )));
            }
        }
        let parent = seek(root, parents).map_err(|k| {
            fail(format!(
                "{} does not exist in the before image",
                path_text(&legs[..=k])
            ))
        })?;
        let missing = |what: &str| fail(format!("{} {what}", path_text(&legs)));
        match (operation, parent, last, value) {
            (Operation::Replace, parent, _, Some(value)) => {
                let target = seek(parent, std::slice::from_ref(last))
                    .map_err(|_| missing("does not exist in the before image"))?;
                *target = value;
            }
            (Operation::Insert, Node::Object(members), Leg::Member(name), Some(value)) => {
                if members.iter().any(|(key, _)| key == name) {
                    return Err(missing("already exists"));
                }
                let at = members
                    .iter()
                    .position(|(key, _)| key_order(key, name) == Ordering::Greater)
                    .unwrap_or(members.len());
                members.insert(at, (name.clone(), value));
            }
            (Operation::Insert, Node::Array(items), Leg::Cell { index, from_end }, Some(value)) => {
                let (position, _) = array_position(*index, *from_end, items.len());
                items.insert(position, value);
            }
            (Operation::Remove, Node::Object(members), Leg::Member(name), None) => {
                let at = members
                    .iter()
                    .position(|(key, _)| key == name)
                    .ok_or_else(|| missing("does not exist in the before image"))?;
                members.remove(at);
            }
            (Operation::Remove, Node::Array(items), Leg::Cell { index, from_end }, None) => {
                let (position, within) = array_position(*index, *from_end, items.len());
                if !within {
                    return Err(missing("is past the end of the array"));
                }
                items.remove(position);
            }
            (_, parent, _, _) => {
                return Err(fail(format!(
                    "{} is {}, which the last leg cannot address",
                    path_text(parents),
                    parent.kind()
                )));
            }
        }
        Ok(())
    }
}

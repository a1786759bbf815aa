//! A marked YAML tree built from `saphyr-parser` events.
//!
//! Every node keeps the 1-based line:col of its first character and its char
//! range in the original text. Scalars are kept as text with their style;
//! typing (null, integer, string, ...) happens later, field by field, because
//! whether `4001` or `${SERVER_ID}` is acceptable depends on the field.
//!
//! Invariants: mapping keys are scalars and unique within their mapping
//! (violations are reported and the entry dropped); aliases are expanded to
//! copies of the anchored node (keeping the anchor's positions); the tree is
//! at most [`MAX_DEPTH`] deep and [`MAX_NODES`] large, so a hostile file
//! cannot exhaust the stack or memory with nested aliases.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::error::ErrorKind;

/// Deepest nesting accepted; real pipeline files are under 5 levels.
pub const MAX_DEPTH: usize = 64;
/// Most nodes accepted, counting alias copies.
pub const MAX_NODES: usize = 100_000;

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
    /// Char range of the node's text in the original input (includes quotes).
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug)]
pub struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// `!!str` and friends, as `str`; `Some("")` for a non-core tag (refused
    /// by the typing layer).
    pub tag: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// The result of type resolution of a scalar under the YAML 1.2 core schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

impl Plain {
    pub fn describe(self) -> &'static str {
        match self {
            Plain::Null => "nothing (null)",
            Plain::Bool => "a boolean",
            Plain::Int => "an integer",
            Plain::Float => "a number with a fraction",
            Plain::Str => "a string",
        }
    }
}

impl Scalar {
    /// Core-schema type of the scalar as written (quoted scalars and `!!str`
    /// are always strings).
    pub fn resolve(&self) -> Plain {
        match self.tag.as_deref() {
            Some("str") => return Plain::Str,
            Some("null") => return Plain::Null,
            _ => {}
        }
        if self.style != ScalarStyle::Plain {
            return Plain::Str;
        }
        resolve_plain(&self.value)
    }
}

pub fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Plain::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Plain::Float,
        _ => {}
    }
    if parse_int(text).is_some() || is_int_syntax(text) {
        return Plain::Int;
    }
    if is_float_syntax(text) {
        return Plain::Float;
    }
    Plain::Str
}

/// Integer syntax of the core schema, whether or not the value fits.
fn is_int_syntax(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = text.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Parses core-schema integer syntax (`123`, `-5`, `0x1f`, `0o17`).
pub fn parse_int(text: &str) -> Option<i128> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.starts_with(['+', '-']));
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i128::from_str_radix(oct, 8)
            .ok()
            .filter(|_| !oct.starts_with(['+', '-']));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_float_syntax(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

/// Whether the flow collection opened by `open` at char `index` is closed
/// somewhere in `chars` (brackets counted outside quotes and comments).
fn flow_closed(chars: &[char], index: usize, open: char) -> bool {
    let mut depth = 0usize;
    let mut i = index;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        match quote {
            Some('\'') if c == '\'' => {
                if chars.get(i + 1) == Some(&'\'') {
                    i += 1; // `''` inside single quotes
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '#' if i == 0 || chars[i - 1].is_whitespace() => {
                    while chars.get(i).is_some_and(|&c| c != '\n') {
                        i += 1;
                    }
                }
                '[' | '{' => depth += 1,
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return c == if open == '[' { ']' } else { '}' };
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    false
}

/// A problem found while building the tree.
#[derive(Debug)]
pub struct TreeError {
    pub pos: Pos,
    pub path: String,
    pub kind: ErrorKind,
    pub message: String,
}

type EventResult<'a> = (Event<'a>, Span);

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    errors: Vec<TreeError>,
    /// The text, for telling flow collections (`[`, `{`) from block ones.
    chars: Vec<char>,
    /// Flow collections open at this point: where and with what.
    open_flow: Vec<(Pos, usize, char)>,
}

/// Builds the tree of the single document in `text`. `Ok(None)` means the
/// document is empty. A syntax error ends parsing: the structure after it is
/// unknown, so it is returned alone (together with the non-fatal problems
/// already found before it). Non-fatal problems (duplicate or non-scalar
/// keys) are returned alongside the tree.
pub fn parse(text: &str) -> (Option<Node>, Vec<TreeError>) {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        errors: Vec::new(),
        chars: text.chars().collect(),
        open_flow: Vec::new(),
    };
    match builder.stream() {
        Ok(root) => (root, builder.errors),
        Err(fatal) => {
            builder.errors.push(fatal);
            (None, builder.errors)
        }
    }
}

fn syntax(pos: Pos, message: impl Into<String>) -> TreeError {
    TreeError {
        pos,
        path: String::new(),
        kind: ErrorKind::Syntax,
        message: message.into(),
    }
}

impl<'a> Builder<'a> {
    /// Notes a collection starting at char `index` if it is a flow one
    /// (its text starts with `open`); returns whether it was.
    fn enter_flow(&mut self, pos: Pos, index: usize, open: char) -> bool {
        let flow = self.chars.get(index) == Some(&open);
        if flow {
            self.open_flow.push((pos, index, open));
        }
        flow
    }

    fn leave_flow(&mut self, flow: bool) {
        if flow {
            self.open_flow.pop();
        }
    }

    fn next(&mut self) -> Result<EventResult<'a>, TreeError> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => {
                let mark = e.marker();
                let at = Pos {
                    line: mark.line(),
                    col: mark.col() + 1,
                };
                // The parser notices a missing `]`/`}` only where the text
                // stops making sense, often the next line; point at the
                // bracket that is never closed instead.
                if let Some(&(pos, _, open)) = self
                    .open_flow
                    .iter()
                    .find(|(_, index, open)| !flow_closed(&self.chars, *index, *open))
                {
                    let (close, what) = if open == '[' {
                        (']', "list")
                    } else {
                        ('}', "mapping")
                    };
                    return Err(syntax(
                        pos,
                        format!(
                            "YAML syntax error: this `{open}` is never closed: add `{close}` where the {what} ends (the parser stopped at line {}, column {}: {})",
                            at.line, at.col, e.info()
                        ),
                    ));
                }
                Err(syntax(at, format!("YAML syntax error: {}", e.info())))
            }
            None => Err(syntax(
                Pos { line: 1, col: 1 },
                "YAML syntax error: unexpected end of input",
            )),
        }
    }

    fn stream(&mut self) -> Result<Option<Node>, TreeError> {
        let mut root: Option<Option<Node>> = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(root.flatten()),
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(syntax(
                            Pos::of(&span),
                            "a pipeline file holds exactly one YAML document (found a second `---`)",
                        ));
                    }
                    let (event, span) = self.next()?;
                    let node = self.node(event, span, 0, "")?;
                    let empty = matches!(&node.kind, Kind::Scalar(s) if s.resolve() == Plain::Null
                        && s.style == ScalarStyle::Plain && s.tag.is_none());
                    root = Some(if empty { None } else { Some(node) });
                }
                Event::DocumentEnd => {}
                other => {
                    return Err(syntax(
                        Pos::of(&span),
                        format!("YAML syntax error: unexpected {other:?}"),
                    ))
                }
            }
        }
    }

    fn count(&mut self, span: &Span) -> Result<(), TreeError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(syntax(
                Pos::of(span),
                format!("document too large (more than {MAX_NODES} nodes, counting alias copies)"),
            ));
        }
        Ok(())
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        depth: usize,
        path: &str,
    ) -> Result<Node, TreeError> {
        if depth > MAX_DEPTH {
            return Err(syntax(
                Pos::of(&span),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(&span)?;
        let pos = Pos::of(&span);
        let start = span.start.index();
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        value: value.into_owned(),
                        style,
                        tag: tag.map(core_tag),
                    }),
                    pos,
                    start,
                    end: span.end.index(),
                };
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    // An alias costs as many nodes as its copy.
                    self.nodes += count_nodes(&node);
                    self.count(&span)?;
                    // Problems with the value as a whole are reported where
                    // it is used (`*name`); what is inside a copied
                    // collection keeps the anchor's positions.
                    node.pos = pos;
                    node.start = start;
                    node.end = span.end.index();
                    Ok(node)
                }
                None => Err(syntax(pos, "alias to an unknown anchor")),
            },
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag.map(core_tag) {
                    self.refuse_tag(pos, path, &tag, "seq");
                }
                let flow = self.enter_flow(pos, start, '[');
                let mut items = Vec::new();
                loop {
                    let (event, item_span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        self.leave_flow(flow);
                        let node = Node {
                            kind: Kind::Seq(items),
                            pos,
                            start,
                            end: item_span.end.index(),
                        };
                        self.anchor(anchor, &node);
                        return Ok(node);
                    }
                    let item_path = format!("{path}[{}]", items.len());
                    items.push(self.node(event, item_span, depth + 1, &item_path)?);
                }
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag.map(core_tag) {
                    self.refuse_tag(pos, path, &tag, "map");
                }
                let flow = self.enter_flow(pos, start, '{');
                let mut entries: Vec<Entry> = Vec::new();
                loop {
                    let (event, key_span) = self.next()?;
                    if let Event::MappingEnd = event {
                        self.leave_flow(flow);
                        let node = Node {
                            kind: Kind::Map(entries),
                            pos,
                            start,
                            end: key_span.end.index(),
                        };
                        self.anchor(anchor, &node);
                        return Ok(node);
                    }
                    let key_node = self.node(event, key_span, depth + 1, path)?;
                    let (value_event, value_span) = self.next()?;
                    let key = match &key_node.kind {
                        Kind::Scalar(s) if s.tag.is_none() || s.tag.as_deref() == Some("str") => {
                            Some(s.value.clone())
                        }
                        _ => None,
                    };
                    let key_path = match &key {
                        Some(k) if path.is_empty() => k.clone(),
                        Some(k) => format!("{path}.{k}"),
                        None => path.to_string(),
                    };
                    let mut value = self.node(value_event, value_span, depth + 1, &key_path)?;
                    // `key:` with nothing after it: point at the key, not at
                    // the empty space after the colon.
                    if value.start == value_span.end.index()
                        && matches!(&value.kind, Kind::Scalar(s) if s.value.is_empty())
                    {
                        value.pos = key_node.pos;
                    }
                    let Some(key) = key else {
                        self.errors.push(TreeError {
                            pos: key_node.pos,
                            path: path.to_string(),
                            kind: ErrorKind::WrongType,
                            message: "mapping keys must be plain strings".into(),
                        });
                        continue;
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == key) {
                        self.errors.push(TreeError {
                            pos: key_node.pos,
                            path: key_path,
                            kind: ErrorKind::DuplicateKey,
                            message: format!(
                                "duplicate key (first defined at line {}, column {})",
                                first.key_pos.line, first.key_pos.col
                            ),
                        });
                        continue;
                    }
                    entries.push(Entry {
                        key,
                        key_pos: key_node.pos,
                        value,
                    });
                }
            }
            other => Err(syntax(
                pos,
                format!("YAML syntax error: unexpected {other:?}"),
            )),
        }
    }

    fn anchor(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn refuse_tag(&mut self, pos: Pos, path: &str, tag: &str, allowed: &str) {
        if tag != allowed {
            self.errors.push(TreeError {
                pos,
                path: path.to_string(),
                kind: ErrorKind::WrongType,
                message: format!("unsupported YAML tag `!!{tag}` here"),
            });
        }
    }
}

/// `!!str` → `str`; any tag outside the core schema → `!name` (refused when
/// the scalar is typed).
fn core_tag(tag: Cow<'_, Tag>) -> String {
    if tag.is_yaml_core_schema() {
        tag.suffix.clone()
    } else {
        format!("!{}", tag.suffix.trim_start_matches('!'))
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(_) => 1,
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|e| 1 + count_nodes(&e.value))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_resolution() {
        assert_eq!(resolve_plain(""), Plain::Null);
        assert_eq!(resolve_plain("~"), Plain::Null);
        assert_eq!(resolve_plain("true"), Plain::Bool);
        assert_eq!(resolve_plain("yes"), Plain::Str);
        assert_eq!(resolve_plain("4001"), Plain::Int);
        assert_eq!(resolve_plain("-3"), Plain::Int);
        assert_eq!(resolve_plain("0x1F"), Plain::Int);
        assert_eq!(
            resolve_plain("99999999999999999999999999999999999999999"),
            Plain::Int
        );
        assert_eq!(resolve_plain("1.5"), Plain::Float);
        assert_eq!(resolve_plain("1e3"), Plain::Float);
        assert_eq!(resolve_plain(".5"), Plain::Float);
        assert_eq!(resolve_plain("."), Plain::Str);
        assert_eq!(resolve_plain("4MiB"), Plain::Str);
        assert_eq!(resolve_plain("0-1-100"), Plain::Str);
        assert_eq!(resolve_plain("mysql-bin.000003"), Plain::Str);
        assert_eq!(parse_int("0o17"), Some(15));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("0x-1"), None);
    }

    #[test]
    fn an_unclosed_bracket_is_named_where_it_opens() {
        let (_, errors) = parse("filter:\n  include: ['shop\\..*'\n  exclude: ['x]']\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].pos, Pos { line: 2, col: 12 });
        assert!(
            errors[0].message.starts_with(
                "YAML syntax error: this `[` is never closed: add `]` where the list ends (the parser stopped at line 3, column 3:"
            ),
            "{}",
            errors[0].message
        );
        // Closed brackets (also across lines, with brackets in quotes and
        // comments): the parser's own message and position.
        assert!(flow_closed(
            &"[a, # ]\n 'b]', \"c\\\"]\", [d]]"
                .chars()
                .collect::<Vec<_>>(),
            0,
            '['
        ));
        assert!(!flow_closed(&"{a: [b]".chars().collect::<Vec<_>>(), 0, '{'));
        let (_, errors) = parse("a: [1, 2]]\n");
        assert_eq!(errors.len(), 1);
        assert!(
            !errors[0].message.contains("never closed"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn positions_and_duplicates() {
        let (root, errors) = parse("a: 1\nb:\n  c: x\na: 2\n");
        let root = root.unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].key_pos, Pos { line: 2, col: 1 });
        let Kind::Map(inner) = &entries[1].value.kind else {
            panic!()
        };
        assert_eq!(inner[0].value.pos, Pos { line: 3, col: 6 });
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, ErrorKind::DuplicateKey);
        assert_eq!(errors[0].pos, Pos { line: 4, col: 1 });
    }

    #[test]
    fn empty_document_and_aliases() {
        assert!(parse("").0.is_none());
        assert!(parse("# only a comment\n").0.is_none());
        let (root, errors) = parse("a: &x [1, 2]\nb: *x\n");
        assert!(errors.is_empty());
        let Kind::Map(entries) = &root.unwrap().kind else {
            panic!()
        };
        assert!(matches!(&entries[1].value.kind, Kind::Seq(items) if items.len() == 2));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let (root, errors) = parse(&text);
        assert!(root.is_none());
        assert!(errors[0].message.contains("too large"), "{:?}", errors);
    }
}

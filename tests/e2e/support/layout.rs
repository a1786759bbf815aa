//! The workspace's layout rules, read from the sources themselves: module
//! dependencies inside each crate, file sizes, inline test modules.
//!
//! # Module graph
//!
//! A crate's modules come from its root (`src/lib.rs`, `src/main.rs`) by
//! following `mod name;` (to `name.rs` or `name/mod.rs`) and inline
//! `mod name { .. }`; `#[cfg(test)]` modules and `tests.rs` files are left
//! out (test code may use anything). A module depends on the module that
//! defines what it names through `crate::`, `self::`, `super::` or a child
//! module's name, in `use` trees and in paths anywhere in the code (not in
//! comments or strings). A name the target module only imports (`pub use
//! error::LoadError` at the crate root) counts as a dependency on the module
//! it comes from, so re-exports do not hide an edge.
//!
//! A cycle is a cycle among the children of one module: an edge between two
//! modules is lifted to the children of their lowest common ancestor that
//! contain them (`a::x → b::y` is `a → b`). A module and its own ancestors
//! or descendants never form a cycle: a parent declares and re-exports its
//! children, and children use the vocabulary their parent defines; what
//! must not happen is two siblings needing each other.
//!
//! # Sizes
//!
//! A file's size is its lines minus its inline `#[cfg(test)]` modules; test
//! files (`tests.rs`, anything under a `tests/` directory) do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's source tree, parsed.
#[derive(Debug, Default)]
pub struct CrateGraph {
    pub name: String,
    /// Module path (`a::b`, root `""`) → the file it is in (inline modules
    /// share their file).
    pub modules: BTreeMap<String, PathBuf>,
    /// `from → to → one place that makes the edge (file:line: path)`.
    pub edges: BTreeMap<String, BTreeMap<String, String>>,
}

/// Siblings that need each other: the members, under `parent`, and for
/// each edge among them one place that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub crate_name: String,
    pub parent: String,
    pub members: Vec<String>,
    pub evidence: Vec<String>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parent = if self.parent.is_empty() {
            "the crate root".to_string()
        } else {
            format!("`{}`", self.parent)
        };
        writeln!(
            f,
            "{}: modules {} under {parent} depend on each other:",
            self.crate_name,
            self.members.join(" ↔ ")
        )?;
        for e in &self.evidence {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of Rust source that matter here, each with its line;
/// comments, string, char and byte literals and lifetimes are skipped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident_start = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                }
            }
            b'"' => i = skip_string(b, i + 1, &mut line),
            b'r' | b'b' if raw_string_start(b, i).is_some() => {
                let (hashes, body) = raw_string_start(b, i).unwrap_or((0, i));
                i = body;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while i < b.len() && !b[i..].starts_with(&close) {
                    line += usize::from(b[i] == b'\n');
                    i += 1;
                }
                i += close.len();
            }
            b'b' if b.get(i + 1) == Some(&b'"') => i = skip_string(b, i + 2, &mut line),
            b'b' if b.get(i + 1) == Some(&b'\'') => i = skip_char(b, i + 1),
            b'\'' => i = skip_char(b, i),
            _ if ident_start(c) => {
                let start = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                out.push((Tok::Ident(src[start..i].to_string()), line));
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push((Tok::Path, line));
                i += 2;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                out.push((Tok::Punct(char::from(c)), line));
                i += 1;
            }
        }
    }
    out
}

/// After an opening `"` at `i`: the index after the closing one.
fn skip_string(b: &[u8], mut i: usize, line: &mut usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // An escaped newline continues the string on the next line.
                *line += usize::from(b.get(i + 1) == Some(&b'\n'));
                i += 2;
            }
            b'"' => return i + 1,
            c => {
                *line += usize::from(c == b'\n');
                i += 1;
            }
        }
    }
    i
}

/// `r"`, `r#"`, `br##"` at `i`: (number of `#`, index of the body).
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    // Not the tail of an identifier such as `for` or `bar`.
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    (b.get(j + hashes) == Some(&b'"')).then_some((hashes, j + hashes + 1))
}

/// A char literal (`'a'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`) at
/// the quote `i`: the index after it.
fn skip_char(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\\') {
        // Past the escaped character, so that `'\''` ends at its last quote.
        let mut j = i + 3;
        while j < b.len() && b[j] != b'\'' {
            j += 1;
        }
        return j + 1;
    }
    // `'x'` (x possibly multi-byte UTF-8).
    let mut j = i + 1;
    j += 1;
    while j < b.len() && (b[j] & 0xC0) == 0x80 {
        j += 1;
    }
    if b.get(j) == Some(&b'\'') {
        return j + 1;
    }
    // A lifetime: skip the quote only; the name reads as an identifier,
    // which never follows `::`.
    i + 1
}

// ---------------------------------------------------------------------------
// One file: modules, imports and references
// ---------------------------------------------------------------------------

/// What one module says: its child modules (declared), the names it
/// imports (`use`), the paths it references.
#[derive(Debug, Default)]
struct ModuleText {
    /// Child `mod name;` declarations (not inline, not `#[cfg(test)]`).
    declared: Vec<String>,
    /// Inline child modules, with their own text.
    inline: Vec<(String, ModuleText)>,
    /// Every path the module mentions, as written (`crate::a::B`,
    /// `super::x`, `child::y`), with its line.
    paths: Vec<(Vec<String>, usize)>,
    /// `use` imports: the name they bind → the full path (`*` for globs).
    imports: Vec<(String, Vec<String>)>,
}

fn parse_module(toks: &[(Tok, usize)]) -> ModuleText {
    let mut m = ModuleText::default();
    let mut i = 0;
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let punct = |k: usize, c: char| matches!(toks.get(k), Some((Tok::Punct(p), _)) if *p == c);
    while i < toks.len() {
        // `#[cfg(test)]` (also `#[cfg(all(test, ..))]`) before an item:
        // skip the item if it is a module.
        if punct(i, '#') && punct(i + 1, '[') {
            let end = matching(toks, i + 1, '[', ']');
            let attr: Vec<&str> = (i + 2..end).filter_map(ident).collect();
            let is_test = attr.first() == Some(&"cfg") && attr.contains(&"test");
            i = end + 1;
            if is_test {
                let mut k = i;
                while ident(k).is_some_and(|w| w == "pub") || punct(k, '(') {
                    k += if punct(k, '(') {
                        matching(toks, k, '(', ')') - k + 1
                    } else {
                        1
                    };
                }
                if ident(k) == Some("mod") {
                    i = skip_item(toks, k);
                }
            }
            continue;
        }
        match ident(i) {
            Some("mod") if ident(i + 1).is_some() => {
                let name = ident(i + 1).unwrap_or_default().to_string();
                if punct(i + 2, ';') {
                    m.declared.push(name);
                    i += 3;
                } else if punct(i + 2, '{') {
                    let end = matching(toks, i + 2, '{', '}');
                    m.inline.push((name, parse_module(&toks[i + 3..end])));
                    i = end + 1;
                } else {
                    i += 1;
                }
            }
            Some("use") => {
                let end = (i..toks.len())
                    .find(|&k| punct(k, ';'))
                    .unwrap_or(toks.len());
                let line = toks[i].1;
                let mut leaves = Vec::new();
                use_tree(&toks[i + 1..end], Vec::new(), &mut leaves);
                for (path, bound) in leaves {
                    m.paths.push((path.clone(), line));
                    m.imports.push((bound, path));
                }
                i = end + 1;
            }
            Some("pub") if punct(i + 1, '(') => {
                // `pub(crate)`, `pub(super)`, `pub(in path)`: visibility,
                // not a dependency.
                i = matching(toks, i + 1, '(', ')') + 1;
            }
            Some(first) if matches!(toks.get(i + 1), Some((Tok::Path, _))) => {
                // A path expression or type: `a::b::c`.
                let preceded_by_path = i > 0 && matches!(toks[i - 1].0, Tok::Path);
                let mut path = vec![first.to_string()];
                let mut k = i + 1;
                while matches!(toks.get(k), Some((Tok::Path, _))) {
                    match ident(k + 1) {
                        Some(seg) => {
                            path.push(seg.to_string());
                            k += 2;
                        }
                        None => break,
                    }
                }
                if !preceded_by_path {
                    m.paths.push((path, toks[i].1));
                }
                i = k;
            }
            _ => i += 1,
        }
    }
    m
}

/// Index of the token closing the `open` at `at`.
fn matching(toks: &[(Tok, usize)], at: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    for (k, (t, _)) in toks.iter().enumerate().skip(at) {
        match t {
            Tok::Punct(c) if *c == open => depth += 1,
            Tok::Punct(c) if *c == close => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len().saturating_sub(1)
}

/// The index after the item starting at `at` (ends at its `;` or its
/// `{ .. }`).
fn skip_item(toks: &[(Tok, usize)], at: usize) -> usize {
    for k in at..toks.len() {
        match toks[k].0 {
            Tok::Punct(';') => return k + 1,
            Tok::Punct('{') => return matching(toks, k, '{', '}') + 1,
            _ => {}
        }
    }
    toks.len()
}

/// Expands a use tree (`a::{b, c::d as e, f::*}`) into (path, bound name).
fn use_tree(toks: &[(Tok, usize)], prefix: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let mut path = prefix;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Ident(s) if s == "as" => {
                if let Some((Tok::Ident(alias), _)) = toks.get(i + 1) {
                    out.push((path.clone(), alias.clone()));
                }
                return;
            }
            Tok::Ident(s) => path.push(s.clone()),
            Tok::Path => {}
            Tok::Punct('*') => {
                let mut glob = path.clone();
                glob.push("*".into());
                out.push((glob, "*".into()));
                return;
            }
            Tok::Punct('{') => {
                let end = matching(toks, i, '{', '}');
                // Split the group at top-level commas.
                let mut start = i + 1;
                let mut depth = 0;
                for k in i + 1..=end {
                    match toks[k].0 {
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') if depth > 0 => depth -= 1,
                        Tok::Punct(',') | Tok::Punct('}') if depth == 0 => {
                            if start < k {
                                use_tree(&toks[start..k], path.clone(), out);
                            }
                            start = k + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
    match path.last().map(String::as_str) {
        // `use super::self` style and `{self}` bind the parent's name.
        Some("self") => {
            path.pop();
            if let Some(last) = path.last().cloned() {
                out.push((path, last));
            }
        }
        Some(last) => {
            let last = last.to_string();
            out.push((path, last));
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------
// A crate
// ---------------------------------------------------------------------------

/// Parses the crate whose root file is `root` (`src/lib.rs`, `src/main.rs`).
pub fn crate_graph(name: &str, root: &Path) -> CrateGraph {
    let mut texts: BTreeMap<String, (PathBuf, ModuleText)> = BTreeMap::new();
    load(root, String::new(), true, &mut texts);
    resolve(name, texts)
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

fn parent_of(module: &str) -> Option<&str> {
    if module.is_empty() {
        None
    } else {
        Some(module.rsplit_once("::").map_or("", |(p, _)| p))
    }
}

/// Reads `file` as module `path` and, recursively, its declared children.
/// `owns_dir`: the file is `lib.rs`, `main.rs` or `mod.rs`, so children
/// live beside it rather than in a directory named after it.
fn load(
    file: &Path,
    path: String,
    owns_dir: bool,
    out: &mut BTreeMap<String, (PathBuf, ModuleText)>,
) {
    let Ok(src) = std::fs::read_to_string(file) else {
        return;
    };
    let text = parse_module(&tokens(&src));
    let dir = if owns_dir {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        file.with_extension("")
    };
    add_inline(file, &path, &text, &dir, out);
    out.insert(path, (file.to_path_buf(), text));
}

fn add_inline(
    file: &Path,
    path: &str,
    text: &ModuleText,
    dir: &Path,
    out: &mut BTreeMap<String, (PathBuf, ModuleText)>,
) {
    for child in &text.declared {
        let flat = dir.join(format!("{child}.rs"));
        let nested = dir.join(child).join("mod.rs");
        if flat.is_file() {
            load(&flat, join(path, child), false, out);
        } else if nested.is_file() {
            load(&nested, join(path, child), true, out);
        }
    }
    for (child, inner) in &text.inline {
        let child_path = join(path, child);
        add_inline(file, &child_path, inner, &dir.join(child), out);
        out.insert(
            child_path,
            (
                file.to_path_buf(),
                ModuleText {
                    declared: Vec::new(),
                    inline: Vec::new(),
                    paths: inner.paths.clone(),
                    imports: inner.imports.clone(),
                },
            ),
        );
    }
}

fn resolve(name: &str, texts: BTreeMap<String, (PathBuf, ModuleText)>) -> CrateGraph {
    let modules: BTreeMap<String, PathBuf> = texts
        .iter()
        .map(|(m, (f, _))| (m.clone(), f.clone()))
        .collect();
    let imports: BTreeMap<&str, &[(String, Vec<String>)]> = texts
        .iter()
        .map(|(m, (_, t))| (m.as_str(), t.imports.as_slice()))
        .collect();
    let mut graph = CrateGraph {
        name: name.to_string(),
        modules,
        edges: BTreeMap::new(),
    };
    for (module, (file, text)) in &texts {
        for (path, line) in &text.paths {
            let Some(target) = target_module(&graph.modules, &imports, module, path, 0) else {
                continue;
            };
            if &target != module {
                graph
                    .edges
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| format!("{}:{line}: {}", file.display(), path.join("::")));
            }
        }
    }
    graph
}

/// The module that defines what `path` (written in `module`) names, if it
/// is in this crate.
fn target_module(
    modules: &BTreeMap<String, PathBuf>,
    imports: &BTreeMap<&str, &[(String, Vec<String>)]>,
    module: &str,
    path: &[String],
    depth: usize,
) -> Option<String> {
    let (mut at, rest) = match path.first().map(String::as_str)? {
        "crate" => (String::new(), &path[1..]),
        "self" => (module.to_string(), &path[1..]),
        "super" => {
            let mut at = module.to_string();
            let mut k = 0;
            while path.get(k).map(String::as_str) == Some("super") {
                at = parent_of(&at)?.to_string();
                k += 1;
            }
            (at, &path[k..])
        }
        // A child module's name (2018 paths are relative to the module).
        first if modules.contains_key(&join(module, first)) => (module.to_string(), path),
        _ => return None,
    };
    for (k, seg) in rest.iter().enumerate() {
        let child = join(&at, seg);
        if modules.contains_key(&child) {
            at = child;
            continue;
        }
        // An item of `at`, or a name `at` imports from elsewhere.
        if depth < 8 && seg != "*" {
            if let Some((_, from)) = imports
                .get(at.as_str())
                .and_then(|list| list.iter().find(|(bound, _)| bound == seg))
            {
                let mut redirected = from.clone();
                redirected.extend(rest[k + 1..].iter().cloned());
                if let Some(t) = target_module(modules, imports, &at, &redirected, depth + 1) {
                    return Some(t);
                }
            }
        }
        break;
    }
    Some(at)
}

/// Cycles among siblings (see the module docs for how edges are lifted).
pub fn cycles(graph: &CrateGraph) -> Vec<Cycle> {
    // parent → sibling edges (a → b with evidence)
    let mut lifted: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for (from, tos) in &graph.edges {
        for (to, evidence) in tos {
            let (a, b): (Vec<&str>, Vec<&str>) = (segments(from), segments(to));
            let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            if common == a.len() || common == b.len() {
                continue; // ancestor and descendant
            }
            let parent = a[..common].join("::");
            let (x, y) = (join(&parent, a[common]), join(&parent, b[common]));
            lifted
                .entry(parent)
                .or_default()
                .entry(x)
                .or_default()
                .entry(y)
                .or_insert_with(|| evidence.clone());
        }
    }
    let mut out = Vec::new();
    for (parent, edges) in &lifted {
        for scc in strongly_connected(edges) {
            if scc.len() < 2 {
                continue;
            }
            let members: BTreeSet<&String> = scc.iter().collect();
            let mut evidence = Vec::new();
            for from in &scc {
                for (to, e) in edges.get(from).into_iter().flatten() {
                    if members.contains(to) {
                        evidence.push(format!("{from} → {to}: {e}"));
                    }
                }
            }
            out.push(Cycle {
                crate_name: graph.name.clone(),
                parent: parent.clone(),
                members: scc,
                evidence,
            });
        }
    }
    out
}

fn segments(module: &str) -> Vec<&str> {
    if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    }
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            scc.sort();
            s.out.push(scc);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.keys().map(String::as_str)))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

// ---------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------

/// Lines of `src` outside inline `#[cfg(test)]` modules, and the length of
/// each such module (from its attribute to its closing brace).
pub fn code_and_test_lines(src: &str) -> (usize, Vec<usize>) {
    let toks = tokens(src);
    let total = src.lines().count();
    let mut tests = Vec::new();
    let punct = |k: usize, c: char| matches!(toks.get(k), Some((Tok::Punct(p), _)) if *p == c);
    let mut i = 0;
    while i < toks.len() {
        if punct(i, '#') && punct(i + 1, '[') {
            let end = matching(&toks, i + 1, '[', ']');
            let words: Vec<&str> = (i + 2..end)
                .filter_map(|k| match &toks[k].0 {
                    Tok::Ident(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            let is_test = words.first() == Some(&"cfg") && words.contains(&"test");
            let mod_at = end + 1;
            if is_test && matches!(&toks.get(mod_at), Some((Tok::Ident(s), _)) if s == "mod") {
                let stop = skip_item(&toks, mod_at);
                if punct(stop - 1, '}') {
                    tests.push(toks[stop - 1].1 - toks[i].1 + 1);
                }
                i = stop;
                continue;
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    let in_tests: usize = tests.iter().sum();
    (total - in_tests, tests)
}

/// Whether `path` (relative to the workspace) is test code by its name.
pub fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

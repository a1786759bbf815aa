//! JSON paths as `Json_path::to_string` writes them into diffs: parsing
//! (member and array legs only — MySQL refuses wildcards, `**` and ranges in
//! paths it updates), printing, and where an array leg points.

use std::fmt::Write as _;

use super::text::write_quoted;

/// One leg of a diff path. Diff paths only hold these two kinds: MySQL
/// refuses wildcards, `**` and ranges in paths it updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Leg {
    Member(String),
    /// `[index]`, or `[last-index]` when `from_end`.
    Cell {
        index: u32,
        from_end: bool,
    },
}

impl Leg {
    fn write(&self, out: &mut String) {
        match self {
            Leg::Member(name) => {
                out.push('.');
                let bare = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if bare {
                    out.push_str(name);
                } else {
                    write_quoted(out, name);
                }
            }
            Leg::Cell {
                index,
                from_end: false,
            } => {
                let _ = write!(out, "[{index}]");
            }
            Leg::Cell {
                index: 0,
                from_end: true,
            } => out.push_str("[last]"),
            Leg::Cell {
                index,
                from_end: true,
            } => {
                let _ = write!(out, "[last-{index}]");
            }
        }
    }
}

pub(super) fn path_text(legs: &[Leg]) -> String {
    let mut out = String::from("$");
    for leg in legs {
        leg.write(&mut out);
    }
    out
}

/// Where an array leg points in an array of `len` elements, and whether that
/// is an existing element (`Json_array_index`): before the start clamps to
/// 0, past the end to `len`.
pub(super) fn array_position(index: u32, from_end: bool, len: usize) -> (usize, bool) {
    let index = index as usize;
    if from_end {
        match len.checked_sub(index + 1) {
            Some(position) => (position, true),
            None => (0, false),
        }
    } else {
        (index.min(len), index < len)
    }
}

fn is_path_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a MySQL JSON path (`Json_path` syntax, as `Json_path::to_string`
/// writes it into diffs). Errors give the byte position in the path.
pub(super) fn parse_path(path: &str) -> Result<Vec<Leg>, (usize, String)> {
    let bytes = path.as_bytes();
    let skip_space = |mut pos: usize| {
        while pos < bytes.len() && is_path_space(bytes[pos]) {
            pos += 1;
        }
        pos
    };
    let mut pos = skip_space(0);
    if bytes.get(pos) != Some(&b'$') {
        return Err((pos, "a path starts with `$`".into()));
    }
    pos = skip_space(pos + 1);
    let mut legs = Vec::new();
    while pos < bytes.len() {
        match bytes[pos] {
            b'.' => {
                pos = skip_space(pos + 1);
                match bytes.get(pos) {
                    None => return Err((pos, "member name missing after `.`".into())),
                    Some(b'*') => return Err((pos, "wildcard `.*` cannot be applied".into())),
                    Some(b'"') => {
                        let start = pos;
                        pos += 1;
                        loop {
                            match bytes.get(pos) {
                                None => {
                                    return Err((start, "unterminated quoted member name".into()))
                                }
                                Some(b'\\') => pos += 2,
                                Some(b'"') => break,
                                Some(_) => pos += 1,
                            }
                        }
                        let name = unescape(&path[start + 1..pos])
                            .map_err(|(at, why)| (start + 1 + at, why))?;
                        legs.push(Leg::Member(name));
                        pos += 1;
                    }
                    Some(_) => {
                        let start = pos;
                        while pos < bytes.len()
                            && !is_path_space(bytes[pos])
                            && !matches!(bytes[pos], b'.' | b'[' | b'*')
                        {
                            pos += 1;
                        }
                        if pos == start {
                            return Err((pos, "member name missing after `.`".into()));
                        }
                        let name =
                            unescape(&path[start..pos]).map_err(|(at, why)| (start + at, why))?;
                        legs.push(Leg::Member(name));
                    }
                }
            }
            b'[' => {
                pos = skip_space(pos + 1);
                if bytes.get(pos) == Some(&b'*') {
                    return Err((pos, "wildcard `[*]` cannot be applied".into()));
                }
                let mut from_end = false;
                let mut index = 0u32;
                let mut need_number = true;
                if bytes[pos..].starts_with(b"last") {
                    from_end = true;
                    pos = skip_space(pos + 4);
                    if bytes.get(pos) == Some(&b'-') {
                        pos = skip_space(pos + 1);
                    } else {
                        need_number = false;
                    }
                }
                if need_number {
                    let start = pos;
                    let mut value = 0u64;
                    while let Some(digit) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
                        value = value * 10 + u64::from(digit - b'0');
                        if value > u64::from(u32::MAX) {
                            return Err((start, "array index exceeds 4294967295".into()));
                        }
                        pos += 1;
                    }
                    if pos == start {
                        return Err((pos, "array index expected".into()));
                    }
                    index = value as u32;
                }
                let before_space = pos;
                pos = skip_space(pos);
                if pos > before_space && bytes[pos..].starts_with(b"to") {
                    return Err((pos, "array ranges cannot be applied".into()));
                }
                if bytes.get(pos) != Some(&b']') {
                    return Err((pos, "`]` expected".into()));
                }
                pos += 1;
                legs.push(Leg::Cell { index, from_end });
            }
            b'*' => return Err((pos, "ellipsis `**` cannot be applied".into())),
            _ => return Err((pos, "`.` or `[` expected".into())),
        }
        pos = skip_space(pos);
    }
    Ok(legs)
}

/// The content of a JSON string literal (between the quotes), unescaped.
fn unescape(s: &str) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let escaped = match chars.next() {
                    Some((_, '"')) => '"',
                    Some((_, '\\')) => '\\',
                    Some((_, '/')) => '/',
                    Some((_, 'b')) => '\u{8}',
                    Some((_, 'f')) => '\u{c}',
                    Some((_, 'n')) => '\n',
                    Some((_, 'r')) => '\r',
                    Some((_, 't')) => '\t',
                    Some((_, 'u')) => {
                        let high = hex4(&mut chars).ok_or((at, "bad \\u escape".to_string()))?;
                        let code = if (0xd800..0xdc00).contains(&high) {
                            let low = match (chars.next(), chars.next()) {
                                (Some((_, '\\')), Some((_, 'u'))) => hex4(&mut chars),
                                _ => None,
                            }
                            .filter(|low| (0xdc00..0xe000).contains(low))
                            .ok_or((at, "unpaired UTF-16 surrogate".to_string()))?;
                            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                        } else {
                            high
                        };
                        char::from_u32(code).ok_or((at, "unpaired UTF-16 surrogate".to_string()))?
                    }
                    _ => return Err((at, "bad escape sequence".into())),
                };
                out.push(escaped);
            }
            '"' => return Err((at, "unescaped `\"`".into())),
            c if u32::from(c) < 0x20 => return Err((at, "unescaped control character".into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    (0..4).try_fold(0u32, |acc, _| {
        let (_, c) = chars.next()?;
        Some(acc * 16 + c.to_digit(16)?)
    })
}

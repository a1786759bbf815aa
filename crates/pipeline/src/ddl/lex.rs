//! The lexer: significant tokens of a statement and the spans of executable
//! comment markers (see "Why a lexer is enough" in [`super`]).

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokKind {
    /// A bare word: keyword or unquoted identifier.
    Word,
    /// A backquoted identifier, unescaped.
    Quoted(String),
    /// A single- or double-quoted string.
    Str,
    /// A run of digits.
    Num,
    /// Any other single byte.
    Punct(u8),
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: TokKind,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) struct Lexed {
    /// Significant tokens (no whitespace, comments or markers).
    pub(super) tokens: Vec<Token>,
    /// Byte spans of executable comment markers (`/*!50100`, `/*M!`, `*/`).
    pub(super) markers: Vec<(usize, usize)>,
}

/// Bytes of bare words: ASCII letters, digits, `_`, `$` and any non-ASCII
/// byte (so a word always covers whole UTF-8 sequences and every token
/// boundary is a char boundary).
pub(super) fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

pub(super) fn lex(sql: &str) -> Result<Lexed, &'static str> {
    let b = sql.as_bytes();
    let n = b.len();
    let mut tokens = Vec::new();
    let mut markers = Vec::new();
    let mut in_exec = false;
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#'
            || (c == b'-'
                && b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|&d| d.is_ascii_whitespace() || d.is_ascii_control()))
        {
            i = b[i..]
                .iter()
                .position(|&d| d == b'\n')
                .map_or(n, |p| i + p + 1);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            if let Some(len) = exec_comment_open(&b[i..]) {
                if in_exec {
                    return Err("nested executable comment");
                }
                markers.push((i, i + len));
                in_exec = true;
                i += len;
            } else {
                match find(b, i + 2, b"*/") {
                    Some(j) => i = j + 2,
                    None => return Err("unterminated comment"),
                }
            }
        } else if c == b'*' && in_exec && b.get(i + 1) == Some(&b'/') {
            markers.push((i, i + 2));
            in_exec = false;
            i += 2;
        } else if c == b'`' {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                let close = b[j..]
                    .iter()
                    .position(|&d| d == b'`')
                    .map(|p| j + p)
                    .ok_or("unterminated quoted identifier")?;
                value.push_str(sql.get(j..close).ok_or("invalid identifier")?);
                if b.get(close + 1) == Some(&b'`') {
                    value.push('`');
                    j = close + 2;
                } else {
                    j = close + 1;
                    break;
                }
            }
            tokens.push(Token {
                kind: TokKind::Quoted(value),
                start: i,
                end: j,
            });
            i = j;
        } else if c == b'\'' || c == b'"' {
            let mut j = i + 1;
            loop {
                match b.get(j) {
                    None => return Err("unterminated string"),
                    Some(b'\\') => j += 2,
                    Some(&d) if d == c => {
                        if b.get(j + 1) == Some(&c) {
                            j += 2;
                        } else {
                            j += 1;
                            break;
                        }
                    }
                    Some(_) => j += 1,
                }
            }
            tokens.push(Token {
                kind: TokKind::Str,
                start: i,
                end: j,
            });
            i = j;
        } else if is_word_byte(c) {
            let j = b[i..]
                .iter()
                .position(|&d| !is_word_byte(d))
                .map_or(n, |p| i + p);
            let kind = if b[i..j].iter().all(u8::is_ascii_digit) {
                TokKind::Num
            } else {
                TokKind::Word
            };
            tokens.push(Token {
                kind,
                start: i,
                end: j,
            });
            i = j;
        } else {
            tokens.push(Token {
                kind: TokKind::Punct(c),
                start: i,
                end: i + 1,
            });
            i += 1;
        }
    }
    if in_exec {
        return Err("unterminated executable comment");
    }
    Ok(Lexed { tokens, markers })
}

/// Length of an executable comment opener at the start of `b`
/// (`/*!`, `/*M!`, with an optional 5- or 6-digit version), if it is one.
pub(super) fn exec_comment_open(b: &[u8]) -> Option<usize> {
    let prefix = if b.starts_with(b"/*!") {
        3
    } else if b.starts_with(b"/*M!") {
        4
    } else {
        return None;
    };
    let digits = b[prefix..]
        .iter()
        .take_while(|d| d.is_ascii_digit())
        .count();
    let version = match digits {
        5 => 5,
        d if d >= 6 => 6,
        _ => 0,
    };
    Some(prefix + version)
}

pub(super) fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

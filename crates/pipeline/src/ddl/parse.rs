//! Reading table names and keywords from the token stream.

use super::lex::{TokKind, Token};

// Parser helpers

/// A table name as written: `[schema .] table`, with its byte span.
#[derive(Debug, Clone)]
pub(super) struct NameRef {
    pub(super) schema: Option<String>,
    pub(super) table: String,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) struct Parser<'s> {
    pub(super) sql: &'s str,
    pub(super) toks: &'s [Token],
    pub(super) pos: usize,
}

impl<'s> Parser<'s> {
    pub(super) fn peek(&self) -> Option<&'s Token> {
        self.toks.get(self.pos)
    }

    pub(super) fn bump(&mut self) {
        self.pos += 1;
    }

    pub(super) fn text(&self, t: &Token) -> &'s str {
        self.sql.get(t.start..t.end).unwrap_or("")
    }

    pub(super) fn is_kw(&self, t: Option<&Token>, kw: &str) -> bool {
        matches!(t, Some(t) if t.kind == TokKind::Word && self.text(t).eq_ignore_ascii_case(kw))
    }

    pub(super) fn at_kw(&self, kw: &str) -> bool {
        self.is_kw(self.peek(), kw)
    }

    pub(super) fn at_any(&self, kws: &[&str]) -> bool {
        kws.iter().any(|kw| self.at_kw(kw))
    }

    pub(super) fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.at_kw(kw);
        if hit {
            self.bump();
        }
        hit
    }

    pub(super) fn eat_any(&mut self, kws: &[&str]) -> bool {
        let hit = self.at_any(kws);
        if hit {
            self.bump();
        }
        hit
    }

    /// Consumes the keywords `kws` in sequence, or nothing.
    pub(super) fn eat_seq(&mut self, kws: &[&str]) -> bool {
        let hit = kws
            .iter()
            .enumerate()
            .all(|(k, kw)| self.is_kw(self.toks.get(self.pos + k), kw));
        if hit {
            self.pos += kws.len();
        }
        hit
    }

    pub(super) fn at_punct(&self, c: u8) -> bool {
        matches!(self.peek(), Some(t) if t.kind == TokKind::Punct(c))
    }

    pub(super) fn eat_punct(&mut self, c: u8) -> bool {
        let hit = self.at_punct(c);
        if hit {
            self.bump();
        }
        hit
    }

    pub(super) fn prev_is_kw(&self, kw: &str) -> bool {
        self.pos
            .checked_sub(1)
            .is_some_and(|p| self.is_kw(self.toks.get(p), kw))
    }

    /// A bare or backquoted identifier: (value, start, end).
    pub(super) fn ident(&mut self) -> Option<(String, usize, usize)> {
        let t = self.peek()?;
        let value = match &t.kind {
            TokKind::Word => self.text(t).to_string(),
            TokKind::Quoted(v) if !v.is_empty() => v.clone(),
            _ => return None,
        };
        self.bump();
        Some((value, t.start, t.end))
    }

    /// `ident [. ident]`; consumes nothing if there is no name here.
    pub(super) fn name(&mut self) -> Option<NameRef> {
        let save = self.pos;
        let result = self.name_inner();
        if result.is_none() {
            self.pos = save;
        }
        result
    }

    pub(super) fn name_inner(&mut self) -> Option<NameRef> {
        let (first, start, end) = self.ident()?;
        if !self.eat_punct(b'.') {
            return Some(NameRef {
                schema: None,
                table: first,
                start,
                end,
            });
        }
        let (table, _, end) = self.ident()?;
        Some(NameRef {
            schema: Some(first),
            table,
            start,
            end,
        })
    }

    /// A name, or a "cannot parse" reason mentioning where it was expected.
    pub(super) fn expect_name(&mut self, after: &str) -> Result<NameRef, String> {
        self.name()
            .ok_or_else(|| format!("cannot parse: expected a table name after {after}"))
    }

    /// `( name [, name ...] )`; consumes nothing if that is not what follows.
    pub(super) fn paren_name_list(&mut self) -> Option<Vec<NameRef>> {
        let save = self.pos;
        let result = (|| {
            if !self.eat_punct(b'(') {
                return None;
            }
            let mut names = vec![self.name()?];
            while self.eat_punct(b',') {
                names.push(self.name()?);
            }
            self.eat_punct(b')').then_some(names)
        })();
        if result.is_none() {
            self.pos = save;
        }
        result
    }
}

/// Statement kind words for the "not a table statement" reason.
pub(super) const OBJECT_WORDS: &[&str] = &[
    "DATABASE",
    "SCHEMA",
    "VIEW",
    "TRIGGER",
    "PROCEDURE",
    "FUNCTION",
    "EVENT",
    "USER",
    "ROLE",
    "SEQUENCE",
    "SERVER",
    "TABLESPACE",
    "LOGFILE",
    "PACKAGE",
    "INSTANCE",
    "RESOURCE",
    "SPATIAL",
    "TABLE",
    "INDEX",
];

/// "not a table statement (CREATE VIEW)": for CREATE/ALTER/DROP/RENAME, the
/// first object word among the next few words (skipping `DEFINER = ...`,
/// `ALGORITHM = ...` and the like), else the next word.
pub(super) fn not_table(p: &Parser<'_>, first: &str) -> String {
    let mut label = first.to_string();
    if matches!(first, "CREATE" | "ALTER" | "DROP" | "RENAME") {
        let words: Vec<&str> = p.toks[p.pos.min(p.toks.len())..]
            .iter()
            .take(16)
            .filter(|t| t.kind == TokKind::Word)
            .map(|t| p.text(t))
            .collect();
        let object = words
            .iter()
            .find(|w| OBJECT_WORDS.iter().any(|o| o.eq_ignore_ascii_case(w)))
            .or(words.first());
        if let Some(object) = object {
            label.push(' ');
            label.push_str(&object.to_ascii_uppercase());
        }
    }
    format!("not a table statement ({label})")
}

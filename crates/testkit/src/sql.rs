//! SQL text for tests: quoted identifiers and string literals, and text cut
//! to a readable length for messages.

/// A quoted identifier.
pub fn q(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `schema`.`table`
pub fn qt(schema: &str, table: &str) -> String {
    format!("{}.{}", q(schema), q(table))
}

/// A string literal (for the default sql_mode, i.e. backslash escapes on).
pub fn sql_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `s` cut to `max` characters, with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

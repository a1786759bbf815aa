//! `${VAR}` interpolation in scalar values.
//!
//! Syntax: `${NAME}` is replaced by the environment variable `NAME`
//! (`[A-Za-z_][A-Za-z0-9_]*`); `${NAME:-default}` uses the literal text
//! `default` when `NAME` is unset or empty; `$${` is a literal `${`. Any
//! other `$` is left alone, so regexes ending in `$` and route templates
//! such as `shop_copy.$1` need no escaping.
//!
//! Interpolation runs on scalar *values* after the YAML has been parsed, never
//! on the raw text: a value cannot inject YAML structure, and positions of
//! every other error keep pointing at the original text. Keys are never
//! interpolated.

/// One problem with a `${...}` reference: which reference (0-based, counting
/// `${` openings but not `$${` escapes) and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct RefError {
    pub index: usize,
    pub message: String,
    /// A well-formed reference to a variable that is not set (as opposed to
    /// a malformed one).
    pub undefined: bool,
}

/// Replaces references in `value`. Returns the new text and whether any
/// reference or escape was present (the value then came from the
/// environment and must not be echoed in messages), or every problem found.
pub fn interpolate(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool), Vec<RefError>> {
    if !value.contains("${") {
        return Ok((value.to_string(), false));
    }
    let mut out = String::with_capacity(value.len());
    let mut errors = Vec::new();
    let mut index = 0;
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let this = index;
            index += 1;
            let Some(close) = after.find('}') else {
                errors.push(RefError {
                    index: this,
                    message:
                        "unterminated `${` (close it with `}`, or write `$${` for a literal `${`)"
                            .into(),
                    undefined: false,
                });
                rest = "";
                break;
            };
            let inner = &after[..close];
            let (name, default) = match inner.find(":-") {
                Some(i) => (&inner[..i], Some(&inner[i + 2..])),
                None => (inner, None),
            };
            if !valid_name(name) {
                errors.push(RefError {
                    index: this,
                    message: format!(
                        "invalid variable name `{name}` in `${{{inner}}}` (names are letters, digits and `_`; write `$${{` for a literal `${{`)"
                    ),
                    undefined: false,
                });
            } else {
                match (env(name), default) {
                    (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(RefError {
                        index: this,
                        message: format!(
                            "undefined variable `{name}` (set it in the environment, give a default with `${{{name}:-...}}`, or write `$${{` for a literal `${{`)"
                        ),
                        undefined: true,
                    }),
                }
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok((out, true))
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Char offsets (within `raw`) of each `${` opening, skipping `$${` escapes,
/// scanned the same way as [`interpolate`] so that the n-th offset belongs to
/// the n-th reference when `raw` is the scalar's source text.
pub fn reference_offsets(raw: &[char]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == '$' && raw.get(i + 1) == Some(&'$') && raw.get(i + 2) == Some(&'{') {
            i += 3;
        } else if raw[i] == '$' && raw.get(i + 1) == Some(&'{') {
            offsets.push(i);
            match raw[i + 2..].iter().position(|&c| c == '}') {
                Some(close) => i += 2 + close + 1,
                None => break,
            }
        } else {
            i += 1;
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PASS" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("${NOT_EXPANDED}".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_and_escapes() {
        assert_eq!(interpolate("plain", &env), Ok(("plain".into(), false)));
        assert_eq!(
            interpolate("mysql://u:${PASS}@h", &env),
            Ok(("mysql://u:s3cr3t@h".into(), true))
        );
        assert_eq!(interpolate("$${PASS}", &env), Ok(("${PASS}".into(), true)));
        assert_eq!(interpolate("a$$b$1$", &env), Ok(("a$$b$1$".into(), false)));
        assert_eq!(
            interpolate("${PASS}${PASS}", &env),
            Ok(("s3cr3ts3cr3t".into(), true))
        );
        assert_eq!(interpolate("${NOPE:-x:y}", &env), Ok(("x:y".into(), true)));
        assert_eq!(interpolate("${EMPTY:-d}", &env), Ok(("d".into(), true)));
        assert_eq!(interpolate("${EMPTY}", &env), Ok(("".into(), true)));
        // Values are not re-scanned.
        assert_eq!(
            interpolate("${DOLLAR}", &env),
            Ok(("${NOT_EXPANDED}".into(), true))
        );
    }

    #[test]
    fn reports_every_bad_reference() {
        let errors = interpolate("${A} ${PASS} ${1x} ${B", &env).unwrap_err();
        let indices: Vec<usize> = errors.iter().map(|e| e.index).collect();
        assert_eq!(indices, [0, 2, 3]);
        assert!(errors[0].message.starts_with("undefined variable `A`"));
        assert!(errors[1].message.starts_with("invalid variable name `1x`"));
        assert!(errors[2].message.starts_with("unterminated"));
    }

    #[test]
    fn offsets_match_references() {
        let raw: Vec<char> = "\"a $${x} ${B} ${C}\"".chars().collect();
        assert_eq!(reference_offsets(&raw), [9, 14]);
    }
}

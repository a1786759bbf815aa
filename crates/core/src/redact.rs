//! Secrets never leave the process: URLs are masked before they are logged,
//! shown in status output or put into an error message.

/// Replaces the password in a `scheme://user:password@host...` URL with `***`
/// — in a URL, or in every URL within a message. Anything that does not look
/// like a URL with credentials is returned as is.
///
/// In a message the URL is followed by text that may hold another `@`: the
/// server's own `Access denied for user 'repl'@'10.0.0.1'`. The userinfo ends
/// at the last `@` before the first `/` that has no whitespace before it (a
/// URL has none); only when no `@` qualifies — a password with spaces — is
/// everything up to the last `@` masked, so a password is never shown.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        out.push_str(&rest[..scheme_end + 3]);
        let after = &rest[scheme_end + 3..];
        // Passwords may themselves contain '@' (not percent-encoded).
        let authority = &after[..after.find('/').unwrap_or(after.len())];
        let word = authority
            .find(char::is_whitespace)
            .map_or(authority, |end| &authority[..end]);
        let at = word.rfind('@').or_else(|| authority.rfind('@'));
        match at.and_then(|at| authority[..at].find(':').map(|colon| (at, colon))) {
            Some((at, colon)) => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                rest = &after[at..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            redact_url("mysql://repl:s3cret@127.0.0.1:3306/db"),
            "mysql://repl:***@127.0.0.1:3306/db"
        );
        assert_eq!(
            redact_url("mysql://repl:p@ss@host:1"),
            "mysql://repl:***@host:1"
        );
        assert_eq!(redact_url("mysql://root@host:1"), "mysql://root@host:1");
        assert_eq!(redact_url("http://127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn masks_urls_in_messages_and_keeps_the_rest() {
        assert_eq!(
            redact_url(
                "connect to mysql://repl:pw@127.0.0.1:13306: ERROR 1045 (28000): Access denied for user 'repl'@'127.0.0.1' (using password: YES)"
            ),
            "connect to mysql://repl:***@127.0.0.1:13306: ERROR 1045 (28000): Access denied for user 'repl'@'127.0.0.1' (using password: YES)"
        );
        assert_eq!(
            redact_url("from mysql://a:x@h1:1 to mysql://b:y@h2:2/db"),
            "from mysql://a:***@h1:1 to mysql://b:***@h2:2/db"
        );
        // A password with a space: everything up to the last '@' goes.
        assert_eq!(
            redact_url("mysql://u:pa ss@h:1 failed"),
            "mysql://u:***@h:1 failed"
        );
    }
}

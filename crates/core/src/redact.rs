//! Secrets never leave the process: URLs are masked before they are logged,
//! shown in status output or put into an error message.

/// Replaces the password in a `scheme://user:password@host...` URL with `***`.
/// Anything that does not look like a URL with credentials is returned as is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    // The userinfo ends at the last '@' before the path: passwords may
    // themselves contain '@' if the operator did not percent-encode them.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
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
}

//! Configuration errors: one line each, `FILE:LINE:COL: key.path: message`.
//!
//! Positions are 1-based lines and columns counted in characters of the
//! *original* file text (before `${VAR}` interpolation), so an editor's
//! "go to line:col" lands on the offending key or value. Errors that have no
//! position (the file cannot be read) print as `FILE: message`; errors that
//! have no key path (YAML syntax, encoding) omit that part.

use std::fmt;

/// What class of problem an error is. Lets callers and tests match on the
/// kind without parsing the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not valid UTF-8.
    Encoding,
    /// The text is not well-formed YAML (or uses YAML features we refuse,
    /// such as several documents in one file).
    Syntax,
    /// A key that this format does not define.
    UnknownKey,
    /// The same key twice in one mapping.
    DuplicateKey,
    /// A value of the wrong YAML type (a list where a string belongs, ...).
    WrongType,
    /// A required key is absent.
    MissingKey,
    /// `${VAR}` names a variable that is not set (or is malformed).
    UndefinedVariable,
    /// A regular expression that does not compile, or a route template that
    /// refers to a group the expression does not have.
    BadRegex,
    /// A value of the right type that is not acceptable (bad duration, size,
    /// URL, name, out-of-range number, conflicting keys, ...).
    InvalidValue,
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or other origin) as given by the caller.
    pub origin: String,
    /// 1-based line and column (in characters) in the original text; `None`
    /// only when the file could not be read at all.
    pub position: Option<(usize, usize)>,
    /// Key path such as `source.server_id` or `routes[1].to` (list indices
    /// are 0-based); empty for file-level errors.
    pub path: String,
    /// The class of problem.
    pub kind: ErrorKind,
    /// Human-readable explanation; never contains an interpolated secret.
    pub message: String,
}

impl ConfigError {
    /// The 1-based line, if the error has a position.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|(line, _)| line)
    }

    /// The 1-based column, if the error has a position.
    pub fn col(&self) -> Option<usize> {
        self.position.map(|(_, col)| col)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, sorted by position.
///
/// Never empty when returned as an `Err`. `Display` prints one error per line
/// (no trailing newline), ready for `sluice validate` to print as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Sorts by position (errors without a position first) and removes exact
    /// duplicates (an alias used twice must not report its problem twice).
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.position.unwrap_or((0, 0)));
        errors.dedup();
        ConfigErrors { errors }
    }

    /// The errors, sorted by position.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are no errors (never true for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors in position order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            fmt::Display::fmt(error, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

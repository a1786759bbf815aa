//! Which sections of a pipeline file a command uses, and the `${VAR}`s it can
//! do without.
//!
//! The key decision: an undefined `${VAR}` is an error only in a section the
//! command actually uses. `sluice status` reads etcd and the target's
//! checkpoint, so it must not need the source's password; `sluice validate`
//! connects nowhere, so it needs none of them. Every other check still runs
//! on every section (a typo in `source` is still an error for `status`).
//!
//! How: while the file is typed, an undefined variable in a section outside
//! [`Uses`] is *deferred* — recorded with its `FILE:LINE:COL` and replaced by
//! the empty string (a typed field that then cannot be read takes its
//! smallest valid value) — so the section still builds and the command runs.
//! A deferred value is never used: the command asks [`Loaded::require`] before
//! it touches a section, which refuses with the recorded errors. If the value
//! is needed to check the section at all (a whole URL from `${SRC_URL}`), the
//! deferred note becomes the error it would have been.

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Pipeline;

/// The top-level sections of a pipeline file a command reads. Undefined
/// variables anywhere else are deferred (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uses {
    /// Every section (`sluice run`): any undefined variable is an error.
    All,
    /// Only these top-level keys (`name`, `source`, `target`, `coordination`,
    /// `admin`, `alarms`, …); `&[]` for a command that connects nowhere.
    Only(&'static [&'static str]),
}

impl Uses {
    /// What `sluice status` and `sluice positions` read: the position store
    /// and the target's checkpoint.
    pub const STORE_AND_TARGET: Uses = Uses::Only(&["name", "coordination", "target", "node"]);
    /// Nothing (`sluice validate`, and `sluice check`, which asks per server).
    pub const NOTHING: Uses = Uses::Only(&[]);

    /// Whether an undefined variable at `path` may be deferred.
    pub(crate) fn defers(&self, path: &str) -> bool {
        match self {
            Uses::All => false,
            Uses::Only(sections) => !sections.contains(&section_of(path)),
        }
    }
}

/// The top-level key of a key path: `source` for `source.urls[1]`.
pub fn section_of(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

/// A validated pipeline and the undefined variables of the sections the
/// command said it does not use.
#[derive(Debug)]
pub struct Loaded {
    pub pipeline: Pipeline,
    /// One error per deferred `${VAR}` (kind
    /// [`UndefinedVariable`](crate::ErrorKind::UndefinedVariable)), sorted by
    /// position.
    pub unresolved: Vec<ConfigError>,
}

impl Loaded {
    /// The deferred variables of one top-level section.
    pub fn unresolved_in<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a ConfigError> {
        self.unresolved
            .iter()
            .filter(move |e| section_of(&e.path) == section)
    }

    /// Refuses, with every deferred variable they hold, when any of
    /// `sections` has one; call before using a section outside [`Uses`].
    pub fn require(&self, sections: &[&str]) -> Result<&Pipeline, ConfigErrors> {
        let missing: Vec<ConfigError> = self
            .unresolved
            .iter()
            .filter(|e| sections.contains(&section_of(&e.path)))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(&self.pipeline)
        } else {
            Err(ConfigErrors::new(missing))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_for, ErrorKind};

    const FILE: &str = "\
name: shop
source:
  url: \"mysql://repl:${SRC_PASSWORD}@127.0.0.1:13306\"
  server_id: ${SERVER_ID}
target:
  url: \"mysql://root:${DST_PASSWORD:-}@127.0.0.1:13307\"
coordination:
  etcd: {endpoints: [\"http://127.0.0.1:23790\"]}
admin:
  listen: \"127.0.0.1:9090\"
  token: ${ADMIN_TOKEN}
";

    fn nothing_set(_: &str) -> Option<String> {
        None
    }

    fn lines(e: &ConfigErrors) -> Vec<String> {
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn status_does_without_the_source_password() {
        let loaded = parse_for(FILE, "p.yaml", &nothing_set, Uses::STORE_AND_TARGET)
            .unwrap_or_else(|e| panic!("{e}"));
        let unresolved: Vec<String> = loaded.unresolved.iter().map(ToString::to_string).collect();
        assert_eq!(unresolved.len(), 3, "{unresolved:#?}");
        assert!(
            unresolved[0].starts_with(
                "p.yaml:3:22: source.url: undefined variable `SRC_PASSWORD` (set it in the environment"
            ),
            "{unresolved:#?}"
        );
        assert!(unresolved[1]
            .starts_with("p.yaml:4:14: source.server_id: undefined variable `SERVER_ID`"));
        assert!(unresolved[2]
            .starts_with("p.yaml:11:10: admin.token: undefined variable `ADMIN_TOKEN`"));
        assert_eq!(loaded.unresolved_in("source").count(), 2);
        assert_eq!(loaded.unresolved_in("target").count(), 0);
        assert!(loaded.require(&["target", "coordination"]).is_ok());
        let refused = loaded.require(&["source"]).unwrap_err();
        assert_eq!(refused.len(), 2);
        assert!(refused
            .iter()
            .all(|e| e.kind == ErrorKind::UndefinedVariable));
        assert_eq!(loaded.pipeline.target.url.port(), 13307);
    }

    #[test]
    fn run_needs_every_variable() {
        let errors = parse_for(FILE, "p.yaml", &nothing_set, Uses::All).unwrap_err();
        let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [ErrorKind::UndefinedVariable; 3], "{}", errors);
    }

    #[test]
    fn a_used_section_still_needs_its_variables() {
        let text = FILE.replace("${DST_PASSWORD:-}", "${DST_PASSWORD}");
        let errors = parse_for(&text, "p.yaml", &nothing_set, Uses::STORE_AND_TARGET).unwrap_err();
        assert_eq!(
            lines(&errors),
            ["p.yaml:6:22: target.url: undefined variable `DST_PASSWORD` (set it in the environment, give a default with `${DST_PASSWORD:-...}`, or write `$${` for a literal `${`)"]
        );
    }

    #[test]
    fn a_value_that_cannot_be_checked_without_its_variable_is_an_error() {
        // A whole URL from the environment: without it there is no URL to
        // check, so the undefined variable is reported (and only it).
        let text = FILE.replace(
            "\"mysql://repl:${SRC_PASSWORD}@127.0.0.1:13306\"",
            "${SRC_URL}",
        );
        let errors = parse_for(&text, "p.yaml", &nothing_set, Uses::STORE_AND_TARGET).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(
            lines(&errors)[0].starts_with("p.yaml:3:8: source.url: undefined variable `SRC_URL`")
        );
    }

    #[test]
    fn other_problems_in_unused_sections_are_still_errors() {
        let text = FILE
            .replace("server_id:", "sever_id:")
            .replace("${SRC_PASSWORD}", "${1x}");
        let errors = parse_for(&text, "p.yaml", &nothing_set, Uses::NOTHING).unwrap_err();
        let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                ErrorKind::MissingKey,        // 2:1 source.server_id
                ErrorKind::UndefinedVariable, // 3:22 malformed `${1x}`
                ErrorKind::UnknownKey,        // 4:3 sever_id
            ],
            "{errors}"
        );
    }

    #[test]
    fn sections_of_paths() {
        assert_eq!(section_of("source.urls[1]"), "source");
        assert_eq!(section_of("routes[0].to"), "routes");
        assert_eq!(section_of("name"), "name");
        assert_eq!(section_of(""), "");
        assert!(Uses::STORE_AND_TARGET.defers("source.url"));
        assert!(!Uses::STORE_AND_TARGET.defers("coordination.etcd.password"));
        assert!(!Uses::All.defers("source.url"));
        assert!(Uses::NOTHING.defers("target.url"));
    }
}

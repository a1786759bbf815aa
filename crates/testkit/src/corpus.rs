//! Where the external binlog corpus is, and what a test does without it.
//!
//! The corpus (real binlogs from MySQL 5.0–9.x and MariaDB, `MANIFEST.txt`,
//! `TYPE_CASES.md`) is not part of the repository: it is found through
//! `SLUICE_FIXTURES`, by default the sibling folder `<repo>/../shared/fixtures`.
//! The decision: a clone with nothing beside it must pass its test command,
//! so a test that needs the corpus and does not find it *reports itself as
//! not run* in one line on stderr (bypassing the test harness's capture, so
//! it shows in `cargo test` output) and returns — never a silent pass, never
//! a failure. CI sets `SLUICE_REQUIRE_FIXTURES=1`, which turns absence into
//! a failure, so the corpus tests always run there.

use std::io::Write;
use std::path::PathBuf;

/// Environment variable naming the corpus directory.
pub const FIXTURES_ENV: &str = "SLUICE_FIXTURES";
/// Environment variable that makes a missing corpus a test failure.
pub const REQUIRE_ENV: &str = "SLUICE_REQUIRE_FIXTURES";
/// What every "not run" line starts with (CI counts them).
pub const NOT_RUN: &str = "not run:";

/// The corpus directory, whether or not it exists: `$SLUICE_FIXTURES`, else
/// `<repo>/../shared/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("../shared/fixtures"),
    }
}

/// The repository root (the workspace that holds this crate).
///
/// Read at run time from `CARGO_MANIFEST_DIR`, which cargo sets for the test
/// process to the package under test (every package sits at `crates/NAME`):
/// a path compiled in would outlive a checkout when two checkouts share one
/// target dir (CI's bare-clone check does), because cargo reuses artifacts
/// across them.
pub fn repo_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    package.join("../..")
}

/// Whether the corpus is present (its `MANIFEST.txt` is a file).
pub fn fixtures_present() -> bool {
    fixtures_dir().join("MANIFEST.txt").is_file()
}

/// Whether absence must fail (`SLUICE_REQUIRE_FIXTURES` set to anything but
/// empty or `0`).
pub fn fixtures_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Call first in a test that needs the corpus: `if skip_without_fixtures("name") { return; }`.
///
/// Returns `false` when the corpus is present. When it is absent, prints
/// `<test>: not run: …` on stderr and returns `true`, or panics with the
/// same message when [`fixtures_required`].
pub fn skip_without_fixtures(test: &str) -> bool {
    if fixtures_present() {
        return false;
    }
    let dir = fixtures_dir();
    let message = format!(
        "{test}: {NOT_RUN} binlog corpus not found at {} (set {FIXTURES_ENV} to its directory)",
        dir.display()
    );
    if fixtures_required() {
        panic!("{message}; {REQUIRE_ENV} is set, so it must be there");
    }
    // Straight to the file descriptor: libtest captures `eprintln!` of
    // passing tests, and this line is the test's report.
    let _ = writeln!(std::io::stderr().lock(), "{message}");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_sibling_shared_folder() {
        // Only meaningful when the variable is not set by the caller.
        if std::env::var_os(FIXTURES_ENV).is_none() {
            let dir = fixtures_dir();
            assert_eq!(dir, repo_root().join("../shared/fixtures"));
            assert!(repo_root().join("Cargo.lock").is_file());
        }
    }
}

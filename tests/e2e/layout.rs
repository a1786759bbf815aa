//! The workspace's layout rules (issue 14), checked on every test run so
//! they stay true: no module cycle inside a crate, no non-test source file
//! over 1,000 lines, no inline test module over 400 lines (long tests go to
//! a `tests.rs` beside the code). Generated data files, whose first line
//! starts with `//! GENERATED`, are not code and are left out. How modules, dependencies and sizes are
//! read: `support::layout`.
//!
//! These tests start no server. To see the report for every crate:
//!
//! ```text
//! cargo test -p sluice --test e2e -- layout:: --include-ignored --nocapture
//! ```
//!
//! Files and crates that another branch is reworking right now are listed
//! below with the reason; an entry that no longer breaks its rule fails the
//! test, so the lists only shrink.

use std::path::{Path, PathBuf};

use crate::support::layout::{
    code_and_test_lines, crate_graph, cycles, is_test_file, rust_files, Cycle,
};

const MAX_FILE_LINES: usize = 1000;
const MAX_INLINE_TEST_LINES: usize = 400;

/// Files over [`MAX_FILE_LINES`] of code while their split is under way.
const PENDING_FILE_SIZE: &[(&str, &str)] = &[];

/// Files with an inline test module over [`MAX_INLINE_TEST_LINES`] while
/// another branch edits them.
const PENDING_INLINE_TESTS: &[(&str, &str)] = &[];

/// Crates whose module cycles another branch is removing.
const PENDING_CYCLES: &[&str] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace directory")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every crate of the workspace (package name, root file), and the e2e
/// test crate.
fn crates() -> Vec<(String, PathBuf)> {
    let root = workspace();
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let name = manifest
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
            })
            .expect("a package name");
        for root_file in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(root_file);
            if file.is_file() {
                out.push((name.clone(), file));
            }
        }
    }
    out.push(("e2e tests".into(), root.join("tests/e2e/main.rs")));
    out
}

fn all_cycles() -> Vec<Cycle> {
    let mut out = Vec::new();
    for (name, root) in crates() {
        let graph = crate_graph(&name, &root);
        assert!(
            graph.modules.len() > 1 || name == "e2e tests",
            "{name}: no modules found from {}",
            root.display()
        );
        out.extend(cycles(&graph));
    }
    println!("{}", report(&out.iter().collect::<Vec<_>>()));
    out
}

fn report(cycles: &[&Cycle]) -> String {
    let root = format!("{}/", workspace().display());
    cycles
        .iter()
        .map(|c| c.to_string().replace(&root, ""))
        .collect()
}

/// No two sibling modules depend on each other, in every crate but those
/// being split; and each of those still has a cycle (else it leaves the
/// list).
#[test]
fn no_module_cycle_outside_the_crates_being_split() {
    let found = all_cycles();
    let unexpected: Vec<&Cycle> = found
        .iter()
        .filter(|c| !PENDING_CYCLES.contains(&c.crate_name.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "module cycles:\n{}",
        report(&unexpected)
    );
    for pending in PENDING_CYCLES {
        assert!(
            found.iter().any(|c| c.crate_name == *pending),
            "{pending} has no module cycle any more: remove it from PENDING_CYCLES \
             (and un-ignore no_module_cycle_in_any_crate)"
        );
    }
}

/// No module cycle in any crate.
#[test]
fn no_module_cycle_in_any_crate() {
    let found = all_cycles();
    let all: Vec<&Cycle> = found.iter().collect();
    assert!(all.is_empty(), "module cycles:\n{}", report(&all));
}

/// `(file, code lines, inline test module lines)` of every non-test source
/// file under `crates/`.
fn source_files() -> Vec<(String, usize, Vec<usize>)> {
    let mut out = Vec::new();
    for file in rust_files(&workspace().join("crates")) {
        let rel = relative(&file);
        if is_test_file(Path::new(&rel)) {
            continue;
        }
        let src = std::fs::read_to_string(&file).expect("readable source");
        // Generated data tables (their first line says so, and a test
        // regenerates or checks them) are data, not code to read.
        if src.starts_with("//! GENERATED") {
            continue;
        }
        let (code, tests) = code_and_test_lines(&src);
        out.push((rel, code, tests));
    }
    out
}

/// Checks `broken` (file → what is wrong) against a pending list.
fn check_rule(rule: &str, broken: Vec<(String, String)>, pending: &[(&str, &str)]) {
    let mut problems = Vec::new();
    for (file, what) in &broken {
        match pending.iter().find(|(f, _)| f == file) {
            Some((_, why)) => println!("{rule}: {file}: {what} (pending: {why})"),
            None => problems.push(format!("{file}: {what}")),
        }
    }
    for (file, _) in pending {
        if !broken.iter().any(|(f, _)| f == file) {
            problems.push(format!(
                "{file} keeps the rule now: remove it from the pending list"
            ));
        }
    }
    assert!(problems.is_empty(), "{rule}:\n{}", problems.join("\n"));
}

#[test]
fn no_source_file_over_1000_lines() {
    let files = source_files();
    let mut largest: Vec<&(String, usize, Vec<usize>)> = files.iter().collect();
    largest.sort_by_key(|(_, code, _)| std::cmp::Reverse(*code));
    for (file, code, _) in largest.iter().take(10) {
        println!("{code:>5} lines of code  {file}");
    }
    let broken = files
        .iter()
        .filter(|(_, code, _)| *code > MAX_FILE_LINES)
        .map(|(f, code, _)| (f.clone(), format!("{code} lines of code")))
        .collect();
    check_rule(
        &format!("source files over {MAX_FILE_LINES} lines"),
        broken,
        PENDING_FILE_SIZE,
    );
}

#[test]
fn no_inline_test_module_over_400_lines() {
    let broken = source_files()
        .into_iter()
        .filter_map(|(f, _, tests)| {
            let longest = tests.into_iter().max()?;
            (longest > MAX_INLINE_TEST_LINES)
                .then(|| (f, format!("an inline test module of {longest} lines")))
        })
        .collect();
    check_rule(
        &format!("inline test modules over {MAX_INLINE_TEST_LINES} lines (move them to tests.rs)"),
        broken,
        PENDING_INLINE_TESTS,
    );
}

// ---------------------------------------------------------------------------
// The checker itself, on a crate written for the purpose
// ---------------------------------------------------------------------------

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

/// Sibling cycles are found through `use`, paths in code and re-exports,
/// with the place that makes each edge; a parent and its children, test
/// modules, comments and strings never make one.
#[test]
fn checker_finds_sibling_cycles_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[
            (
                "lib.rs",
                "mod a;\nmod b;\nmod c;\nmod d;\npub use c::W;\npub struct Root;\n",
            ),
            // a ↔ b: a `use`, and a path in an expression.
            (
                "a.rs",
                "use crate::b::X;\nuse crate::Root;\npub fn g() {}\n\
                 #[cfg(test)]\nmod tests {\n    use crate::d::*;\n}\n",
            ),
            (
                "b.rs",
                "pub struct X;\nfn f() { crate::a::g() }\n\
                 // crate::d::Nothing in a comment\n\
                 const S: &str = \"crate::d::Nothing in a string\";\n\
                 const C: char = '\\'';\nuse crate::W;\n",
            ),
            // b → c through the root's re-export of W; c → b closes a
            // second cycle, c → a does not make a third.
            ("c.rs", "pub struct W;\nuse super::{a::g, b::X as Y};\n"),
            // d uses a, and a's test module uses d: not a cycle.
            (
                "d.rs",
                "mod inner { use super::super::a; }\npub use self::inner::*;\n",
            ),
        ],
    );
    let graph = crate_graph("demo", &dir.path().join("lib.rs"));
    assert_eq!(
        graph.modules.keys().cloned().collect::<Vec<_>>(),
        ["", "a", "b", "c", "d", "d::inner"]
    );
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].members, ["a", "b", "c"]);
    let evidence = found[0].evidence.join("\n");
    assert!(
        evidence.contains("a → b: ") && evidence.contains("a.rs:1: crate::b::X"),
        "{evidence}"
    );
    assert!(evidence.contains("b.rs:2: crate::a::g"), "{evidence}");
    assert!(
        evidence.contains("b → c: ") && evidence.contains("crate::W"),
        "{evidence}"
    );
    assert!(
        !evidence.contains("crate::d") && !evidence.contains("→ d:"),
        "{evidence}"
    );
    println!("{}", found[0]);

    // Break b → a and b → c: nothing is left.
    write(dir.path(), &[("b.rs", "pub struct X;\n")]);
    let found = cycles(&crate_graph("demo", &dir.path().join("lib.rs")));
    assert!(found.is_empty(), "{found:?}");
}

/// Inline test modules are measured and left out of a file's size.
#[test]
fn sizes_leave_inline_tests_out() {
    let src = "fn a() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        let s = \"}\";\n    }\n}\n";
    assert_eq!(code_and_test_lines(src), (2, vec![7]));
    assert_eq!(
        code_and_test_lines("fn a() {}\n#[cfg(test)]\nmod tests;\n"),
        (3, vec![])
    );
    assert!(is_test_file(Path::new("crates/x/src/a/tests.rs")));
    assert!(is_test_file(Path::new("tests/e2e/ha.rs")));
    assert!(!is_test_file(Path::new("crates/x/src/a.rs")));
}

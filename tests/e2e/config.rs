//! `sluice validate`: the repo's pipeline.yaml is valid; a broken file gets
//! every problem at once, each with FILE:LINE:COL and key path.

use std::process::Command;

fn validate(path: &std::path::Path, password: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["validate", "--config"])
        .arg(path)
        .env_remove("SRC_PASSWORD");
    if let Some(p) = password {
        cmd.env("SRC_PASSWORD", p);
    }
    cmd.output().expect("sluice runs")
}

#[test]
fn repo_pipeline_validates() {
    let path = sluice_testkit::repo_root().join("pipeline.yaml");
    let out = validate(&path, Some("s3cret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK"));
    // Without the secret, the undefined variable is a warning naming its
    // place (validate connects nowhere); `--strict` makes it an error, as
    // `sluice run` sees it.
    let out = validate(&path, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("pipeline.yaml:")
            && err.contains(": warning: source.url: undefined variable `SRC_PASSWORD`"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(
            "OK: pipeline `shop`; 1 undefined variable (warned above) must be set for `sluice run`"
        ),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["validate", "--strict"])
        .arg(&path)
        .env_remove("SRC_PASSWORD")
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pipeline.yaml:")
            && err.contains(": source.url: undefined variable `SRC_PASSWORD`")
            && !err.contains("warning"),
        "{err}"
    );
}

#[test]
fn every_error_class_is_reported_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: shop\n\
         source: {url: \"mysql://r:${UNDEFINED_X}@h:1\", server_id: abc}\n\
         target: {url: \"mysql://root@h:2\"}\n\
         batch: {bogus: 1}\n\
         filter: {include: [\"(unclosed\"]}\n",
    )
    .expect("write");
    let out = validate(&path, None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for want in [
        format!("{file}:2:"),
        "source.url: undefined variable `UNDEFINED_X`".to_string(),
        "source.server_id: expected an integer".to_string(),
        format!("{file}:4:"),
        "batch.bogus: unknown key".to_string(),
        "filter.include[0]: invalid regex".to_string(),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    // A missing required key, and a file that is not UTF-8.
    std::fs::write(
        &path,
        "name: shop\nsource: {url: \"mysql://r@h:1\", server_id: 1}\n",
    )
    .expect("write");
    let err = String::from_utf8_lossy(&validate(&path, None).stderr).to_string();
    assert!(err.contains("target"), "{err}");
    std::fs::write(&path, b"name: caf\xe9\n").expect("write");
    let err = String::from_utf8_lossy(&validate(&path, None).stderr).to_string();
    assert!(
        err.contains("not valid UTF-8") && err.contains(&file),
        "{err}"
    );
}

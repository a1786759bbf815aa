//! `sluice binlog decode --start-offset N`: every `pos` it prints is a valid
//! start, also a row change in the middle of a transaction (its table map
//! came before it); an offset that is not an event boundary is refused,
//! naming the events around it.

use std::process::{Command, Output};

use sluice_testkit::MariaDb;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn decode(args: &[&str], file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["binlog", "decode"])
        .args(args)
        .arg(file)
        .output()
        .expect("sluice runs")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn every_printed_pos_is_a_valid_start_offset() -> TestResult {
    let source = MariaDb::source().await?;
    // One transaction, three statements on two tables: each rows event
    // needs a table map that comes before it in the same transaction.
    source
        .exec(
            "CREATE DATABASE shop;
             CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20));
             CREATE TABLE shop.notes (id INT PRIMARY KEY, body TEXT);
             BEGIN;
             INSERT INTO shop.items VALUES (1, 'one');
             INSERT INTO shop.notes VALUES (10, 'ten');
             UPDATE shop.items SET name = 'uno' WHERE id = 1;
             COMMIT;
             FLUSH BINARY LOGS;",
        )
        .await?;
    let file = source.binlog_path("mysql-bin.000001");
    let all = lines(&decode(&[], &file));
    let changes: Vec<&serde_json::Value> = all
        .iter()
        .filter(|l| l["schema"] == "shop" && l["table"].is_string())
        .collect();
    assert_eq!(changes.len(), 3, "{all:#?}");

    for (i, change) in changes.iter().enumerate() {
        let pos = change["pos"].as_str().expect("pos");
        let offset = pos.rsplit(':').next().expect("file:offset");
        let from = lines(&decode(&["--start-offset", offset], &file));
        // Exactly the lines from that change on, decoded the same way.
        let expected: Vec<&serde_json::Value> =
            all.iter().skip_while(|l| **l != **change).collect();
        assert_eq!(
            from.iter().collect::<Vec<_>>(),
            expected,
            "--start-offset {offset} (change {i})"
        );
        assert_eq!(from[0]["table"], change["table"]);
    }

    // Not an event boundary: refused, naming the event it falls into.
    let inside = changes[1]["pos"]
        .as_str()
        .and_then(|p| p.rsplit(':').next())
        .and_then(|o| o.parse::<u64>().ok())
        .expect("offset")
        + 3;
    let out = decode(&["--start-offset", &inside.to_string()], &file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "offset {inside}: start offset is not an event boundary: it is inside the event at {}",
            inside - 3
        )),
        "{stderr}"
    );
    Ok(())
}

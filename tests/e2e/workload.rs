//! The workload generator and the semantic comparator live in
//! `sluice_testkit::{workload, compare}` (shared with `sluice-bench`); this
//! module re-exports them under their old path and tests them against real
//! servers, without a pipeline.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::MariaDb;

// The old `crate::workload::…` paths, kept for tests written against them.
#[allow(unused_imports)]
pub use sluice_testkit::compare::{
    assert_same, compare, copy_schema_with_dump, wait_until_same, CompareOpts, CompareReport,
    TableDiff,
};
#[allow(unused_imports)]
pub use sluice_testkit::sql::{q, qt, sql_str, truncate};
#[allow(unused_imports)]
pub use sluice_testkit::workload::{
    seed_from_env, ConcurrentStats, Rng, StepStats, Workload, DDL_CYCLE_LEN,
};

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

#[tokio::test]
async fn workload_copies_compare_equal_and_differences_are_named() -> Result<()> {
    let seed = seed_from_env();
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let mut src = source.conn().await?;
    let mut wl = Workload::new(seed, "wl");

    let t = Instant::now();
    wl.setup(&mut src).await?;
    println!("setup: {} tables in {:?}", wl.tables().len(), t.elapsed());

    let t = Instant::now();
    let steps = 300;
    let st = wl.steps(&mut src, steps).await?;
    let took = t.elapsed();
    println!(
        "{steps} steps in {took:?} ({:.0} transactions/s): {st:?}",
        steps as f64 / took.as_secs_f64()
    );

    let t = Instant::now();
    let st = wl.big_transaction(&mut src, 100_000).await?;
    println!("big transaction in {:?}: {st:?}", t.elapsed());

    let t = Instant::now();
    for _ in 0..DDL_CYCLE_LEN {
        let ddl = wl.ddl_step(&mut src).await?;
        println!("ddl: {}", truncate(&ddl.replace('\n', " "), 160));
    }
    println!("{} ddl steps in {:?}", DDL_CYCLE_LEN, t.elapsed());

    let c = wl.run_concurrently(&source, 200, DDL_CYCLE_LEN).await?;
    println!(
        "concurrently: 200 transactions and {} ddl steps in {:?}: {:?}",
        c.ddl.len(),
        c.elapsed,
        c.dml
    );
    for ddl in &c.ddl {
        println!("ddl: {}", truncate(&ddl.replace('\n', " "), 160));
    }
    println!("tables: {:?}", wl.tables());
    for t in wl.tables() {
        let rows: Vec<u64> = source
            .query(&format!("SELECT COUNT(*) FROM {}", qt("wl", &t)))
            .await?;
        let cols = wl.columns(&t).unwrap_or_default();
        if let Some(live) = wl.live_rows(&t) {
            assert_eq!(rows[0] as usize, live, "model and server disagree on {t}");
        }
        println!("  {t}: {} rows, columns {cols:?}", rows[0]);
    }

    let t = Instant::now();
    copy_schema_with_dump(&source, "wl", &target, "wl_copy").await?;
    println!("dump | load in {:?}", t.elapsed());

    let mut tgt = target.conn().await?;
    let opts = CompareOpts::default();
    let t = Instant::now();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("compare in {:?}: {report}", t.elapsed());
    assert!(report.is_same(), "{report}");
    assert_eq!(report.tables_compared, wl.tables().len());
    assert!(report.rows_compared > 100_000, "{report}");
    let again = wait_until_same(
        &source,
        "wl",
        &target,
        "wl_copy",
        &opts,
        Duration::from_secs(10),
    )
    .await?;
    assert!(again.is_same());

    // JSON compares by value: reformatting it on the target is no difference.
    tgt.query_drop("UPDATE wl_copy.t_misc SET j = JSON_COMPACT(j) WHERE j IS NOT NULL")
        .await?;
    assert!(tgt.affected_rows() > 0, "JSON_COMPACT changed no row");
    assert_same(&mut src, "wl", &mut tgt, "wl_copy", &opts).await;

    // One changed value: named by table, key and column.
    let keys: Vec<String> = target
        .query("SELECT k FROM wl_copy.t_str WHERE vu IS NOT NULL ORDER BY k LIMIT 1")
        .await?;
    let k = keys
        .first()
        .ok_or_else(|| anyhow::anyhow!("no t_str row"))?;
    tgt.query_drop(format!(
        "UPDATE wl_copy.t_str SET vu = CONCAT(vu, '#') WHERE k = {}",
        sql_str(k)
    ))
    .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("{report}");
    let text = report.to_string();
    assert!(!report.is_same());
    assert_eq!(report.tables.len(), 1, "{text}");
    assert_eq!(report.tables[0].changed_rows, 1, "{text}");
    assert!(text.contains("table `t_str`"), "{text}");
    assert!(text.contains(&format!("k={k:?}")), "{text}");
    assert!(text.contains("column `vu`"), "{text}");
    let err = wait_until_same(
        &source,
        "wl",
        &target,
        "wl_copy",
        &opts,
        Duration::from_millis(300),
    )
    .await
    .expect_err("target differs");
    assert!(format!("{err:#}").contains("column `vu`"), "{err:#}");
    tgt.query_drop(format!(
        "UPDATE wl_copy.t_str SET vu = LEFT(vu, CHAR_LENGTH(vu) - 1) WHERE k = {}",
        sql_str(k)
    ))
    .await?;
    assert_same(&mut src, "wl", &mut tgt, "wl_copy", &opts).await;

    // One deleted row (keyed), one deleted duplicate (keyless), one extra column.
    let ids: Vec<i64> = target
        .query("SELECT id FROM wl_copy.t_int ORDER BY id LIMIT 1")
        .await?;
    let id = ids.first().ok_or_else(|| anyhow::anyhow!("no t_int row"))?;
    tgt.query_drop(format!("DELETE FROM wl_copy.t_int WHERE id = {id}"))
        .await?;
    tgt.query_drop("DELETE FROM wl_copy.t_nokey WHERE grp IS NULL LIMIT 1")
        .await?;
    tgt.query_drop("ALTER TABLE wl_copy.t_bin ADD COLUMN extra INT NULL")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &opts).await?;
    println!("{report}");
    let text = report.to_string();
    assert!(
        text.contains("table `t_int`")
            && text.contains(&format!("key id=\"{id}\": missing on target")),
        "{text}"
    );
    assert!(
        text.contains("table `t_nokey`") && text.contains("1 more on source than on target"),
        "{text}"
    );
    assert!(text.contains("column `extra` only on target"), "{text}");
    let tolerant = opts.clone().allow_extra_target_columns();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert_eq!(report.tables.len(), 2, "{report}");

    // A column type that differs.
    tgt.query_drop("ALTER TABLE wl_copy.t_uniq MODIFY note VARCHAR(61) CHARACTER SET latin1")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert!(
        report.to_string().contains(
            "column `note`: type `varchar(60)` latin1 on source, `varchar(61)` latin1 on target"
        ),
        "{report}"
    );
    let lenient = tolerant.clone().ignore_column_types();
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &lenient).await?;
    assert_eq!(report.tables.len(), 2, "{report}");

    // A missing table, and a table only on the target.
    tgt.query_drop("RENAME TABLE wl_copy.t_misc TO wl_copy.t_misc_old")
        .await?;
    let report = compare(&mut src, "wl", &mut tgt, "wl_copy", &tolerant).await?;
    assert_eq!(
        report.missing_tables,
        vec!["t_misc".to_string()],
        "{report}"
    );
    assert_eq!(
        report.extra_tables,
        vec!["t_misc_old".to_string()],
        "{report}"
    );
    Ok(())
}

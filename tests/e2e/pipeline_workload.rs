//! The pipeline's acceptance workloads: a seeded random workload over every
//! type family with concurrent DDL and a 100k-row transaction, replicated
//! through a route, compared row by row — once undisturbed, and once with
//! the sluice process SIGKILLed at random points and restarted three times.

use std::time::{Duration, Instant};

use sluice_testkit::{Etcd, MariaDb};

use sluice_testkit::compare::{wait_until_same, CompareOpts};
use sluice_testkit::wait_until_async;
use sluice_testkit::workload::{seed_from_env, Rng, Workload};

use crate::support::{start_of_binlog, write_config, Coord, Sluice, TestResult};

const BIG_TRANSACTION_ROWS: usize = 100_000;

const PIPELINE_EXTRA: &str = "routes: [ { match: 'shop\\.(.*)', to: 'shop_copy.$1' } ]\n\
     batch: { max_rows: 2000, max_delay: 10ms }\n\
     load: { workers: 4 }\n";

async fn servers() -> Result<(MariaDb, MariaDb, Etcd), Box<dyn std::error::Error>> {
    Ok(tokio::try_join!(
        MariaDb::source(),
        MariaDb::target(),
        Etcd::start()
    )?)
}

async fn converge(source: &MariaDb, target: &MariaDb, sluice: &Sluice, started: Instant) {
    match wait_until_same(
        source,
        "shop",
        target,
        "shop_copy",
        &CompareOpts::default(),
        Duration::from_secs(240),
    )
    .await
    {
        Ok(report) => println!(
            "target equals source after {:?} ({report})",
            started.elapsed()
        ),
        Err(e) => {
            let kept = std::env::temp_dir().join(format!("sluice-e2e-{}.log", std::process::id()));
            let _ = std::fs::write(&kept, sluice.log_text());
            panic!(
                "{e:#}\nsluice log (whole log kept in {}):\n{}",
                kept.display(),
                sluice.log_tail()
            )
        }
    }
}

/// Waits until the current `sluice` process has started replicating (it
/// first waits out the killed process's etcd lease).
async fn wait_replicating(sluice: &Sluice) {
    let started = wait_until_async(
        "the current sluice process to start replicating",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            (sluice.log_text().matches("pipeline starting").count() >= sluice.runs as usize)
                .then_some(())
        },
    )
    .await;
    if let Err(e) = started {
        let kept = std::env::temp_dir().join(format!("sluice-e2e-{}.log", std::process::id()));
        let _ = std::fs::write(&kept, sluice.log_text());
        panic!(
            "{e}: sluice did not start replicating again (whole log in {}):\n{}",
            kept.display(),
            sluice.log_tail()
        );
    }
}

/// ≥ 8 tables over every type family, inserts/updates/deletes, key changes,
/// multi-statement transactions, a keyless table, NULLs and edge values,
/// DDL running concurrently with DML, and one 100k-row transaction.
#[tokio::test]
async fn randomized_workload_converges() -> TestResult {
    let (source, target, etcd) = servers().await?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    let mut workload = Workload::new(seed, "shop");
    let mut conn = source.conn().await?;
    workload.setup(&mut conn).await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "workload",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        PIPELINE_EXTRA,
    );
    let mut sluice = Sluice::start(&config);
    let began = Instant::now();
    let stats = workload.steps(&mut conn, 300).await?;
    println!("dml: {stats:?}");
    let big = workload
        .big_transaction(&mut conn, BIG_TRANSACTION_ROWS)
        .await?;
    println!("big transaction: {big:?}");
    let concurrent = workload.run_concurrently(&source, 300, 24).await?;
    println!("concurrent: {concurrent:?}");
    let stats = workload.steps(&mut conn, 100).await?;
    println!("dml: {stats:?}; written in {:?}", began.elapsed());
    let caught_up = Instant::now();
    converge(&source, &target, &sluice, began).await;
    println!("catch-up after the last write: {:?}", caught_up.elapsed());
    assert!(sluice.is_running(), "{}", sluice.log_tail());
    // The backlog of the big transaction was applied several batches at a
    // time, and still converged.
    assert!(
        sluice
            .log_text()
            .contains("queued batches applied together"),
        "{}",
        sluice.log_tail()
    );
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

/// The same workload, with `sluice run` SIGKILLed at three random points
/// (one of them while the 100k-row transaction is being applied) and
/// restarted each time: the target still converges to the source.
#[tokio::test]
async fn survives_sigkill_at_random_points() -> TestResult {
    let (source, target, etcd) = servers().await?;
    let dir = tempfile::tempdir()?;
    let seed = seed_from_env();
    let mut rng = Rng::new(seed ^ 0x5EED_C0DE);
    let mut workload = Workload::new(seed, "shop");
    let mut conn = source.conn().await?;
    workload.setup(&mut conn).await?;
    let start = start_of_binlog(&source).await;
    let config = write_config(
        dir.path(),
        "crashes",
        &source,
        &target,
        Coord::Etcd(&etcd),
        &start,
        PIPELINE_EXTRA,
    );
    let mut sluice = Sluice::start(&config);
    let began = Instant::now();

    // Writes and kills run side by side; each kill lands at a random
    // moment of its phase.
    let kill_after = |rng: &mut Rng| Duration::from_millis(rng.range(200, 2500) as u64);
    let pauses = [
        kill_after(&mut rng),
        kill_after(&mut rng),
        kill_after(&mut rng),
    ];

    // Phase 1: plain DML; kill while it runs.
    let (stats, ()) = tokio::join!(workload.steps(&mut conn, 300), async {
        tokio::time::sleep(pauses[0]).await;
        sluice.kill().await;
        println!("kill 1 at {:?}", began.elapsed());
        sluice.restart();
        wait_replicating(&sluice).await;
    });
    println!("phase 1: {:?}", stats?);

    // Phase 2: the big transaction; kill while sluice applies it.
    workload
        .big_transaction(&mut conn, BIG_TRANSACTION_ROWS)
        .await?;
    tokio::time::sleep(pauses[1]).await;
    sluice.kill().await;
    println!(
        "kill 2 at {:?} (after the big transaction)",
        began.elapsed()
    );
    sluice.restart();
    wait_replicating(&sluice).await;

    // Phase 3: DML with concurrent DDL; kill while it runs.
    let (stats, ()) = tokio::join!(workload.run_concurrently(&source, 300, 24), async {
        tokio::time::sleep(pauses[2]).await;
        sluice.kill().await;
        println!("kill 3 at {:?}", began.elapsed());
        sluice.restart();
        wait_replicating(&sluice).await;
    });
    println!("phase 3: {:?}", stats?);
    let stats = workload.steps(&mut conn, 100).await?;
    println!("phase 4: {stats:?}");

    converge(&source, &target, &sluice, began).await;
    assert_eq!(sluice.runs, 4);
    // Each restart resumed from a recorded point, not from the start.
    let log = sluice.log_text();
    let starts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pipeline starting"))
        .collect();
    for line in &starts {
        println!("{line}");
    }
    assert_eq!(starts.len(), 4, "{log}");
    assert!(
        starts[1..]
            .iter()
            .all(|l| !l.contains("from=\"source.start\"")),
        "{starts:#?}"
    );
    let status = sluice.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", sluice.log_tail());
    Ok(())
}

//! The seeded fault soak: an active/standby pair replicates a random,
//! bounded workload while faults of every kind strike in a seeded random
//! order — SIGKILL, SIGSTOP past the lease (then SIGCONT) and SIGTERM of
//! the active node, the target's mariadbd killed and restarted, etcd
//! stopped and restarted, the source's Binlog Dump thread killed, the
//! source restarted gracefully. Afterwards the target equals the source,
//! no two nodes were ever leader at once, and etcd's position history
//! never goes back and holds only event boundaries.
//!
//! `SLUICE_SOAK_SEED=<n>` replays a run; `SLUICE_SOAK_SECONDS=<s>` keeps
//! striking (further rounds of all kinds, each in a new order) for that
//! long, and keeps the node logs in the temp dir. By default one round: every kind once, about a minute. The seed
//! and the schedule are printed first, so a failure shows both.
//!
//! Faults come one at a time, each followed by a marker row that must
//! reach the target (the pipeline recovered) before the next. The workload
//! runs throughout, pausing only while the source restarts (its model of
//! the rows would not survive a transaction whose commit it cannot know).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::RwLock;

use crate::ha::marker_latency;
use crate::pipeline::{server_id, Sluice, TestResult};
use crate::streams::{check_position_history, position_history, Binlogs};
use crate::workload::{wait_until_same, CompareOpts, Rng, StepStats, Workload};

const PIPELINE: &str = "soak";
const NODES: [&str; 2] = ["node-a", "node-b"];

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillActive,
    StopActive { pause_ms: u64 },
    TerminateActive,
    TargetDown { down_ms: u64 },
    EtcdDown { down_ms: u64 },
    KillDumpThread,
    RestartSource,
}

impl Fault {
    const KINDS: usize = 7;

    fn draw(kind: usize, rng: &mut Rng) -> Fault {
        let ms = |rng: &mut Rng, lo: i128, hi: i128| rng.range(lo, hi) as u64;
        match kind {
            0 => Fault::KillActive,
            // The lease is 3 s: paused well past it.
            1 => Fault::StopActive {
                pause_ms: ms(rng, 4500, 7000),
            },
            2 => Fault::TerminateActive,
            3 => Fault::TargetDown {
                down_ms: ms(rng, 1000, 4000),
            },
            4 => Fault::EtcdDown {
                down_ms: ms(rng, 1500, 5000),
            },
            5 => Fault::KillDumpThread,
            _ => Fault::RestartSource,
        }
    }
}

/// A fault and how long the workload runs before it strikes.
#[derive(Debug, Clone, Copy)]
struct Strike {
    after_ms: u64,
    fault: Fault,
}

/// Rounds of every fault kind, each round in its own random order.
fn schedule(rng: &mut Rng, rounds: usize) -> Vec<Strike> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        let mut kinds: Vec<usize> = (0..Fault::KINDS).collect();
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for kind in kinds {
            out.push(Strike {
                after_ms: rng.range(300, 2000) as u64,
                fault: Fault::draw(kind, rng),
            });
        }
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Now as sluice's log lines print it (RFC 3339, UTC, microseconds), so
/// the two compare as strings.
fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// `[from, to)` during which a node's log says it led. A SIGKILLed or
/// SIGSTOPped node leads until the moment of the fault at the latest (it
/// can do nothing after it; what it does after SIGCONT is fenced, and the
/// position history shows any write from an old term).
fn leadership(log: &str, cut_at: &[String]) -> Vec<(String, String)> {
    let mut marks: Vec<(String, bool)> = Vec::new();
    for line in log.lines() {
        let stamp = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if line.contains("elected leader") {
            marks.push((stamp, true));
        } else if line.contains("giving up the term")
            || line.contains("leadership lost")
            || line.contains("resigned leadership")
            || line.contains("lease expired")
        {
            marks.push((stamp, false));
        }
    }
    marks.extend(cut_at.iter().map(|t| (t.clone(), false)));
    marks.sort();
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for (at, elected) in marks {
        match (elected, open.take()) {
            (true, None) => open = Some(at),
            // Elected again without an end: the earlier term ended then.
            (true, Some(from)) => {
                out.push((from, at.clone()));
                open = Some(at);
            }
            (false, Some(from)) => out.push((from, at)),
            (false, None) => {}
        }
    }
    if let Some(from) = open {
        out.push((from, "9999".into()));
    }
    out
}

/// The index of the node holding the leader key (`want`, or any).
async fn leader(
    etcd: &sluice_testkit::Etcd,
    want: Option<usize>,
    nodes: &[Sluice; 2],
    seed: u64,
) -> usize {
    let client = etcd.client().await.expect("etcd client");
    let key = sluice_coord::KeyLayout::new("/e2e")
        .and_then(|l| l.pipeline(PIPELINE))
        .expect("keys")
        .leader();
    let (client, key) = (&client, key.as_str());
    sluice_testkit::wait_until_async(
        "a leader",
        Duration::from_secs(45),
        Duration::from_millis(50),
        || async move {
            // A clone per call: `get` needs the client mutably.
            let got = client.clone().get(key, None).await.ok()?;
            let record: serde_json::Value =
                serde_json::from_slice(got.kvs().first()?.value()).unwrap_or_default();
            let id = record["node_id"].as_str().unwrap_or_default();
            NODES
                .iter()
                .position(|n| *n == id)
                .filter(|i| want.is_none_or(|w| w == *i))
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "seed {seed}: no leader {:?}: {e}\nnode-a:\n{}\nnode-b:\n{}",
            want.map(|w| NODES[w]),
            nodes[0].log_tail(),
            nodes[1].log_tail()
        )
    })
}

#[tokio::test]
async fn seeded_faults_of_every_kind_under_load() -> TestResult {
    let seed = env_u64("SLUICE_SOAK_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let soak_for = Duration::from_secs(env_u64("SLUICE_SOAK_SECONDS").unwrap_or(0));
    let mut rng = Rng::new(seed ^ 0x50A4_F417);
    // Enough rounds for the requested time (a round takes about 40 s).
    let rounds = 1 + (soak_for.as_secs() / 40) as usize;
    let plan = schedule(&mut rng, rounds);
    println!("soak seed={seed} (replay: SLUICE_SOAK_SEED={seed}), {rounds} round(s):");
    for (i, s) in plan.iter().enumerate() {
        println!("  {:2}. after {:4} ms: {:?}", i + 1, s.after_ms, s.fault);
    }

    let (mut source, mut target, mut etcd, _dir, config) = crate::ha::setup(PIPELINE).await?;
    let mut workload = Workload::new(seed, PIPELINE);
    workload.setup(&mut source.conn().await?).await?;
    let mut binlogs = Binlogs::new(&source);
    let mut nodes = [
        Sluice::start_node(&config, NODES[0], Some(server_id())),
        Sluice::start_node(&config, NODES[1], Some(server_id())),
    ];
    let began = Instant::now();
    let first = leader(&etcd, None, &nodes, seed).await;
    marker_latency(
        &source,
        &target,
        1,
        Duration::from_secs(60),
        &[&nodes[first]],
    )
    .await;

    let source_url = source.url();
    let gate = RwLock::new(());
    let generation = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    // The writer: bounded (it stops when the faults are over, or at a
    // step limit), pausing while the source restarts.
    let writer = async {
        let mut stats = StepStats::default();
        let mut conn: Option<(u64, mysql_async::Conn)> = None;
        for _ in 0..200_000 {
            if done.load(Ordering::Relaxed) {
                break;
            }
            let _open = gate.read().await;
            let generation = generation.load(Ordering::Relaxed);
            if conn.as_ref().is_none_or(|(g, _)| *g != generation) {
                let opts = mysql_async::Opts::from_url(&source_url).expect("source URL");
                conn = Some((
                    generation,
                    mysql_async::Conn::new(opts)
                        .await
                        .expect("source connection"),
                ));
            }
            let (_, c) = conn.as_mut().expect("connected");
            match workload.step(c).await {
                Ok(st) => stats += st,
                Err(e) => panic!("seed {seed}: workload step failed: {e:#}"),
            }
            drop(_open);
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        stats
    };

    let mut struck = Vec::new();
    let mut cuts: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let faults = async {
        let mut marker = 10i64;
        let mut i = 0usize;
        while let Some(strike) = plan.get(i).copied() {
            if i >= Fault::KINDS && began.elapsed() >= soak_for {
                break;
            }
            i += 1;
            // The fault's moment: part-way into the running workload.
            tokio::time::sleep(Duration::from_millis(strike.after_ms)).await;
            let at = began.elapsed();
            let mut victim = None;
            match strike.fault {
                Fault::KillActive => {
                    let l = leader(&etcd, None, &nodes, seed).await;
                    cuts[l].push(utc_now());
                    nodes[l].kill().await;
                    leader(&etcd, Some(1 - l), &nodes, seed).await;
                    nodes[l].restart();
                    victim = Some(l);
                }
                Fault::StopActive { pause_ms } => {
                    let l = leader(&etcd, None, &nodes, seed).await;
                    let pid = nodes[l].pid();
                    assert!(pid > 0, "seed {seed}: {} is not running", NODES[l]);
                    cuts[l].push(utc_now());
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid, libc::SIGSTOP) };
                    let stopped = Instant::now();
                    leader(&etcd, Some(1 - l), &nodes, seed).await;
                    // The fault's prescribed length, not a wait for a
                    // condition: the node stays stopped past its lease.
                    tokio::time::sleep_until((stopped + Duration::from_millis(pause_ms)).into())
                        .await;
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                    victim = Some(l);
                }
                Fault::TerminateActive => {
                    let l = leader(&etcd, None, &nodes, seed).await;
                    let status = nodes[l].terminate(Duration::from_secs(30)).await;
                    assert!(
                        status.success(),
                        "seed {seed}: SIGTERM exit {status:?}\n{}",
                        nodes[l].log_tail()
                    );
                    leader(&etcd, Some(1 - l), &nodes, seed).await;
                    nodes[l].restart();
                    victim = Some(l);
                }
                Fault::TargetDown { down_ms } => {
                    target.kill();
                    // The outage's prescribed length.
                    tokio::time::sleep(Duration::from_millis(down_ms)).await;
                    target.start().await.expect("target restart");
                }
                Fault::EtcdDown { down_ms } => {
                    etcd.stop().await;
                    // The outage's prescribed length.
                    tokio::time::sleep(Duration::from_millis(down_ms)).await;
                    etcd.restart().await.expect("etcd restart");
                }
                Fault::KillDumpThread => {
                    let ids: Vec<u64> = sluice_testkit::wait_until_async(
                        "a Binlog Dump thread on the source",
                        Duration::from_secs(30),
                        Duration::from_millis(50),
                        || async {
                            let ids: Vec<u64> = source
                                .query(
                                    "SELECT ID FROM information_schema.PROCESSLIST \
                                     WHERE COMMAND LIKE 'Binlog Dump%'",
                                )
                                .await
                                .expect("processlist");
                            (!ids.is_empty()).then_some(ids)
                        },
                    )
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                    for id in ids {
                        // The thread may end by itself meanwhile.
                        let _ = source.exec(&format!("KILL {id}")).await;
                    }
                }
                Fault::RestartSource => {
                    let _closed = gate.write().await;
                    source.stop().await;
                    source.start().await.expect("source restart");
                    generation.fetch_add(1, Ordering::Relaxed);
                }
            }
            marker += 1;
            let l = leader(&etcd, None, &nodes, seed).await;
            let latency = marker_latency(
                &source,
                &target,
                marker,
                Duration::from_secs(90),
                &[&nodes[0], &nodes[1]],
            )
            .await;
            println!(
                "{:>6.1}s {:?}{}: replicating again, marker in {latency:?} (leader {})",
                at.as_secs_f64(),
                strike.fault,
                victim
                    .map(|v| format!(" on {}", NODES[v]))
                    .unwrap_or_default(),
                NODES[l]
            );
            struck.push(strike.fault);
        }
        done.store(true, Ordering::Relaxed);
    };
    let (stats, ()) = tokio::join!(writer, faults);
    println!(
        "seed {seed}: {} faults in {:?}; workload {stats:?}",
        struck.len(),
        began.elapsed()
    );

    marker_latency(
        &source,
        &target,
        1_000_000,
        Duration::from_secs(90),
        &[&nodes[0], &nodes[1]],
    )
    .await;
    for schema in [PIPELINE, "shop"] {
        let report = wait_until_same(
            &source,
            schema,
            &target,
            schema,
            &CompareOpts::default(),
            Duration::from_secs(120),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "seed {seed}: {e:#}\nnode-a:\n{}\nnode-b:\n{}",
                nodes[0].log_tail(),
                nodes[1].log_tail()
            )
        });
        println!("{report}");
    }
    // The final position is flushed on a graceful stop.
    for node in nodes.iter_mut() {
        let status = node.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "seed {seed}: {}", node.log_tail());
    }

    if !soak_for.is_zero() {
        // Long runs keep the node logs for a look at slow recoveries.
        for (i, node) in nodes.iter().enumerate() {
            let kept = std::env::temp_dir().join(format!("sluice-soak-{seed}-{}.log", NODES[i]));
            let _ = std::fs::write(&kept, node.log_text());
            println!("{} log kept in {}", NODES[i], kept.display());
        }
    }
    let intervals: Vec<Vec<(String, String)>> = (0..2)
        .map(|i| leadership(&nodes[i].log_text(), &cuts[i]))
        .collect();
    println!(
        "node-a led {:?}\nnode-b led {:?}",
        intervals[0], intervals[1]
    );
    for (fa, ta) in &intervals[0] {
        for (fb, tb) in &intervals[1] {
            assert!(
                ta <= fb || tb <= fa,
                "seed {seed}: node-a [{fa}, {ta}) and node-b [{fb}, {tb}) led at once"
            );
        }
    }
    let history = position_history(&etcd, PIPELINE).await;
    let problems = check_position_history(&history, &mut binlogs);
    println!(
        "seed {seed}: {} stored positions, last {:?}",
        history.len(),
        history.last().map(ToString::to_string)
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: position history:\n{}",
        problems.join("\n")
    );
    for kind in 0..Fault::KINDS {
        let probe = Fault::draw(kind, &mut Rng::new(0));
        assert!(
            struck
                .iter()
                .any(|f| std::mem::discriminant(f) == std::mem::discriminant(&probe)),
            "seed {seed}: {probe:?} never struck"
        );
    }
    Ok(())
}

#[test]
fn schedules_cover_every_kind_and_replay_from_the_seed() {
    let a = schedule(&mut Rng::new(7), 2);
    let b = schedule(&mut Rng::new(7), 2);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.len(), 2 * Fault::KINDS);
    for round in a.chunks(Fault::KINDS) {
        let mut kinds: Vec<String> = round
            .iter()
            .map(|s| {
                format!("{:?}", s.fault)
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), Fault::KINDS, "{round:?}");
    }
    let t = utc_now();
    assert_eq!(t.len(), "2026-01-01T00:00:00.000000Z".len(), "{t}");
    let log = "2026-01-01T00:00:01.000000Z INFO elected leader\n\
               2026-01-01T00:00:05.000000Z INFO resigned leadership\n\
               2026-01-01T00:00:09.000000Z INFO elected leader\n";
    assert_eq!(
        leadership(log, &["2026-01-01T00:00:12.000000Z".to_string()]),
        vec![
            (
                "2026-01-01T00:00:01.000000Z".into(),
                "2026-01-01T00:00:05.000000Z".into()
            ),
            (
                "2026-01-01T00:00:09.000000Z".into(),
                "2026-01-01T00:00:12.000000Z".into()
            ),
        ]
    );
}

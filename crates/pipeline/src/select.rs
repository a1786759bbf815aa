//! Select: the binlog dump, cut into transactions.
//!
//! Select owns the replica connection. It verifies and frames events (the
//! binlog crate checks CRC32 and tracks positions) and sends each source
//! transaction to Extract as one [`TxnChunk`], still as raw rows events, so
//! decoding runs on another task. A transaction larger than
//! `batch.max_bytes` is sent in slices; only its last slice carries an
//! `end` position, so nothing downstream can resume in its middle.
//!
//! Transient failures (connection lost, source restarting, a silent
//! stream) reconnect with backoff from the end of the last whole
//! transaction sent, announced by [`SelectMsg::Restart`] so Extract can drop
//! the unfinished transaction's rows it still holds. When `source.urls`
//! lists more servers and the current one stays unreachable for
//! `switch_after`, Select moves to the next one and continues from the GTID
//! set of the last whole transaction (file offsets differ between servers;
//! GTIDs do not). An operator's switch order (`sluice source switch`,
//! [`crate::control::switch`]) does the same at once, after checking that
//! the new server holds every transaction sent so far. Definite failures
//! (purged position, missing privileges, a corrupt event, events sluice
//! must not replicate) stop the pipeline.
//!
//! Statement-format DML (from sessions with `binlog_format=STATEMENT` or
//! `MIXED`) is judged here, where the source connection settings are:
//! skipped when it writes nothing the filter replicates, else refused
//! ([`crate::statements`]). A skipped statement logged outside a
//! transaction ends one, like a commit.
//!
//! A bidirectional pipeline drops here every transaction its peer applied
//! ([`crate::origin`]): its events never reach Extract, and its end still
//! moves the position (a batch without rows, which writes nothing to the
//! target).

use std::sync::Arc;
use std::time::Duration;

use sluice_binlog::catalog::SourceCatalog;
use sluice_binlog::stream::{ReplicaConfig, ReplicaStream, StartAt};
use sluice_binlog::{BinlogError, EventKind};
use sluice_config::Filter;
use sluice_core::retry::{Decision, RetryPolicy};
use sluice_core::{Classify, ErrorClass, Position};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batch::{DdlStatement, SelectMsg, Selected, TxnChunk};
use crate::channel::Sender;
use crate::error::PipelineError;
use crate::statements::{plain, StatementGuard, Verdict};

/// How Select connects and where it starts. (`Debug` would print the URLs'
/// passwords, so there is none.)
#[derive(Clone)]
pub struct SelectConfig {
    /// Source URL with its password (never logged).
    pub url: String,
    /// Further servers with the same GTID stream (`source.urls[1..]`),
    /// tried in order when the current one stays unreachable for
    /// `switch_after`; replication continues there from the GTID set of
    /// the last whole transaction.
    pub fallback_urls: Vec<String>,
    /// TLS towards every source URL (`source.tls`).
    pub tls: sluice_core::TlsConfig,
    pub switch_after: Duration,
    pub server_id: u32,
    pub start: StartAt,
    /// Nothing was stored: send the start position as a batch of its own,
    /// so that a restart resumes there even if no change arrives first.
    pub fresh: bool,
    /// Largest slice of a transaction, in raw rows-event bytes.
    pub max_chunk_bytes: usize,
    pub heartbeat: Duration,
    /// Backoff between reconnects: doubling from `initial`, capped at `max`.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// How long a clash with our own `server_id` is retried at startup and
    /// after a lost connection (our previous dump thread, not yet gone on
    /// the source; see [`BinlogError::ServerIdInUse`]).
    pub server_id_grace: Duration,
    /// Connection state and alarms (source unreachable, switched, purged).
    pub status: crate::status::NodeStatus,
    /// The pipeline's table filter: statement-format DML that writes only
    /// tables outside it is skipped.
    pub filter: Filter,
    /// Where each heartbeat from the source is noted ([`crate::lag`]).
    pub heartbeats: crate::lag::Heartbeats,
    /// Index into `[url] + fallback_urls` of the server to start on (an
    /// operator's earlier switch).
    pub start_index: usize,
    /// Operators' switch orders.
    pub switch: Option<crate::control::switch::SwitchReceiver>,
    /// A bidirectional pipeline's peer: its transactions are dropped
    /// ([`crate::origin`]).
    pub peer: Option<crate::origin::Peer>,
}

impl SelectConfig {
    /// Reconnects are retried until the error is definite or the pipeline
    /// stops: a source down for an hour is waited out.
    fn reconnect_policy(&self) -> RetryPolicy {
        RetryPolicy::unbounded(self.reconnect_initial, self.reconnect_max)
    }

    pub fn new(url: String, server_id: u32, start: StartAt) -> Self {
        SelectConfig {
            url,
            fallback_urls: Vec::new(),
            tls: sluice_core::TlsConfig::disabled(),
            switch_after: Duration::from_secs(10),
            server_id,
            start,
            fresh: false,
            max_chunk_bytes: 4 << 20,
            heartbeat: Duration::from_secs(1),
            reconnect_initial: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(5),
            server_id_grace: Duration::from_secs(15),
            status: crate::status::NodeStatus::default(),
            filter: Filter::default(),
            heartbeats: crate::lag::Heartbeats::default(),
            start_index: 0,
            switch: None,
            peer: None,
        }
    }
}

pub async fn run(
    cfg: SelectConfig,
    tx: Sender<SelectMsg>,
    stop: CancellationToken,
) -> Result<(), PipelineError> {
    let mut start = cfg.start.clone();
    let mut attempt: u32 = 0;
    let mut connected_before = false;
    // Since when our own previous dump may still be registered on the
    // source: the start, and every lost connection (the source notices a
    // dead dump thread only when it next writes to it).
    let mut began = Instant::now();
    let urls: Vec<&String> = std::iter::once(&cfg.url)
        .chain(cfg.fallback_urls.iter())
        .collect();
    let mut current = cfg.start_index.min(urls.len() - 1);
    let mut orders = match &cfg.switch {
        Some(rx) => Some(Arc::clone(rx).lock_owned().await),
        None => None,
    };
    // Since when the current server has failed without a whole transaction
    // in between, and the GTID set to continue from on another server.
    let mut failing_since: Option<Instant> = None;
    let mut gtid = match &cfg.start {
        StartAt::Gtid(set) => Some(set.clone()),
        _ => None,
    };
    loop {
        if let Some(since) = failing_since {
            if urls.len() > 1 && since.elapsed() >= cfg.switch_after {
                match &gtid {
                    Some(set) => {
                        let next = (current + 1) % urls.len();
                        tracing::warn!(
                            from = %sluice_core::redact_url(urls[current]),
                            to = %sluice_core::redact_url(urls[next]),
                            gtid = %set,
                            unreachable_s = since.elapsed().as_secs(),
                            "source switched: continuing from the GTID set of the last whole transaction"
                        );
                        cfg.status.source_switched(
                            &sluice_core::redact_url(urls[current]),
                            &sluice_core::redact_url(urls[next]),
                            &set.to_string(),
                            since.elapsed().as_secs(),
                        );
                        current = next;
                        start = StartAt::Gtid(set.clone());
                        failing_since = Some(Instant::now());
                    }
                    None => tracing::error!(
                        "the source is unreachable but no GTID position is known yet: cannot switch to another source URL"
                    ),
                }
            }
        }
        let mut replica = ReplicaConfig::new(urls[current].clone(), cfg.server_id, start.clone());
        replica.heartbeat = cfg.heartbeat;
        replica.tls = cfg.tls.clone();
        let connected = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            order = next_order(&mut orders) => {
                if let Some((to, set)) = take_order(&cfg, &urls, current, gtid.as_ref(), order).await {
                    (current, start, failing_since, attempt) = (to, StartAt::Gtid(set), None, 0);
                }
                continue;
            }
            r = ReplicaStream::connect(&replica) => r,
        };
        let mut stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                let own_ghost = matches!(error, BinlogError::ServerIdInUse { .. })
                    && began.elapsed() < cfg.server_id_grace;
                if matches!(error, BinlogError::Purged(_)) {
                    cfg.status.start_purged(&error.to_string());
                }
                // Our own previous dump thread is waited out like a
                // transient failure; otherwise the error's class decides.
                let class = if own_ghost {
                    ErrorClass::Transient
                } else {
                    error.class()
                };
                attempt += 1;
                let Decision::RetryAfter(wait) = cfg.reconnect_policy().decide(attempt, class)
                else {
                    return Err(error.into());
                };
                if !own_ghost {
                    cfg.status
                        .source_down(&sluice_core::redact_url(urls[current]), &error.to_string());
                }
                failing_since.get_or_insert_with(Instant::now);
                tracing::warn!(%error, attempt, retry_in_ms = wait.as_millis() as u64, "cannot start the binlog dump; retrying");
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    // The server is down: exactly when an operator switches.
                    order = next_order(&mut orders) => {
                        if let Some((to, set)) = take_order(&cfg, &urls, current, gtid.as_ref(), order).await {
                            (current, start, failing_since, attempt) = (to, StartAt::Gtid(set), None, 0);
                        }
                        continue;
                    }
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        cfg.status
            .source_up(&sluice_core::redact_url(urls[current]));
        if connected_before {
            if tx.send(SelectMsg::Restart, 0).await.is_err() {
                return Ok(());
            }
        } else if cfg.fresh && !stream.start_position().file.is_empty() {
            let marker = TxnChunk {
                end: Some(stream.start_position().clone()),
                through: Some(stream.start_position().clone()),
                urgent: true,
                ..TxnChunk::default()
            };
            if tx.send(SelectMsg::Chunk(marker), 0).await.is_err() {
                return Ok(());
            }
        }
        connected_before = true;
        // Until a transaction completes, a reconnect starts where this
        // connection did (never again at "latest", which would skip changes).
        let began_at = stream.start_position();
        if began_at.gtid.is_some() {
            gtid = began_at.gtid.clone();
        }
        if !began_at.file.is_empty() {
            start = StartAt::File {
                file: began_at.file.clone(),
                pos: began_at.offset,
            };
        }

        let mut guard = StatementGuard::new(
            cfg.filter.clone(),
            SourceCatalog::new(
                urls[current].clone(),
                cfg.tls.clone(),
                replica.connect_timeout,
            ),
        );
        let outcome = pump(
            &cfg,
            &mut stream,
            &mut guard,
            &tx,
            &stop,
            &mut attempt,
            &mut orders,
        )
        .await;
        stream.close().await;
        match outcome {
            Pump::Stopped => return Ok(()),
            Pump::Failed(error) => return Err(error),
            Pump::Switch { order, resume } => {
                if let Some(resume) = resume {
                    if resume.gtid.is_some() {
                        gtid = resume.gtid.clone();
                    }
                    start = StartAt::File {
                        file: resume.file,
                        pos: resume.offset,
                    };
                }
                if let Some((to, set)) =
                    take_order(&cfg, &urls, current, gtid.as_ref(), order).await
                {
                    (current, start, failing_since, attempt) = (to, StartAt::Gtid(set), None, 0);
                }
            }
            Pump::Lost { error, resume } => {
                began = Instant::now();
                if let Some(resume) = resume {
                    // A whole transaction arrived: this server was healthy.
                    failing_since = None;
                    if resume.gtid.is_some() {
                        gtid = resume.gtid.clone();
                    }
                    start = StartAt::File {
                        file: resume.file,
                        pos: resume.offset,
                    };
                }
                failing_since.get_or_insert_with(Instant::now);
                attempt += 1;
                // `Lost` is transient by construction (see `pump`).
                let wait = cfg.reconnect_policy().backoff.delay(attempt);
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "binlog dump interrupted; reconnecting after the last whole transaction");
                cfg.status.transient_error("select", &error);
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    order = next_order(&mut orders) => {
                        if let Some((to, set)) = take_order(&cfg, &urls, current, gtid.as_ref(), order).await {
                            (current, start, failing_since, attempt) = (to, StartAt::Gtid(set), None, 0);
                        }
                    }
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

type Orders = Option<
    tokio::sync::OwnedMutexGuard<tokio::sync::mpsc::Receiver<crate::control::switch::SwitchOrder>>,
>;

/// The next operator's switch order (never, without an order channel).
async fn next_order(orders: &mut Orders) -> crate::control::switch::SwitchOrder {
    match orders.as_mut() {
        Some(rx) => match rx.recv().await {
            Some(order) => order,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Carries out (or refuses) an operator's switch order and answers it;
/// the server and the GTID set to continue from when it switches.
async fn take_order(
    cfg: &SelectConfig,
    urls: &[&String],
    current: usize,
    gtid: Option<&sluice_core::GtidSet>,
    order: crate::control::switch::SwitchOrder,
) -> Option<(usize, sluice_core::GtidSet)> {
    let to = order.index;
    let switched = switch_to(cfg, urls, to, gtid).await;
    if let Ok(set) = &switched {
        let (from, to) = (
            sluice_core::redact_url(urls[current]),
            sluice_core::redact_url(urls[to]),
        );
        tracing::warn!(%from, %to, gtid = %set, "source switched by an operator: continuing from the GTID set of the last whole transaction");
        cfg.status.source_switched(&from, &to, &set.to_string(), 0);
    }
    let _ = order.reply.send(
        switched
            .as_ref()
            .map(ToString::to_string)
            .map_err(Clone::clone),
    );
    switched.ok().map(|set| (to, set))
}

/// Checks an operator's switch to `urls[index]` (see
/// [`crate::control::switch`]); the GTID set to continue from.
async fn switch_to(
    cfg: &SelectConfig,
    urls: &[&String],
    index: usize,
    gtid: Option<&sluice_core::GtidSet>,
) -> Result<sluice_core::GtidSet, String> {
    let Some(url) = urls.get(index) else {
        return Err(format!("source.urls has no entry {index}"));
    };
    let Some(set) = gtid else {
        return Err("no GTID position is known yet (no whole transaction read): cannot continue on another server".into());
    };
    crate::control::switch::wait_until_holds(url, &cfg.tls, set).await?;
    Ok(set.clone())
}

enum Pump {
    /// Shutdown requested, or the receiver is gone.
    Stopped,
    Failed(PipelineError),
    /// Transient: reconnect from `resume` (the end of the last whole
    /// transaction sent; `None` if none was sent on this connection).
    Lost {
        error: String,
        resume: Option<Position>,
    },
    /// An operator's switch order; `resume` as for `Lost`.
    Switch {
        order: crate::control::switch::SwitchOrder,
        resume: Option<Position>,
    },
}

async fn pump(
    cfg: &SelectConfig,
    stream: &mut ReplicaStream,
    guard: &mut StatementGuard,
    tx: &Sender<SelectMsg>,
    stop: &CancellationToken,
    attempt: &mut u32,
    orders: &mut Orders,
) -> Pump {
    let mut chunk = TxnChunk::default();
    let mut resume: Option<Position> = None;
    // What the peer applied, recognised per transaction.
    let mut origin = crate::origin::Recognizer::new(cfg.peer.clone());
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Pump::Stopped,
            order = next_order(orders) => return Pump::Switch { order, resume },
            next = stream.next() => next,
        };
        let event = match next {
            None => {
                return Pump::Lost {
                    error: "the source closed the binlog stream".into(),
                    resume,
                }
            }
            Some(Err(error)) if error.class().is_transient() => {
                return Pump::Lost {
                    error: error.to_string(),
                    resume,
                }
            }
            Some(Err(error)) => return Pump::Failed(error.into()),
            Some(Ok(event)) => event,
        };
        let end = matches!(
            event.kind,
            EventKind::Commit { .. }
                | EventKind::Ddl { .. }
                | EventKind::Statement {
                    standalone: true,
                    ..
                }
        )
        .then(|| stream.position_after(&event));
        let at = || format!("{}: offset {}", event.file, event.offset);
        let through = || Position::new(event.file.to_string(), event.next);
        let kind = match event.kind {
            EventKind::Statement {
                sql,
                writes,
                standalone,
                ..
            } => {
                let verdict = tokio::select! {
                    () = stop.cancelled() => return Pump::Stopped,
                    v = guard.judge(&writes) => v,
                };
                match verdict {
                    Err(error) if error.class().is_transient() => {
                        return Pump::Lost {
                            error: format!("judging statement-based DML at {}: {error}", at()),
                            resume,
                        }
                    }
                    Err(error) => return Pump::Failed(error.into()),
                    Ok(Verdict::Refuse(why)) => {
                        return Pump::Failed(PipelineError::Refused {
                            at: at(),
                            reason: format!(
                                "{why} (`{}`): sluice replicates rows only; set binlog_format=ROW for the sessions that write replicated tables",
                                truncate(&sql, 120)
                            ),
                        })
                    }
                    Ok(Verdict::Skip { tables }) => {
                        let first = tables.first().map(plain).unwrap_or_default();
                        metrics::counter!("sluice_statements_skipped_total", "table" => first.clone())
                            .increment(1);
                        tracing::debug!(
                            table = %first,
                            tables = ?tables.iter().map(plain).collect::<Vec<_>>(),
                            at = %at(),
                            sql = %truncate(&sql, 120),
                            "statement-based DML outside the filter skipped"
                        );
                    }
                }
                if !standalone {
                    continue;
                }
                // It was a transaction of its own: it ends here.
                EventKind::Commit { xid: None }
            }
            other => other,
        };
        let kind = match origin.see(event.server_id, kind) {
            Some(kind) => kind,
            None => continue,
        };
        match kind {
            EventKind::Begin { .. } => {}
            EventKind::Rows(rows) => {
                chunk.bytes += rows.data.len();
                chunk.timestamp = event.timestamp;
                chunk.items.push(Selected::Rows {
                    event: rows,
                    file: Arc::clone(&event.file),
                    offset: event.offset,
                    next: event.next,
                });
                if chunk.bytes >= cfg.max_chunk_bytes {
                    chunk.through = Some(through());
                    if send(tx, std::mem::take(&mut chunk), stop).await.is_err() {
                        return Pump::Stopped;
                    }
                }
            }
            EventKind::Commit { .. } | EventKind::Ddl { .. } => {
                let end = end.unwrap_or_else(through);
                if let EventKind::Ddl { schema, sql, .. } = kind {
                    guard.schema_changed();
                    chunk.items.push(Selected::Ddl(DdlStatement {
                        schema,
                        sql,
                        at: at(),
                        decision: None,
                    }));
                }
                chunk.timestamp = event.timestamp;
                chunk.through = Some(end.clone());
                chunk.end = Some(end.clone());
                if send(tx, std::mem::take(&mut chunk), stop).await.is_err() {
                    return Pump::Stopped;
                }
                resume = Some(end);
                // A whole transaction arrived: the connection is healthy.
                *attempt = 0;
            }
            // Judged above.
            EventKind::Statement { .. } => {}
            EventKind::Unreplicable { reason } => {
                return Pump::Failed(PipelineError::Refused { at: at(), reason })
            }
            EventKind::Incident { message } => {
                return Pump::Failed(PipelineError::Refused {
                    at: at(),
                    reason: format!(
                        "incident event: the source may have lost changes ({message}); check the source and restart from a verified position"
                    ),
                })
            }
            // The source had nothing new for a heartbeat period: everything
            // it wrote until now has been received.
            EventKind::Heartbeat => cfg.heartbeats.beat(),
            EventKind::Rotate { .. } => {}
        }
    }
}

async fn send(tx: &Sender<SelectMsg>, chunk: TxnChunk, stop: &CancellationToken) -> Result<(), ()> {
    let size = chunk.bytes;
    tokio::select! {
        () = stop.cancelled() => Err(()),
        r = tx.send(SelectMsg::Chunk(chunk), size) => r.map_err(|_| ()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

//! `sluice positions set`: the override of a pipeline's acknowledged
//! position, with its safety rules (see the parent module's docs).

use std::process::ExitCode;

use anyhow::Context as _;
use sluice_config::{Coordination, Pipeline};
use sluice_coord::{
    read_leader, read_nodes, AnyPositionStore, EtcdPositionStore, LocalPositionStore,
    PositionStore as _, StoredPosition,
};
use sluice_core::{GtidSet, Position};
use sluice_load::Checkpoint;

use super::time::{db_time, utc_ms};
use super::{
    display_id, etcd_client, is_missing_table, load_config, pipeline_keys, target_loader, Election,
    SetArgs, Table, ETCD_TIMEOUT, SOURCE_TIMEOUT, TARGET_TIMEOUT,
};

pub(super) async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let resolves_gtid = args.file.is_none();
    let also: &[&str] = if resolves_gtid { &["source"] } else { &[] };
    let Some(pipeline) = load_config(&args.config, also) else {
        return Ok(ExitCode::FAILURE);
    };
    let gtid = args
        .gtid
        .as_deref()
        .map(|g| g.parse::<GtidSet>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--gtid: {e}"))?;
    let position = match (&args.file, args.pos) {
        (Some(file), Some(pos)) => {
            if pos < 4 {
                anyhow::bail!("--pos {pos}: binlog offsets start at 4");
            }
            let text = format!("{file}:{pos}");
            let mut p: Position = text
                .parse()
                .map_err(|e| anyhow::anyhow!("--file/--pos `{text}`: {e}"))?;
            p.gtid = gtid;
            p
        }
        _ => match gtid {
            Some(set) => resolve_gtid(&pipeline, set).await?,
            None => anyhow::bail!("give --gtid, or --file and --pos"),
        },
    };
    let mut out = Table::default();
    out.row("pipeline", pipeline.name.as_str());
    let mut warnings: Vec<String> = Vec::new();

    // 1. Nobody may be replicating (or about to).
    let store: AnyPositionStore = match &pipeline.coordination {
        Coordination::Etcd {
            endpoints,
            prefix,
            tls,
            auth,
        } => {
            let keys = pipeline_keys(prefix, &pipeline.name)?;
            let client = etcd_client(endpoints, tls, auth).await?;
            let (leader, nodes) =
                tokio::try_join!(read_leader(&client, &keys), read_nodes(&client, &keys))
                    .context("reading the pipeline's nodes in etcd")?;
            let election = Election { leader, nodes };
            let running = running_text(&election);
            match (&running, args.force) {
                (None, _) => out.row("active node", "none"),
                (Some(running), false) => {
                    eprintln!(
                        "sluice: refusing to set the position of pipeline `{}`: {running}. Stop every \
                         node of the pipeline first (SIGTERM), or pass --force to fence the active \
                         node out (the nodes then elect a leader again at once).",
                        pipeline.name
                    );
                    return Ok(ExitCode::FAILURE);
                }
                (Some(running), true) => {
                    warnings.push(format!(
                        "--force while nodes run ({running}): the active node is fenced out now, \
                         but the nodes elect a leader again at once and one may have read the old \
                         position or write a new checkpoint; stop them for a clean change"
                    ));
                    out.row("active node", format!("{running} (fenced out by --force)"));
                }
            }
            EtcdPositionStore::new(client, keys, ETCD_TIMEOUT).into()
        }
        Coordination::Local { dir } => {
            // Its lock keeps a running `sluice run` (and --force) out.
            let store = LocalPositionStore::open(dir.join(&pipeline.name)).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; stop `sluice run` of pipeline `{}` first",
                    pipeline.name
                )
            })?;
            out.row("active node", "n/a (local coordination; not running)");
            store.into()
        }
    };

    // 2. The target must be reachable to remove its checkpoint.
    let target_url = pipeline.target.url.to_string();
    let manual_delete = sluice_load::meta::delete_checkpoint_statement(&pipeline.name);
    let loader = target_loader(&pipeline).await;
    if let Err(e) = &loader {
        if !args.force {
            eprintln!(
                "sluice: refusing to set the position of pipeline `{}`: target {target_url} is \
                 unreachable ({e}), so its checkpoint row cannot be removed, and `sluice run` \
                 resumes from the checkpoint when it is ahead of the stored position. Fix the \
                 target, or pass --force and run `{manual_delete}` on it yourself.",
                pipeline.name
            );
            return Ok(ExitCode::FAILURE);
        }
    }

    // 3. Force the position (with an audit entry).
    let old = match store.load().await {
        Ok(Some(old)) => describe_stored(&old),
        Ok(None) => "none stored".to_string(),
        Err(e) => format!("unreadable ({e})"),
    };
    out.row("old position", old);
    let record = store
        .force_store(position, &operator_id())
        .await
        .with_context(|| format!("setting the position at {}", store.location()))?;
    out.row("new position", describe_stored(&record));
    out.row("store", store.location());
    match store.history().await {
        Ok(h) => out.row(
            "history",
            format!("recorded ({} forced change(s) in total)", h.len()),
        ),
        Err(e) => out.row("history", format!("recorded, but unreadable now ({e})")),
    }

    // 4. Remove the target checkpoint, which would otherwise win if ahead.
    let mut failed = false;
    match loader {
        Err(e) => {
            warnings.push(format!(
                "target {target_url} unreachable ({e}): its checkpoint row was NOT removed; if \
                 it is ahead of the new position `sluice run` resumes from it — run \
                 `{manual_delete}` on the target before starting the pipeline"
            ));
            out.row("target checkpoint", "NOT removed (target unreachable)");
        }
        Ok(loader) => {
            match delete_checkpoint(&loader, &pipeline.name).await {
                Ok(Deleted::Row(Some(cp))) => out.row(
                    "target checkpoint",
                    format!(
                        "removed (was batch {} at {}, updated {})",
                        cp.batch_id,
                        cp.position,
                        db_time(&cp.updated_at)
                    ),
                ),
                Ok(Deleted::Row(None)) => out.row("target checkpoint", "none to remove"),
                Ok(Deleted::NoTable) => out.row(
                    "target checkpoint",
                    "none to remove (sluice_meta.checkpoint does not exist)",
                ),
                Err(e) => {
                    failed = true;
                    warnings.push(format!(
                        "the position is set, but removing the target checkpoint failed ({e}); \
                         run `{manual_delete}` on {target_url} before starting the pipeline"
                    ));
                    out.row("target checkpoint", "NOT removed (see the warning)");
                }
            }
            loader.close().await;
        }
    }
    out.row("next run", format!("resumes at {}", record.position));
    print!("{}", out.render());
    for w in &warnings {
        eprintln!("sluice: warning: {w}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Who is running, for refusals: `None` when no leader key exists and no
/// node is registered.
fn running_text(e: &Election) -> Option<String> {
    let mut parts = Vec::new();
    if let Some((l, _)) = &e.leader {
        parts.push(format!(
            "node `{}` is active (leader since {})",
            display_id(&l.node_id),
            utc_ms(l.since_unix_ms)
        ));
    }
    let standbys: Vec<String> = e.standbys().map(|n| format!("`{}`", n.node_id)).collect();
    if !standbys.is_empty() {
        parts.push(format!("node(s) {} registered", standbys.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn describe_stored(s: &StoredPosition) -> String {
    format!(
        "{} (batch {}, written by {} at {})",
        s.position,
        s.batch_id,
        s.written_by,
        utc_ms(s.written_at_unix_ms)
    )
}

enum Deleted {
    Row(Option<Checkpoint>),
    NoTable,
}

/// Deletes the pipeline's checkpoint row; returns what it held.
async fn delete_checkpoint(loader: &sluice_load::Loader, name: &str) -> Result<Deleted, String> {
    let work = sluice_load::meta::delete_checkpoint(loader.pool(), name);
    match tokio::time::timeout(TARGET_TIMEOUT * 2, work).await {
        Err(_) => Err(format!("no answer within {:?}", TARGET_TIMEOUT * 2)),
        Ok(Ok(before)) => Ok(Deleted::Row(before)),
        Ok(Err(e)) if is_missing_table(&e) => Ok(Deleted::NoTable),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// `operator@<host> (<user> via sluice positions set)`.
fn operator_id() -> String {
    let host = sluice_core::time::host_name();
    match std::env::var("USER").ok().filter(|u| !u.trim().is_empty()) {
        Some(user) => format!("operator@{host} ({user} via sluice positions set)"),
        None => format!("operator@{host} (via sluice positions set)"),
    }
    .chars()
    .filter(|c| !c.is_control())
    .take(200)
    .collect()
}

/// The file and offset right after GTID position `set` on the source (see
/// [`sluice_binlog::gtid_resolve`]; MariaDB sources only).
async fn resolve_gtid(pipeline: &Pipeline, set: GtidSet) -> anyhow::Result<Position> {
    let GtidSet::Mariadb(want) = &set else {
        anyhow::bail!(
            "--gtid alone is resolved to a binlog file and offset only on MariaDB sources; give \
             --file and --pos as well (with --gtid to record the set)"
        );
    };
    let source = pipeline.source.url();
    let found = sluice_binlog::gtid_resolve::resolve_on_source(
        source.expose(),
        &pipeline.source.tls,
        SOURCE_TIMEOUT,
        want,
    )
    .await?;
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "GTID position {set} is not a transaction boundary in the binlogs source {source} \
             still has; give --file and --pos instead"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_id_is_a_valid_writer() {
        let id = operator_id();
        assert!(id.starts_with("operator@"), "{id}");
        assert!(!id.chars().any(char::is_control));
    }
}

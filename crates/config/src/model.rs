//! The validated pipeline: what the rest of sluice consumes.
//!
//! Every field's doc names its YAML key, whether it is required, its default
//! and its accepted values; the README's reference is copied from here.
//! Nothing in these types can print a password: URLs are [`DbUrl`]s, whose
//! `Debug` and `Display` redact it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_core::{EtcdAuth, EtcdTls, GtidSet, TlsConfig};

use crate::rules::{ColumnRules, Filter, Routes};
use crate::url::DbUrl;

/// A validated pipeline file.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// `name` (required): the pipeline's identity, `[a-z0-9_-]+`, at most 64
    /// characters. It keys the stored position (in etcd or the local state
    /// directory) and the target's checkpoint row, so renaming a pipeline
    /// starts it afresh from `source.start`.
    pub name: String,
    /// `source` (required): the server whose binlog is replicated.
    pub source: Source,
    /// `target` (required): the server changes are applied to.
    pub target: Target,
    /// `coordination` (optional): where positions, leases and stage tasks
    /// live. Default: `local: {dir: state}`, i.e. a `state` directory next to
    /// the pipeline file.
    pub coordination: Coordination,
    /// `filter` (optional): which tables are replicated, as
    /// `{include: [REGEX...], exclude: [REGEX...]}`, regexes on the whole
    /// source `schema.table` (anchored, case-sensitive; `(?i)` for the other).
    /// A table is replicated when it matches an `include` pattern (an empty
    /// or absent `include` means every table) and no `exclude` pattern. The
    /// system schemas `mysql`, `sys`, `information_schema` and
    /// `performance_schema` are never replicated. Default: every table.
    pub filter: Filter,
    /// `routes` (optional): list of `{match: REGEX, to: TEMPLATE}` that
    /// rename `schema.table` on the way to the target. `match` is a regex on
    /// the whole source `schema.table`; `to` is `SCHEMA.TABLE` with exactly
    /// one literal `.`, where `$1`, `$2`, ... insert the pattern's capture
    /// groups (a group the pattern does not have is an error) and `$$` is a
    /// literal `$`. The first matching route wins; unmatched tables keep
    /// their names. DDL is rewritten with the same routes. Default: none.
    pub routes: Routes,
    /// `columns` (optional): list of per-table column rules
    /// `{table: REGEX, include: [COL...], exclude: [COL...], rename: {FROM: TO}}`.
    /// `table` (required) is a regex on the source `schema.table`; `include`
    /// keeps only the listed columns, `exclude` drops the listed ones (give
    /// one or the other); `rename` maps source column names to target names.
    /// Column names compare case-insensitively. The first rule whose `table`
    /// matches applies. Never drop a table's key columns: the target applies
    /// changes by key. Default: none (every column, same names).
    pub columns: ColumnRules,
    /// `batch` (optional): how the binlog stream is cut into batches.
    pub batch: Batch,
    /// `load` (optional): how batches are applied to the target.
    pub load: Load,
    /// `ha` (optional): lease timing for an active/standby pair (with
    /// `coordination.etcd`).
    pub ha: Ha,
    /// `node` (optional; `stages` validated but not used yet): this node's identity and
    /// the stages it runs.
    pub node: Node,
    /// `admin` (optional): the admin HTTP endpoint (`/healthz`, `/readyz`,
    /// `/status`, `/metrics`). Default: none (no admin endpoint).
    pub admin: Option<Admin>,
    /// `stages` (optional; needs `coordination.etcd`): run the pipeline's
    /// stages as distributed tasks across the nodes that share this file
    /// (see [`StagesSettings`]). Default: none — every stage runs in the
    /// active node's process, with no per-batch etcd traffic.
    pub stages: Option<StagesSettings>,
    /// `alarms` (optional): when to raise alarms and where to deliver them.
    /// Default: lag threshold `60s`, no webhooks (alarms are still logged
    /// and counted in the metrics).
    pub alarms: Alarms,
    /// `bidirectional` (optional): one direction of an active-active pair
    /// (see [`Bidirectional`]). Default: none (one-way replication).
    pub bidirectional: Option<Bidirectional>,
    /// `verify` (optional): continuous verification by the active node (see
    /// [`VerifySettings`]). Default: none (only `sluice verify` on demand).
    pub verify: Option<VerifySettings>,
    /// `snapshot` (optional): copy the tables' existing rows before
    /// streaming (see [`Snapshot`]). Default: `mode: never`.
    pub snapshot: Snapshot,
}

/// `verify` (optional): the active node compares source and target in the
/// background, one round every `interval`, reporting (never repairing)
/// what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySettings {
    /// `verify.interval` (required): time between the end of one round and
    /// the start of the next, a duration of at least `1s`.
    pub interval: std::time::Duration,
    /// `verify.rate` (required): source rows read per second, at most (> 0).
    pub rate: u64,
    /// `verify.chunk_rows` (optional): rows per compared chunk. Default 1000.
    pub chunk_rows: u64,
}

/// `source`: the MySQL/MariaDB server sluice reads the binlog of, as a replica.
#[derive(Clone, Debug)]
pub struct Source {
    /// `source.url` or `source.urls` (one of them required): the server as
    /// `mysql://user:password@host:port` (or `mariadb://`); the user needs
    /// `REPLICATION SLAVE`, `REPLICATION CLIENT` and `SELECT`. Write the
    /// password as `${VAR}` so that it comes from the environment, and
    /// percent-encode `/ @ : ? #` in it. `urls` is a non-empty list of
    /// servers holding the same binlog stream (e.g. a primary and its
    /// replicas with GTIDs), tried in order; `url: X` is `urls: [X]`.
    /// Always at least one element.
    pub urls: Vec<DbUrl>,
    /// `source.server_id` (required): the replica server id sluice registers
    /// with, `1..=4294967295`. It must differ from every other server and
    /// replica of the source; the source refuses a second connection with the
    /// same id.
    pub server_id: u32,
    /// `source.start` (optional): where to start when no position has been
    /// stored yet; a stored position always wins. `latest` (default: the
    /// source's current binlog end), `{file: mysql-bin.000003, pos: 4}` (`pos`
    /// defaults to 4, the first event, and must be at least 4), or
    /// `{gtid: "0-1-100"}` (MariaDB `domain-server-seq` list or MySQL
    /// `uuid:1-5` set; `mysql:`/`mariadb:` prefixes force the flavour).
    pub start: StartAt,
    /// `source.switch_after` (optional): how long the current source URL must
    /// be unreachable before sluice moves to the next one in `urls` and
    /// continues there from the GTID set of the last whole transaction.
    /// Duration, default `10s`; `never` leaves switching to operators
    /// (`sluice source switch`), which is `None` here.
    pub switch_after: Option<Duration>,
    /// `source.tls` (optional): TLS towards every source URL, as
    /// `{mode, ca, cert, key}`. `mode` is `disabled` (default), `required`
    /// (encrypted, the certificate is not checked), `verify_ca` (the chain
    /// must lead to `ca`) or `verify_identity` (also the URL's host must be in
    /// the certificate); `verify_*` need `ca`, which is then the only trusted
    /// root. `cert` and `key` (PEM, given together) are a client certificate
    /// for users created `REQUIRE X509`. Relative paths are relative to the
    /// pipeline file's directory; the files must exist. TLS options in the
    /// URL itself (`?ssl-mode=`...) are refused.
    pub tls: TlsConfig,
}

impl Source {
    /// The first (preferred) source URL.
    pub fn url(&self) -> &DbUrl {
        &self.urls[0]
    }
}

/// `source.start`: where replication begins when nothing is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// `latest`: the source's current end of binlog.
    Latest,
    /// `{file, pos}`: a binlog file name and the offset of an event in it.
    File {
        /// Binlog file name (a bare file name, no directory).
        file: String,
        /// Offset of the first event to read, at least 4.
        pos: u64,
    },
    /// `{gtid}`: the set of transactions already applied.
    Gtid(GtidSet),
}

/// As written in the pipeline file: `latest`, `mysql-bin.000003:4`, `gtid
/// 0-1-100` (for log lines and messages).
impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartAt::Latest => f.write_str("latest"),
            StartAt::File { file, pos } => write!(f, "{file}:{pos}"),
            StartAt::Gtid(set) => write!(f, "gtid {set}"),
        }
    }
}

/// `target`: the server changes are applied to.
#[derive(Clone, Debug)]
pub struct Target {
    /// `target.url` (required): `mysql://user:password@host:port` (or
    /// `mariadb://`); the user needs DML and DDL rights on the routed
    /// schemas and on sluice's metadata tables.
    pub url: DbUrl,
    /// `target.tls` (optional): as `source.tls`. Known limits of the
    /// target's driver (sqlx 0.8 with rustls 0.23): `verify_*` trust the
    /// public web roots in addition to `ca`, and `verify_ca` also compares
    /// the host name (it behaves as `verify_identity`).
    pub tls: TlsConfig,
}

/// `coordination`: exactly one of `etcd` or `local`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coordination {
    /// `coordination.etcd`: positions, leases and tasks in etcd (needed for
    /// an HA pair or stages on several nodes).
    Etcd {
        /// `coordination.etcd.endpoints` (required): non-empty list of
        /// `http://host:port` or `https://host:port` client URLs.
        endpoints: Vec<String>,
        /// `coordination.etcd.prefix` (optional): key prefix under which every
        /// sluice key lives, starting with `/`, stored without a trailing
        /// `/`. Default `/sluice`.
        prefix: String,
        /// `coordination.etcd.tls` (optional; required with `https://`
        /// endpoints, refused with `http://`): `{ca, cert, key}`. `ca`
        /// (required) is the CA certificate (PEM) etcd's certificate must
        /// lead to, and the endpoint's host must be in that certificate;
        /// `cert` and `key` (together) are a client certificate for etcd's
        /// `--client-cert-auth`. Paths as in `source.tls`.
        tls: Option<EtcdTls>,
        /// `coordination.etcd.user` and `coordination.etcd.password`
        /// (optional; `password` required with `user`): etcd role-based
        /// authentication. Write the password as `${VAR}`; it is never
        /// printed.
        auth: Option<EtcdAuth>,
    },
    /// `coordination.local`: single node, state in a local directory.
    Local {
        /// `coordination.local.dir` (optional): directory holding the
        /// position file. Default `state`. A relative path is relative to the
        /// directory of the pipeline file (not the working directory), so
        /// running sluice from elsewhere never silently starts afresh.
        dir: PathBuf,
    },
}

/// `batch`: bounds of one batch. A batch is cut at a transaction end once any
/// bound is reached; a transaction larger than the bounds is split across
/// batches (its position only advances at its end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `batch.max_rows` (optional): rows per batch, `1..=1000000`. Default 2000.
    pub max_rows: u64,
    /// `batch.max_bytes` (optional): approximate decoded bytes per batch,
    /// size `1KiB..=1GiB`. Default `4MiB`.
    pub max_bytes: u64,
    /// `batch.max_delay` (optional): how long a partial batch may wait for
    /// more changes before it is cut, duration `0..=1m`. Default `20ms`.
    pub max_delay: Duration,
    /// `batch.window` (optional): most batches in flight between Select and
    /// acknowledgement, `1..=1024`. Default 8. Together with the other
    /// bounds it caps the pipeline's memory.
    pub window: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_rows: 2000,
            max_bytes: 4 << 20,
            max_delay: Duration::from_millis(20),
            window: 8,
        }
    }
}

/// `load`: applying batches to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    /// `load.workers` (optional): parallel target connections, rows
    /// partitioned by key hash (per-key order kept), `1..=64`. Default 4.
    pub workers: u64,
    /// `load.ddl` (optional): what to do with DDL on replicated tables:
    /// `apply` (default; rewritten for routes, applied after every earlier
    /// batch), `skip`, or `fail` (stop the pipeline before the DDL).
    pub ddl: DdlPolicy,
    /// `load.statement_cache` (optional): prepared statements kept per
    /// target connection, `0..=4096`. Default 256. Statements the cache
    /// would not keep are sent as plain text with their values inline; `0`
    /// sends every statement that way (for proxies that handle prepared
    /// statements badly).
    pub statement_cache: u64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            workers: 4,
            ddl: DdlPolicy::Apply,
            statement_cache: 256,
        }
    }
}

/// `load.ddl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DdlPolicy {
    /// `apply`: apply DDL to the target (after routing).
    #[default]
    Apply,
    /// `skip`: ignore DDL.
    Skip,
    /// `fail`: stop the pipeline at the first DDL, before applying it.
    Fail,
}

/// `ha`: leases of an active/standby pair (with `coordination.etcd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ha {
    /// `ha.lease_ttl` (optional): etcd lease time-to-live of the active node;
    /// whole seconds, `2s..=1h` (etcd leases have second granularity).
    /// Default `3s`.
    pub lease_ttl: Duration,
    /// `ha.standby_delay` (optional): how long a standby waits after the lease
    /// is released or expires before campaigning, duration `0..=1h`.
    /// Default `1s`.
    pub standby_delay: Duration,
}

impl Default for Ha {
    fn default() -> Self {
        Ha {
            lease_ttl: Duration::from_secs(3),
            standby_delay: Duration::from_secs(1),
        }
    }
}

/// `node`: this process's identity (used) and the stages it may run
/// (validated, not used yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `node.id` (optional): unique node name, `[A-Za-z0-9_.-]+`, at most 64
    /// characters. Default: none (the runtime uses the host name).
    pub id: Option<String>,
    /// `node.stages` (optional): non-empty list of the stages this node runs,
    /// from `select`, `extract`, `transform`, `load`, each at most once.
    /// Default: all four. Anything less needs `coordination.etcd`.
    pub stages: Vec<Stage>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            id: None,
            stages: Stage::ALL.to_vec(),
        }
    }
}

impl Node {
    /// Whether this node runs `stage`.
    pub fn runs(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }
}

/// A pipeline stage, as named in `node.stages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// `select`: binlog dump and batching (only on the lease holder).
    Select,
    /// `extract`: schema resolution, row decoding, filters.
    Extract,
    /// `transform`: routes and column rules.
    Transform,
    /// `load`: applying to the target.
    Load,
}

impl Stage {
    /// Every stage, in flow order.
    pub const ALL: [Stage; 4] = [Stage::Select, Stage::Extract, Stage::Transform, Stage::Load];

    /// The stage's name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Select => "select",
            Stage::Extract => "extract",
            Stage::Transform => "transform",
            Stage::Load => "load",
        }
    }
}

/// `stages`: distributed stage scheduling (Otter's SEDA model).
///
/// The active node runs Select and Extract (they cut and number batches)
/// and schedules the rest: each batch becomes a task in etcd that a node
/// whose `node.stages` allows the next stage claims under its lease; batch
/// data moves between nodes over HTTP from the producing node's `listen`
/// address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagesSettings {
    /// `stages.listen` (required): `IP:PORT` this node serves batch data on
    /// (the "pipe"), e.g. `0.0.0.0:7070`; port `0` picks a free port.
    pub listen: SocketAddr,
    /// `stages.advertise` (optional): the `http://HOST:PORT` other nodes use
    /// to reach `listen`. Default: `http://` + `listen` (so `listen` must
    /// then not be `0.0.0.0`).
    pub advertise: Option<String>,
    /// `stages.window` (optional): most batches in flight (cut but not yet
    /// acknowledged), `1..=1024`. Default: `batch.window`.
    pub window: Option<u64>,
    /// `stages.task_timeout` (optional): a claimed task that makes no
    /// progress for this long is treated as lost: the pipeline rolls back to
    /// the last acknowledged position. Duration, default `60s`.
    pub task_timeout: Duration,
    /// `stages.fetch_timeout` (optional): deadline of one batch transfer
    /// between nodes. Duration, default `10s`.
    pub fetch_timeout: Duration,
    /// `stages.max_transfer` (optional): largest batch (uncompressed) a node
    /// accepts from another, `1MiB..4GiB`. Default `256MiB`.
    pub max_transfer: u64,
}

impl Default for StagesSettings {
    fn default() -> Self {
        StagesSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            window: None,
            task_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(10),
            max_transfer: 256 << 20,
        }
    }
}

/// `admin`: the admin HTTP endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Admin {
    /// `admin.listen` (required when `admin` is given): `IP:PORT` to listen on,
    /// e.g. `127.0.0.1:9090` (keep it on loopback or a management network;
    /// port `0` picks a free port, logged at startup).
    pub listen: SocketAddr,
    /// `admin.token` (optional): bearer token required by `/status` and
    /// `/metrics` (`Authorization: Bearer TOKEN`); `/healthz` and `/readyz`
    /// stay open for probes. Write it as `${VAR}`. Default: none (open).
    pub token: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `alarms`: replication alarms (source or target unreachable, source
/// switched, leadership gained or lost, lag, load error, purged start
/// position). Each is logged, counted in the metrics and POSTed as JSON to
/// every webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarms {
    /// `alarms.lag_threshold` (optional): the lag alarm is raised when
    /// replication lag stays above this for a few seconds, and resolved when
    /// it is back under. Duration `1s..=7d`, default `60s`.
    pub lag_threshold: Duration,
    /// `alarms.webhooks` (optional): list of
    /// `{url, headers: {NAME: VALUE}, timeout}`; `url` is `http://` or
    /// `https://`, `headers` are sent with every POST (write secrets as
    /// `${VAR}`), `timeout` (default `5s`, `100ms..=1m`) bounds one attempt.
    /// Deliveries are retried with backoff and never hold up replication.
    /// Default: none.
    pub webhooks: Vec<Webhook>,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            lag_threshold: Duration::from_secs(60),
            webhooks: Vec::new(),
        }
    }
}

/// One `alarms.webhooks` entry. `Debug` shows neither header values nor the
/// URL's path and query (hook URLs often carry their secret there).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `url` (required): `http://host[:port]/path` or `https://...`.
    pub url: String,
    /// `headers` (optional): extra request headers, in file order.
    pub headers: Vec<(String, String)>,
    /// `timeout` (optional): bound of one delivery attempt, default `5s`.
    pub timeout: Duration,
}

impl Webhook {
    /// `scheme://host:port/…`: what may be logged of the URL.
    pub fn shown_url(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let more = if rest.len() > authority.len() {
            "/…"
        } else {
            ""
        };
        format!("{scheme}://{host}{more}")
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Webhook")
            .field("url", &self.shown_url())
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `bidirectional` (optional): this pipeline is one direction of an
/// active-active pair (Otter's "双A"): its target is also the source of the
/// `peer` pipeline, which replicates the other way.
///
/// Every transaction this pipeline applies to its target carries this
/// pipeline's *origin tag* (see [`Tagging`]); the pipeline drops every
/// source transaction carrying the peer's tag, so nothing the peer applied
/// comes back. Changes whose target row is not what the source's before
/// image says are conflicts, resolved by `conflicts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bidirectional {
    /// `bidirectional.peer` (required): the name of the pipeline replicating
    /// the other way (this pipeline's target → its source); not this
    /// pipeline's own name.
    pub peer: String,
    /// `bidirectional.conflicts` (optional): what to do when the target row
    /// of an update or delete (or an insert's key) is not what the source
    /// held before the change. `source_wins` (default: the source's change
    /// is applied), `target_wins` (the target row is kept), `{newer_wins:
    /// COLUMN}` (the image whose `COLUMN` is greater wins; the source on a
    /// tie or a NULL) or `stop` (a definite error naming table and key).
    pub conflicts: ConflictPolicy,
    /// `bidirectional.tagging` (optional): how applied transactions are
    /// marked, `server_id` (default) or `marker`.
    pub tagging: Tagging,
    /// `bidirectional.server_id` (optional): this pipeline's tag, the
    /// `server_id` its loader sessions write with, `1..=4294967295`.
    /// Default: [`tag_server_id`] of the pipeline name. Must differ from
    /// `source.server_id` and from the peer's tag.
    pub tag: u32,
    /// `bidirectional.peer_server_id` (optional): the peer's tag (its
    /// `bidirectional.server_id`). Default: [`tag_server_id`] of `peer`.
    pub peer_tag: u32,
}

/// `bidirectional.conflicts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// `source_wins`: apply the source's change over the target's row.
    SourceWins,
    /// `target_wins`: keep the target's row.
    TargetWins,
    /// `{newer_wins: COLUMN}`: the image with the greater `COLUMN` wins.
    NewerWins(String),
    /// `stop`: a definite error naming table and key.
    Stop,
}

impl ConflictPolicy {
    /// As written in the file (for records and messages).
    pub fn name(&self) -> String {
        match self {
            ConflictPolicy::SourceWins => "source_wins".into(),
            ConflictPolicy::TargetWins => "target_wins".into(),
            ConflictPolicy::NewerWins(c) => format!("newer_wins:{c}"),
            ConflictPolicy::Stop => "stop".into(),
        }
    }
}

/// `bidirectional.tagging`: how the peer recognises what this pipeline
/// applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tagging {
    /// `server_id`: every loader session runs `SET SESSION server_id =
    /// TAG`, so every event of its transactions (and their GTIDs) carries
    /// the tag in the binlog header; nothing extra is written. MariaDB only;
    /// the target user needs `BINLOG REPLAY` (or `SUPER`).
    #[default]
    ServerId,
    /// `marker`: every target transaction that writes rows first upserts
    /// the pipeline's row in `sluice_meta.origin`; the peer drops a
    /// transaction whose first row change is its peer's marker. Works on
    /// any server and needs no privilege, at one small write per
    /// transaction; DDL cannot carry a marker, so `load.ddl` must be `skip`
    /// or `fail`.
    Marker,
}

/// The default origin tag of pipeline `name`: a server id in
/// `2147483648..=4294967295` (FNV-1a of the name, top bit set), far from
/// the small ids servers and replicas usually get.
pub fn tag_server_id(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h | 0x8000_0000
}

/// `snapshot`: copying the rows the source already holds, with an exact
/// hand-off to streaming (see `sluice_pipeline::snapshot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `snapshot.mode` (optional): `never` (default: only changes from
    /// `source.start` on are replicated) or `initial` (when nothing is
    /// stored, copy every included table, then stream). With `initial`,
    /// `source.start` must be `latest` (the snapshot decides where streaming
    /// starts) and the source must be MariaDB (checked when the pipeline
    /// starts); with `stages`, chunks are tasks on the board like batches.
    pub mode: SnapshotMode,
    /// `snapshot.parallel` (optional): tables read at the same time, each on
    /// its own source connection, `1..=64`. Default 4.
    pub parallel: u64,
    /// `snapshot.chunk_rows` (optional): target rows per chunk, `100..=1000000`;
    /// the reader shrinks or grows it to keep one chunk's read near one
    /// second. Default 20000.
    pub chunk_rows: u64,
    /// `snapshot.create_tables` (optional): create missing target tables
    /// (and schemas) from the source's `SHOW CREATE TABLE`, with routes and
    /// column rules applied; an existing table whose columns differ is
    /// refused, naming the difference. Default `true`.
    pub create_tables: bool,
    /// `snapshot.on_nonempty` (optional): `refuse` (default: stop before
    /// anything is written, naming the first target table that holds rows)
    /// or `merge` (copy into it; rows the source lacks stay).
    pub on_nonempty: OnNonempty,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            mode: SnapshotMode::Never,
            parallel: 4,
            chunk_rows: 20_000,
            create_tables: true,
            on_nonempty: OnNonempty::Refuse,
        }
    }
}

/// `snapshot.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    #[default]
    Never,
    Initial,
}

/// `snapshot.on_nonempty`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnNonempty {
    #[default]
    Refuse,
    Merge,
}

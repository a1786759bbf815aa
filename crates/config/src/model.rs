//! The validated pipeline: what the rest of sluice consumes.
//!
//! Every field's doc names its YAML key, whether it is required, its default
//! and its accepted values; the README's reference is copied from here.
//! Nothing in these types can print a password: URLs are [`DbUrl`]s, whose
//! `Debug` and `Display` redact it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_core::GtidSet;

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
    /// `admin` (optional, validated but not used yet): the admin HTTP
    /// endpoint. Default: none (no admin endpoint).
    pub admin: Option<Admin>,
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
    /// Duration, default `10s`.
    pub switch_after: Duration,
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

/// `target`: the server changes are applied to.
#[derive(Clone, Debug)]
pub struct Target {
    /// `target.url` (required): `mysql://user:password@host:port` (or
    /// `mariadb://`); the user needs DML and DDL rights on the routed
    /// schemas and on sluice's metadata tables.
    pub url: DbUrl,
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
}

impl Default for Load {
    fn default() -> Self {
        Load {
            workers: 4,
            ddl: DdlPolicy::Apply,
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

/// `admin`: the admin HTTP endpoint (validated, not used yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// `admin.listen` (required when `admin` is given): `IP:PORT` to listen on,
    /// e.g. `127.0.0.1:9090`.
    pub listen: SocketAddr,
}

//! What a run is given besides the pipeline file, and what it reports.

use std::time::Duration;

use sluice_core::Position;

/// Settings of a run that are not in the pipeline file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This node's id, recorded with every position it writes.
    pub node_id: String,
    /// How long batches already cut may still be applied after shutdown.
    pub drain_timeout: Duration,
    /// How often progress is logged.
    pub progress_interval: Duration,
    /// Replica server_id of this node, overriding `source.server_id` (each
    /// node of an HA pair needs its own).
    pub server_id: Option<u32>,
    /// Live status for the admin endpoint, and where alarms go
    /// ([`crate::status`]).
    pub status: crate::status::NodeStatus,
    /// The admin listener's bound address, published in the node record
    /// (with `admin.listen` port 0 the configured address names no port);
    /// `None` publishes `admin.listen` as configured.
    pub admin_address: Option<std::net::SocketAddr>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            node_id: "sluice".into(),
            drain_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_secs(10),
            server_id: None,
            status: crate::status::NodeStatus::default(),
            admin_address: None,
        }
    }
}

/// What a run did, for the caller's last log line.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub batches: u64,
    pub rows: u64,
    pub ddl: u64,
    /// The last acknowledged batch and position.
    pub acknowledged: Option<(u64, Position)>,
}

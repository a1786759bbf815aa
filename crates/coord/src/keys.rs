//! The etcd key layout — the only place in sluice where key paths are spelled.
//!
//! ```text
//! {prefix}/pipelines/{name}/position               acknowledged position (JSON StoredPosition)
//! {prefix}/pipelines/{name}/leader                 leader key, under the holder's lease
//! {prefix}/pipelines/{name}/nodes/{node_id}        node registry, one key per node, under its lease
//! {prefix}/pipelines/{name}/history/{ms}-{batch}   audit log of forced position changes
//! {prefix}/pipelines/{name}/batches/{batch_id}     stage task state of in-flight batches
//! {prefix}/pipelines/{name}/claims/{batch_id}/{stage}  a node's claim of a stage task, under its lease
//! {prefix}/pipelines/{name}/epoch                  distributed stages: the active node's epoch
//! {prefix}/pipelines/{name}/load_next              distributed stages: the next batch Load may claim
//! {prefix}/pipelines/{name}/control/halt           operator control: the definite error the pipeline halted on
//! {prefix}/pipelines/{name}/control/pause          operator control: paused (who, when)
//! {prefix}/pipelines/{name}/control/source         operator control: the source server chosen by `source switch`
//! {prefix}/pipelines/{name}/control/resolution     operator control: skips in force while a halted range is replayed
//! {prefix}/pipelines/{name}/control/requests/{id}  operator control: a request, under the requester's lease
//! {prefix}/pipelines/{name}/control/history/{ms}-{id}  operator control: audit log of resolutions
//! {prefix}/pipelines/{name}/verify                 continuous verification: round progress and last result
//! ```
//!
//! # Invariants
//!
//! * Every key of a pipeline lies under [`PipelineKeys::root`], which ends in
//!   `/`: a prefix scan of pipeline `shop` can never see pipeline `shop2`, and
//!   deleting a pipeline is one prefix delete.
//! * Prefixes, pipeline names and node ids are validated before any key is
//!   built, so a key never contains an empty segment, `.`/`..`, whitespace or
//!   a `/` smuggled in through a name (which would let one name address
//!   another pipeline's keys).
//! * Numeric segments (`batch_id`, history timestamps) are zero-padded to 20
//!   digits, the width of `u64::MAX`, so that etcd's byte-wise key order is
//!   numeric order and range scans return entries oldest first.

use std::fmt;

use sluice_core::{Classify, ErrorClass};

/// The prefix used when the configuration names none.
pub const DEFAULT_PREFIX: &str = "/sluice";

const MAX_PREFIX_LEN: usize = 256;
const MAX_NAME_LEN: usize = 128;

const PIPELINES: &str = "pipelines";
const POSITION: &str = "position";
const LEADER: &str = "leader";
const NODES: &str = "nodes";
const HISTORY: &str = "history";
const BATCHES: &str = "batches";
const CLAIMS: &str = "claims";
const EPOCH: &str = "epoch";
const LOAD_NEXT: &str = "load_next";
const CONTROL: &str = "control";
const HALT: &str = "halt";
const PAUSE: &str = "pause";
const SOURCE: &str = "source";
const RESOLUTION: &str = "resolution";
const REQUESTS: &str = "requests";
const VERIFY: &str = "verify";

/// Why a prefix, pipeline name or node id cannot be used in a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: {reason}")]
pub struct KeyError {
    /// What was being validated: `etcd prefix`, `pipeline name`, `node id`.
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Definite
    }
}

/// The key space of one sluice deployment: everything under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Normalised: starts with `/`, no trailing `/`.
    prefix: String,
}

impl Default for KeyLayout {
    fn default() -> Self {
        KeyLayout {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl KeyLayout {
    /// Validates `prefix`: `/segment(/segment)*` with segments of
    /// `[A-Za-z0-9._-]`, none of them `.` or `..`. One trailing `/` is
    /// accepted and dropped, because operators write both `/sluice` and
    /// `/sluice/` and mean the same thing.
    pub fn new(prefix: &str) -> Result<Self, KeyError> {
        let err = |reason| KeyError {
            what: "etcd prefix",
            value: prefix.to_owned(),
            reason,
        };
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        if trimmed.len() > MAX_PREFIX_LEN {
            return Err(err("is longer than 256 bytes"));
        }
        let Some(rest) = trimmed.strip_prefix('/') else {
            return Err(err("must start with `/` (e.g. `/sluice`)"));
        };
        for segment in rest.split('/') {
            check_segment(segment).map_err(err)?;
        }
        Ok(KeyLayout {
            prefix: trimmed.to_owned(),
        })
    }

    /// The normalised prefix, without a trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}/pipelines/` — scan it to list every pipeline's keys.
    pub fn pipelines_root(&self) -> String {
        format!("{}/{PIPELINES}/", self.prefix)
    }

    /// The keys of pipeline `name` (`[a-z0-9_-]+`, as in the pipeline YAML).
    pub fn pipeline(&self, name: &str) -> Result<PipelineKeys, KeyError> {
        check_pipeline_name(name)?;
        Ok(PipelineKeys {
            name: name.to_owned(),
            root: format!("{}{name}/", self.pipelines_root()),
        })
    }

    /// The pipeline name a key under [`Self::pipelines_root`] belongs to.
    pub fn pipeline_name_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = key.strip_prefix(&self.pipelines_root())?;
        let (name, _) = rest.split_once('/')?;
        check_pipeline_name(name).ok().map(|()| name)
    }
}

impl fmt::Display for KeyLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix)
    }
}

/// The keys of one pipeline. Build with [`KeyLayout::pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineKeys {
    name: String,
    /// `{prefix}/pipelines/{name}/`.
    root: String,
}

impl PipelineKeys {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `{prefix}/pipelines/{name}/` — every key of this pipeline starts with it.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The acknowledged position (a JSON `StoredPosition`).
    pub fn position(&self) -> String {
        format!("{}{POSITION}", self.root)
    }

    /// The leader key: held under the active node's lease; its create
    /// revision is the fencing token of that node's term.
    pub fn leader(&self) -> String {
        format!("{}{LEADER}", self.root)
    }

    /// `.../nodes/` — scan it to list the registered nodes.
    pub fn nodes_prefix(&self) -> String {
        format!("{}{NODES}/", self.root)
    }

    /// One node's registration key.
    pub fn node(&self, node_id: &str) -> Result<String, KeyError> {
        check_node_id(node_id)?;
        Ok(format!("{}{node_id}", self.nodes_prefix()))
    }

    /// The node id of a key under [`Self::nodes_prefix`].
    pub fn node_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let id = key.strip_prefix(&self.nodes_prefix())?;
        check_node_id(id).ok().map(|()| id)
    }

    /// `.../history/` — scan it to read the audit log, oldest first.
    pub fn history_prefix(&self) -> String {
        format!("{}{HISTORY}/", self.root)
    }

    /// The audit entry of a position change made at `unix_ms` that wrote
    /// `batch_id`. Time comes first so a scan is chronological even if
    /// batch ids restarted (the position key was deleted by hand).
    pub fn history_entry(&self, unix_ms: u64, batch_id: u64) -> String {
        format!("{}{unix_ms:020}-{batch_id:020}", self.history_prefix())
    }

    /// `.../batches/` — scan it to list in-flight stage tasks in batch order.
    pub fn batches_prefix(&self) -> String {
        format!("{}{BATCHES}/", self.root)
    }

    /// One batch's stage task state.
    pub fn batch(&self, batch_id: u64) -> String {
        format!("{}{batch_id:020}", self.batches_prefix())
    }

    /// `.../claims/` — every stage claim.
    pub fn claims_prefix(&self) -> String {
        format!("{}{CLAIMS}/", self.root)
    }

    /// `.../claims/{batch_id}/` — the claims of one batch.
    pub fn batch_claims_prefix(&self, batch_id: u64) -> String {
        format!("{}{batch_id:020}/", self.claims_prefix())
    }

    /// The claim of `stage` (a lowercase stage name) of one batch.
    pub fn claim(&self, batch_id: u64, stage: &str) -> String {
        format!("{}{stage}", self.batch_claims_prefix(batch_id))
    }

    /// The `(batch_id, stage)` of a key under [`Self::claims_prefix`].
    pub fn claim_of<'k>(&self, key: &'k str) -> Option<(u64, &'k str)> {
        let rest = key.strip_prefix(&self.claims_prefix())?;
        let (digits, stage) = rest.split_once('/')?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((digits.parse().ok()?, stage))
    }

    /// The active node's epoch of distributed stages.
    pub fn epoch(&self) -> String {
        format!("{}{EPOCH}", self.root)
    }

    /// The next batch id Load may claim (distributed stages).
    pub fn load_next(&self) -> String {
        format!("{}{LOAD_NEXT}", self.root)
    }

    /// `.../control/` — every operator control key (watch it to follow
    /// halts, pauses and requests).
    pub fn control_prefix(&self) -> String {
        format!("{}{CONTROL}/", self.root)
    }

    /// The definite error the pipeline is halted on (absent while running).
    pub fn halt(&self) -> String {
        format!("{}{HALT}", self.control_prefix())
    }

    /// Present while the pipeline is paused.
    pub fn pause(&self) -> String {
        format!("{}{PAUSE}", self.control_prefix())
    }

    /// The source server an operator switched to.
    pub fn source_choice(&self) -> String {
        format!("{}{SOURCE}", self.control_prefix())
    }

    /// The skips in force while the halted range is replayed.
    pub fn resolution(&self) -> String {
        format!("{}{RESOLUTION}", self.control_prefix())
    }

    /// `.../control/requests/` — operator requests, oldest first.
    pub fn requests_prefix(&self) -> String {
        format!("{}{REQUESTS}/", self.control_prefix())
    }

    /// One operator request (`id` as [`check_node_id`]: `[A-Za-z0-9._-]+`).
    pub fn request(&self, id: &str) -> Result<String, KeyError> {
        check_segment(id).map_err(|reason| KeyError {
            what: "request id",
            value: id.to_owned(),
            reason,
        })?;
        Ok(format!("{}{id}", self.requests_prefix()))
    }

    /// The request id of a key under [`Self::requests_prefix`].
    pub fn request_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let id = key.strip_prefix(&self.requests_prefix())?;
        check_segment(id).ok().map(|()| id)
    }

    /// `.../control/history/` — scan it to read the resolutions, oldest first.
    pub fn control_history_prefix(&self) -> String {
        format!("{}{HISTORY}/", self.control_prefix())
    }

    /// The audit entry of request `id` made at `unix_ms` (time first, so a
    /// scan is chronological).
    pub fn control_history_entry(&self, unix_ms: u64, id: &str) -> Result<String, KeyError> {
        check_segment(id).map_err(|reason| KeyError {
            what: "request id",
            value: id.to_owned(),
            reason,
        })?;
        Ok(format!(
            "{}{unix_ms:020}-{id}",
            self.control_history_prefix()
        ))
    }

    /// Continuous verification's record (`VerifyRecord`): the current
    /// round's progress and the last finished round. Outside `control/`,
    /// so its frequent writes do not wake the control watchers.
    pub fn verify(&self) -> String {
        format!("{}{VERIFY}", self.root)
    }

    /// The batch id of a key under [`Self::batches_prefix`].
    pub fn batch_id_of(&self, key: &str) -> Option<u64> {
        let digits = key.strip_prefix(&self.batches_prefix())?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("has an empty path segment (`//` or a lone `/`)");
    }
    if segment == "." || segment == ".." {
        return Err("has a `.` or `..` segment");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain `/` and the characters [A-Za-z0-9._-]");
    }
    Ok(())
}

/// Pipeline names follow the YAML's `name:` rule, `[a-z0-9_-]+`.
pub fn check_pipeline_name(name: &str) -> Result<(), KeyError> {
    let err = |reason| KeyError {
        what: "pipeline name",
        value: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(err("is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err("is longer than 128 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    {
        return Err(err("may only contain [a-z0-9_-]"));
    }
    Ok(())
}

/// Node ids are host-name-like: `[A-Za-z0-9._-]+`, not `.` or `..`.
pub fn check_node_id(node_id: &str) -> Result<(), KeyError> {
    let err = |reason| KeyError {
        what: "node id",
        value: node_id.to_owned(),
        reason,
    };
    if node_id.len() > MAX_NAME_LEN {
        return Err(err("is longer than 128 bytes"));
    }
    check_segment(node_id).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> PipelineKeys {
        KeyLayout::new("/sluice")
            .and_then(|l| l.pipeline("shop"))
            .expect("valid")
    }

    #[test]
    fn stage_task_keys_round_trip() {
        let k = shop();
        let claim = k.claim(42, "load");
        assert_eq!(
            claim,
            "/sluice/pipelines/shop/claims/00000000000000000042/load"
        );
        assert!(claim.starts_with(&k.batch_claims_prefix(42)));
        assert_eq!(k.claim_of(&claim), Some((42, "load")));
        assert_eq!(k.claim_of("/sluice/pipelines/shop/claims/42/load"), None);
        assert_eq!(k.epoch(), "/sluice/pipelines/shop/epoch");
        assert_eq!(k.load_next(), "/sluice/pipelines/shop/load_next");
    }

    #[test]
    fn control_keys_live_under_the_control_prefix() {
        let k = shop();
        assert_eq!(k.control_prefix(), "/sluice/pipelines/shop/control/");
        assert_eq!(k.halt(), "/sluice/pipelines/shop/control/halt");
        assert_eq!(k.pause(), "/sluice/pipelines/shop/control/pause");
        assert_eq!(k.source_choice(), "/sluice/pipelines/shop/control/source");
        assert_eq!(k.resolution(), "/sluice/pipelines/shop/control/resolution");
        let r = k.request("00000000000000000005-ops-1.x_7").expect("valid");
        assert_eq!(
            r,
            "/sluice/pipelines/shop/control/requests/00000000000000000005-ops-1.x_7"
        );
        assert_eq!(k.request_id_of(&r), Some("00000000000000000005-ops-1.x_7"));
        assert!(k.request("a/b").is_err());
        assert!(k.request("..").is_err());
        assert_eq!(
            k.control_history_entry(7, "r1").expect("valid"),
            "/sluice/pipelines/shop/control/history/00000000000000000007-r1"
        );
        // The forced-position history (`history/`) never sees these.
        assert!(!k.control_history_prefix().starts_with(&k.history_prefix()));
        for key in [k.halt(), k.pause(), k.resolution(), r] {
            assert!(key.starts_with(&k.control_prefix()), "{key}");
        }
    }

    #[test]
    fn layout_spells_every_key_under_the_pipeline_root() {
        let k = shop();
        assert_eq!(k.root(), "/sluice/pipelines/shop/");
        assert_eq!(k.position(), "/sluice/pipelines/shop/position");
        assert_eq!(k.leader(), "/sluice/pipelines/shop/leader");
        assert_eq!(k.nodes_prefix(), "/sluice/pipelines/shop/nodes/");
        assert_eq!(
            k.node("node-a.example").expect("valid"),
            "/sluice/pipelines/shop/nodes/node-a.example"
        );
        assert_eq!(
            k.history_entry(1_700_000_000_000, 7),
            "/sluice/pipelines/shop/history/00000001700000000000-00000000000000000007"
        );
        assert_eq!(
            k.batch(42),
            "/sluice/pipelines/shop/batches/00000000000000000042"
        );
        assert_eq!(k.verify(), "/sluice/pipelines/shop/verify");
        for key in [k.position(), k.leader(), k.batch(1), k.history_entry(1, 1)] {
            assert!(key.starts_with(k.root()), "{key}");
        }
    }

    #[test]
    fn keys_parse_back() {
        let layout = KeyLayout::new("/a/b-c").expect("valid");
        let k = layout.pipeline("shop_2").expect("valid");
        assert_eq!(layout.pipeline_name_of(&k.position()), Some("shop_2"));
        assert_eq!(layout.pipeline_name_of("/a/b-c/pipelines/shop"), None);
        assert_eq!(
            layout.pipeline_name_of("/other/pipelines/shop/leader"),
            None
        );
        assert_eq!(k.node_id_of(&k.node("n1").expect("valid")), Some("n1"));
        assert_eq!(k.node_id_of(&k.leader()), None);
        assert_eq!(k.batch_id_of(&k.batch(u64::MAX)), Some(u64::MAX));
        assert_eq!(k.batch_id_of(&k.batch(0)), Some(0));
        assert_eq!(k.batch_id_of(&format!("{}12", k.batches_prefix())), None);
    }

    #[test]
    fn padded_numbers_sort_numerically() {
        let k = shop();
        assert!(k.batch(9) < k.batch(10));
        assert!(k.batch(999_999) < k.batch(1_000_000));
        assert!(k.history_entry(999, 5) < k.history_entry(1000, 1));
    }

    #[test]
    fn prefix_is_validated_and_normalised() {
        assert_eq!(KeyLayout::new("/sluice/").expect("ok").prefix(), "/sluice");
        assert_eq!(
            KeyLayout::new("/a/b.c_d-e").expect("ok").prefix(),
            "/a/b.c_d-e"
        );
        assert_eq!(KeyLayout::default().prefix(), DEFAULT_PREFIX);
        for bad in [
            "",
            "/",
            "sluice",
            "//sluice",
            "/a//b",
            "/a/../b",
            "/a/./b",
            "/a b",
            "/ä",
            "/a\n",
            "/sluice//",
        ] {
            let err = KeyLayout::new(bad).expect_err(bad);
            assert_eq!(err.what, "etcd prefix", "{bad}");
            assert_eq!(err.class(), ErrorClass::Definite);
        }
        assert!(KeyLayout::new(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn names_and_node_ids_are_validated() {
        let layout = KeyLayout::default();
        for bad in ["", "Shop", "shop/x", "shop.x", "a b", "../x"] {
            let err = layout.pipeline(bad).expect_err(bad);
            assert!(err.to_string().contains("pipeline name"), "{err}");
        }
        assert!(layout.pipeline(&"a".repeat(129)).is_err());
        let k = shop();
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            let err = k.node(bad).expect_err(bad);
            assert!(err.to_string().contains("node id"), "{err}");
        }
        assert!(k.node("Host-1.dc_2").is_ok());
    }
}

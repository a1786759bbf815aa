//! Continuous verification's record in etcd: where the current round is
//! (so a new leader continues it instead of starting over) and what the
//! last finished round found (for `sluice status`).
//!
//! ```text
//! {root}verify    VerifyRecord (JSON)
//! ```
//!
//! Only the active node writes it, in a transaction guarded by its leader
//! key's create revision ([`Fence::Leader`]), exactly like control records:
//! a node that lost its term can neither advance nor reset a round. A
//! record that does not parse is reported as an error, never taken for
//! "no round yet" (that would silently restart the clock).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use crate::error::CoordError;
use crate::etcd::timed;
use crate::keys::PipelineKeys;
use crate::record::Fence;

/// The round under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundProgress {
    pub started_unix_ms: u64,
    /// Tables planned for this round.
    pub tables_total: u64,
    /// Source `schema.table` of every table finished in this round.
    pub tables_done: Vec<String>,
    /// The table being compared and how many of its chunks are done.
    pub table: Option<String>,
    pub table_chunks_done: u64,
    /// Totals over the round so far.
    pub chunks: u64,
    pub rows: u64,
    pub differences: u64,
    /// Tables with persisting differences, with up to
    /// [`MISMATCH_KEYS`] keys each (JSON text of the key).
    pub mismatched: Vec<(String, Vec<String>)>,
}

/// Keys kept per mismatched table (the event and the record stay small).
pub const MISMATCH_KEYS: usize = 20;

/// A finished round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundResult {
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub tables: u64,
    pub chunks: u64,
    pub rows: u64,
    pub differences: u64,
    pub mismatched: Vec<(String, Vec<String>)>,
    /// Tables that could not be compared, with why.
    #[serde(default)]
    pub errors: Vec<(String, String)>,
}

/// `{root}verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// The round under way (`None`: idle until the next one is due).
    pub round: Option<RoundProgress>,
    pub last: Option<RoundResult>,
    /// Rounds finished so far (all terms).
    #[serde(default)]
    pub rounds: u64,
    /// The node that wrote this.
    #[serde(default)]
    pub node: String,
}

/// Reads `{root}verify` (`None`: never written).
pub async fn read_verify(
    client: &Client,
    keys: &PipelineKeys,
    timeout: Duration,
) -> Result<Option<VerifyRecord>, CoordError> {
    let key = keys.verify();
    let mut kv = client.kv_client();
    let response = timed("get", &key, timeout, kv.get(key.as_str(), None)).await?;
    let Some(kv) = response.kvs().first() else {
        return Ok(None);
    };
    serde_json::from_slice(kv.value())
        .map(Some)
        .map_err(|source| CoordError::Corrupt {
            location: format!("etcd key {key} (the verify record, not a position)"),
            source,
        })
}

/// The active node's handle on `{root}verify`.
#[derive(Clone)]
pub struct VerifyStore {
    client: Arc<Client>,
    keys: PipelineKeys,
    fence: Fence,
    timeout: Duration,
}

impl std::fmt::Debug for VerifyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl VerifyStore {
    pub fn new(client: Client, keys: PipelineKeys, fence: Fence, timeout: Duration) -> Self {
        VerifyStore {
            client: Arc::new(client),
            keys,
            fence,
            timeout,
        }
    }

    pub async fn read(&self) -> Result<Option<VerifyRecord>, CoordError> {
        read_verify(&self.client, &self.keys, self.timeout).await
    }

    /// Writes `record` while the fence holds; the definite
    /// [`CoordError::FencedOut`] once the term is over.
    pub async fn write(&self, record: &VerifyRecord) -> Result<(), CoordError> {
        let key = self.keys.verify();
        let value = serde_json::to_vec(record).unwrap_or_default();
        let leader = self.keys.leader();
        let compares: Vec<_> = self.fence.leader_compare(&leader)?.into_iter().collect();
        let txn = Txn::new()
            .when(compares)
            .and_then(vec![TxnOp::put(key.as_str(), value, None)]);
        let mut kv = self.client.kv_client();
        let response = timed("txn", &key, self.timeout, kv.txn(txn)).await?;
        if response.succeeded() {
            return Ok(());
        }
        Err(CoordError::FencedOut {
            location: format!("etcd key {key}"),
            key: leader,
            expected: self.fence.leader_revision().unwrap_or_default(),
            actual: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_old_fields_default() {
        let r = VerifyRecord {
            round: Some(RoundProgress {
                started_unix_ms: 5,
                tables_total: 2,
                tables_done: vec!["a.t".into()],
                table: Some("a.u".into()),
                table_chunks_done: 3,
                ..RoundProgress::default()
            }),
            last: None,
            rounds: 1,
            node: "n".into(),
        };
        let text = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<VerifyRecord>(&text).unwrap(), r);
        let old: VerifyRecord = serde_json::from_str(r#"{"round":null,"last":null}"#).unwrap();
        assert_eq!(old.rounds, 0);
    }

    #[tokio::test]
    async fn writes_hold_only_under_the_leader_fence() {
        use etcd_client::PutOptions;
        let etcd = sluice_testkit::Etcd::start()
            .await
            .expect("etcd (is the binary installed?)");
        let mut client = etcd.client().await.expect("client");
        let keys = crate::keys::KeyLayout::new("/vfy")
            .and_then(|l| l.pipeline("p"))
            .expect("keys");
        assert_eq!(
            read_verify(&client, &keys, Duration::from_secs(5))
                .await
                .expect("read"),
            None
        );
        let lease = client.lease_grant(30, None).await.expect("lease").id();
        client
            .put(
                keys.leader(),
                "{}",
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .expect("leader");
        let got = client.get(keys.leader(), None).await.expect("get");
        let rev = got.kvs()[0].create_revision();
        let fence = |create_revision| Fence::Leader {
            key: keys.leader(),
            create_revision,
        };
        let store = VerifyStore::new(
            client.clone(),
            keys.clone(),
            fence(rev),
            Duration::from_secs(5),
        );
        let record = VerifyRecord {
            rounds: 3,
            ..VerifyRecord::default()
        };
        store.write(&record).await.expect("fenced write");
        assert_eq!(store.read().await.expect("read"), Some(record.clone()));
        // A node whose term is over (another create revision) cannot write.
        let stale = VerifyStore::new(
            client.clone(),
            keys.clone(),
            fence(rev - 1),
            Duration::from_secs(5),
        );
        let err = stale
            .write(&VerifyRecord::default())
            .await
            .expect_err("fenced out");
        assert!(err.is_fenced_out(), "{err}");
        assert_eq!(store.read().await.expect("read"), Some(record));
    }
}

//! The pipeline's etcd keys under the tests' `/e2e` prefix, and reading and
//! waiting for the JSON values stored there.

use std::time::Duration;

use serde_json::Value;
use sluice_testkit::{wait_until_async, Etcd};

/// The key layout of `pipeline` under `/e2e` (what [`super::write_config`]
/// configures).
pub fn pipeline_keys(pipeline: &str) -> sluice_coord::PipelineKeys {
    sluice_coord::KeyLayout::new("/e2e")
        .and_then(|l| l.pipeline(pipeline))
        .expect("keys")
}

/// The values of every key under `prefix` (one key when `prefix` is a key).
pub async fn etcd_values(etcd: &Etcd, prefix: &str, with_prefix: bool) -> Vec<Value> {
    let mut client = etcd.client().await.expect("etcd client");
    let options = with_prefix.then(|| etcd_client::GetOptions::new().with_prefix());
    let got = client.get(prefix, options).await.expect("etcd get");
    got.kvs()
        .iter()
        .map(|kv| serde_json::from_slice(kv.value()).expect("JSON value"))
        .collect()
}

/// Polls (up to 30 s) until `check` holds for the values under `prefix`.
pub async fn wait_etcd(
    etcd: &Etcd,
    prefix: &str,
    with_prefix: bool,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let last = std::cell::RefCell::new(Vec::new());
    let found = wait_until_async(
        what,
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let (last, check) = (&last, &check);
            async move {
                let values = etcd_values(etcd, prefix, with_prefix).await;
                let ok = check(&values);
                *last.borrow_mut() = values.clone();
                ok.then_some(values)
            }
        },
    )
    .await;
    found.unwrap_or_else(|e| panic!("{e}: never happened; {prefix} holds {:?}", last.borrow()))
}

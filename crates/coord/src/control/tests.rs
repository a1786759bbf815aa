//! Unit tests of `control`.

use super::*;
use crate::keys::KeyLayout;
use sluice_testkit::Etcd;

fn halt(message: &str) -> HaltRecord {
    HaltRecord {
        stage: "load".into(),
        message: message.into(),
        class: "definite".into(),
        batch: Some(HaltedBatch {
            id: 7,
            start: Some(Position::new("mysql-bin.000001", 100)),
            end: Position::new("mysql-bin.000001", 900),
            through: Position::new("mysql-bin.000001", 900),
            rows: 3,
            ddl: None,
        }),
        failure: Some(ChangeFailure {
            table: Some("`shop`.`events`".into()),
            key: Some("(id=5)".into()),
            key_values: Some(vec![ColumnValue {
                column: "id".into(),
                value: Value::Int(5),
            }]),
            statement: None,
            server: Some(ServerMessage {
                code: 1406,
                sqlstate: Some("22001".into()),
                message: "Data too long".into(),
            }),
        }),
        node: "node-a".into(),
        term: Some(3),
        halted_at_unix_ms: 1,
        distributed: false,
    }
}

#[test]
fn records_round_trip_through_json() {
    let h = halt("x");
    let back: HaltRecord = serde_json::from_slice(&to_json(&h)).expect("parse");
    assert_eq!(back, h);
    let r = Request {
        kind: RequestKind::Skip {
            scope: SkipScope::Transaction,
        },
        operator: "alice@ops".into(),
        requested_at_unix_ms: 5,
        outcome: None,
    };
    let text = String::from_utf8(to_json(&r)).expect("utf8");
    assert!(text.contains(r#""kind":"skip""#), "{text}");
    assert!(text.contains(r#""scope":"transaction""#), "{text}");
    assert_eq!(serde_json::from_str::<Request>(&text).expect("parse"), r);
    let switch: RequestKind = serde_json::from_str(r#"{"kind":"source_switch"}"#).expect("parse");
    assert_eq!(
        switch,
        RequestKind::SourceSwitch {
            index: None,
            address: None
        }
    );
    assert!(
        HaltRecord::unreadable(&serde_json::from_str::<u8>("x").unwrap_err())
            .message
            .contains("does not parse")
    );
}

#[tokio::test]
async fn fenced_writes_checks_and_requests() {
    let etcd = Etcd::start()
        .await
        .expect("etcd (is the binary installed?)");
    let mut client = etcd.client().await.expect("client");
    let keys = KeyLayout::new("/ctl")
        .and_then(|l| l.pipeline("p"))
        .expect("keys");
    let store = ControlStore::new(client.clone(), keys.clone(), Duration::from_secs(5));
    assert_eq!(store.read().await.expect("read").halt, None);

    // Take the leader key, as the election does.
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
    let fence = Fence::Leader {
        key: keys.leader(),
        create_revision: got.kvs()[0].create_revision(),
    };
    assert!(store
        .write(
            &fence,
            &[ControlCheck::NoHalt],
            vec![ControlWrite::PutHalt(Box::new(halt("a")))]
        )
        .await
        .expect("write"));
    // A second halt over the first is refused by the check.
    assert!(!store
        .write(
            &fence,
            &[ControlCheck::NoHalt],
            vec![ControlWrite::PutHalt(Box::new(halt("b")))]
        )
        .await
        .expect("write"));
    let state = store.read().await.expect("read");
    let h = state.halt.expect("halted");
    assert_eq!(h.value.message, "a");

    // Requests live under their submitter's lease.
    let (id, req_lease) = store
        .submit(&Request {
            kind: RequestKind::Retry,
            operator: "op@h".into(),
            requested_at_unix_ms: unix_ms(),
            outcome: None,
        })
        .await
        .expect("submit");
    let pending = store.request(&id).await.expect("get").expect("present");
    assert!(pending.is_pending());
    assert_eq!(pending.lease, req_lease);
    let mut answered = pending.request.clone();
    answered.outcome = Some(Outcome {
        state: OutcomeState::Done,
        node: "node-a".into(),
        at_unix_ms: unix_ms(),
        message: "resumed".into(),
        details: serde_json::Value::Null,
    });
    assert!(store
        .write(
            &fence,
            &[
                ControlCheck::Halt(h.mod_revision),
                ControlCheck::Request {
                    key: pending.key.clone(),
                    mod_revision: pending.mod_revision,
                },
            ],
            vec![
                ControlWrite::DeleteHalt,
                ControlWrite::Answer {
                    key: pending.key.clone(),
                    lease: pending.lease,
                    request: answered,
                },
            ],
        )
        .await
        .expect("answer"));
    let state = store.read().await.expect("read");
    assert!(state.halt.is_none());
    assert_eq!(state.requests.len(), 1);
    assert!(!state.requests[0].is_pending());
    assert_eq!(
        state.requests[0].lease, req_lease,
        "the answer kept the lease"
    );
    store.withdraw(req_lease).await;
    assert!(store.request(&id).await.expect("get").is_none());

    // Pause is put-if-absent; unpause says whether there was one.
    let p = PauseRecord {
        operator: "op@h".into(),
        paused_at_unix_ms: 1,
        acknowledged: None,
    };
    assert!(store.pause(&p).await.expect("pause"));
    assert!(!store.pause(&p).await.expect("pause"));
    assert!(store.unpause().await.expect("unpause"));
    assert!(!store.unpause().await.expect("unpause"));

    // A lost term cannot write.
    client.delete(keys.leader(), None).await.expect("delete");
    let err = store
        .write(
            &fence,
            &[],
            vec![ControlWrite::PutHalt(Box::new(halt("c")))],
        )
        .await
        .expect_err("fenced");
    assert!(err.is_fenced_out(), "{err}");
    assert!(store.read().await.expect("read").halt.is_none());
}

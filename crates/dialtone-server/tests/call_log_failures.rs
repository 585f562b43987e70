//! What the call log says of calls answered while it was failing: backup routing, exactly as
//! answered, never the flow the caller did not hear. Run on the real SQLite store, held back by a
//! gate in front of it as a stalled disk would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dialtone_core::backup::BreakerState;
use dialtone_core::{config, demo, links::Links};
use dialtone_server::{AppState, ConfigSource, SystemClock};
use dialtone_store::prelude::*;
use dialtone_store::{Batch, EventLog, Layered, SqliteOptions, StoreError, WriterStats};
use tokio::sync::watch;
use tower::ServiceExt;

mod common;
use common::{PUBLIC, signed, signed_voice};

/// The real event log, with appends held until the gate opens: queued at once, as the real
/// writer's queue takes them, and written when the gate opens whether or not anyone still waits.
struct Gated {
    inner: Arc<dyn EventLog>,
    open: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl EventLog for Gated {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        let (inner, mut open) = (self.inner.clone(), self.open.clone());
        let (done, wait) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = open.wait_for(|o| *o).await;
            let _ = done.send(inner.append(batch).await);
        });
        wait.await.map_err(|_| StoreError::WriterGone)?
    }
    fn stats(&self) -> WriterStats {
        self.inner.stats()
    }
}

/// The demo's Google Business Profile number: a recording notice, then office and mobile rung
/// together.
const NUMBER: &str = "+14045550100";

async fn voice(router: &axum::Router, call_sid: &str) -> String {
    let res = router
        .clone()
        .oneshot(signed_voice(call_sid, NUMBER))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The demo on the real SQLite store in `dir`, its appends held while the gate is shut (open at
/// first if `open`), with a durability budget of 200 ms.
fn gated_server(
    dir: &tempfile::TempDir,
    open: bool,
) -> (
    watch::Sender<bool>,
    Arc<dyn Store>,
    Arc<AppState>,
    axum::Router,
) {
    let db = dir.path().join("dialtone.db");
    let real =
        dialtone_store::sqlite::open(db.to_str().unwrap(), SqliteOptions::default()).unwrap();
    let (gate, open) = watch::channel(open);
    let gated = Gated {
        inner: real.log(),
        open,
    };
    let store: Arc<dyn Store> = Arc::new(Layered::new(Arc::new(gated), real.reads()));
    let mut state = AppState::new(
        config::load("demo", demo::CONFIG, &|_: &str| None).unwrap(),
        ConfigSource::Builtin {
            name: demo::CONFIG_NAME,
            text: demo::CONFIG,
        },
        store.clone(),
        Arc::new(SystemClock),
        Links::new(PUBLIC),
        HashMap::new(),
    );
    state.durability_budget = Duration::from_millis(200);
    let state = Arc::new(state);
    let router = dialtone_server::router(state.clone());
    (gate, store, state, router)
}

fn sid(n: u64) -> String {
    format!("CA{n:032x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answered_while_the_call_log_stalled_are_logged_as_backup_and_the_policy_closes_on_its_first_commit()
 {
    let dir = tempfile::tempdir().unwrap();
    let (gate, store, state, router) = gated_server(&dir, false);

    // Three callers wait out the budget and get the primary number; then the policy opens and
    // the fourth gets it at once, without its flow being run.
    for n in 1..=4 {
        let twiml = voice(&router, &sid(n)).await;
        assert_eq!(twiml.matches("<Number").count(), 1, "{twiml}");
        assert!(
            !twiml.contains("<Say"),
            "no notice in backup routing: {twiml}"
        );
    }
    assert!(matches!(
        state.call_log_breaker.lock().unwrap().state(),
        BreakerState::Open { .. }
    ));

    // The disk is back. The first commit closes the policy at once (not after its 30 s).
    gate.send(true).unwrap();
    let closed = async {
        while state.call_log_breaker.lock().unwrap().state() != BreakerState::Closed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the backup policy closed once the call log committed");
    let twiml = voice(&router, &sid(5)).await;
    assert!(
        twiml.contains("<Say"),
        "the flow again, with its notice: {twiml}"
    );
    assert_eq!(twiml.matches("<Number").count(), 2, "{twiml}");

    // What the log says is what each caller got.
    for n in 1..=4 {
        let call = store
            .call(demo::ACCOUNT, &sid(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("call {n} was logged"));
        assert_eq!(call.routing, "backup", "call {n}: {call:?}");
        assert!(!call.notice_played, "call {n}: {call:?}");
        assert!(call.path.is_empty(), "call {n}: {call:?}");
        assert!(call.dial_shape.is_none(), "call {n}: {call:?}");
        let timeline = call.events.unwrap_or_default();
        assert_eq!(
            timeline
                .iter()
                .filter(|e| e.kind == "call_received")
                .count(),
            1,
            "call {n}: {timeline:?}"
        );
    }
    let normal = store.call(demo::ACCOUNT, &sid(5)).await.unwrap().unwrap();
    assert_eq!(normal.routing, "normal");
    assert!(normal.notice_played);
}

/// The carrier's request to a `<Dial action>` in `twiml`: the dial answered and over.
fn dial_answered(twiml: &str, call_sid: &str) -> axum::http::Request<axum::body::Body> {
    let start = twiml.find("action=\"").expect("a dial action") + "action=\"".len();
    let end = start + twiml[start..].find('"').expect("the action's end");
    let url = twiml[start..end].replace("&amp;", "&");
    let params: Vec<(String, String)> = [
        ("AccountSid", demo::ACCOUNT_SID),
        ("CallSid", call_sid),
        ("CallStatus", "in-progress"),
        ("DialCallSid", "CA000000000000000000000000000000aa"),
        ("DialCallStatus", "completed"),
        ("DialCallDuration", "42"),
        ("Direction", "inbound"),
        ("From", "+17705550123"),
        ("To", NUMBER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    signed(&url, &params)
}

/// A caller who has talked to someone is not put through to the primary number again because
/// the call log stalled when the conversation ended: backup routing ends the call there, while
/// the log waits and once the backup policy is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_reached_someone_ends_when_the_call_log_fails_at_its_dial_action() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, _store, state, router) = gated_server(&dir, true);

    // Five calls go through the flow while the log works: each rings office and mobile.
    let flows: Vec<String> = futures_util::future::join_all((10..15).map(|n| {
        let router = router.clone();
        async move { voice(&router, &sid(n)).await }
    }))
    .await;
    for twiml in &flows {
        assert_eq!(twiml.matches("<Number").count(), 2, "{twiml}");
    }

    // The log stalls as their conversations end, one after the other: the first three wait
    // out the budget (and open the backup policy), the last two are answered at once.
    gate.send(false).unwrap();
    for (i, twiml) in flows.iter().enumerate() {
        let res = router
            .clone()
            .oneshot(dial_answered(twiml, &sid(10 + i as u64)))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let answer = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !answer.contains("<Dial") && answer.contains("<Hangup"),
            "call {i}: ended, not rung again: {answer}"
        );
    }
    assert!(matches!(
        state.call_log_breaker.lock().unwrap().state(),
        BreakerState::Open { .. }
    ));
    gate.send(true).unwrap();
}

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
use common::{PUBLIC, signed_voice};

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

fn sid(n: u64) -> String {
    format!("CA{n:032x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answered_while_the_call_log_stalled_are_logged_as_backup_and_the_policy_closes_on_its_first_commit()
 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dialtone.db");
    let real =
        dialtone_store::sqlite::open(db.to_str().unwrap(), SqliteOptions::default()).unwrap();
    let (gate, open) = watch::channel(false);
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

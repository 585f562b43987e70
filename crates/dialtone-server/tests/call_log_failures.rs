//! What the call log says of calls answered while it was failing: backup routing, exactly as
//! answered, never the flow the caller did not hear. Run on the real SQLite store, held back by a
//! gate in front of it as a stalled disk would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dialtone_core::backup::BreakerState;
use dialtone_core::{config, demo, links::Links};
use dialtone_server::{AppState, ConfigSource, SystemClock};
use dialtone_store::{
    ApiKey, Batch, CallCursor, CallPage, CallQuery, CallRecord, CallsAfter, SqliteOptions,
    SqliteStore, Store, StoreError, StoredSession, Traffic, WriterStats,
};
use tokio::sync::watch;
use tower::ServiceExt;

mod common;
use common::{PUBLIC, signed_voice};

/// The real store, with appends held until the gate opens: queued at once, as the real writer's
/// queue takes them, and written when the gate opens whether or not anyone still waits.
struct Gated {
    inner: Arc<SqliteStore>,
    open: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Store for Gated {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        let (inner, mut open) = (self.inner.clone(), self.open.clone());
        let (done, wait) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = open.wait_for(|o| *o).await;
            let _ = done.send(inner.append(batch).await);
        });
        wait.await.map_err(|_| StoreError::WriterGone)?
    }
    async fn calls(&self, q: CallQuery) -> Result<CallPage, StoreError> {
        self.inner.calls(q).await
    }
    async fn calls_after(
        &self,
        q: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError> {
        self.inner.calls_after(q, after).await
    }
    async fn call(&self, account: &str, sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.inner.call(account, sid).await
    }
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(key).await
    }
    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.create_api_key(key, scope, label, now).await
    }
    async fn has_accounts(&self) -> Result<bool, StoreError> {
        self.inner.has_accounts().await
    }
    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.inner.round_robin_turns().await
    }
    async fn backup_rules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<dialtone_core::backup::BackupRule>, StoreError> {
        self.inner.backup_rules(now).await
    }
    async fn add_backup_rule(
        &self,
        rule: &dialtone_core::backup::BackupRule,
    ) -> Result<i64, StoreError> {
        self.inner.add_backup_rule(rule).await
    }
    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.end_backup_rule(id, at).await
    }
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError> {
        self.inner.dni_sessions(since).await
    }
    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        self.inner.dni_leases(number, from, to).await
    }
    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError> {
        self.inner.traffic(accounts, since).await
    }
    async fn callers(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.callers().await
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
    let inner = SqliteStore::open(db.to_str().unwrap(), SqliteOptions::default()).unwrap();
    let (gate, open) = watch::channel(false);
    let store: Arc<dyn Store> = Arc::new(Gated {
        inner: Arc::new(inner),
        open,
    });
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
        assert!(!call.recording_notice_played, "call {n}: {call:?}");
        assert!(call.flow_path.is_empty(), "call {n}: {call:?}");
        assert!(call.degraded.is_none(), "call {n}: {call:?}");
        let timeline = call.timeline.unwrap_or_default();
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
    assert!(normal.recording_notice_played);
}

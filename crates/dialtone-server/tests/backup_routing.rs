//! When the call log fails or stalls, callers still get through: backup routing to the company's
//! primary number, never a 5xx to the carrier.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::Request;
use dialtone_core::{config, demo, links::Links};
use dialtone_server::{AppState, ConfigSource, SystemClock};
use dialtone_store::{Batch, EventLog, Layered, StoreError, WriterStats};
use tower::ServiceExt;

mod common;
use common::{PUBLIC, UnreachableReads, signed_voice};

#[derive(Clone, Copy)]
enum Trouble {
    Fails,
    Hangs,
}

/// An event log whose appends fail (a full disk) or never return (a stalled one).
struct BrokenLog {
    trouble: Trouble,
    appends: AtomicUsize,
}

#[async_trait::async_trait]
impl EventLog for BrokenLog {
    async fn append(&self, _: Batch) -> Result<(), StoreError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        match self.trouble {
            Trouble::Fails => Err(StoreError::Unavailable("disk full".into())),
            Trouble::Hangs => std::future::pending().await,
        }
    }
    fn stats(&self) -> WriterStats {
        WriterStats::default()
    }
}

fn app(trouble: Trouble) -> (axum::Router, Arc<BrokenLog>, Arc<AppState>) {
    let log = Arc::new(BrokenLog {
        trouble,
        appends: AtomicUsize::new(0),
    });
    let store = Arc::new(Layered::new(log.clone(), Arc::new(UnreachableReads)));
    let state = Arc::new(AppState::new(
        config::load("demo", demo::CONFIG, &|_: &str| None).unwrap(),
        ConfigSource::Builtin {
            name: demo::CONFIG_NAME,
            text: demo::CONFIG,
        },
        store.clone(),
        Arc::new(SystemClock),
        Links::new(PUBLIC),
        HashMap::new(),
    ));
    (dialtone_server::router(state.clone()), log, state)
}

fn inbound_request() -> Request<Body> {
    signed_voice("CA0123456789abcdef0123456789abcdef", "+14045550100")
}

async fn answer(router: axum::Router) -> (u16, dialtone_twiml::Response) {
    let res = router.oneshot(inbound_request()).await.unwrap();
    let status = res.status().as_u16();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        dialtone_twiml::parse(std::str::from_utf8(&body).unwrap()).expect("TwiML"),
    )
}

fn dials_only_the_primary(doc: &dialtone_twiml::Response) -> bool {
    let [dialtone_twiml::Verb::Dial(dial)] = doc.verbs.as_slice() else {
        return false;
    };
    matches!(dial.targets.as_slice(), [dialtone_twiml::DialTarget::Number(n)] if n.number == "+14045550111")
}

#[tokio::test]
async fn a_failing_call_log_gives_backup_routing() {
    let (router, store, _) = app(Trouble::Fails);
    let (status, doc) = answer(router).await;
    assert_eq!(status, 200);
    assert!(dials_only_the_primary(&doc), "{doc:?}");
    // The normal event was tried first; the backup event is attempted in the background.
    assert!(store.appends.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_call_log_gives_backup_routing_within_the_budget() {
    let (router, _, _) = app(Trouble::Hangs);
    let started = tokio::time::Instant::now();
    let (status, doc) = answer(router).await;
    assert_eq!(status, 200);
    assert!(dials_only_the_primary(&doc), "{doc:?}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(4),
        "{waited:?}"
    );
}

/// A visitor's lease that cannot be saved is not shown: the page keeps the website number, and
/// the number goes back to the pool for the next visitor.
#[tokio::test(start_paused = true)]
async fn a_failing_store_leaves_the_website_number_on_the_page() {
    for trouble in [Trouble::Fails, Trouble::Hangs] {
        let (router, store, state) = app(trouble);
        let request = || {
            Request::post("/dni/v1/sessions")
                .header("content-type", "text/plain;charset=UTF-8")
                .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")
                .body(Body::from(
                    r#"{"company":"acme-plumbing","landing_url":"https://acme.example/?gclid=X"}"#,
                ))
                .unwrap()
        };
        for _ in 0..5 {
            let res = router.clone().oneshot(request()).await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["swap"], false, "{body}");
            assert_eq!(body["reason"], "unavailable");
        }
        assert_eq!(store.appends.load(Ordering::Relaxed), 5);
        // Each lease was given back: nobody holds a number.
        let config = state.config.load();
        let pools = state.dni.health(&config, None, state.clock.now());
        assert_eq!(pools[0].live_sessions, 0, "{pools:?}");
        assert_eq!(
            pools[0].sessions_created, 0,
            "abandoned sessions are not counted"
        );
    }
}

/// A call log that stalls costs the first callers the durability budget each; then the backup
/// policy opens and the next callers get backup routing at once, and an operator is told.
#[tokio::test(start_paused = true)]
async fn a_call_log_that_keeps_failing_opens_the_backup_policy() {
    let (router, _, state) = app(Trouble::Hangs);
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let (_, doc) = answer(router.clone()).await;
        assert!(dials_only_the_primary(&doc));
        assert!(started.elapsed() >= std::time::Duration::from_secs(3));
    }
    let started = tokio::time::Instant::now();
    let (status, doc) = answer(router.clone()).await;
    assert_eq!(status, 200);
    assert!(dials_only_the_primary(&doc), "{doc:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(100),
        "waited {:?} with the policy open",
        started.elapsed()
    );
    let alerts = state.admission.alerts.list();
    assert!(
        alerts.iter().any(|a| a.kind == "backup_policy"),
        "{alerts:?}"
    );
    assert!(matches!(
        state.call_log_breaker.lock().unwrap().state(),
        dialtone_core::backup::BreakerState::Open { .. }
    ));
}

//! Two `dialtone serve` nodes on one PostgreSQL database act as one: the carrier's dial queue,
//! its concurrent legs, first callers, round-robin turns, configuration reloads, backup rules
//! and alerts are shared through the store's bus (`dialtone_server::cluster`).
//!
//! Each test waits for a node to have applied what the other published (an event, not a
//! sleep), then checks what a single node would have done.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, TimeZone, Utc};
use dialtone_core::{demo, links::Links};
use dialtone_server::alerts::Alert;
use dialtone_server::{AppState, Clock, ConfigSource};
use proptest::prelude::*;
use tower::ServiceExt;

mod common;
use common::{PUBLIC, signed_voice};

/// The demo configuration with a dial limit of one setup a second: a simulcall's two legs
/// soon wait, and dial admission shapes the calls after them.
fn limited() -> String {
    demo::CONFIG.replace(
        "auth_token = \"demo-auth-token\"\n",
        "auth_token = \"demo-auth-token\"\ndial_limit = { count = 1, period_s = 1, burst = 1 }\nconcurrent_calls = 3\n",
    )
}

struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(t)))
    }
    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A fresh database on the tests' PostgreSQL server (`scripts/postgres.sh database`).
fn fresh_database(name: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let name = format!("{name}_{}", std::process::id());
    let out = std::process::Command::new("bash")
        .args([script, "database", &name])
        .output()
        .expect("scripts/postgres.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Node {
    state: Arc<AppState>,
    app: axum::Router,
}

/// A node on `url` (PostgreSQL, sharing with the others on it; SQLite, alone).
async fn node(url: &str, clock: Arc<TestClock>, source: ConfigSource) -> Node {
    let store = dialtone_store::open(url).await.unwrap();
    let bus = dialtone_store::open_bus(url).await.unwrap();
    let config = source.load().unwrap();
    let state = Arc::new(
        AppState::new(
            config,
            source,
            store,
            clock,
            Links::new(PUBLIC),
            HashMap::new(),
        )
        .with_cluster(bus, url.starts_with("postgres")),
    );
    dialtone_server::cluster::follow(state.clone());
    let app = dialtone_server::router(state.clone());
    Node { state, app }
}

fn builtin(text: &str) -> ConfigSource {
    ConfigSource::Builtin {
        name: "limited.toml",
        text: Box::leak(text.to_owned().into_boxed_str()),
    }
}

impl Node {
    async fn voice(&self, sid: &str, to: &str) -> String {
        let response = self
            .app
            .clone()
            .oneshot(signed_voice(sid, to))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Waits until this node has applied everything `other` published.
    async fn caught_up(&self, other: &Node) {
        let published = other.state.cluster.stats().published;
        let mut applied = self.state.cluster.applied();
        tokio::time::timeout(
            Duration::from_secs(20),
            applied.wait_for(|n| *n >= published),
        )
        .await
        .expect("the other node's messages arrive")
        .unwrap();
    }

    fn predicted_queue_s(&self) -> f64 {
        let status = self.state.admission.status(self.state.clock.now());
        status.first().map_or(0.0, |a| a.predicted_queue_s)
    }

    fn active_legs(&self) -> usize {
        let status = self.state.admission.status(self.state.clock.now());
        status.first().map_or(0, |a| a.active_legs)
    }
}

fn start() -> DateTime<Utc> {
    // A Tuesday afternoon in New York: the demo's business hours.
    Utc.with_ymd_and_hms(2026, 12, 1, 19, 0, 0).unwrap()
}

/// Calls spread over two nodes in any order are shaped exactly as one node shapes them: the
/// nodes share the carrier's queue (each call's TwiML, and the queue at the end, match a
/// single SQLite node fed the same calls at the same instants).
#[test]
fn two_nodes_shape_calls_as_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = fresh_database("cluster_shape");
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at(start());
    let alone_clock = TestClock::at(start());
    let (a, b, alone) = runtime.block_on(async {
        let source = builtin(&limited());
        let a = node(&url, clock.clone(), source.clone()).await;
        let b = node(&url, clock.clone(), source.clone()).await;
        let sqlite = format!("sqlite://{}", dir.path().join("alone.db").display());
        let alone = node(&sqlite, alone_clock.clone(), source).await;
        (a, b, alone)
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    };
    proptest!(config, |(calls in prop::collection::vec((any::<bool>(), 0u32..1_500), 1..24))| {
        runtime.block_on(async {
            // A quiet hour between cases: the carrier's queue is empty again.
            clock.advance(chrono::Duration::hours(1));
            alone_clock.advance(chrono::Duration::hours(1));
            for (on_a, gap_ms) in &calls {
                let gap = chrono::Duration::milliseconds(i64::from(*gap_ms));
                clock.advance(gap);
                alone_clock.advance(gap);
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let sid = format!("CA{n:032x}");
                let (here, there) = if *on_a { (&a, &b) } else { (&b, &a) };
                let shared = here.voice(&sid, "+14045550100").await;
                there.caught_up(here).await;
                let single = alone.voice(&sid, "+14045550100").await;
                prop_assert_eq!(&shared, &single, "call {} answered on node {}", n, if *on_a { "a" } else { "b" });
            }
            let (qa, qb, q1) = (a.predicted_queue_s(), b.predicted_queue_s(), alone.predicted_queue_s());
            prop_assert!((qa - q1).abs() < 1e-6 && (qb - q1).abs() < 1e-6, "queues: a {qa}, b {qb}, one node {q1}");
            Ok(())
        })?;
    });
    // The property was exercised where it matters: some calls were shaped.
    assert!(
        alone.state.admission.degraded_calls() > 0,
        "no call was shaped: the test would not see an unshared queue"
    );
}

/// What a leg callback tells one node, the other knows: a leg set up on one and ended on the
/// other leaves no leg counted; a caller who called through one is a repeat caller on the
/// other; a round-robin turn taken on one is not taken again on the other.
#[tokio::test]
async fn legs_callers_and_turns_are_shared() {
    let url = fresh_database("cluster_state");
    let clock = TestClock::at(start());
    let source = builtin(&limited());
    let a = node(&url, clock.clone(), source.clone()).await;
    let b = node(&url, clock.clone(), source).await;
    let carrier = a
        .state
        .config
        .load()
        .carrier_by_sid(demo::ACCOUNT_SID)
        .unwrap()
        .clone();

    // A caller's first call, on a: their next, on b, is a repeat call.
    let (first, next) = (
        "CA00000000000000000000000000000001",
        "CA00000000000000000000000000000002",
    );
    a.voice(first, "+14045550100").await;
    b.voice(next, "+14045550100").await;
    for (sid, node, first_call) in [(first, &a, true), (next, &b, false)] {
        let call = node.state.store.call("demo", sid).await.unwrap().unwrap();
        assert_eq!(call.first_call, Some(first_call), "{sid}");
    }

    // Legs: up on a, counted on b; down on b, gone on a.
    for leg in [
        "CA0000000000000000000000000000000a",
        "CA0000000000000000000000000000000b",
    ] {
        a.state.admission.leg_started(
            &carrier,
            "CA00000000000000000000000000000001",
            leg,
            clock.now(),
        );
    }
    b.caught_up(&a).await;
    assert_eq!((a.active_legs(), b.active_legs()), (2, 2));
    b.state
        .admission
        .leg_ended(&carrier, "CA0000000000000000000000000000000a");
    a.caught_up(&b).await;
    assert_eq!((a.active_legs(), b.active_legs()), (1, 1));

    // Round robin: the service line's turns alternate across the nodes.
    use dialtone_core::engine::Turns;
    let first = a.state.turns.take_turn("acme-plumbing/menu/service");
    a.state
        .cluster
        .send(&dialtone_server::cluster::Message::Turn {
            k: "acme-plumbing/menu/service".into(),
            n: first + 1,
        });
    b.caught_up(&a).await;
    assert_eq!(
        b.state.turns.take_turn("acme-plumbing/menu/service"),
        first + 1
    );
}

/// Round-robin turns and leg callbacks reach the bus from the webhooks themselves: a dial on
/// node a's round robin, then the next caller on node b rings the other phone.
#[tokio::test]
async fn round_robin_alternates_across_nodes() {
    let url = fresh_database("cluster_turns");
    let clock = TestClock::at(start());
    let source = builtin(&limited());
    let a = node(&url, clock.clone(), source.clone()).await;
    let b = node(&url, clock.clone(), source).await;
    let mut rung = Vec::new();
    for (i, here) in [&a, &b, &a, &b].into_iter().enumerate() {
        let sid = format!("CA{:032x}", 100 + i);
        let there = if std::ptr::eq(here, &a) { &b } else { &a };
        let twiml = here.gather(&sid, "2").await;
        there.caught_up(here).await;
        let number = twiml
            .split("<Number")
            .nth(1)
            .and_then(|n| n.split('>').nth(1))
            .and_then(|n| n.split('<').next())
            .unwrap_or_default()
            .to_owned();
        rung.push(number);
    }
    assert_ne!(rung[0], rung[1], "{rung:?}");
    assert_eq!(rung[0], rung[2], "{rung:?}");
    assert_eq!(rung[1], rung[3], "{rung:?}");
}

impl Node {
    /// A caller of the menu line presses `digits`: the TwiML answering them.
    async fn gather(&self, sid: &str, digits: &str) -> String {
        let menu = self.voice(sid, "+14045550150").await;
        let action = menu
            .split("action=\"")
            .nth(1)
            .and_then(|a| a.split('"').next())
            .expect("the menu gathers digits")
            .replace("&amp;", "&");
        let path = action.strip_prefix(PUBLIC).expect("a URL of this server");
        let params: Vec<(String, String)> = [
            ("AccountSid", demo::ACCOUNT_SID),
            ("CallSid", sid),
            ("CallStatus", "in-progress"),
            ("Digits", digits),
            ("Direction", "inbound"),
            ("From", "+17705550123"),
            ("To", "+14045550150"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &action, &params);
        let request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(Body::from(dialtone_twiml::encode(&params)))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// A configuration reloaded on one node is reloaded on the other; a backup rule added on one
/// routes the other's calls; an alert both raise is raised once.
#[tokio::test]
async fn reloads_rules_and_alerts_reach_every_node() {
    let url = fresh_database("cluster_ops");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialtone.toml");
    std::fs::write(&file, limited()).unwrap();
    let clock = TestClock::at(start());
    let a = node(&url, clock.clone(), ConfigSource::File(file.clone())).await;
    let b = node(&url, clock.clone(), ConfigSource::File(file.clone())).await;
    let operator = "dt_operator_cluster_test_key_0000000000";
    a.state
        .store
        .create_api_key(
            operator,
            &dialtone_store::ApiKey::operator(),
            "test operator",
            clock.now(),
        )
        .await
        .unwrap();

    // The file changes (a company renamed); the operator reloads node a only.
    std::fs::write(
        &file,
        limited().replace(
            "name = \"Acme Plumbing\"",
            "name = \"Acme Plumbing & Heating\"",
        ),
    )
    .unwrap();
    let reload = Request::post("/api/v1/config/reload")
        .header("authorization", format!("Bearer {operator}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(a.app.clone().oneshot(reload).await.unwrap().status(), 200);
    b.caught_up(&a).await;
    assert_eq!(
        b.state.config.load().company("acme-plumbing").unwrap().name,
        "Acme Plumbing & Heating"
    );

    // Backup routing for the whole company, set on node a: node b's next call rings the
    // primary number.
    let rule = Request::post("/api/v1/backup")
        .header("authorization", format!("Bearer {operator}"))
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"company":"acme-plumbing","reason":"cluster test","expires_in_s":1800}"#,
        ))
        .unwrap();
    let response = a.app.clone().oneshot(rule).await.unwrap();
    assert_eq!(response.status(), 201);
    b.caught_up(&a).await;
    assert_eq!(b.state.backup_rules.load().len(), 1);

    // Both nodes' monitors raise the same alert at once: one of them raises it.
    let alert = Alert {
        kind: "dial_delay_drift".into(),
        carrier_account_sid: demo::ACCOUNT_SID.into(),
        at: clock.now(),
        message: "legs wait".into(),
        value: 2.0,
    };
    let (won_a, won_b) = tokio::join!(
        a.state
            .admission
            .alerts
            .raise_once(alert.clone(), "demo-carrier"),
        b.state
            .admission
            .alerts
            .raise_once(alert.clone(), "demo-carrier"),
    );
    assert!(won_a ^ won_b, "raised by a: {won_a}, by b: {won_b}");
    // The loser keeps the winner's, told over the bus.
    b.caught_up(&a).await;
    a.caught_up(&b).await;
    assert_eq!(a.state.admission.alerts.list(), vec![alert.clone()]);
    assert_eq!(b.state.admission.alerts.list(), vec![alert]);
}

impl Node {
    /// A visitor from a Google Ads click asks for a number, as the snippet does.
    async fn session(&self, visitor: &str) -> serde_json::Value {
        self.session_from(visitor, "https://acme.example/?gclid=cluster", None)
            .await
    }

    async fn session_from(
        &self,
        visitor: &str,
        landing_url: &str,
        referrer: Option<&str>,
    ) -> serde_json::Value {
        let body = serde_json::json!({
            "company": "acme-plumbing",
            "landing_url": landing_url,
            "referrer": referrer,
            "visitor_id": visitor,
        });
        let request = Request::post("/dni/v1/sessions")
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// Visitors arriving at the same moment on two nodes, as many as the pool has numbers, each
/// get a number of their own: no free number is given twice, whichever nodes served them.
#[test]
fn pool_numbers_are_never_given_twice_across_nodes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = fresh_database("cluster_pool");
    let clock = TestClock::at(start());
    let (a, b) = runtime.block_on(async {
        let source = builtin(&limited());
        let a = node(&url, clock.clone(), source.clone()).await;
        let b = node(&url, clock.clone(), source).await;
        (a, b)
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    };
    // The demo's Google Ads pool has 4 numbers.
    proptest!(config, |(on_a in prop::collection::vec(any::<bool>(), 1..=4))| {
        runtime.block_on(async {
            // A day later: every lease of the previous case has run out.
            clock.advance(chrono::Duration::days(1));
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let asks = on_a.iter().enumerate().map(|(i, on_a)| {
                let node = if *on_a { &a } else { &b };
                let visitor = format!("v{case}x{i}");
                async move { node.session(&visitor).await }
            });
            let sessions = futures_util::future::join_all(asks).await;
            let numbers: HashSet<&str> = sessions
                .iter()
                .map(|s| s["number"].as_str().unwrap_or_else(|| panic!("no number: {s}")))
                .collect();
            prop_assert_eq!(numbers.len(), sessions.len(), "{:?}", sessions);
            prop_assert!(sessions.iter().all(|s| s["shared"] == false), "{:?}", sessions);
            // Both nodes hear of every session before the next case.
            a.caught_up(&b).await;
            b.caught_up(&a).await;
            Ok(())
        })?;
    });
}

/// A visitor given a number by one node, calling it through the other, is attributed there;
/// their page goes on (keepalives) through either node.
#[tokio::test]
async fn a_visitor_from_one_node_is_attributed_on_the_other() {
    let url = fresh_database("cluster_attribution");
    let clock = TestClock::at(start());
    let source = builtin(&limited());
    let a = node(&url, clock.clone(), source.clone()).await;
    let b = node(&url, clock.clone(), source).await;
    let session = a.session("visitor-on-a").await;
    let number = session["number"].as_str().unwrap().to_owned();
    b.caught_up(&a).await;

    clock.advance(chrono::Duration::seconds(30));
    let keepalive = Request::post(format!(
        "/dni/v1/sessions/{}/keepalive",
        session["session_id"].as_str().unwrap()
    ))
    .header("content-type", "text/plain;charset=UTF-8")
    .body(Body::from("{}"))
    .unwrap();
    assert_eq!(
        b.app.clone().oneshot(keepalive).await.unwrap().status(),
        200
    );

    let sid = "CA000000000000000000000000000000c1";
    b.voice(sid, &number).await;
    let call = b
        .state
        .store
        .call("demo", sid)
        .await
        .unwrap()
        .expect("the call is logged");
    let attribution = call.attribution.expect("attributed to the visitor");
    assert_eq!(attribution.visitor, "visitor-on-a");
    assert_eq!(attribution.visit.gclid.as_deref(), Some("cluster"));

    // A visit whose URLs are too long to tell over the bus: the other node reads it from the
    // store, and attributes its call all the same.
    let long = format!("https://acme.example/?gclid=long&q={}", "x".repeat(3_900));
    let referrer = format!("https://www.google.com/search?q={}", "y".repeat(3_900));
    let session = a.session_from("visitor-long", &long, Some(&referrer)).await;
    let number = session["number"].as_str().unwrap().to_owned();
    b.caught_up(&a).await;
    let sid = "CA000000000000000000000000000000c2";
    b.voice(sid, &number).await;
    let call = b.state.store.call("demo", sid).await.unwrap().unwrap();
    let attribution = call.attribution.expect("attributed to the long visit");
    assert_eq!(attribution.visitor, "visitor-long");
    assert_eq!(attribution.visit.landing_page.len(), long.len());
}

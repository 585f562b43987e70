//! Dial admission in the running server: with the carrier's limit configured, simulcalls that
//! would wait in the carrier's queue ask for fewer legs, the call log says so, and the operator
//! sees the limit, the offered rate and the predicted queue.

mod common;

use common::*;
use dialtone_core::demo;

/// The demo configuration with a carrier that sets up 50 legs every 11 s: one every 0.22 s.
fn slow_carrier() -> String {
    demo::CONFIG.replace(
        "auth_token = \"demo-auth-token\"\n",
        "auth_token = \"demo-auth-token\"\ndial_limit = { count = 50, period_s = 11 }\n",
    )
}

#[tokio::test]
async fn simulcalls_are_shaped_when_the_carriers_queue_would_delay_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &slow_carrier(), MONDAY_MORNING);
    // Three calls to the simulcall line within a second or two.
    let mut shapes = Vec::new();
    for n in 1..=3 {
        let call_sid = sid("CA", 0xad00 + n);
        let twiml = server.voice(&call_sid, "+14045550100").await;
        let numbers = twiml.matches("<Number").count();
        let call = server.call(&call_sid).await;
        shapes.push((numbers, call["degraded"].clone()));
    }
    // Decisions plan for half the 1 s budget. The first rings both phones (its second leg waits
    // 0.22 s); the second finds 0.44 s of queue ahead, so its last leg would wait 0.66 s: the
    // primary first; the third finds 0.66 s ahead, too long for even the primary: the primary
    // only.
    assert_eq!(shapes[0], (2, serde_json::Value::Null));
    assert_eq!(shapes[1], (1, serde_json::json!("primary_first")));
    assert_eq!(shapes[2], (1, serde_json::json!("primary_only")));

    let (code, status) = server
        .api("/api/v1/admission", Some(demo::OPERATOR_KEY))
        .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["degraded_calls"], 2);
    let account = &status["carrier_accounts"][0];
    assert_eq!(account["carrier_account"], "demo-carrier");
    let limit = account["status"]["configured_limit_per_s"]
        .as_f64()
        .unwrap();
    assert!((limit - 50.0 / 11.0).abs() < 1e-9, "{limit}");
    let queue = account["status"]["predicted_queue_s"].as_f64().unwrap();
    assert!(
        queue > 0.5,
        "four legs asked for, one every 0.22 s: {queue}"
    );

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("dialtone_degraded_calls_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dialtone_dial_limit_per_second{carrier_account=\"demo-carrier\",source=\"configured\"} 4.54"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_a_limit_or_with_degrading_off_every_leg_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[admission]\ndegrade = false\n\n{}", slow_carrier());
    let server = Server::with_config(dir.path(), &config, MONDAY_MORNING);
    for n in 1..=3 {
        let call_sid = sid("CA", 0xae00 + n);
        let twiml = server.voice(&call_sid, "+14045550100").await;
        assert_eq!(twiml.matches("<Number").count(), 2, "{twiml}");
    }
    let (_, status) = server
        .api("/api/v1/admission", Some(demo::OPERATOR_KEY))
        .await;
    assert_eq!(status["degraded_calls"], 0);
    // The mirror still counts: the operator sees the queue the carrier is building.
    let queue = status["carrier_accounts"][0]["status"]["predicted_queue_s"]
        .as_f64()
        .unwrap();
    assert!(queue > 1.0, "six legs, one every 0.22 s: {queue}");
}

#[tokio::test]
async fn an_unknown_limit_is_read_from_leg_starts_and_alerted_to_the_api_and_the_webhook() {
    // The webhook receiver: every JSON body posted to it.
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().await.push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[admission]\nalert_webhook = \"{hook}\"\n\n{}",
        demo::CONFIG
    );
    let server = Server::with_config(dir.path(), &config, MONDAY_MORNING);
    let calls: Vec<String> = (1..=12).map(|n| sid("CA", 0xaf00 + n)).collect();
    for call_sid in &calls {
        server.voice(call_sid, "+14045550100").await;
    }
    // The carrier plays the recording notice (about 3.4 s), holds the legs more than a second,
    // then sets them up 20 a second.
    tokio::time::sleep(std::time::Duration::from_millis(4900)).await;
    for (i, call_sid) in calls.iter().enumerate() {
        let leg_sid = sid("CA", 0xbf00 + i as u64);
        let leg = [
            ("AccountSid", demo::ACCOUNT_SID),
            ("CallSid", leg_sid.as_str()),
            ("ParentCallSid", call_sid.as_str()),
            ("CallStatus", "initiated"),
            ("StatusCallbackEvent", "initiated"),
            ("Direction", "outbound-dial"),
            ("From", CALLER),
            ("To", "+14045550111"),
        ];
        let (code, _) = server
            .post_signed("/twilio/leg?company=acme-plumbing", &leg)
            .await;
        assert_eq!(code, 200);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (code, body) = server.api("/api/v1/alerts", Some(demo::OPERATOR_KEY)).await;
    assert_eq!(code, 200, "{body}");
    let alert = &body["alerts"][0];
    assert_eq!(alert["kind"], "effective_limit", "{body}");
    assert_eq!(alert["carrier_account"], "demo-carrier");
    let rate = alert["value"].as_f64().unwrap();
    assert!(
        rate > 8.0 && rate < 25.0,
        "about 20/s less the test's own latency: {rate}"
    );
    let (_, status) = server
        .api("/api/v1/admission", Some(demo::OPERATOR_KEY))
        .await;
    // The estimate keeps following the legs that started after the alert.
    let estimated = status["carrier_accounts"][0]["status"]["estimated_limit_per_s"]
        .as_f64()
        .unwrap();
    assert!(
        (estimated / rate - 1.0).abs() < 0.1,
        "{estimated} vs {rate}"
    );

    // The webhook got it too, with a Slack-compatible text.
    let mut posted = Vec::new();
    for _ in 0..50 {
        posted = received.lock().await.clone();
        if !posted.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(posted.len(), 1, "{posted:?}");
    let text = posted[0]["text"].as_str().unwrap();
    assert!(
        text.contains("effective dial limit") && text.contains("demo-carrier"),
        "{text}"
    );
    assert_eq!(posted[0]["alert"]["kind"], "effective_limit");
}

/// With a cap of 3 concurrent calls and two legs up, a simulcall to two phones would pass it:
/// the primary only; once a leg ends, both phones ring again.
#[tokio::test]
async fn a_dial_that_would_pass_the_concurrency_cap_asks_for_the_primary_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo::CONFIG.replace(
        "auth_token = \"demo-auth-token\"\n",
        "auth_token = \"demo-auth-token\"\nconcurrent_calls = 3\n",
    );
    let server = Server::with_config(dir.path(), &config, MONDAY_MORNING);
    let (office, mobile) = ("+14045550111", "+14045550112");
    // The first call rings both phones, and both legs come up.
    let first = sid("CA", 0xc0c0_0001);
    assert_eq!(server.numbers_dialed(&first, "+14045550100").await, 2);
    let (leg1, leg2) = (sid("CA", 0xc0c0_0011), sid("CA", 0xc0c0_0012));
    server
        .leg(&first, &leg1, office, "initiated", "initiated")
        .await;
    server
        .leg(&first, &leg2, mobile, "initiated", "initiated")
        .await;
    // Two up, cap three: the next simulcall gets the primary only.
    let second = sid("CA", 0xc0c0_0002);
    assert_eq!(server.numbers_dialed(&second, "+14045550100").await, 1);
    assert_eq!(server.call(&second).await["degraded"], "primary_only");
    // One leg ends: room for two again.
    server
        .leg(&first, &leg2, mobile, "completed", "completed")
        .await;
    let third = sid("CA", 0xc0c0_0003);
    assert_eq!(server.numbers_dialed(&third, "+14045550100").await, 2);

    let (_, status) = server
        .api("/api/v1/admission", Some(demo::OPERATOR_KEY))
        .await;
    let account = &status["carrier_accounts"][0]["status"];
    assert_eq!(account["active_legs"], 1, "{status}");
    assert_eq!(account["concurrent_limit"], 3);
}

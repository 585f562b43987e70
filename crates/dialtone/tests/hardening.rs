//! What a stranger, another customer or a replayed request cannot do: touch another carrier
//! account's calls, make a call happen twice, act on another account with its keys, or read
//! metrics it was not given.

mod common;

use common::*;
use dialtone_core::demo;
use serde_json::{Value, json};

fn create_key(server: &Server, dir: &std::path::Path, args: &[&str]) -> String {
    let database = format!("sqlite://{}", server.db.display());
    let config = dir.join("dialtone.toml");
    let mut all = vec!["keys", "create", "--database", &database];
    all.extend(["--config", config.to_str().unwrap()]);
    all.extend(args);
    let (code, out, err) = run(&all);
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{}", server.url, path))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("API request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The value of the series of `metric` whose labels contain all of `labels`, summed.
fn metric_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_carrier_account_cannot_touch_another_accounts_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &with_second_account(true), MONDAY_MORNING);
    let bobs_key = create_key(&server, dir.path(), &["--account", "other"]);
    let bobs_call = sid("CA", 0xb0b);
    let inbound = [
        ("AccountSid", OTHER_SID),
        ("CallSid", bobs_call.as_str()),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", BOBS_NUMBER),
    ];
    let (code, twiml) = server
        .post_signed_with(OTHER_TOKEN, "/twilio/voice", &inbound)
        .await;
    assert_eq!(code, 200, "{twiml}");

    // Validly signed by the demo account, naming Bob's call: every callback is refused.
    let forged: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/twilio/status",
            vec![
                ("CallStatus", "completed"),
                ("CallDuration", "999"),
                ("Direction", "inbound"),
                ("From", CALLER),
                ("To", BOBS_NUMBER),
                ("CallSid", bobs_call.as_str()),
            ],
        ),
        (
            "/twilio/leg?company=acme-plumbing",
            vec![
                ("CallSid", "CAfake0000000000000000000000000001"),
                ("ParentCallSid", bobs_call.as_str()),
                ("CallStatus", "in-progress"),
                ("StatusCallbackEvent", "answered"),
                ("Direction", "outbound-dial"),
                ("From", CALLER),
                ("To", "+14045550112"),
            ],
        ),
        (
            "/twilio/recording",
            vec![
                ("CallSid", bobs_call.as_str()),
                ("RecordingSid", "RE00000000000000000000000000000001"),
                ("RecordingUrl", "https://evil.example/forged"),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "12"),
            ],
        ),
        (
            "/twilio/voice",
            vec![
                ("CallSid", bobs_call.as_str()),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("From", CALLER),
                ("To", "+14045550100"),
            ],
        ),
    ];
    for (path, mut params) in forged {
        params.push(("AccountSid", demo::ACCOUNT_SID));
        let (code, body) = server.post_signed(path, &params).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("another carrier account"), "{path}: {body}");
    }

    let (code, call) = server
        .api(&format!("/api/v1/calls/{bobs_call}"), Some(&bobs_key))
        .await;
    assert_eq!(code, 200, "{call}");
    assert_eq!(call["duration"], Value::Null, "{call}");
    assert_eq!(call["recording"], Value::Null, "{call}");
    assert_eq!(call["voicemail_recording"], Value::Null, "{call}");
    assert_eq!(call["legs"], json!([]), "{call}");
    let kinds: Vec<&str> = call["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["call_received"], "{call}");
    let metrics = server.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "dialtone_webhook_refused_total",
            &["reason=\"other_account\""]
        ),
        4.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_replayed_voice_webhook_makes_no_second_call_and_spends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &with_second_account(false), MONDAY_MORNING);
    let call_sid = sid("CA", 1);
    // The main flow: a notice, then office and mobile rung together.
    let first = server.voice(&call_sid, "+14045550100").await;
    let again = server.voice(&call_sid, "+14045550100").await;
    assert_eq!(first.matches("<Number").count(), 2, "{first}");
    assert_eq!(again, first, "the replay is routed the same way");

    let call = server.call(&call_sid).await;
    assert_eq!(call["first_call"], true, "{call}");
    let received = call["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "call_received")
        .count();
    assert_eq!(received, 1, "{call}");
    assert_eq!(server.calls().await.len(), 1);
    let metrics = server.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "dialtone_dial_legs_total", &[]),
        2.0,
        "the dial limit's budget is spent once: {metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "dialtone_webhook_refused_total",
            &["reason=\"already_received\""]
        ),
        1.0
    );

    // A round-robin turn is not spent by a replay: the next call gets the next agent.
    let support = BOBS_NUMBER;
    let rung = |twiml: &str| -> String {
        let start = twiml.find("<Number").expect("a number") + "<Number".len();
        let start = start + twiml[start..].find('>').unwrap() + 1;
        twiml[start..start + twiml[start..].find('<').unwrap()].to_owned()
    };
    let a = server.voice(&sid("CA", 2), support).await;
    server.voice(&sid("CA", 2), support).await;
    let b = server.voice(&sid("CA", 3), support).await;
    assert_ne!(rung(&a), rung(&b), "{a}\n{b}");

    // An empty or malformed CallSid is not a call.
    for bad in ["", "CA 1", "CA\u{0}"] {
        let mut p = inbound(bad, "+14045550100");
        p.retain(|(k, _)| *k != "CallSid");
        p.push(("CallSid", bad.to_owned()));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, body) = server.post_signed("/twilio/voice", &p).await;
        assert_eq!(code, 400, "{bad:?}: {body}");
        assert!(body.contains("CallSid"), "{body}");
    }
    assert_eq!(
        server.calls().await.len(),
        1,
        "none of them was logged as a call"
    );
}

#[tokio::test]
async fn an_accounts_keys_act_on_that_account_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &with_second_account(false), MONDAY_MORNING);
    let bob_admin = create_key(&server, dir.path(), &["--account", "other", "--admin"]);
    let bob_reporting = create_key(&server, dir.path(), &["--account", "other"]);
    let rule = |scope: Value| {
        let mut body = json!({ "reason": "test", "expires_in_s": 600 });
        body.as_object_mut()
            .unwrap()
            .extend(scope.as_object().unwrap().clone());
        Some(body)
    };
    let post = reqwest::Method::POST;
    for (scope, expected) in [
        (json!({ "all": true }), 403),
        (json!({ "tier": "standard" }), 403),
        (json!({ "company": "acme-plumbing" }), 422),
    ] {
        let (code, body) = send(
            &server,
            post.clone(),
            "/api/v1/backup",
            &bob_admin,
            rule(scope.clone()),
        )
        .await;
        assert_eq!(code, expected, "{scope}: {body}");
    }
    let (code, body) = send(
        &server,
        post.clone(),
        "/api/v1/backup",
        &bob_admin,
        rule(json!({ "company": "bobs-hvac" })),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let id = body["rule"]["id"].as_i64().unwrap();

    // Acme's admin key neither sees Bob's rule nor ends it; Bob's sees it; the operator's too.
    let get = reqwest::Method::GET;
    let (_, acme_view) = send(&server, get.clone(), "/api/v1/backup", demo::API_KEY, None).await;
    assert_eq!(acme_view["rules"], json!([]), "{acme_view}");
    let (_, bobs_view) = send(&server, get.clone(), "/api/v1/backup", &bob_admin, None).await;
    assert_eq!(bobs_view["rules"][0]["id"], id);
    let (_, operator_view) = send(
        &server,
        get.clone(),
        "/api/v1/backup",
        demo::OPERATOR_KEY,
        None,
    )
    .await;
    assert_eq!(operator_view["rules"][0]["id"], id);
    let path = format!("/api/v1/backup/{id}");
    let delete = reqwest::Method::DELETE;
    let (code, _) = send(&server, delete.clone(), &path, demo::API_KEY, None).await;
    assert_eq!(code, 404);
    let (code, _) = send(&server, delete, &path, &bob_admin, None).await;
    assert_eq!(code, 200);

    // A reporting key reads calls, not backup routing.
    for method in [get.clone(), post.clone()] {
        let (code, body) = send(
            &server,
            method,
            "/api/v1/backup",
            &bob_reporting,
            rule(json!({ "company": "bobs-hvac" })),
        )
        .await;
        assert_eq!(code, 403, "{body}");
    }
    // DNI pools: an account's own; the operator's, every account's.
    let (_, bobs_pools) = send(
        &server,
        get.clone(),
        "/api/v1/dni/pools",
        &bob_reporting,
        None,
    )
    .await;
    assert_eq!(
        bobs_pools["pools"],
        json!([]),
        "Bob has no pool: {bobs_pools}"
    );
    let (_, all_pools) = send(
        &server,
        get.clone(),
        "/api/v1/dni/pools",
        demo::OPERATOR_KEY,
        None,
    )
    .await;
    assert_eq!(
        all_pools["pools"][0]["company"], "acme-plumbing",
        "{all_pools}"
    );

    // The installation's settings and the carrier's state are the operator's.
    for (method, path) in [
        (post.clone(), "/api/v1/config/reload"),
        (get.clone(), "/api/v1/admission"),
        (get.clone(), "/api/v1/alerts"),
    ] {
        for key in [bob_admin.as_str(), demo::API_KEY] {
            let (code, body) = send(&server, method.clone(), path, key, None).await;
            assert_eq!(code, 403, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("operator"),
                "{body}"
            );
        }
        let (code, body) = send(&server, method.clone(), path, demo::OPERATOR_KEY, None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn metrics_take_a_token_when_given_one_and_name_no_customer_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--demo",
            "--clock-start",
            MONDAY_MORNING,
            "--metrics-token",
            "scrape-secret",
        ],
    );
    server.voice(&sid("CA", 1), "+14045550100").await;
    let get = |key: Option<&'static str>| {
        let url = format!("{}/metrics", server.url);
        async move {
            let mut req = reqwest::Client::new().get(url);
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(get(None).await.0, 401);
    assert_eq!(get(Some("wrong")).await.0, 401);
    assert_eq!(get(Some(demo::API_KEY)).await.0, 401, "an account's key");
    assert_eq!(get(Some(demo::OPERATOR_KEY)).await.0, 200);
    let (code, text) = get(Some("scrape-secret")).await;
    assert_eq!(code, 200);
    assert!(text.contains("dialtone_dial_legs_total{"), "{text}");
    for name in ["acme-plumbing", "Google Ads", "Google Business Profile"] {
        assert!(!text.contains(name), "`{name}` in a label:\n{text}");
    }
}

/// Behind a proxy, the client is who the proxy says, not who the client says; and one client,
/// however many visitors it makes up, holds at most its share of a pool.
#[tokio::test]
async fn one_client_can_neither_spoof_its_address_nor_take_a_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo::CONFIG.replacen(
        "[[carrier_accounts]]",
        "[dni]\ntrusted_proxies = 1\n\n[[carrier_accounts]]",
        1,
    );
    let server = Server::with_config(dir.path(), &config, MONDAY_MORNING);
    let ad = |visitor: &str| {
        json!({
            "company": "acme-plumbing",
            "landing_url": format!("https://acme.example/?gclid={visitor}"),
        })
    };
    // A client writing a new first hop on every request is still one client: its burst (10)
    // and then the rate limit.
    let mut created = Vec::new();
    let mut limited = 0;
    for n in 0..40 {
        let hops = format!("192.0.2.{n}, 203.0.113.7");
        let (code, body) = server
            .dni_session(ad(&format!("v{n}")), &[("x-forwarded-for", &hops)])
            .await;
        match code {
            200 => created.push(body),
            429 => limited += 1,
            _ => panic!("{code}: {body}"),
        }
    }
    assert_eq!(created.len(), 10, "the burst, and no more");
    assert_eq!(limited, 30);
    // Its ten visitors hold two numbers of the four between them...
    let mut theirs: Vec<&str> = created
        .iter()
        .map(|b| b["number"].as_str().expect("a pool number"))
        .collect();
    theirs.sort_unstable();
    theirs.dedup();
    assert_eq!(theirs.len(), 2, "{created:?}");
    // ...so another client gets a number of its own, not a shared one.
    let (code, other) = server
        .dni_session(ad("someone-else"), &[("x-forwarded-for", "198.51.100.20")])
        .await;
    assert_eq!(code, 200, "{other}");
    assert_eq!(other["shared"], false, "{other}");
    assert!(
        !theirs.contains(&other["number"].as_str().unwrap()),
        "{other}"
    );
}

/// A client holding many idle, slow-header or slow-body connections neither exhausts the
/// server nor keeps them: one address gets its share of the connections, the rest is refused,
/// each connection has deadlines, and the carrier's webhooks are answered meanwhile.
#[tokio::test]
async fn idle_and_slow_connections_are_bounded_and_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--demo",
            "--clock-start",
            MONDAY_MORNING,
            "--max-connections",
            "40",
            "--max-connections-per-address",
            "20",
            "--header-timeout-s",
            "1",
            "--body-timeout-s",
            "1",
            "--idle-timeout-s",
            "600",
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    // Another address sees the flood counted and cut at its share.
    let health = || async {
        let res = from("127.0.0.2")
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut h = health().await;
    while h["connections"]["refused"] != 10 {
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::task::yield_now().await;
        h = health().await;
    }
    // The carrier, from its own address, is answered while they are held.
    let url = format!("{}/twilio/voice", server.url);
    let params: Vec<(String, String)> = inbound(&sid("CA", 1), "+14045550100")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &url, &params);
    let res = from("127.0.0.3")
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(dialtone_twiml::encode(&params))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // Every idle connection is closed by its header deadline (1 s; the idle deadline is 10
    // minutes) or was refused: the client sees the end of the stream.
    for (i, c) in idle.iter_mut().enumerate() {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("connection {i} is still open"));
        assert!(matches!(read, Ok(0) | Err(_)), "{i}: {read:?}");
    }
    // A body that never finishes is answered and closed by the body deadline.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"POST /twilio/voice HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\nx-twilio-signature: x\r\ncontent-length: 1000\r\n\r\nAccountSid=AC",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut answer),
    )
    .await
    .expect("the slow body is cut off")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}

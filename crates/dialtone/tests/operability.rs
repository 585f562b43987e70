//! /healthz and /metrics: promtool accepts the metrics, and no phone number leaks into them.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn metrics_pass_promtool_and_carry_no_phone_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    // Some traffic of every kind first: a routed call, a leg, a refused request.
    let call_sid = sid("CA", 77);
    let p = inbound(&call_sid, "+14045550100");
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(server.post_signed("/twilio/voice", &p).await.0, 200);
    let leg_sid = sid("CA", 78);
    let leg = [
        ("AccountSid", dialtone_core::demo::ACCOUNT_SID),
        ("CallSid", leg_sid.as_str()),
        ("ParentCallSid", call_sid.as_str()),
        ("CallStatus", "no-answer"),
        ("StatusCallbackEvent", "completed"),
        ("Direction", "outbound-dial"),
        ("From", CALLER),
        ("To", "+14045550111"),
    ];
    assert_eq!(
        server
            .post_signed("/twilio/leg?company=acme-plumbing", &leg)
            .await
            .0,
        200
    );
    // Another leg rings, then the caller hangs up before anyone answers.
    let ringing = sid("CA", 79);
    server
        .leg(&call_sid, &ringing, "+14045550112", "ringing", "ringing")
        .await;
    let ended = [
        ("AccountSid", dialtone_core::demo::ACCOUNT_SID),
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "completed"),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", "+14045550100"),
    ];
    assert_eq!(server.post_signed("/twilio/status", &ended).await.0, 200);
    assert_eq!(
        server
            .post_signed_with("forged", "/twilio/voice", &p)
            .await
            .0,
        403
    );

    let text = server.metrics().await;
    assert!(
        text.contains("dialtone_webhook_duration_seconds_bucket{endpoint=\"voice\""),
        "{text}"
    );
    assert!(
        text.contains("dialtone_legs_total{status=\"no-answer\"} 1"),
        "{text}"
    );
    assert!(text.contains("dialtone_calls_received_total"), "{text}");
    // Per carrier account and company: legs asked for, post-dial delay, how dialed calls ended.
    let line = |name: &str, labels: &[&str]| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .map(str::to_owned)
    };
    // Companies and trackers are named by pseudonyms unless the operator asks for names: `c` and
    // 10 hex digits of the SHA-256 of the slug (of `company/tracker` for a tracker).
    let pseudonym = |name: &str| format!("c{}", &dialtone_store::hash_key(name)[..10]);
    let company = format!("company=\"{}\"", pseudonym("acme-plumbing"));
    let tracker = format!("tracker=\"{}\"", pseudonym("acme-plumbing/Google Ads"));
    assert!(!text.contains("acme-plumbing"), "{text}");
    let here = ["carrier_account=\"demo-carrier\"", company.as_str()];
    assert!(
        line("dialtone_dial_legs_total{", &here).is_some_and(|l| l.ends_with(" 2")),
        "{text}"
    );
    assert!(
        line("dialtone_post_dial_delay_seconds_count{", &here).is_some_and(|l| l.ends_with(" 1")),
        "{text}"
    );
    let abandoned = [here[0], here[1], "result=\"abandoned\"", "rang=\"true\""];
    assert!(
        line("dialtone_dialed_calls_total{", &abandoned).is_some_and(|l| l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        line("dialtone_dni_pool_numbers{", &[tracker.as_str()]).is_some_and(|l| l.ends_with(" 4")),
        "{text}"
    );
    let phone = text
        .split(|c: char| !(c == '+' || c.is_ascii_digit()))
        .find(|w| w.starts_with('+') && w.len() >= 9);
    assert_eq!(phone, None, "a phone number in the metrics");

    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let promtool = std::env::var("DIALTONE_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {promtool} ({e}); run scripts/test-deps.sh"));
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn healthz_reports_config_and_call_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let body: serde_json::Value = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["tracking_numbers"], 6);
    assert_eq!(body["call_log"]["spooled"], 0);
}

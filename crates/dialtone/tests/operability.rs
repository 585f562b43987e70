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
    assert_eq!(
        server
            .post_signed_with("forged", "/twilio/voice", &p)
            .await
            .0,
        403
    );

    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("dialtone_webhook_duration_seconds_bucket{endpoint=\"voice\""),
        "{text}"
    );
    assert!(
        text.contains("dialtone_legs_total{status=\"no-answer\"} 1"),
        "{text}"
    );
    assert!(text.contains("dialtone_calls_received_total"), "{text}");
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

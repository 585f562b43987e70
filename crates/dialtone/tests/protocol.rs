//! The carrier protocol at the edge: signatures, bad input, unknown numbers.

mod common;

use common::*;
use dialtone_core::demo;

fn params<'a>(p: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    p.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn signed_inbound_call_is_answered_with_twiml() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let call = inbound(&sid("CA", 1), "+14045550100");
    let (status, body) = server.post_signed("/twilio/voice", &params(&call)).await;
    assert_eq!(status, 200, "{body}");
    let doc: dialtone_twiml::Response = dialtone_twiml::parse(&body).expect("valid TwiML");
    assert!(
        matches!(doc.verbs[0], dialtone_twiml::Verb::Say(_)),
        "{body}"
    );
    assert!(
        matches!(doc.verbs[1], dialtone_twiml::Verb::Dial(_)),
        "{body}"
    );
}

#[tokio::test]
async fn forged_or_unsigned_requests_get_403() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let call = inbound(&sid("CA", 2), "+14045550100");
    let p = params(&call);

    let (status, _) = server
        .post_signed_with("not-the-token", "/twilio/voice", &p)
        .await;
    assert_eq!(status, 403, "wrong token");

    let url = format!("{}/twilio/voice", server.url);
    let owned: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (status, body) = post_raw(&url, None, dialtone_twiml::encode(&owned).into_bytes()).await;
    assert_eq!((status, body.trim()), (403, "missing X-Twilio-Signature"));

    // Signed, then a parameter changed in transit.
    let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &url, &owned);
    let mut tampered = owned.clone();
    tampered.iter_mut().find(|(k, _)| k == "From").unwrap().1 = "+19995550000".into();
    let (status, _) = post_raw(
        &url,
        Some(&signature),
        dialtone_twiml::encode(&tampered).into_bytes(),
    )
    .await;
    assert_eq!(status, 403, "tampered parameter");

    // Signed for another URL (a query string added in transit).
    let (status, _) = post_raw(
        &format!("{url}?x=1"),
        Some(&signature),
        dialtone_twiml::encode(&owned).into_bytes(),
    )
    .await;
    assert_eq!(status, 403, "tampered URL");

    // An account dialtone does not know cannot sign at all.
    let mut other = owned.clone();
    other[0].1 = "AC99999999999999999999999999999999".into();
    let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &url, &other);
    let (status, _) = post_raw(
        &url,
        Some(&signature),
        dialtone_twiml::encode(&other).into_bytes(),
    )
    .await;
    assert_eq!(status, 403, "unknown account");

    // None of these reached the call log.
    assert!(server.calls().await.is_empty());
}

#[tokio::test]
async fn signed_requests_missing_parameters_get_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let call = inbound(&sid("CA", 3), "+14045550100");
    let without_sid: Vec<(&str, &str)> = params(&call)
        .into_iter()
        .filter(|(k, _)| *k != "CallSid")
        .collect();
    let (status, body) = server.post_signed("/twilio/voice", &without_sid).await;
    assert_eq!(status, 400);
    assert_eq!(body.lines().count(), 1, "one line: {body}");
    assert!(body.contains("CallSid"), "{body}");

    // A dial callback without DialCallStatus, and a callback URL without its flow position.
    let (status, body) = server
        .post_signed(
            "/twilio/dial?company=acme-plumbing&flow=main&step=ring",
            &params(&call),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("DialCallStatus"), "{body}");
    let mut with_status = params(&call);
    with_status.push(("DialCallStatus", "no-answer"));
    let (status, body) = server
        .post_signed("/twilio/dial?company=acme-plumbing", &with_status)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("flow"), "{body}");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_without_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let url = format!("{}/twilio/voice", server.url);
    // Invalid UTF-8 and broken percent-encoding, signed over what it decodes to: no AccountSid
    // survives, so nobody could have signed it.
    let (status, _) = post_raw(&url, Some("AAAA"), b"\xff\xfe%zz&&==&CallSid".to_vec()).await;
    assert_eq!(status, 403);
    let big = format!(
        "AccountSid={}&Junk={}",
        demo::ACCOUNT_SID,
        "x".repeat(200 * 1024)
    );
    let (status, _) = post_raw(&url, Some("AAAA"), big.into_bytes()).await;
    assert_eq!(status, 413);
    // A bad status value, correctly signed.
    let mut call = inbound(&sid("CA", 4), "+14045550100");
    call[3].1 = "sideways".into();
    let (status, body) = server.post_signed("/twilio/voice", &params(&call)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("CallStatus"), "{body}");
}

#[tokio::test]
async fn unknown_numbers_hear_not_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let call = inbound(&sid("CA", 5), "+14045550999");
    let (status, body) = server.post_signed("/twilio/voice", &params(&call)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("not in service") && body.contains("<Hangup/>"),
        "{body}"
    );
    // No account sees it, but the operator's log has it.
    assert!(server.calls().await.is_empty());
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let logged: i64 = conn
        .query_row(
            "SELECT count(*) FROM calls WHERE sid = ?1 AND account = '' AND tracking_number = '+14045550999'",
            [sid("CA", 5)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(logged, 1);
}

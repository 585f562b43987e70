//! What the server's in-process tests share: carrier requests signed as the carrier signs them.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use dialtone_core::demo;

/// The public URL the tests' routers are told they are reached at (and so what is signed).
pub const PUBLIC: &str = "https://dt.example";

/// The inbound-call webhook for `call_sid` to `to`, from the demo carrier account.
pub fn signed_voice(call_sid: &str, to: &str) -> Request<Body> {
    let params: Vec<(String, String)> = [
        ("AccountSid", demo::ACCOUNT_SID),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+17705550123"),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = dialtone_twiml::compute_signature(
        demo::AUTH_TOKEN,
        &format!("{PUBLIC}/twilio/voice"),
        &params,
    );
    Request::post("/twilio/voice")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(dialtone_twiml::encode(&params)))
        .unwrap()
}

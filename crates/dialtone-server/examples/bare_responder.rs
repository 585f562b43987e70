//! The benchmark baseline: a bare axum responder that reads the POST body and answers a fixed
//! document, nothing else: TwiML for the voice webhook (`scripts/bench-webhook.sh`), a DNI
//! session's JSON for session creation (`scripts/bench-dni.sh`).

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;

const TWIML: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>This call may be recorded for quality assurance.</Say>"#,
    r#"<Dial timeout="20"><Number>+14045550111</Number><Number>+14045550112</Number></Dial></Response>"#
);

const SESSION: &str = concat!(
    r#"{"expires_at":"2026-11-25T15:52:20.239063Z","formatted":"(404) 555-0201","keepalive_s":300,"#,
    r#""lease_s":1200,"number":"+14045550201","resumed":false,"session_id":"1.305b10628e4f4c07d98c833e62984753","#,
    r#""shared":false,"swap":true,"tracker":"Google Ads","visitor_id":"9d0bb5e4f55ee9682ce702","website_number":"+14045550199"}"#
);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new()
        .route(
            "/twilio/voice",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], TWIML)
            }),
        )
        .route(
            "/dni/v1/sessions",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                ([(header::CONTENT_TYPE, "application/json")], SESSION)
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

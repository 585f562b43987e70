//! The benchmark baseline: a bare axum responder that reads the POST body and answers a fixed
//! TwiML document, nothing else. `scripts/bench-webhook.sh` runs it beside dialtone.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;

const TWIML: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>This call may be recorded for quality assurance.</Say>"#,
    r#"<Dial timeout="20"><Number>+14045550111</Number><Number>+14045550112</Number></Dial></Response>"#
);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new().route(
        "/twilio/voice",
        post(|body: Bytes| async move {
            std::hint::black_box(body);
            ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], TWIML)
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

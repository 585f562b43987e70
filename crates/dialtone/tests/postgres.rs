//! dialtone on PostgreSQL, end to end: an SQLite installation copied with
//! `dialtone migrate --from … --to …` while it serves, then `dialtone serve` on PostgreSQL
//! routing calls and showing the copied ones and its own through the API.

mod common;

use std::process::Command;

use common::*;

async fn call(server: &Server, n: u64) {
    let call_sid = sid("CA", n);
    let p = inbound(&call_sid, "+14045550100");
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, twiml) = server.post_signed("/twilio/voice", &p).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Dial"), "{twiml}");
}

#[tokio::test]
async fn an_installation_moves_to_postgres_with_its_calls_and_serves_there() {
    let dir = tempfile::tempdir().unwrap();
    let lite = Server::demo(dir.path(), MONDAY_MORNING);
    call(&lite, 1).await;
    call(&lite, 2).await;
    let url = fresh_database("e2e_move");

    // Copied while it serves.
    let out = Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(format!("sqlite://{}", lite.db.display()))
        .args(["--to", &url])
        .output()
        .expect("dialtone migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["calls"], 2, "{report}");
    let copied = lite.calls().await;
    drop(lite);

    // An hour later by the clock, as a move would be.
    let pg = Server::start_on(
        &url,
        dir.path().join("unused"),
        &["--demo", "--clock-start", "2026-11-23T11:00:00-05:00"],
    );
    assert_eq!(pg.calls().await, copied, "the copied calls read the same");
    call(&pg, 3).await;
    let calls = pg.calls().await;
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["id"], sid("CA", 3));
    // A retried webhook is no second call there either.
    let retry = inbound(&sid("CA", 3), "+14045550100");
    let retry: Vec<(&str, &str)> = retry.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(pg.post_signed("/twilio/voice", &retry).await.0, 200);
    assert_eq!(pg.calls().await.len(), 3);
}

#[test]
fn a_password_in_the_database_url_is_never_printed() {
    let out = Command::new(BIN)
        .args([
            "migrate",
            "--database",
            "postgres://dialtone:hunter2-secret@127.0.0.1:1/nowhere",
        ])
        .output()
        .expect("dialtone migrate");
    assert!(!out.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("postgres://dialtone:***@127.0.0.1:1/nowhere"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
}

//! An event is durable before the response that depends on it is sent: `kill -9` under load loses
//! no acknowledged call.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dialtone_core::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_acknowledged_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::demo(dir.path(), MONDAY_MORNING);
    let url = format!("{}/twilio/voice", server.url);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (url, acknowledged, next, client) = (
            url.clone(),
            acknowledged.clone(),
            next.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Bounded: stops at 20,000 requests or at the first failure (the server is gone).
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 20_000 {
                    return;
                }
                let call_sid = sid("CA", 0xd00d_0000 + i as u64);
                let params: Vec<(String, String)> = inbound(&call_sid, "+14045550100")
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &url, &params);
                let res = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", signature)
                    .body(dialtone_twiml::encode(&params))
                    .send()
                    .await;
                let Ok(res) = res else { return };
                let ok = res.status().is_success();
                let Ok(body) = res.text().await else { return };
                // Only a complete answer that routes the call counts as acknowledged.
                if ok && body.contains("<Dial") {
                    acknowledged.lock().unwrap().push(call_sid);
                } else {
                    return;
                }
            }
        }));
    }
    // Let a few hundred calls through, then pull the plug mid-stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "server too slow to acknowledge 300 calls"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = next.load(Ordering::Relaxed).min(20_000);
    assert!(acknowledged.len() >= 300);
    assert!(
        sent > acknowledged.len(),
        "requests were still in flight when the server died"
    );

    // Straight from the file, as a recovering process would see it.
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    let mut missing = Vec::new();
    for call_sid in &acknowledged {
        let events: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE call_sid = ?1 AND kind = 'call_received'",
                [call_sid],
                |r| r.get(0),
            )
            .unwrap();
        let calls: i64 = conn
            .query_row(
                "SELECT count(*) FROM calls WHERE sid = ?1",
                [call_sid],
                |r| r.get(0),
            )
            .unwrap();
        if events != 1 || calls != 1 {
            missing.push(call_sid.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged calls lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    drop(conn);

    // And a restarted server serves them.
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (status, page) = server
        .api("/api/v1/calls?per_page=1", Some(demo::API_KEY))
        .await;
    assert_eq!(status, 200);
    assert!(
        page["total_records"].as_u64().unwrap() >= acknowledged.len() as u64,
        "{page}"
    );
}

//! The carrier's official Python library, its REST client pointed at the emulated carrier's API
//! over HTTP, reads it as it reads the carrier: lists and pages through calls and recordings,
//! fetches one of each, searches, buys, updates and releases a number, and gets the carrier's
//! error for a call that is not there — without an error of its own.

mod common;

use std::collections::BTreeSet;

use dialtone_carrier::api::router;
use serde_json::{Value, json};

use common::{NUMBERS, SID, TOKEN, emulated_calls, log_of, oracle};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_official_client_reads_the_emulated_api() {
    let (runs, _) = emulated_calls(10);
    let log = log_of(&runs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let app = router(log.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let page_size = 4;
    let request = json!({
        "op": "rest", "base_url": base_url, "account_sid": SID, "token": TOKEN,
        "page_size": page_size,
    });
    let out = tokio::task::spawn_blocking(move || oracle(request))
        .await
        .expect("the client ran");

    let records: Vec<_> = runs
        .iter()
        .map(|r| dialtone_carrier::cdr::records(r, SID, chrono::Utc::now()))
        .collect();
    let calls = records.iter().map(|r| r.calls.len()).sum::<usize>();
    let listed = strings(&out["calls"]);
    assert_eq!(listed.len(), calls, "{out:#}");
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>().len(),
        calls,
        "a call listed twice"
    );
    assert_eq!(out["call_pages"], calls.div_ceil(page_size), "{out:#}");
    assert_eq!(
        out["calls_dated"], true,
        "dates the library parses as RFC 2822"
    );
    assert_eq!(out["call"]["sid"], listed[0].as_str());

    // The oldest call (last listed) and its legs.
    let oldest = records
        .iter()
        .find(|r| r.calls[0].sid == listed[listed.len() - 1])
        .expect("the oldest call");
    let legs: Vec<String> = oldest.calls[1..].iter().map(|c| c.sid.clone()).collect();
    assert_eq!(strings(&out["legs_of_first"]), legs);

    let recordings = records.iter().map(|r| r.recordings.len()).sum::<usize>();
    assert_eq!(strings(&out["recordings"]).len(), recordings, "{out:#}");
    let recording = &out["recording"];
    assert_eq!(recording["dated"], true);
    assert_eq!(recording["status"], "completed");
    let parent = recording["call_sid"].as_str().unwrap_or_default();
    assert!(
        records.iter().any(|r| r.calls[0].sid == parent),
        "the recording is filed under its parent call: {recording}"
    );
    assert!(
        strings(&out["recordings_of_its_call"])
            .contains(&recording["sid"].as_str().unwrap_or("").to_owned())
    );
    assert_eq!(out["recording_of_call"], recording["sid"]);

    let offered = strings(&out["offered"]);
    assert_eq!(offered.len(), 2);
    assert_eq!(out["bought"]["phone_number"], offered[0].as_str());
    assert_eq!(out["bought"]["voice_url"], "https://other.example/voice");
    let owned = strings(&out["owned"]);
    assert_eq!(owned.len(), NUMBERS.len() + 1);
    assert_eq!(out["released"], true);
    assert_eq!(log.numbers().len(), NUMBERS.len(), "released");
    assert_eq!(out["missing"], json!({"status": 404, "code": 20404}));
}

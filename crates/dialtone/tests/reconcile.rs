//! `dialtone reconcile`: the carrier's call records of calls dialtone never saw are imported
//! once, attributed through their tracking numbers and marked as recovered.

mod common;

use common::*;

/// `dialtone reconcile --cdr CDR --demo --database DATABASE`.
fn reconcile(cdr: &std::path::Path, database: &str) -> (i32, String, String) {
    run(&[
        "reconcile",
        "--cdr",
        cdr.to_str().unwrap(),
        "--demo",
        "--database",
        database,
    ])
}

#[tokio::test]
async fn the_carriers_records_are_recovered_once_and_attributed() {
    let dir = tempfile::tempdir().unwrap();
    let cdr = dir.path().join("cdr.jsonl");
    // Replay's carrier account and tracking number are the demo's: its records are the demo
    // company's calls that dialtone (this database) never saw.
    let (code, _, err) = run(&[
        "replay",
        "--arrivals-per-second",
        "0.2",
        "--duration-s",
        "300",
        "--fanout",
        "2",
        "--answer-probability",
        "0.6",
        "--policy",
        "none",
        "--seed",
        "8",
        "--cdr-out",
        cdr.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&cdr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let inbound: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["direction"] == "inbound")
        .collect();
    assert!(inbound.len() > 20, "{}", inbound.len());

    let db = dir.path().join("dialtone.db");
    let database = format!("sqlite://{}", db.display());
    let (code, out, err) = reconcile(&cdr, &database);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "{} inbound calls: 0 already in the call log, {} recovered",
            inbound.len(),
            inbound.len()
        )),
        "{out}"
    );
    // Again: nothing new.
    let (code, out, err) = reconcile(&cdr, &database);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "{} already in the call log, 0 recovered",
            inbound.len()
        )),
        "{out}"
    );

    // The recovered calls, through the API of a server on that database.
    let server = Server::start(dir.path(), &["--demo", "--clock-start", MONDAY_MORNING]);
    let calls = server.calls().await;
    assert_eq!(calls.len(), inbound.len());
    let mut answered_calls = 0;
    for record in &inbound {
        let sid = record["sid"].as_str().unwrap();
        let call = server.call(sid).await;
        assert_eq!(call["routing"], "backup", "{call}");
        assert!(
            call["routing_reason"]
                .as_str()
                .unwrap()
                .starts_with("recovered"),
            "{call}"
        );
        assert_eq!(call["source"], "Google Business Profile");
        assert_eq!(call["customer_phone_number"], record["from"]);
        // As at the carrier, a leg's record says it was answered by ending `completed`
        // (`answered_by` is for machine detection only).
        assert!(records.iter().all(|r| r["answered_by"].is_null()));
        let answered_leg = records
            .iter()
            .any(|r| r["parent_call_sid"] == sid && r["status"] == "completed");
        assert_eq!(call["answered"], answered_leg, "{call}");
        answered_calls += usize::from(answered_leg);
        let legs = records
            .iter()
            .filter(|r| r["parent_call_sid"] == sid)
            .count();
        assert_eq!(call["legs"].as_array().unwrap().len(), legs, "{call}");
    }
    assert!(answered_calls > 0, "no answered call to recover");
}

#[test]
fn lines_that_are_not_call_records_are_named_and_the_rest_are_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let cdr = dir.path().join("cdr.jsonl");
    let good = r#"{"sid":"CA00000000000000000000000000000abc","parent_call_sid":null,"account_sid":"AC00000000000000000000000000000001","from":"+17705550123","to":"+14045550100","status":"completed","direction":"inbound","start_time":"Thu, 14 May 2026 13:00:05 +0000","end_time":"Thu, 14 May 2026 13:01:05 +0000","duration":"60","queue_time":"0","answered_by":null,"forwarded_from":null,"caller_name":null,"date_created":"Thu, 14 May 2026 13:00:05 +0000","date_updated":"Thu, 14 May 2026 13:01:05 +0000","api_version":"2010-04-01","uri":"/x"}"#;
    let untracked = good
        .replace("+14045550100", "+19995550100")
        .replace("abc", "abd");
    std::fs::write(&cdr, format!("{good}\n{{\"sid\": 3}}\n\n{untracked}\n")).unwrap();
    let database = format!("sqlite://{}", dir.path().join("d.db").display());
    let (code, out, err) = reconcile(&cdr, &database);
    assert_ne!(code, 0);
    assert!(err.contains("cdr.jsonl:2: not a call record"), "{err}");
    assert!(
        out.contains("3 records, 2 inbound calls: 0 already in the call log, 1 recovered"),
        "{out}"
    );
    assert!(
        out.contains("1 to numbers that are not tracking numbers"),
        "{out}"
    );
}

/// A call the server never saw, to a DNI pool number, is still the website visitor's: the lease
/// that held the number then is in the store. Reconciled while the server runs, the recovered
/// calls are at once in its API.
#[tokio::test]
async fn recovered_calls_to_pool_numbers_find_their_website_visitor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let number = server
        .pool_number_for(
            "https://acme.example/?utm_source=google&utm_medium=cpc&utm_term=burst+pipe&gclid=Z",
        )
        .await;

    // 10:01 New York (within the 20-minute lease), and 12:00 (long after it ran out).
    let record = |sid: &str, at: &str| {
        serde_json::json!({
            "sid": sid, "parent_call_sid": null, "account_sid": dialtone_core::demo::ACCOUNT_SID,
            "from": CALLER, "to": number, "status": "completed", "direction": "inbound",
            "start_time": at, "end_time": at, "duration": "30", "queue_time": "0",
            "answered_by": null, "forwarded_from": null, "caller_name": null,
            "date_created": at, "date_updated": at, "api_version": "2010-04-01", "uri": "",
        })
        .to_string()
    };
    let cdr = dir.path().join("cdr.jsonl");
    std::fs::write(
        &cdr,
        format!(
            "{}\n{}\n",
            record(&sid("CA", 0x5e55_0001), "Mon, 23 Nov 2026 15:01:00 +0000"),
            record(&sid("CA", 0x5e55_0002), "Mon, 23 Nov 2026 17:00:00 +0000"),
        ),
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.path().join("dialtone.db").display());
    let (code, out, err) = reconcile(&cdr, &database);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 recovered (0 legs, 1 attributed to website visitors)"),
        "{out}"
    );

    // The server kept running meanwhile, and finds the recovered calls by sid.

    let during = server.call(&sid("CA", 0x5e55_0001)).await;
    assert_eq!(during["source"], "Google Ads");
    assert_eq!(during["keywords"], "burst pipe");
    assert_eq!(during["gclid"], "Z");
    assert_eq!(during["routing"], "backup");
    let after = server.call(&sid("CA", 0x5e55_0002)).await;
    assert_eq!(after["keywords"], serde_json::Value::Null);
    assert_eq!(after["attribution"], serde_json::Value::Null);
}

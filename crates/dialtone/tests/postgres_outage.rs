//! PostgreSQL stops for 60 s in the middle of a run of calls and comes back. The node keeps
//! routing every call (backup routing while the call log cannot say what the flow did),
//! answers no carrier request with an error, says it is degraded meanwhile, and once the
//! database is back every call the carrier placed, with its legs and its end, is in it, once.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use dialtone_core::demo;

const CALLS: usize = 1_100;
const ARRIVALS_PER_S: f64 = 10.0;
/// When the database stops, and for how long.
const OUTAGE_AFTER: Duration = Duration::from_secs(20);
const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_without_postgres_loses_no_call_and_no_event() {
    let pg = OwnPostgres::start(55435);
    let database = pg.database("outage_e2e");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialtone.toml");
    std::fs::write(&file, direct_config(None)).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let node = Server::start_on(
        &database,
        dir.path().join("unused.db"),
        &["--demo", "--config", &file],
    );

    let cdr = dir.path().join("cdr.jsonl");
    let carrier = tokio::process::Command::new(BIN)
        .args([
            "carrier",
            "--voice-url",
            &format!("{}/twilio/voice", node.url),
        ])
        .args(["--status-callback", &format!("{}/twilio/status", node.url)])
        .args([
            "--account-sid",
            demo::ACCOUNT_SID,
            "--auth-token",
            demo::AUTH_TOKEN,
        ])
        .args(["--to", "+14045550100", "--calls", &CALLS.to_string()])
        .args(["--arrivals-per-second", &ARRIVALS_PER_S.to_string()])
        .args(["--talk-mean-s", "5"])
        .arg("--cdr-out")
        .arg(&cdr)
        .args(["--quiet", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    tokio::time::sleep(OUTAGE_AFTER).await;
    pg.script(&["stop"]);
    // What the node says of itself, every second of the outage.
    let health = format!("{}/healthz", node.url);
    let client = reqwest::Client::new();
    let mut said = Vec::new();
    let back_at = tokio::time::Instant::now() + OUTAGE;
    while tokio::time::Instant::now() < back_at {
        let body: serde_json::Value = client
            .get(&health)
            .send()
            .await
            .expect("the node answers during the outage")
            .json()
            .await
            .unwrap();
        said.push(body["status"].as_str().unwrap_or_default().to_owned());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    pg.script(&["start"]);

    let out = carrier.wait_with_output().await.unwrap();
    assert!(out.status.success(), "the carrier emulator failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "outage: {} calls, {} connected; requests {}; node said {:?} during the outage",
        report["calls"], report["connected"], report["requests"], said
    );
    assert_eq!(report["calls"], CALLS, "{report}");
    assert_eq!(report["connected"], CALLS, "every call routed: {report}");
    let ok = report["requests"]["ok"].as_u64().unwrap_or_default();
    assert!(
        ok > 2 * CALLS as u64,
        "voice, status and leg callbacks counted: {report}"
    );
    assert_eq!(report["requests"]["server_error"], 0, "{report}");
    assert_eq!(report["requests"]["other"], 0, "{report}");
    assert_eq!(report["requests"]["client_error"], 0, "{report}");
    let degraded = said.iter().filter(|s| *s == "degraded").count();
    assert!(
        degraded >= said.len() - 2,
        "degraded through the outage (but its first moments): {said:?}"
    );

    // Back: the node writes what it kept, then says so.
    let mut waited = 0;
    loop {
        let body: serde_json::Value = client
            .get(&health)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["status"] == "ok" && body["call_log"]["spooled"] == 0 {
            break;
        }
        waited += 1;
        assert!(waited < 600, "still degraded a minute after: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every call the carrier placed, once, with its legs and its end.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&cdr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let placed: HashSet<&str> = records
        .iter()
        .filter(|r| r["direction"] == "inbound")
        .filter_map(|r| r["sid"].as_str())
        .collect();
    let legs: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["direction"] == "outbound-dial")
        .filter_map(|r| Some((r["parent_call_sid"].as_str()?, r["sid"].as_str()?)))
        .collect();
    assert_eq!(placed.len(), CALLS);
    assert_eq!(legs.len(), CALLS, "a leg each");
    let logged = logged(&database).await;
    let missing: Vec<&&str> = placed
        .iter()
        .filter(|s| !logged.calls.contains_key(**s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} calls not logged: {missing:?}",
        missing.len()
    );
    let mut backup = 0;
    for sid in &placed {
        let call = logged
            .calls
            .get(*sid)
            .unwrap_or_else(|| panic!("call {sid}"));
        assert_eq!(call.received, 1, "call {sid} received once");
        assert_eq!(call.status.as_deref(), Some("completed"), "call {sid}");
        assert!(call.answered, "call {sid}");
        backup += usize::from(call.routing == "backup");
    }
    for (parent, leg) in &legs {
        assert!(
            logged.legs.contains(&(parent.to_string(), leg.to_string())),
            "leg {leg} of {parent}"
        );
    }
    eprintln!("outage: {backup} calls answered with backup routing");
    assert!(backup > 0, "the outage reached the calls");
}

struct Logged {
    calls: HashMap<String, Call>,
    legs: HashSet<(String, String)>,
}

struct Call {
    received: i64,
    status: Option<String>,
    answered: bool,
    routing: String,
}

async fn logged(database: &str) -> Logged {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let calls = client
        .query(
            "SELECT c.sid, c.status, c.answered, c.routing,
                (SELECT count(*) FROM events e WHERE e.call_sid = c.sid AND e.kind = 'call_received')
             FROM calls c",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                Call {
                    status: r.get(1),
                    answered: r.get(2),
                    routing: r.get(3),
                    received: r.get(4),
                },
            )
        })
        .collect();
    let legs = client
        .query(
            "SELECT c.sid, l.sid FROM legs l JOIN calls c ON c.id = l.call_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Logged { calls, legs }
}

//! Two `dialtone serve` nodes on one PostgreSQL database behind a real load balancer (HAProxy,
//! Debian's), with the carrier emulator placing 2,000 calls through it against a dial limit;
//! one node is killed with SIGKILL mid-run and restarted. Every call the carrier placed is in
//! the call log exactly once, and the dial queue the surviving node predicts (the shared
//! mirror, fed by both nodes) matches the one the carrier's records show within 10 %.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use dialtone_core::demo;

/// Calls the carrier places, and how fast (a second apart on average, each a leg).
const CALLS: usize = 2_000;
const ARRIVALS_PER_S: f64 = 22.0;
/// The carrier sets up 20 legs a second: the queue grows by a tenth of a second each second.
const LIMIT_PER_S: u32 = 20;

/// HAProxy in front of the nodes: round robin, health checks every 200 ms, and a request that
/// found a node dead (refused, or no answer) retried on the other. Retrying an inbound-call
/// webhook is safe: a call received twice is answered again and logged once.
fn balancer(dir: &std::path::Path, port: u16, nodes: &[u16]) -> Child {
    let servers: String = nodes
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server node{i} 127.0.0.1:{p} check inter 200ms fall 2 rise 2\n"))
        .collect();
    let cfg = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 15s\n\
         \x20 retries 3\n  option redispatch 1\n  retry-on all-retryable-errors\n  option http-buffer-request\n\
         frontend carrier\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n  option httpchk GET /healthz\n{servers}"
    );
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("haproxy (bash scripts/test-deps.sh installs it)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_a_balancer_lose_no_call_and_share_the_dial_queue() {
    let database = fresh_database("cluster_e2e");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialtone.toml");
    std::fs::write(&file, direct_config(Some(LIMIT_PER_S))).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let (port_a, port_b, port_lb) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{port_lb}");
    let node = |port: u16| {
        Server::listening(
            &database,
            dir.path().join("unused.db"),
            &format!("127.0.0.1:{port}"),
            &["--demo", "--config", &file, "--public-url", &public],
        )
    };
    let mut a = node(port_a);
    let b = node(port_b);
    let mut haproxy = balancer(dir.path(), port_lb, &[port_a, port_b]);
    until_up(&format!("{public}/healthz")).await;

    // What node b predicts, four times a second: (unix seconds, predicted queue), until told.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampling = {
        let url = format!("{}/api/v1/admission", b.url);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut samples: Vec<(f64, f64)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => return samples,
                    _ = tick.tick() => {}
                }
                let at = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
                let Ok(r) = client
                    .get(&url)
                    .bearer_auth(demo::OPERATOR_KEY)
                    .send()
                    .await
                else {
                    continue;
                };
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    continue;
                };
                if let Some(q) = v["carrier_accounts"][0]["status"]["predicted_queue_s"].as_f64() {
                    samples.push((at, q));
                }
            }
        })
    };

    let cdr = dir.path().join("cdr.jsonl");
    let carrier = tokio::process::Command::new(BIN)
        .args(["carrier", "--voice-url", &format!("{public}/twilio/voice")])
        .args(["--status-callback", &format!("{public}/twilio/status")])
        .args(["--fallback-url", &format!("{public}/twilio/voice")])
        .args([
            "--account-sid",
            demo::ACCOUNT_SID,
            "--auth-token",
            demo::AUTH_TOKEN,
        ])
        .args(["--to", "+14045550100", "--calls", &CALLS.to_string()])
        .args(["--arrivals-per-second", &ARRIVALS_PER_S.to_string()])
        .args([
            "--dial-limit",
            &LIMIT_PER_S.to_string(),
            "--talk-mean-s",
            "5",
        ])
        .arg("--cdr-out")
        .arg(&cdr)
        .args(["--quiet", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // A third of the way in, node a dies without a word; it is back two seconds later.
    let run_s = CALLS as f64 / ARRIVALS_PER_S;
    tokio::time::sleep(Duration::from_secs_f64(run_s / 3.0)).await;
    a.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    a = node(port_a);
    until_up(&format!("{}/healthz", a.url)).await;

    let out = carrier.wait_with_output().await.unwrap();
    assert!(out.status.success(), "the carrier emulator failed");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let _ = stop.send(());
    let samples = sampling.await.unwrap();
    haproxy.kill().ok();
    haproxy.wait().ok();

    // Every call the carrier placed, exactly once.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&cdr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let placed: HashSet<String> = records
        .iter()
        .filter(|r| r["direction"] == "inbound")
        .map(|r| r["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(placed.len(), CALLS);
    let received = received_per_call(&database).await;
    let missing: Vec<&String> = placed
        .iter()
        .filter(|s| !received.contains_key(*s))
        .collect();
    eprintln!(
        "cluster: {} of {CALLS} calls logged by the nodes, {} recovered from the carrier's records",
        placed.len() - missing.len(),
        missing.len()
    );
    if !missing.is_empty() {
        // The carrier fell back and nobody answered: its records bring them in.
        let (code, out, err) = run(&[
            "reconcile",
            "--cdr",
            cdr.to_str().unwrap(),
            "--config",
            &file,
            "--database",
            &database,
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let received = received_per_call(&database).await;
    for sid in &placed {
        assert_eq!(received.get(sid), Some(&1), "call {sid}");
    }

    // The queue: each leg's wait in the carrier's records against what node b predicted when
    // the leg was asked for (its start less its wait; the records keep whole seconds, so the
    // middle of that second).
    let mut observed = Vec::new();
    let mut predicted = Vec::new();
    for leg in records.iter().filter(|r| r["direction"] == "outbound-dial") {
        let (Some(start), Some(wait_ms)) = (
            leg["start_time"].as_str(),
            leg["queue_time"]
                .as_str()
                .and_then(|q| q.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let start = chrono::DateTime::parse_from_rfc2822(start).unwrap();
        let asked = start.timestamp() as f64 + 0.5 - wait_ms / 1000.0;
        let i = samples.partition_point(|(t, _)| *t < asked);
        let Some((t, q)) = samples.get(i).or(samples.last()) else {
            continue;
        };
        if (t - asked).abs() > 1.0 {
            continue;
        }
        observed.push(wait_ms / 1000.0);
        predicted.push(*q);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (obs, pred) = (mean(&observed), mean(&predicted));
    eprintln!(
        "cluster: {} legs compared; carrier queue mean {obs:.2} s, predicted {pred:.2} s; carrier report {}",
        observed.len(),
        report["queue_wait_s"]
    );
    assert!(observed.len() > CALLS * 9 / 10, "{} legs", observed.len());
    assert!(obs > 1.0, "the carrier's queue built up: {obs:.2} s");
    assert!(
        (pred - obs).abs() / obs < 0.10,
        "predicted {pred:.2} s against the carrier's {obs:.2} s"
    );
    drop(a);
    drop(b);
}

/// Inbound calls in the log, with how many times each was received.
async fn received_per_call(database: &str) -> HashMap<String, i64> {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT c.sid, count(e.id) FROM calls c
             LEFT JOIN events e ON e.call_sid = c.sid AND e.kind = 'call_received'
             GROUP BY c.sid",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

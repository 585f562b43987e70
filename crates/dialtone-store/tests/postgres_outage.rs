//! PostgreSQL stops under load and comes back: appends made meanwhile fail (the server answers
//! those calls with backup routing) but their events are kept, and once the database is back
//! every event of every call is in it, written once. A cluster of its own (scripts/postgres.sh
//! with another directory and port), so the other tests' server keeps running.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dialtone_store::{Batch, CallQuery};

const PORT: &str = "55433";

fn cluster(action: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let dir = std::env::temp_dir().join(format!("dialtone-postgres-outage-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(script)
        .arg(action)
        .env("DIALTONE_PG_DIR", dir)
        .env("DIALTONE_PG_PORT", PORT)
        .output()
        .expect("run scripts/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/postgres.sh {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until `done` holds, checking every 20 ms, for 60 s at most.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_while_postgres_is_down_are_written_when_it_is_back() {
    let server = cluster("start");
    let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    for sql in [
        "DROP DATABASE IF EXISTS outage WITH (FORCE)",
        "CREATE DATABASE outage",
    ] {
        admin.batch_execute(sql).await.expect("create the database");
    }
    drop(admin);
    let url = format!("{}/outage", server.rsplit_once('/').expect("a URL").0);
    let store = dialtone_store::open(&url).await.expect("open");

    // Callers keep calling: 8 at a time, each call received then ended.
    let next = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (store, next, failed, stop) =
                (store.clone(), next.clone(), failed.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    for events in [vec![received(n)], vec![ended(n, "completed")]] {
                        let batch = Batch {
                            events,
                            ..Batch::default()
                        };
                        if store.append(batch).await.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    wait_for("calls before the outage", || {
        next.load(Ordering::Relaxed) > 50
    })
    .await;

    cluster("stop");
    let before_outage = next.load(Ordering::Relaxed);
    wait_for("failed appends during the outage", || {
        // More than a commit's worth of kept batches, so that ordering after the outage counts.
        failed.load(Ordering::Relaxed) > 400 && next.load(Ordering::Relaxed) > before_outage + 200
    })
    .await;
    assert!(store.stats().spooled > 0, "{:?}", store.stats());
    cluster("start");
    wait_for("calls after the outage", || {
        next.load(Ordering::Relaxed) > before_outage + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.expect("caller");
    }
    wait_for("the kept events written", || store.stats().spooled == 0).await;

    let calls = next.load(Ordering::Relaxed);
    let page = store
        .calls(CallQuery {
            account: "demo".into(),
            page: 1,
            per_page: 1,
            ..CallQuery::default()
        })
        .await
        .expect("calls");
    assert_eq!(page.total_records, u64::from(calls), "every call, once");
    for n in 0..calls {
        let call = store
            .call("demo", &sid(n))
            .await
            .unwrap()
            .expect("the call");
        assert_eq!(call.status.as_deref(), Some("completed"), "call {n}");
        let timeline = call.events.expect("timeline");
        assert_eq!(timeline.len(), 2, "call {n}: {timeline:?}");
    }
    assert!(failed.load(Ordering::Relaxed) > 0);
    drop(store);
    cluster("stop");
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("dialtone-postgres-outage-{}", std::process::id())),
    );
}

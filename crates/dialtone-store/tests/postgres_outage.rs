//! PostgreSQL stops under load and comes back: appends made meanwhile fail (the server answers
//! those calls with backup routing) but their events are kept, and once the database is back
//! every event of every call is in it, written once — also when the node crashed meanwhile, from
//! its spool file. Clusters of their own (scripts/postgres.sh with another directory and port),
//! so the other tests' server keeps running.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use dialtone_store::{Batch, CallQuery};

const PORT: &str = "55433";

fn cluster_dir(port: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "dialtone-postgres-outage-{}-{port}",
        std::process::id()
    ))
}

fn cluster(action: &str) -> String {
    cluster_on(PORT, action)
}

/// Runs scripts/postgres.sh `action` on the cluster of this test process at `port`.
fn cluster_on(port: &str, action: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(action)
        .env("DIALTONE_PG_DIR", cluster_dir(port))
        .env("DIALTONE_PG_PORT", port)
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

    every_call_once(&store, next.load(Ordering::Relaxed)).await;
    assert!(failed.load(Ordering::Relaxed) > 0);
    drop(store);
    cluster("stop");
    let _ = std::fs::remove_dir_all(cluster_dir(PORT));
}

/// Lines in the spool files in `dir`.
fn spooled_lines(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
                .sum()
        })
        .unwrap_or(0)
}

fn spool_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

/// Every call `0..calls` is logged once, with its two events.
async fn every_call_once(store: &Arc<dyn Store>, calls: u32) {
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
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A node crashes while PostgreSQL is down: what it had kept is in its spool file, and the node
/// that starts next in that directory writes all of it back — once: the file adopted again (as
/// after a crash between the commit that wrote it back and the file's removal) writes nothing.
#[test]
fn a_node_that_crashes_during_an_outage_writes_its_spool_back_at_the_next_start_once() {
    const PORT: &str = "55434";
    let server = cluster_on(PORT, "start");
    let _stopped = Stopped(PORT);
    let url = format!("{}/spooled", server.rsplit_once('/').expect("a URL").0);
    runtime().block_on(async {
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        for sql in [
            "DROP DATABASE IF EXISTS spooled WITH (FORCE)",
            "CREATE DATABASE spooled",
        ] {
            admin.batch_execute(sql).await.expect("create the database");
        }
    });
    let spool = tempfile::tempdir().expect("a spool directory");
    let calls = 300u32;

    // The first node: calls before the outage are written, those during it are kept.
    let first = runtime();
    first.block_on(async {
        let store = dialtone_store::open_with(&url, Some(spool.path()))
            .await
            .expect("open");
        for n in 0..10 {
            append(&store, vec![received(n), ended(n, "completed")]).await;
        }
        assert_eq!(spooled_lines(spool.path()), 0, "nothing kept yet");
        cluster_on(PORT, "stop");
        let appends: Vec<_> = (10..calls)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let batch = Batch {
                        events: vec![received(n), ended(n, "completed")],
                        ..Batch::default()
                    };
                    store.append(batch).await
                })
            })
            .collect();
        for a in appends {
            assert!(a.await.expect("append").is_err(), "the database is down");
        }
        wait_for("every kept batch in the spool file", || {
            spooled_lines(spool.path()) == (calls - 10) as usize
        })
        .await;
        assert!(store.stats().spilled_bytes > 0, "{:?}", store.stats());
    });
    // The crash: the writer stops mid-retry, and what it kept in memory is gone.
    drop(first);
    let left = spool_files(spool.path());
    let kept: Vec<Vec<u8>> = left
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();

    cluster_on(PORT, "start");
    runtime().block_on(async {
        let store = dialtone_store::open_with(&url, Some(spool.path()))
            .await
            .expect("open");
        wait_for("the spool written back and removed", || {
            spool_files(spool.path()).is_empty()
        })
        .await;
        every_call_once(&store, calls).await;
    });

    // The same file again, as if the node had crashed after writing it back but before removing
    // it: nothing is written twice.
    for (path, bytes) in left.iter().zip(&kept) {
        std::fs::write(path, bytes).expect("put the file back");
    }
    runtime().block_on(async {
        let store = dialtone_store::open_with(&url, Some(spool.path()))
            .await
            .expect("open");
        wait_for("the old spool file removed", || {
            spool_files(spool.path()).is_empty()
        })
        .await;
        every_call_once(&store, calls).await;
    });
}

/// Stops the cluster at this port and removes it, however the test ends.
struct Stopped(&'static str);

impl Drop for Stopped {
    fn drop(&mut self) {
        cluster_on(self.0, "stop");
        let _ = std::fs::remove_dir_all(cluster_dir(self.0));
    }
}

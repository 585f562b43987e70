//! Under appends that never pause, SQLite never starts its WAL over by itself. The writer does it
//! between commits once the WAL has passed its bound, without a RESTART checkpoint holding it
//! back, and the WAL file stays bounded.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_appends_start_the_wal_over_without_holding_the_writer_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dialtone_store::open(&url(&dir)).await.expect("open");
    let wal = dir.path().join("log.db-wal");
    let next = Arc::new(AtomicU32::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let writers: Vec<_> = (0..64)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let stats = store.stats();
                    if stats.wal_resets >= 2 || stats.wal_restarts > 0 || Instant::now() > deadline
                    {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    append(&store, vec![received(n)]).await;
                }
            })
        })
        .collect();
    let mut largest_wal = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in writers {
        w.await.expect("writer task");
    }
    let stats = store.stats();
    assert!(
        stats.wal_resets >= 2,
        "{} appends and the WAL never started over ({stats:?})",
        next.load(Ordering::Relaxed)
    );
    assert_eq!(stats.wal_restarts, 0, "{stats:?}");
    // Reset past 16,384 frames (64 MiB plus frame headers), with what was written meanwhile.
    assert!(
        largest_wal < 96 << 20,
        "the WAL reached {largest_wal} bytes"
    );
}

//! A storage outage: the writer cannot commit (another process holds the database's write
//! lock), so appends fail and their events are kept — in memory up to a bound, then in the spool
//! file beside the database — and written, every one, once the database is back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dialtone_store::{Batch, CallQuery, SqliteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_spills_the_spool_to_disk_and_writes_every_event_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let path = path.to_str().unwrap().to_owned();
    let options = SqliteOptions {
        spool_memory_bytes: 16 * 1024,
        spool_spill_after: Duration::ZERO,
        ..Default::default()
    };
    let store: Arc<dyn Store> = Arc::new(dialtone_store::sqlite::open(&path, options).unwrap());
    append(&store, vec![received(0)]).await;

    // Another process takes the write lock: every commit now fails (after the busy timeout).
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let calls = 400u32;
    let tasks: Vec<_> = (1..=calls)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(Batch {
                        events: vec![received(n)],
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(
            t.await.unwrap().is_err(),
            "not durable while the lock is held"
        );
    }
    let during = store.stats();
    assert!(during.spooled > 0, "{during:?}");
    assert!(during.spilled_bytes > 0, "{during:?}");
    let spill_file = format!("{path}-spool");
    assert!(std::fs::metadata(&spill_file).unwrap().len() > 0);

    // The database is back: the spool is written, oldest first, a chunk at a time. The newest
    // calls end at once: their callbacks must not reach the log before the calls themselves,
    // which are still kept behind more than a chunk of older ones.
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let endings: Vec<_> = (calls - 4..=calls)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(Batch {
                        events: vec![ended(n, "completed")],
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    // Each is written, or kept behind what the spool holds (its caller hears so at once).
    for e in endings {
        let _ = e.await.unwrap();
    }
    let drained = async {
        loop {
            let s = store.stats();
            if s.spooled == 0 && s.spilled_bytes == 0 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let after = tokio::time::timeout(Duration::from_secs(60), drained)
        .await
        .expect("the spool was written back");
    assert!(after.failed_commits >= 1);
    let page = store
        .calls(CallQuery {
            account: "demo".into(),
            page: 1,
            per_page: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total_records, u64::from(calls) + 1);
    for n in calls - 4..=calls {
        let ended = store.call("demo", &sid(n)).await.unwrap().unwrap();
        assert_eq!(ended.status.as_deref(), Some("completed"), "{ended:?}");
        assert_eq!(ended.events.map(|e| e.len()), Some(2));
    }
    assert!(
        std::fs::metadata(&spill_file).is_err(),
        "the spool file is removed once written back"
    );
}

//! Calls are found by their carrier sid whether that sid is still in the writer's memory, merged
//! into the sid index, or reloaded after a restart; a database from before the sid index is
//! migrated with its calls and legs intact.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::*;
use dialtone_store::CallQuery;

async fn total(store: &Arc<dyn Store>) -> u64 {
    store
        .calls(CallQuery {
            account: "demo".into(),
            page: 1,
            per_page: 10,
            ..CallQuery::default()
        })
        .await
        .expect("calls")
        .total_records
}

/// The writer merges what it holds once it has been idle for a second.
async fn wait_for_merge(store: &Arc<dyn Store>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().unmerged_sids > 0 {
        assert!(
            Instant::now() < deadline,
            "sids never merged: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn calls_are_found_before_and_after_their_sids_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dialtone_store::open(&url(&dir)).await.unwrap();
    append(&store, (0..3000).map(received).collect()).await;
    assert_eq!(store.stats().unmerged_sids, 3000);
    // Held in memory: later events and reads find the calls.
    append(&store, vec![ended(7, "completed")]).await;
    let call = store.call("demo", &sid(7)).await.unwrap().expect("call 7");
    assert_eq!(call.status.as_deref(), Some("completed"));

    wait_for_merge(&store).await;
    // Merged: the same lookups go through the index, and a retried webhook is no new call.
    append(
        &store,
        vec![ended(2999, "busy"), received(5), leg(5, "CL1", "ringing")],
    )
    .await;
    assert_eq!(total(&store).await, 3000);
    let call = store
        .call("demo", &sid(2999))
        .await
        .unwrap()
        .expect("call 2999");
    assert_eq!(call.status.as_deref(), Some("busy"));
    let call = store.call("demo", &sid(5)).await.unwrap().expect("call 5");
    assert_eq!(call.legs.len(), 1);
    let timeline = call.events.expect("timeline");
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.kind == "call_received")
            .count(),
        2,
        "the retry is in the timeline"
    );
    assert!(store.call("demo", &sid(3000)).await.unwrap().is_none());
    assert!(store.call("other", &sid(5)).await.unwrap().is_none());
}

#[tokio::test]
async fn sids_not_yet_merged_are_reloaded_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = dialtone_store::open(&url(&dir)).await.unwrap();
        append(&store, (0..100).map(received).collect()).await;
        wait_for_merge(&store).await;
        append(&store, (100..250).map(received).collect()).await;
        assert_eq!(store.stats().unmerged_sids, 150);
    }
    let store = dialtone_store::open(&url(&dir)).await.unwrap();
    assert_eq!(store.stats().unmerged_sids, 150);
    // Both the merged and the reloaded calls take their later events, and neither is duplicated.
    append(
        &store,
        vec![
            ended(42, "completed"),
            ended(200, "no-answer"),
            received(42),
            received(200),
        ],
    )
    .await;
    assert_eq!(total(&store).await, 250);
    for (n, status) in [(42, "completed"), (200, "no-answer")] {
        let call = store.call("demo", &sid(n)).await.unwrap().expect("call");
        assert_eq!(call.status.as_deref(), Some(status));
    }
}

#[tokio::test]
async fn a_database_from_before_the_sid_index_is_migrated_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_call_log.sql"))
            .unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO calls (sid, account, company, tracker, tracker_kind, carrier_account_sid,
                tracking_number, caller, flow, routing, started_at, outcome, status)
             VALUES ('{s}', 'demo', 'acme-plumbing', 'Billboard', 'source', 'AC1', '+14045550150',
                '+17705550123', 'main', 'normal', '2026-01-01T00:00:00.000000Z', 'answered', 'completed');
             INSERT INTO legs (sid, call_sid, to_number, status, answered_at)
             VALUES ('CL9', '{s}', '+14045550111', 'completed', '2026-01-01T00:00:05.000000Z');
             PRAGMA user_version = 1;",
            s = sid(1)
        ))
        .unwrap();
    }
    let store = dialtone_store::open(&url(&dir)).await.unwrap();
    let call = store
        .call("demo", &sid(1))
        .await
        .unwrap()
        .expect("migrated call");
    assert_eq!(call.outcome, dialtone_core::event::Outcome::Answered);
    assert_eq!(call.legs.len(), 1);
    assert_eq!(call.legs[0].sid, "CL9");
    // Merged by the migration: a retried webhook for it is not a second call.
    assert_eq!(store.stats().unmerged_sids, 0);
    append(&store, vec![received(1), received(2)]).await;
    assert_eq!(total(&store).await, 2);
}

/// Two processes on one database — `dialtone reconcile` while `dialtone serve` runs: a merge in
/// one must not mark as merged the other's calls it never held, or those calls could no longer
/// be found by sid after a restart.
#[tokio::test]
async fn a_second_process_merging_does_not_hide_the_first_ones_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = dialtone_store::open(&url(&dir)).await.unwrap();
    append(&server, vec![received(1)]).await;
    let reconcile = dialtone_store::open(&url(&dir)).await.unwrap();
    // The server logs a call the other process never read; then stops before merging it.
    append(&server, vec![received(2)]).await;
    drop(server);
    append(&reconcile, vec![received(3)]).await;
    wait_for_merge(&reconcile).await;
    drop(reconcile);

    let restarted = dialtone_store::open(&url(&dir)).await.unwrap();
    for n in [1, 2, 3] {
        assert!(
            restarted.call("demo", &sid(n)).await.unwrap().is_some(),
            "call {n} lost by sid"
        );
    }
    // Once this process has merged, everything is in the index.
    wait_for_merge(&restarted).await;
    drop(restarted);
    let again = dialtone_store::open(&url(&dir)).await.unwrap();
    assert_eq!(again.stats().unmerged_sids, 0);
    for n in [1, 2, 3] {
        assert!(again.call("demo", &sid(n)).await.unwrap().is_some());
    }
}

//! `dialtone migrate --from sqlite://… --to postgres://…`: a SQLite call log copied into
//! PostgreSQL reads back exactly as it does on SQLite, a second run after more calls copies only
//! what is new, and a database holding someone else's calls is refused.

mod common;

use std::sync::Mutex;

use chrono::{TimeZone, Utc};
use common::*;
use dialtone_core::backup::{BackupRule, Scope};
use dialtone_store::postgres::{CopyProgress, copy_from_sqlite};
use dialtone_store::{ApiKey, Batch, CallQuery, StoreError};

fn everything() -> CallQuery {
    CallQuery {
        account: "demo".into(),
        page: 1,
        per_page: 250,
        ..CallQuery::default()
    }
}

/// Every call of both stores, newest first, with its legs and timeline.
async fn all_calls(store: &std::sync::Arc<dyn Store>) -> Vec<dialtone_store::Call> {
    let mut calls = Vec::new();
    let mut after = None;
    loop {
        let page = store.calls_after(everything(), after.take()).await.unwrap();
        for c in page.calls {
            calls.push(store.call("demo", &c.sid).await.unwrap().expect("the call"));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return calls,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reads_back_as_its_source_and_resumes_with_what_is_new() {
    let lite = Backend::Sqlite.fresh().await;
    let source = lite.open().await;
    // 1,200 calls: received, a leg ringing, most ended (more than one chunk of events).
    for n in 0..1200u32 {
        let mut events = vec![received(n), leg(n, &format!("CL{n}"), "ringing")];
        if n % 5 != 0 {
            events.push(ended(n, if n % 3 == 0 { "busy" } else { "completed" }));
        }
        append(&source, events).await;
    }
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    source
        .create_api_key("copied-key", &ApiKey::account("demo", true), "ci", now)
        .await
        .unwrap();
    let rule = BackupRule {
        id: 0,
        scope: Scope::All,
        percent: 100,
        reason: "drill".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(3650),
        created_by: "ops".into(),
    };
    let rule_id = source.add_backup_rule(&rule).await.unwrap();
    source
        .append(Batch {
            turns: vec![("acme/main/ring".into(), 7)],
            ..Batch::default()
        })
        .await
        .unwrap();

    let pg = Backend::Postgres.fresh().await;
    let path = lite.url.trim_start_matches("sqlite://").to_owned();
    let seen = Mutex::new(Vec::<CopyProgress>::new());
    let report = copy_from_sqlite(&path, &pg.url, &|p| seen.lock().unwrap().push(p))
        .await
        .expect("copy");
    assert_eq!(report.resumed_after, 0);
    assert_eq!(report.calls, 1200);
    assert_eq!(report.events, 1200 * 2 + 960);
    assert_eq!(
        (report.api_keys, report.backup_rules, report.round_robin),
        (1, 1, 1)
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 3, "progress after each chunk: {seen:?}");
    assert!(
        seen.windows(2)
            .all(|w| w[0].events_copied <= w[1].events_copied)
    );
    assert_eq!(seen.last().map(|p| p.events_copied), Some(report.events));

    let target = pg.open().await;
    assert_eq!(all_calls(&target).await, all_calls(&source).await);
    assert_eq!(
        target.api_key("copied-key").await.unwrap(),
        Some(ApiKey::account("demo", true))
    );
    let rules = target.backup_rules(now).await.unwrap();
    assert_eq!(
        rules,
        vec![BackupRule {
            id: rule_id,
            ..rule.clone()
        }]
    );
    assert_eq!(
        target
            .round_robin_turns()
            .await
            .unwrap()
            .get("acme/main/ring"),
        Some(&7)
    );
    drop(target);

    // The installation kept serving: a second run copies what is new, and only that.
    append(&source, (1200..1300).map(received).collect()).await;
    append(&source, vec![ended(1200, "completed")]).await;
    let again = copy_from_sqlite(&path, &pg.url, &|_| {})
        .await
        .expect("resume");
    assert_eq!(again.resumed_after, report.events);
    assert_eq!(again.events, report.events + 101);
    assert_eq!(again.calls, 1300);
    let target = pg.open().await;
    assert_eq!(all_calls(&target).await, all_calls(&source).await);
    // Once PostgreSQL takes over, new rules continue after the copied ones.
    assert!(target.add_backup_rule(&rule).await.unwrap() > rule_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_holding_other_calls_is_not_copied_into() {
    let lite = Backend::Sqlite.fresh().await;
    let source = lite.open().await;
    append(&source, vec![received(1)]).await;
    let pg = Backend::Postgres.fresh().await;
    let other = pg.open().await;
    append(&other, vec![received(2)]).await;
    let path = lite.url.trim_start_matches("sqlite://").to_owned();
    let refused = copy_from_sqlite(&path, &pg.url, &|_| {}).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("already holds 1 events")),
        "{refused:?}"
    );
    let missing = copy_from_sqlite("/nonexistent/dialtone.db", &pg.url, &|_| {}).await;
    assert!(
        matches!(missing, Err(StoreError::Invalid(_))),
        "{missing:?}"
    );
}

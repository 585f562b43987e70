//! Relative (keyset) pagination walks every call exactly once, newest first, in the same order as
//! offset pagination, including calls that started in the same second, and calls arriving while
//! a client pages do not shift the pages it has not read yet; on every backend.

mod common;

use common::*;
use dialtone_store::{CallCursor, CallQuery};

fn query(per_page: u32) -> CallQuery {
    CallQuery {
        account: "demo".into(),
        page: 1,
        per_page,
        ..CallQuery::default()
    }
}

/// Every page from the newest, following each page's cursor.
async fn walk(store: &dyn Store, q: &CallQuery) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<CallCursor> = None;
    loop {
        let page = store
            .calls_after(q.clone(), after.take())
            .await
            .expect("calls_after");
        pages.push(page.calls.iter().map(|c| c.sid.clone()).collect());
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "pages do not end");
    }
}

async fn relative_pages_cover_every_call_once_in_offset_order(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    // 23 calls over 8 seconds: three or so share each second, so only the sid orders them.
    let events = (0..23).map(|n| received_at(n, 1_700_000_000 + i64::from(n / 3)));
    append(&store, events.collect()).await;

    let everything = store.calls(query(250)).await.expect("calls");
    let in_order: Vec<String> = everything.calls.iter().map(|c| c.sid.clone()).collect();
    assert_eq!(in_order.len(), 23);

    for per_page in [1, 4, 5, 23, 250] {
        let pages = walk(&*store, &query(per_page)).await;
        assert_eq!(pages.concat(), in_order, "per_page {per_page}");
        assert!(
            pages.iter().all(|p| p.len() <= per_page as usize),
            "per_page {per_page}"
        );
        // The last page says there is no next one; no empty page is needed to find that out.
        assert_eq!(pages.len(), 23usize.div_ceil(per_page as usize));
    }

    // Filters apply on every page.
    let finished: Vec<_> = (0..23).step_by(2).map(|n| ended(n, "completed")).collect();
    append(&store, finished).await;
    let missed_only = CallQuery {
        outcomes: vec![dialtone_core::event::Outcome::Missed],
        ..query(4)
    };
    let pages = walk(&*store, &missed_only).await;
    let missed: Vec<String> = in_order
        .iter()
        .filter(|id| (0..23).step_by(2).any(|n| sid(n) == **id))
        .cloned()
        .collect();
    assert_eq!(missed.len(), 12);
    assert_eq!(pages.concat(), missed);
}

async fn new_calls_do_not_shift_the_pages_still_to_read(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    append(&store, (0..10).map(received).collect()).await;
    let first = store.calls_after(query(4), None).await.expect("first page");
    // Three calls arrive while the client reads the first page.
    append(&store, (10..13).map(received).collect()).await;
    let second = store
        .calls_after(query(4), first.next.clone())
        .await
        .expect("second page");
    let ids: Vec<&str> = second.calls.iter().map(|c| c.sid.as_str()).collect();
    let want: Vec<String> = (2..6).rev().map(sid).collect();
    assert_eq!(ids, want);
}

crate::on_both_backends!(
    relative_pages_cover_every_call_once_in_offset_order,
    new_calls_do_not_shift_the_pages_still_to_read,
);

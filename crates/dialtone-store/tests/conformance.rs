//! The store's contract, the same test bodies on every backend (SQLite and PostgreSQL, each on a
//! fresh database): what a call's events make of it, refusals, counters, DNI leases, keys and
//! rules, concurrency, and a node starting again on the same database.

mod common;

use chrono::{TimeZone, Utc};
use common::*;
use dialtone_core::backup::{BackupRule, Scope};
use dialtone_core::dni::Visit;
use dialtone_core::event::{
    Answer, DialEnded, Event, EventBody, FlowAnswered, LegUpdate, Outcome, RecordingUpdate, Routing,
};
use dialtone_store::{ApiKey, Batch, CallQuery, Refusal, SessionWrite, StoreError, StoredSession};

fn at(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

fn event(n: u32, s: i64, body: EventBody) -> Event {
    Event {
        call_sid: sid(n),
        at: at(s),
        body,
    }
}

fn flow(n: u32, trigger: &str, routing: Routing, path: &[&str], notice: bool) -> Event {
    event(
        n,
        10,
        EventBody::FlowAnswered(FlowAnswered {
            trigger: trigger.into(),
            digits: None,
            answer: Answer {
                path: path.iter().map(|s| s.to_string()).collect(),
                notice_played: notice,
                routing: Some(routing),
                ..Answer::default()
            },
        }),
    )
}

fn leg_event(n: u32, s: i64, leg: &str, event_name: &str, status: &str) -> Event {
    event(
        n,
        s,
        EventBody::Leg(LegUpdate {
            leg_sid: leg.into(),
            to: "+14045550111".into(),
            status: status.into(),
            event: Some(event_name.into()),
            duration_s: (status == "completed").then_some(30),
        }),
    )
}

fn recording(n: u32, voicemail: bool, duration_s: u32) -> Event {
    event(
        n,
        200,
        EventBody::Recording(RecordingUpdate {
            recording_sid: format!("RE{n}"),
            url: format!("https://carrier.example/RE{n}"),
            status: "completed".into(),
            duration_s: Some(duration_s),
            voicemail,
        }),
    )
}

fn status(n: u32, s: i64, status: &str, duration_s: u32) -> Event {
    event(
        n,
        s,
        EventBody::CallStatus(dialtone_core::event::CallStatusUpdate {
            status: status.into(),
            duration_s: Some(duration_s),
        }),
    )
}

fn signed(events: Vec<Event>, by: &str) -> Batch {
    Batch {
        events,
        signed_by: Some(by.into()),
        ..Batch::default()
    }
}

fn demo_calls() -> CallQuery {
    CallQuery {
        account: "demo".into(),
        page: 1,
        per_page: 250,
        ..CallQuery::default()
    }
}

async fn a_call_is_the_projection_of_its_events(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let before = store.stats().events;
    let events = vec![
        received(1),
        flow(1, "voice", Routing::Normal, &["notice", "ring"], true),
        leg_event(1, 20, "CL1", "initiated", "queued"),
        leg_event(1, 21, "CL1", "ringing", "ringing"),
        leg_event(1, 25, "CL1", "answered", "in-progress"),
        leg_event(1, 60, "CL1", "completed", "completed"),
        event(
            1,
            61,
            EventBody::DialEnded(DialEnded {
                status: "completed".into(),
                dial_call_sid: Some("CL1".into()),
                duration_s: Some(35),
            }),
        ),
        status(1, 62, "completed", 42),
        recording(1, false, 35),
    ];
    let kinds: Vec<&str> = vec![
        "call_received",
        "flow_answered",
        "leg",
        "leg",
        "leg",
        "leg",
        "dial_ended",
        "call_status",
        "recording",
    ];
    append(&store, events).await;
    assert_eq!(store.stats().events - before, 9);

    let call = store
        .call("demo", &sid(1))
        .await
        .unwrap()
        .expect("the call");
    assert_eq!(call.sid, sid(1));
    assert_eq!(call.started_at, at(1));
    assert_eq!(call.ended_at, Some(at(62)));
    assert!(call.answered);
    assert_eq!(call.answered_by.as_deref(), Some("+14045550111"));
    assert_eq!(call.duration_s, Some(42));
    assert_eq!(call.outcome, Outcome::Answered);
    assert_eq!(call.status.as_deref(), Some("completed"));
    assert_eq!(call.path, vec!["notice", "ring"]);
    assert!(call.notice_played);
    assert_eq!(call.routing, "normal");
    assert_eq!(
        call.recording_url.as_deref(),
        Some("https://carrier.example/RE1")
    );
    assert_eq!(call.recording_duration_s, Some(35));
    assert!(!call.voicemail);
    assert_eq!(call.company, "acme-plumbing");
    assert_eq!(call.tracker, "Billboard");
    assert_eq!(call.legs.len(), 1, "{:?}", call.legs);
    let leg = &call.legs[0];
    assert_eq!(
        (leg.sid.as_str(), leg.status.as_str()),
        ("CL1", "completed")
    );
    assert_eq!(leg.initiated_at, Some(at(20)));
    assert_eq!(leg.ringing_at, Some(at(21)));
    assert_eq!(leg.answered_at, Some(at(25)));
    assert_eq!(leg.completed_at, Some(at(60)));
    assert_eq!(leg.duration_s, Some(30));
    let timeline = call.events.expect("a single call has its timeline");
    assert_eq!(
        timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        kinds
    );
    assert!(
        timeline.iter().all(|e| e.detail.get("type").is_none()),
        "{timeline:?}"
    );
    assert_eq!(timeline[7].detail["status"], "completed");
    // Another account's call is absent; so is one never received.
    assert!(store.call("other", &sid(1)).await.unwrap().is_none());
    assert!(store.call("demo", &sid(2)).await.unwrap().is_none());
    // A listing shows the same call, with its legs, without its timeline.
    let page = store.calls(demo_calls()).await.unwrap();
    assert_eq!(page.total_records, 1);
    assert_eq!(page.calls[0].legs, call.legs);
    assert!(page.calls[0].events.is_none());
}

async fn outcomes_follow_the_calls_end_in_any_order(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    append(&store, (1..=4).map(received).collect()).await;
    // 1: nobody answered, then a voicemail arrives after the call ended.
    append(&store, vec![status(1, 50, "completed", 20)]).await;
    let missed = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(missed.outcome, Outcome::Missed);
    append(&store, vec![recording(1, true, 12)]).await;
    let voicemail = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(voicemail.outcome, Outcome::Voicemail);
    assert!(voicemail.voicemail);
    assert!(voicemail.recording_url.is_none());
    // A repeated final callback does not move the end.
    append(&store, vec![status(1, 90, "completed", 20)]).await;
    let again = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(again.ended_at, Some(at(50)));
    assert_eq!(again.outcome, Outcome::Voicemail);
    // 2: busy. 3: still ringing. 4: an empty voicemail is no voicemail.
    append(
        &store,
        vec![status(2, 50, "busy", 0), status(3, 5, "ringing", 0)],
    )
    .await;
    append(
        &store,
        vec![recording(4, true, 0), status(4, 50, "completed", 9)],
    )
    .await;
    let outcome = |n: u32| {
        let store = store.clone();
        async move { store.call("demo", &sid(n)).await.unwrap().unwrap().outcome }
    };
    assert_eq!(outcome(2).await, Outcome::Failed);
    assert_eq!(outcome(3).await, Outcome::InProgress);
    assert_eq!(outcome(4).await, Outcome::Missed);
    // The outcome filter agrees.
    let missed_only = store
        .calls(CallQuery {
            outcomes: vec![Outcome::Missed],
            ..demo_calls()
        })
        .await
        .unwrap();
    assert_eq!(
        missed_only
            .calls
            .iter()
            .map(|c| c.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(4)]
    );
    // Any of several outcomes (CallRail's `missed` counts voicemail too).
    let missed_or_failed = store
        .calls(CallQuery {
            outcomes: vec![Outcome::Missed, Outcome::Failed],
            ..demo_calls()
        })
        .await
        .unwrap();
    assert_eq!(
        missed_or_failed
            .calls
            .iter()
            .map(|c| c.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(4), sid(2)]
    );
}

async fn backup_routing_of_the_first_answer_clears_the_flow(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let mut first = received(1);
    if let EventBody::CallReceived(c) = &mut first.body {
        c.answer.path = vec!["notice".into(), "ring".into()];
        c.answer.notice_played = true;
        c.answer.degraded = Some("primary_first".into());
    }
    append(&store, vec![first]).await;
    let mut backup = flow(1, "voice", Routing::Backup, &["primary"], false);
    if let EventBody::FlowAnswered(f) = &mut backup.body {
        f.answer.reason = Some("call_log_unavailable".into());
    }
    append(&store, vec![backup]).await;
    let call = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(call.routing, "backup");
    assert_eq!(call.routing_reason.as_deref(), Some("call_log_unavailable"));
    assert!(call.path.is_empty(), "{:?}", call.path);
    assert!(!call.notice_played);
    assert!(call.dial_shape.is_none());
    // A later step of a normal flow adds to the path.
    append(
        &store,
        vec![flow(1, "gather", Routing::Normal, &["menu"], false)],
    )
    .await;
    let call = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(call.path, vec!["menu"]);
    assert_eq!(call.routing, "backup", "backup is never undone");
}

async fn signed_batches_are_refused_whole(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    store
        .append(signed(vec![received(1)], "AC1"))
        .await
        .unwrap();
    // Another carrier account's callback for the call: nothing of the batch is written.
    let other = store
        .append(signed(
            vec![received(2), status(1, 50, "completed", 5)],
            "AC2",
        ))
        .await;
    assert!(
        matches!(other, Err(StoreError::Refused(Refusal::OtherAccount))),
        "{other:?}"
    );
    assert!(store.call("demo", &sid(2)).await.unwrap().is_none());
    assert!(
        store
            .call("demo", &sid(1))
            .await
            .unwrap()
            .unwrap()
            .status
            .is_none()
    );
    // The carrier retrying the first webhook.
    let again = store.append(signed(vec![received(1)], "AC1")).await;
    assert!(
        matches!(again, Err(StoreError::Refused(Refusal::AlreadyReceived))),
        "{again:?}"
    );
    // dialtone's own writes (reconcile) may say again what is known: logged, not a new call.
    append(&store, vec![received(1)]).await;
    // A stray callback for a call never received is kept, belonging to none.
    append(&store, vec![status(9, 50, "completed", 5)]).await;
    let page = store.calls(demo_calls()).await.unwrap();
    assert_eq!(page.total_records, 1);
    let timeline = store
        .call("demo", &sid(1))
        .await
        .unwrap()
        .unwrap()
        .events
        .unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    // The refusal did not stop the account's own callbacks.
    store
        .append(signed(vec![status(1, 60, "completed", 5)], "AC1"))
        .await
        .unwrap();
    let call = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(call.outcome, Outcome::Missed);
}

async fn a_refused_append_fails_alone(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let session = |id: u64| SessionWrite::Start(Box::new(stored_session(id, "+14045550199", 0)));
    store
        .append(Batch {
            sessions: vec![session(1)],
            ..Batch::default()
        })
        .await
        .unwrap();
    // Concurrent appends share a commit; the one the database refuses (a session id taken)
    // fails, the others are written.
    let tasks: Vec<_> = (0..20u32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = if n == 7 {
                    Batch {
                        events: vec![received(100 + n)],
                        sessions: vec![session(1)],
                        ..Batch::default()
                    }
                } else {
                    Batch {
                        events: vec![received(100 + n)],
                        ..Batch::default()
                    }
                };
                (n, store.append(batch).await)
            })
        })
        .collect();
    for t in tasks {
        let (n, r) = t.await.unwrap();
        if n == 7 {
            assert!(matches!(r, Err(StoreError::Rejected(_))), "{r:?}");
        } else {
            r.unwrap_or_else(|e| panic!("append {n}: {e}"));
        }
    }
    let page = store.calls(demo_calls()).await.unwrap();
    assert_eq!(
        page.total_records, 19,
        "the refused batch was written whole or not at all"
    );
    assert!(store.call("demo", &sid(107)).await.unwrap().is_none());
}

async fn round_robin_turns_only_move_forward(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    for turns in [
        vec![("k".to_owned(), 3), ("j".to_owned(), 1)],
        vec![("k".to_owned(), 2)],
    ] {
        store
            .append(Batch {
                turns,
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let turns = store.round_robin_turns().await.unwrap();
    assert_eq!(turns.get("k"), Some(&3));
    assert_eq!(turns.get("j"), Some(&1));
    assert_eq!(turns.len(), 2);
}

fn stored_session(id: u64, number: &str, start: i64) -> StoredSession {
    StoredSession {
        id,
        secret: format!("secret{id}"),
        account: "demo".into(),
        company: "acme-plumbing".into(),
        tracker: "Google Ads".into(),
        number: number.into(),
        visitor: format!("v{id}"),
        visit: Visit {
            source: "google".into(),
            medium: "cpc".into(),
            campaign: Some("spring".into()),
            keyword: Some("plumber near me".into()),
            content: None,
            gclid: Some("G1".into()),
            msclkid: None,
            fbclid: None,
            landing_page: "https://acme.example/?gclid=G1".into(),
            referrer: None,
            referrer_domain: None,
            referrer_group: None,
        },
        sharing: 1,
        created_at: at(start),
        seen_at: at(start),
        expires_at: at(start + 1800),
        released: false,
    }
}

async fn dni_leases_start_renew_and_end(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let write = |sessions: Vec<SessionWrite>| {
        let store = store.clone();
        async move {
            store
                .append(Batch {
                    sessions,
                    ..Batch::default()
                })
                .await
                .unwrap()
        }
    };
    write(vec![
        SessionWrite::Start(Box::new(stored_session(1, "+14045550150", 0))),
        SessionWrite::Start(Box::new(stored_session(2, "+14045550151", 100))),
    ])
    .await;
    // Renewed later; a renewal never shortens the lease.
    write(vec![SessionWrite::Renew {
        id: 1,
        seen_at: at(600),
        expires_at: at(2400),
    }])
    .await;
    write(vec![SessionWrite::Renew {
        id: 1,
        seen_at: at(700),
        expires_at: at(2000),
    }])
    .await;
    write(vec![SessionWrite::Release { id: 2, at: at(300) }]).await;

    let (sessions, next) = store.dni_sessions(at(0)).await.unwrap();
    assert_eq!(next, 3);
    assert_eq!(sessions.len(), 2);
    let one = &sessions[0];
    assert_eq!(one.seen_at, at(700));
    assert_eq!(one.expires_at, at(2400));
    assert_eq!(one.visit, stored_session(1, "+14045550150", 0).visit);
    let two = &sessions[1];
    assert!(two.released);
    assert_eq!(two.expires_at, at(300));
    // Leases that ended before `since` are not restored.
    let (live, _) = store.dni_sessions(at(1000)).await.unwrap();
    assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
    // Leases on a number overlapping a window, for attributing a call after the fact.
    let held = store
        .dni_leases("+14045550150", at(2300), at(2500))
        .await
        .unwrap();
    assert_eq!(held.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1]);
    assert!(
        store
            .dni_leases("+14045550151", at(400), at(500))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn api_keys_are_found_by_the_key_only(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    assert!(!store.has_accounts().await.unwrap());
    let now = Utc::now();
    store
        .create_api_key("key-one", &ApiKey::account("demo", true), "ci", now)
        .await
        .unwrap();
    store
        .create_api_key("key-op", &ApiKey::operator(), "ops", now)
        .await
        .unwrap();
    // Creating the same key again changes nothing.
    store
        .create_api_key("key-one", &ApiKey::account("other", false), "again", now)
        .await
        .unwrap();
    assert!(store.has_accounts().await.unwrap());
    assert_eq!(
        store.api_key("key-one").await.unwrap(),
        Some(ApiKey::account("demo", true))
    );
    assert_eq!(
        store.api_key("key-op").await.unwrap(),
        Some(ApiKey::operator())
    );
    assert_eq!(store.api_key("key-two").await.unwrap(), None);
}

async fn backup_rules_live_until_ended_or_expired(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let rule = |scope: Scope, expires: i64| BackupRule {
        id: 0,
        scope,
        percent: 40,
        reason: "carrier trouble".into(),
        created_at: at(0),
        expires_at: at(expires),
        created_by: "ops".into(),
    };
    let a = store
        .add_backup_rule(&rule(Scope::All, 3600))
        .await
        .unwrap();
    let b = store
        .add_backup_rule(&rule(
            Scope::Tracker {
                company: "acme-plumbing".into(),
                tracker: "Billboard".into(),
            },
            60,
        ))
        .await
        .unwrap();
    assert_ne!(a, b);
    let live = store.backup_rules(at(30)).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(
        live[0],
        BackupRule {
            id: a,
            ..rule(Scope::All, 3600)
        }
    );
    assert_eq!(live[1].id, b);
    // Expired.
    assert_eq!(store.backup_rules(at(61)).await.unwrap().len(), 1);
    // Ended, once.
    assert!(store.end_backup_rule(a, at(100)).await.unwrap());
    assert!(!store.end_backup_rule(a, at(101)).await.unwrap());
    assert!(
        store
            .backup_rules(at(30))
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != a)
    );
}

async fn traffic_counts_received_calls(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    append(&store, (1..=5).map(received).collect()).await;
    let traffic = store
        .traffic(&["demo".to_owned(), "nobody".to_owned()], at(3))
        .await
        .unwrap();
    assert_eq!(traffic.len(), 1);
    assert_eq!(traffic[0].carrier_account_sid, "AC1");
    assert_eq!(traffic[0].tracking_number, "+14045550150");
    assert_eq!(traffic[0].calls, 3);
}

/// Call `n` from `caller` to `company`, its first-call flag as the node sent it.
fn call_from(n: u32, company: &str, caller: &str, first_call: Option<bool>) -> Event {
    let mut e = received(n);
    if let EventBody::CallReceived(c) = &mut e.body {
        c.company = company.into();
        c.caller = caller.into();
        c.first_call = first_call;
    }
    e
}

async fn what_people_change_of_a_call_is_kept_and_spam_is_not_listed(backend: Backend) {
    use dialtone_core::event::{CallChange, CallModified, LeadStatus};
    let db = backend.fresh().await;
    let store = db.open().await;
    append(&store, vec![received(1), received(2)]).await;
    let modified = |s: i64, changes: Vec<CallChange>| {
        event(
            1,
            s,
            EventBody::CallModified(CallModified {
                by: "demo".into(),
                changes,
            }),
        )
    };
    append(
        &store,
        vec![modified(
            20,
            vec![
                CallChange::Tags(vec!["New Client".into(), "VIP".into()]),
                CallChange::Note(Some("call back Tuesday".into())),
                CallChange::Value(Some("125.00".into())),
                CallChange::LeadStatus(Some(LeadStatus::GoodLead)),
                CallChange::CustomerName(Some("Jane Smith".into())),
            ],
        )],
    )
    .await;
    let call = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert_eq!(call.tags, vec!["New Client".to_owned(), "VIP".to_owned()]);
    assert_eq!(call.note.as_deref(), Some("call back Tuesday"));
    assert_eq!(call.value.as_deref(), Some("125.00"));
    assert_eq!(call.lead_status, Some(LeadStatus::GoodLead));
    assert_eq!(call.caller_name.as_deref(), Some("Jane Smith"));
    assert!(!call.spam);
    // Cleared, replaced, then marked spam: still there to read, gone from listings.
    append(
        &store,
        vec![modified(
            21,
            vec![
                CallChange::Tags(vec![]),
                CallChange::Note(None),
                CallChange::LeadStatus(None),
                CallChange::Spam,
            ],
        )],
    )
    .await;
    let call = store.call("demo", &sid(1)).await.unwrap().unwrap();
    assert!(call.tags.is_empty() && call.note.is_none() && call.lead_status.is_none());
    assert_eq!(call.value.as_deref(), Some("125.00"));
    assert!(call.spam);
    let listed = store.calls(demo_calls()).await.unwrap();
    assert_eq!(
        listed
            .calls
            .iter()
            .map(|c| c.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(2)]
    );
    assert_eq!(listed.total_records, 1);
    let timeline = call.events.unwrap_or_default();
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.kind == "call_modified")
            .count(),
        2
    );
}

async fn first_calls_are_decided_by_the_log_as_it_writes(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let (a, b) = ("+17705550101", "+17705550102");
    // One commit: the second call from `a` to acme finds the first, written just before it.
    append(
        &store,
        vec![
            call_from(1, "acme", a, None),
            call_from(2, "acme", a, None),
            call_from(3, "acme", b, None),
            call_from(4, "other", a, None),
            call_from(5, "", a, None),
        ],
    )
    .await;
    // Later commits, one from another node on the same database; an event from an older
    // version keeps the answer its node gave.
    let other_node = db.open().await;
    append(&other_node, vec![call_from(6, "acme", b, None)]).await;
    append(&store, vec![call_from(7, "other", b, None)]).await;
    append(&store, vec![call_from(8, "acme", a, Some(true))]).await;

    let mut first = Vec::new();
    for n in 1..=8 {
        // Each node finds what it wrote (a SQLite store indexes its own recent sids).
        let node = if n == 6 { &other_node } else { &store };
        let call = node.call("demo", &sid(n)).await.unwrap();
        first.push(call.and_then(|c| c.first_call));
    }
    let (yes, no) = (Some(true), Some(false));
    assert_eq!(first, vec![yes, no, yes, yes, None, no, yes, yes]);
}

async fn concurrent_appends_are_all_durable_for_the_next_node(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let tasks: Vec<_> = (0..64u32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25u32 {
                    let n = t * 25 + i;
                    store
                        .append(Batch {
                            events: vec![received(n), leg(n, &format!("CL{n}"), "ringing")],
                            ..Batch::default()
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.events, 3200);
    assert!(stats.commits < 1600, "appends share commits: {stats:?}");
    drop(store);
    // Another node, or the same one restarted, on the same database.
    let next = db.open().await;
    assert_eq!(next.calls(demo_calls()).await.unwrap().total_records, 1600);
    for n in [0, 799, 1599] {
        let call = next
            .call("demo", &sid(n))
            .await
            .unwrap()
            .expect("found by sid");
        assert_eq!(call.legs.len(), 1);
    }
    // A carrier retry reaching it is no second call.
    let again = next.append(signed(vec![received(5)], "AC1")).await;
    assert!(matches!(
        again,
        Err(StoreError::Refused(Refusal::AlreadyReceived))
    ));
}

async fn time_filters_include_the_start_and_exclude_the_end(backend: Backend) {
    let db = backend.fresh().await;
    let store = db.open().await;
    let day = |d: u32| Utc.with_ymd_and_hms(2023, 11, d, 0, 0, 0).unwrap();
    // Calls at 23:59:59 on the 14th, 00:00:00 and 23:59:59 on the 15th, 00:00:00 on the 16th.
    let midnight_15 = Utc
        .with_ymd_and_hms(2023, 11, 15, 0, 0, 0)
        .unwrap()
        .timestamp();
    for (n, s) in [(1, -1), (2, 0), (3, 86_399), (4, 86_400)] {
        append(&store, vec![received_at(n, midnight_15 + s)]).await;
    }
    let on_the_15th = store
        .calls(CallQuery {
            from: Some(day(15)),
            until: Some(day(16)),
            ..demo_calls()
        })
        .await
        .unwrap();
    assert_eq!(
        on_the_15th
            .calls
            .iter()
            .map(|c| c.sid.clone())
            .collect::<Vec<_>>(),
        vec![sid(3), sid(2)]
    );
}

crate::on_both_backends!(
    a_call_is_the_projection_of_its_events,
    outcomes_follow_the_calls_end_in_any_order,
    backup_routing_of_the_first_answer_clears_the_flow,
    signed_batches_are_refused_whole,
    a_refused_append_fails_alone,
    round_robin_turns_only_move_forward,
    dni_leases_start_renew_and_end,
    api_keys_are_found_by_the_key_only,
    backup_rules_live_until_ended_or_expired,
    traffic_counts_received_calls,
    first_calls_are_decided_by_the_log_as_it_writes,
    what_people_change_of_a_call_is_kept_and_spam_is_not_listed,
    concurrent_appends_are_all_durable_for_the_next_node,
    time_filters_include_the_start_and_exclude_the_end,
);

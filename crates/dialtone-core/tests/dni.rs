//! DNI pools against a plain model: random visitors arrive, keep their pages alive, leave, and
//! call; the pool must keep numbers apart while it can, recycle them in LRU order, and attribute
//! each call to the session holding the number at that instant.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use dialtone_core::dni::Pool;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A visitor arrives, maybe wanting a number they held before.
    Visit {
        prefer: Option<usize>,
    },
    /// A live session (the nth, modulo) sends a keepalive.
    Keepalive(usize),
    Release(usize),
    /// A call to number n.
    Call(usize),
    Wait(i64),
}

fn op(size: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::option::of(0..size).prop_map(|prefer| Op::Visit { prefer }),
        2 => (0usize..64).prop_map(Op::Keepalive),
        1 => (0usize..64).prop_map(Op::Release),
        3 => (0..size).prop_map(Op::Call),
        3 => (1i64..900).prop_map(Op::Wait),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Span {
    session: u64,
    number: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    seen: DateTime<Utc>,
}

const LEASE_S: i64 = 1200;
const GRACE_S: i64 = 120;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pools_keep_numbers_apart_recycle_lru_and_attribute_right(
        size in 1usize..6,
        ops in proptest::collection::vec(op(6), 1..200),
    ) {
        let grace = Duration::seconds(GRACE_S);
        let mut pool = Pool::new(size, grace);
        let mut history: Vec<Span> = Vec::new();
        let mut now = t0();
        let mut next_session = 1u64;
        for op in ops {
            let live: Vec<usize> = (0..history.len()).filter(|&i| history[i].end > now).collect();
            match op {
                Op::Visit { prefer } => {
                    let prefer = prefer.filter(|&p| p < size);
                    let in_use: Vec<usize> = live.iter().map(|&i| history[i].number).collect();
                    // When each number last became free, from the model's history.
                    let free_since = |n: usize| history.iter().filter(|s| s.number == n).map(|s| s.end).max();
                    let free: Vec<usize> = (0..size).filter(|n| !in_use.contains(n)).collect();
                    let session = next_session;
                    next_session += 1;
                    let until = now + Duration::seconds(LEASE_S);
                    let got = pool.allocate(session, prefer, now, until).expect("a pool with numbers allocates");
                    prop_assert!(got.sharing as usize <= dialtone_core::dni::MAX_SHARING);
                    if free.is_empty() {
                        prop_assert!(got.sharing >= 2, "an exhausted pool shares");
                    } else {
                        // Not exhausted: nobody else holds the number.
                        prop_assert!(!in_use.contains(&got.number), "number {} given twice while {:?} were free", got.number, free);
                        prop_assert_eq!(got.sharing, 1);
                        match prefer.filter(|p| free.contains(p)) {
                            Some(p) => prop_assert_eq!(got.number, p, "a returning visitor gets their free number"),
                            None => {
                                // The free number released longest ago (never used first).
                                let oldest = free.iter().map(|&n| free_since(n)).min().expect("free");
                                prop_assert_eq!(free_since(got.number), oldest);
                            }
                        }
                    }
                    if let Some(e) = got.evicted {
                        let span = history.iter_mut().find(|s| s.session == e && s.end > now).expect("evicted a live session");
                        prop_assert_eq!(span.number, got.number);
                        span.end = now;
                    }
                    history.push(Span { session, number: got.number, start: now, end: until, seen: now });
                }
                Op::Keepalive(k) if !live.is_empty() => {
                    let i = live[k % live.len()];
                    let until = now + Duration::seconds(LEASE_S);
                    let renewed = pool.renew(history[i].session, now, until);
                    prop_assert_eq!(renewed, Some(history[i].number));
                    history[i].end = history[i].end.max(until);
                    history[i].seen = now;
                }
                Op::Release(k) if !live.is_empty() => {
                    let i = live[k % live.len()];
                    prop_assert_eq!(pool.release(history[i].session, now), Some(history[i].number));
                    history[i].end = now;
                }
                Op::Call(n) if n < size => {
                    let got = pool.attribute(n, now);
                    // The model: holders at `now`, the one seen last; else the latest lease that
                    // ended within the grace.
                    let holders: Vec<&Span> = history
                        .iter()
                        .filter(|s| s.number == n && s.start <= now && now <= s.end)
                        .collect();
                    let want = if let Some(best) = holders.iter().max_by_key(|s| (s.seen, s.start, s.session)) {
                        Some((best.session, holders.len() as u32))
                    } else {
                        let ended: Vec<&Span> = history
                            .iter()
                            .filter(|s| s.number == n && s.end < now && now <= s.end + grace)
                            .collect();
                        ended
                            .iter()
                            .max_by_key(|s| (s.end, s.seen, s.start, s.session))
                            .map(|s| (s.session, ended.len() as u32))
                    };
                    let in_grace = history
                        .iter()
                        .filter(|s| s.number == n && s.end < now && now <= s.end + grace)
                        .count();
                    if in_grace <= dialtone_core::dni::MAX_SHARING {
                        prop_assert_eq!(got.map(|a| (a.session, a.shared_with)), want);
                    } else if let Some(a) = got {
                        // A flood of ended leases is remembered only in part: still a session
                        // that held the number within the grace.
                        let held = history.iter().any(|s| s.session == a.session && s.number == n && s.start <= now && now <= s.end + grace);
                        prop_assert!(held);
                    }
                }
                Op::Wait(s) => now += Duration::seconds(s),
                _ => {}
            }
            let model_live = history.iter().filter(|s| s.end > now).count();
            prop_assert_eq!(pool.live_sessions(now), model_live);
        }
    }

    /// The pure attribution over a number's whole history agrees with the live pool's, so a call
    /// reconciled later from the carrier's records lands on the same session.
    #[test]
    fn stored_history_attributes_like_the_live_pool(
        starts in proptest::collection::vec((0i64..5000, 60i64..2400), 1..40),
        calls in proptest::collection::vec(0i64..8000, 1..40),
    ) {
        let grace = Duration::seconds(GRACE_S);
        let spans: Vec<dialtone_core::dni::LeaseSpan> = starts
            .iter()
            .enumerate()
            .map(|(i, &(s, len))| dialtone_core::dni::LeaseSpan {
                session: i as u64 + 1,
                start: t0() + Duration::seconds(s),
                end: t0() + Duration::seconds(s + len),
                seen: t0() + Duration::seconds(s),
            })
            .collect();
        for c in calls {
            let t = t0() + Duration::seconds(c);
            let got = dialtone_core::dni::attribute(spans.iter().copied(), t, grace);
            if let Some(a) = got {
                let s = spans.iter().find(|s| s.session == a.session).expect("a real session");
                prop_assert!(s.start <= t && t <= s.end + grace, "attributed to a session not holding the number");
                let holders = spans.iter().filter(|s| s.start <= t && t <= s.end).count() as u32;
                let ended = spans.iter().filter(|s| s.end < t && t <= s.end + grace).count() as u32;
                prop_assert_eq!(a.shared_with, if holders > 0 { holders } else { ended });
            } else {
                prop_assert!(spans.iter().all(|s| !(s.start <= t && t <= s.end + grace)));
            }
        }
    }
}

#[test]
fn recycled_numbers_go_in_the_order_they_were_freed() {
    let mut pool = Pool::new(3, Duration::seconds(GRACE_S));
    let mut by_session = HashMap::new();
    for s in 1..=3u64 {
        let a = pool
            .allocate(s, None, t0(), t0() + Duration::seconds(LEASE_S))
            .expect("number");
        by_session.insert(s, a.number);
    }
    // Freed in the order 2, 3, 1.
    pool.release(2, t0() + Duration::seconds(10));
    pool.release(3, t0() + Duration::seconds(20));
    pool.release(1, t0() + Duration::seconds(30));
    let later = t0() + Duration::seconds(100);
    let order: Vec<usize> = (4..=6u64)
        .map(|s| {
            pool.allocate(s, None, later, later + Duration::seconds(LEASE_S))
                .expect("number")
                .number
        })
        .collect();
    assert_eq!(order, vec![by_session[&2], by_session[&3], by_session[&1]]);
}

//! The carrier's outbound dial queue: an account-wide limit on call setups per period and an
//! optional cap on concurrent legs. Legs over the limit wait in FIFO order, as in the seed's
//! outage, instead of being refused; a leg whose caller hung up leaves the queue unserved.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use serde::Serialize;
use tokio::sync::{Notify, oneshot};

use crate::sim::Sim;

/// How setups are spread over the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// Evenly spaced, one every period/count, with up to `burst` at once after a quiet spell
    /// (GCRA).
    Spaced { burst: u32 },
    /// At most `count` in each fixed window of one period (e.g. a per-minute allowance).
    Window,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DialLimit {
    pub count: u32,
    pub period_s: f64,
    pub pacing: Pacing,
    /// Legs up at once, if capped.
    pub max_concurrent: Option<u32>,
}

impl DialLimit {
    pub fn per_second(count: f64) -> Self {
        // A fractional rate is kept exact by scaling the period.
        Self {
            count: 1,
            period_s: 1.0 / count,
            pacing: Pacing::Spaced { burst: 1 },
            max_concurrent: None,
        }
    }
}

/// Where the limiter stands: pure, time is a parameter.
#[derive(Debug, Clone)]
struct Limiter {
    limit: DialLimit,
    /// GCRA theoretical arrival time.
    tat: f64,
    /// Current fixed window: its start and setups so far.
    window_start: f64,
    window_used: u32,
}

impl Limiter {
    fn new(limit: DialLimit) -> Self {
        Self {
            limit,
            tat: f64::NEG_INFINITY,
            window_start: 0.0,
            window_used: 0,
        }
    }

    fn interval(&self) -> f64 {
        self.limit.period_s / f64::from(self.limit.count.max(1))
    }

    /// The earliest instant at or after `now` a setup may start.
    fn earliest(&self, now: f64) -> f64 {
        match self.limit.pacing {
            Pacing::Spaced { burst } => {
                let tolerance = self.interval() * f64::from(burst.max(1) - 1);
                now.max(self.tat - tolerance)
            }
            Pacing::Window => {
                let period = self.limit.period_s;
                let start = (now / period).floor() * period;
                if start > self.window_start || self.window_used < self.limit.count {
                    now
                } else {
                    self.window_start + period
                }
            }
        }
    }

    /// A setup starts at `now` for a leg that has been first in line since `head_since`.
    ///
    /// Spaced setups follow the theoretical schedule, not the instant the queue's task woke up:
    /// a task woken a millisecond late (a real clock, a busy machine) must not push every later
    /// setup back by it. (Taken at `now`, the lateness added up: a 20/s limit set legs up at
    /// 19.3/s under load, and the queue the carrier held ran 15 % past dialtone's mirror.)
    fn take(&mut self, now: f64, head_since: f64) {
        match self.limit.pacing {
            Pacing::Spaced { .. } => self.tat = self.tat.max(head_since.min(now)) + self.interval(),
            Pacing::Window => {
                let period = self.limit.period_s;
                let start = (now / period).floor() * period;
                if start > self.window_start {
                    self.window_start = start;
                    self.window_used = 0;
                }
                self.window_used += 1;
            }
        }
    }
}

struct Shared {
    sim: Sim,
    limiter: RefCell<Limiter>,
    /// Each waiting leg's channel for the instant it may start.
    waiting: RefCell<VecDeque<oneshot::Sender<f64>>>,
    /// Since when the leg first in line has been first (the instant it asked, or the previous
    /// setup).
    head_since: Cell<f64>,
    active: Cell<u32>,
    changed: Notify,
    /// Whether a queued leg whose caller hung up is canceled (leaves without using a setup) or
    /// still set up when its turn comes.
    cancels_abandoned: bool,
}

/// The queue of one carrier account. Cloning shares it.
#[derive(Clone)]
pub struct DialQueue {
    shared: Rc<Shared>,
}

/// A granted setup: when it was asked for and when it started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    pub requested_at: f64,
    pub started_at: f64,
}

impl Grant {
    pub fn queue_s(&self) -> f64 {
        self.started_at - self.requested_at
    }
}

impl DialQueue {
    /// A queue under `limit`, served by a task on `sim`; legs whose caller hung up are canceled.
    pub fn new(sim: &Sim, limit: DialLimit) -> Self {
        Self::with_abandoned(sim, limit, true)
    }

    /// Like [`DialQueue::new`]; with `cancels_abandoned` false, a queued leg whose caller hung
    /// up still takes its setup when its turn comes, so the queue sheds nothing.
    pub fn with_abandoned(sim: &Sim, limit: DialLimit, cancels_abandoned: bool) -> Self {
        let queue = Self {
            shared: Rc::new(Shared {
                sim: sim.clone(),
                limiter: RefCell::new(Limiter::new(limit)),
                waiting: RefCell::new(VecDeque::new()),
                head_since: Cell::new(f64::NEG_INFINITY),
                active: Cell::new(0),
                changed: Notify::new(),
                cancels_abandoned,
            }),
        };
        let server = queue.clone();
        sim.spawn_background(async move { server.serve().await });
        queue
    }

    /// Waits for a setup slot. Dropping the future (the caller hung up) leaves the queue.
    pub async fn acquire(&self) -> Grant {
        let (tx, rx) = oneshot::channel();
        let requested_at = self.shared.sim.now();
        if self.shared.waiting.borrow().is_empty() {
            self.shared.head_since.set(requested_at);
        }
        self.shared.waiting.borrow_mut().push_back(tx);
        self.shared.changed.notify_one();
        match rx.await {
            Ok(started_at) => Grant {
                requested_at,
                started_at,
            },
            // The server never drops a live waiter; if it did, the leg goes at once.
            Err(_) => Grant {
                requested_at,
                started_at: self.shared.sim.now(),
            },
        }
    }

    /// A leg that held a slot has ended (for the concurrency cap).
    pub fn release(&self) {
        let active = self.shared.active.get();
        self.shared.active.set(active.saturating_sub(1));
        self.shared.changed.notify_one();
    }

    async fn serve(&self) {
        let s = &self.shared;
        loop {
            // Callers who hung up while queued are skipped without using a slot.
            while s.cancels_abandoned
                && s.waiting
                    .borrow()
                    .front()
                    .is_some_and(oneshot::Sender::is_closed)
            {
                s.waiting.borrow_mut().pop_front();
            }
            let cap = s.limiter.borrow().limit.max_concurrent;
            if s.waiting.borrow().is_empty() || cap.is_some_and(|c| s.active.get() >= c) {
                s.changed.notified().await;
                continue;
            }
            let now = s.sim.now();
            let at = s.limiter.borrow().earliest(now);
            if at > now {
                s.sim.sleep_until(at).await;
                continue;
            }
            // The front was checked open above, with no await since.
            let Some(granted) = s.waiting.borrow_mut().pop_front() else {
                continue;
            };
            s.limiter.borrow_mut().take(now, s.head_since.get());
            s.head_since.set(now);
            s.active.set(s.active.get() + 1);
            if granted.send(now).is_err() {
                s.active.set(s.active.get() - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real clock wakes the queue's task a little after each slot: the setups still keep the
    /// limit's schedule (the lateness of one does not delay all that follow).
    #[test]
    fn setups_keep_their_schedule_when_the_queue_wakes_late() {
        let mut limiter = Limiter::new(DialLimit::per_second(20.0));
        let mut head_since = 0.0;
        for _ in 0..10 {
            let slot = limiter.earliest(head_since);
            let now = slot + 0.002;
            limiter.take(now, head_since);
            head_since = now;
        }
        let next = limiter.earliest(head_since);
        assert!(
            (next - 0.5).abs() < 1e-9,
            "the 11th setup is due at {next} s"
        );
    }

    fn grants(limit: DialLimit, asks: &[f64]) -> Vec<f64> {
        let sim = Sim::new();
        let queue = DialQueue::new(&sim, limit);
        let out = Rc::new(RefCell::new(vec![f64::NAN; asks.len()]));
        for (i, &at) in asks.iter().enumerate() {
            let (s, q, out) = (sim.clone(), queue.clone(), out.clone());
            sim.spawn(async move {
                s.sleep_until(at).await;
                out.borrow_mut()[i] = q.acquire().await.started_at;
            });
        }
        sim.run(0, &mut |_| {});
        out.take()
    }

    #[test]
    fn spaced_setups_queue_in_fifo_order() {
        let limit = DialLimit::per_second(10.0);
        let got = grants(limit, &[0.0, 0.0, 0.0, 0.05, 1.0]);
        let want = [0.0, 0.1, 0.2, 0.3, 1.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn a_burst_goes_at_once_then_the_rate_holds() {
        let limit = DialLimit {
            count: 10,
            period_s: 1.0,
            pacing: Pacing::Spaced { burst: 3 },
            max_concurrent: None,
        };
        let got = grants(limit, &[0.0; 5]);
        let want = [0.0, 0.0, 0.0, 0.1, 0.2];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
    }

    #[test]
    fn a_per_minute_window_holds_the_rest_until_the_next_minute() {
        let limit = DialLimit {
            count: 2,
            period_s: 60.0,
            pacing: Pacing::Window,
            max_concurrent: None,
        };
        let got = grants(limit, &[1.0, 2.0, 3.0, 70.0, 71.0]);
        assert_eq!(got, vec![1.0, 2.0, 60.0, 70.0, 120.0]);
    }

    #[test]
    fn legs_beyond_the_concurrency_cap_wait_for_a_release() {
        let sim = Sim::new();
        let queue = DialQueue::new(
            &sim,
            DialLimit {
                count: 1000,
                period_s: 1.0,
                pacing: Pacing::Spaced { burst: 1000 },
                max_concurrent: Some(1),
            },
        );
        let out = Rc::new(RefCell::new(Vec::new()));
        for talk in [5.0, 1.0] {
            let (s, q, out) = (sim.clone(), queue.clone(), out.clone());
            sim.spawn(async move {
                let g = q.acquire().await;
                out.borrow_mut().push(g.started_at);
                s.sleep(talk).await;
                q.release();
            });
        }
        sim.run(0, &mut |_| {});
        assert_eq!(*out.borrow(), vec![0.0, 5.0]);
    }

    /// Starts of three legs at 1/s where the second's caller hangs up after 0.5 s.
    fn with_one_hang_up(cancels_abandoned: bool) -> Vec<(&'static str, f64)> {
        let sim = Sim::new();
        let queue = DialQueue::with_abandoned(&sim, DialLimit::per_second(1.0), cancels_abandoned);
        let out = Rc::new(RefCell::new(Vec::new()));
        for (name, patience) in [("first", 10.0), ("impatient", 0.5), ("third", 10.0)] {
            let (s, q, out) = (sim.clone(), queue.clone(), out.clone());
            sim.spawn(async move {
                let acquire = std::pin::pin!(q.acquire());
                let give_up = std::pin::pin!(s.sleep(patience));
                if let futures_util::future::Either::Left((g, _)) =
                    futures_util::future::select(acquire, give_up).await
                {
                    out.borrow_mut().push((name, g.started_at));
                }
            });
        }
        sim.run(0, &mut |_| {});
        out.take()
    }

    #[test]
    fn a_caller_who_hangs_up_leaves_the_queue_without_using_a_slot() {
        assert_eq!(with_one_hang_up(true), vec![("first", 0.0), ("third", 1.0)]);
    }

    #[test]
    fn a_carrier_that_does_not_cancel_still_spends_the_abandoned_legs_setup() {
        assert_eq!(
            with_one_hang_up(false),
            vec![("first", 0.0), ("third", 2.0)]
        );
    }
}

//! Dial admission: what dialtone knows about its carrier's limit on outbound call setups, and
//! how many legs it asks for because of it.
//!
//! The carrier in the seed's outage queued setups over its limit instead of refusing them. A
//! GCRA mirror of that limit ([`DialMirror`]) knows at every instant the queue the carrier must be
//! holding: theoretical arrival time − now. When a call's legs would wait longer than a budget,
//! [`shape`] asks for fewer of them, lower service tiers first, so the queue never builds.
//! When the limit is unknown or wrong, [`LimitEstimator`] reads the effective limit from when legs
//! actually start. Pure: time is seconds on any monotonic timeline, passed in.

/// A limit on outbound setups: `count` per `period_s`, up to `burst` at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetupLimit {
    pub count: u32,
    pub period_s: f64,
    pub burst: u32,
}

impl SetupLimit {
    pub fn per_second(rate: f64) -> Self {
        Self {
            count: 1,
            period_s: 1.0 / rate,
            burst: 1,
        }
    }

    /// Seconds between setups at the limit.
    pub fn interval_s(&self) -> f64 {
        self.period_s / f64::from(self.count.max(1))
    }

    pub fn rate(&self) -> f64 {
        1.0 / self.interval_s()
    }
}

/// The carrier's queue as dialtone can compute it (GCRA, as redis-cell and `governor` keep it).
///
/// Legs are counted at the instant the carrier will ask for them, which may be seconds after
/// dialtone answered (the caller first hears a notice or a greeting): requests wait in `pending`
/// until their time, so the queue is always built in the order the carrier sees.
#[derive(Debug, Clone)]
pub struct DialMirror {
    limit: SetupLimit,
    /// Theoretical arrival time: when the carrier will have set up every leg asked for so far,
    /// if it spaces them evenly.
    tat: f64,
    /// Requests not yet applied to `tat`: (when, legs), in time order.
    pending: Vec<(f64, u32)>,
    /// Legs asked for, and when the window of `rate_window_s` started, for the offered rate.
    window_start: f64,
    window_legs: u32,
    last_rate: f64,
}

/// Seconds over which the offered leg rate is measured.
const RATE_WINDOW_S: f64 = 10.0;

impl DialMirror {
    pub fn new(limit: SetupLimit) -> Self {
        Self {
            limit,
            tat: f64::NEG_INFINITY,
            pending: Vec::new(),
            window_start: f64::NEG_INFINITY,
            window_legs: 0,
            last_rate: 0.0,
        }
    }

    pub fn limit(&self) -> SetupLimit {
        self.limit
    }

    /// Follows a new or corrected limit without forgetting the queue.
    pub fn set_limit(&mut self, limit: SetupLimit) {
        self.limit = limit;
    }

    fn tolerance_s(&self) -> f64 {
        self.limit.interval_s() * f64::from(self.limit.burst.max(1) - 1)
    }

    /// The theoretical arrival time at `at`, with every request due by then applied.
    fn tat_at(&self, at: f64) -> f64 {
        let interval = self.limit.interval_s();
        self.pending
            .iter()
            .take_while(|(t, _)| *t <= at)
            .fold(self.tat, |tat, (t, legs)| {
                tat.max(*t) + interval * f64::from(*legs)
            })
    }

    /// Seconds the next leg asked for at `at` would wait in the carrier's queue.
    pub fn queue_s(&self, at: f64) -> f64 {
        (self.tat_at(at) - self.tolerance_s() - at).max(0.0)
    }

    /// Seconds the last of `legs` asked for at `at` would wait.
    pub fn projected_wait_s(&self, at: f64, legs: u32) -> f64 {
        if legs == 0 {
            return 0.0;
        }
        let start = self.tat_at(at).max(at);
        (start + self.limit.interval_s() * f64::from(legs - 1) - self.tolerance_s() - at).max(0.0)
    }

    /// Applies the requests due by `now` (keeps `pending` short).
    pub fn advance(&mut self, now: f64) {
        let due = self.pending.partition_point(|(t, _)| *t <= now);
        if due > 0 {
            self.tat = self.tat_at(self.pending[due - 1].0);
            self.pending.drain(..due);
        }
    }

    /// The carrier will ask for `legs` legs at `at`: its queue grows by them then.
    pub fn request(&mut self, at: f64, legs: u32) {
        let i = self.pending.partition_point(|(t, _)| *t <= at);
        self.pending.insert(i, (at, legs));
        if at - self.window_start >= RATE_WINDOW_S {
            if self.window_start.is_finite() {
                self.last_rate = f64::from(self.window_legs) / (at - self.window_start);
            }
            self.window_start = at;
            self.window_legs = 0;
        }
        self.window_legs += legs;
    }

    /// Legs per second asked for over the last completed window.
    pub fn offered_rate(&self) -> f64 {
        self.last_rate
    }

    /// Offered rate over the limit's rate.
    pub fn utilisation(&self) -> f64 {
        self.last_rate / self.limit.rate()
    }
}

/// How many legs a call's dial asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DialShape {
    /// As the flow says: every destination of a simulcall at once.
    #[default]
    Full,
    /// The primary (first) destination alone, then the others together if it does not answer.
    PrimaryFirst,
    /// The primary destination only.
    PrimaryOnly,
}

impl DialShape {
    pub fn as_str(self) -> &'static str {
        match self {
            DialShape::Full => "full",
            DialShape::PrimaryFirst => "primary_first",
            DialShape::PrimaryOnly => "primary_only",
        }
    }

    /// The shape named in a callback URL (`0`, `1`, `2`).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DialShape::Full),
            1 => Some(DialShape::PrimaryFirst),
            2 => Some(DialShape::PrimaryOnly),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The degradation policy of one company.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Degrade {
    /// Added delay a caller may get from the carrier's queue before dialtone asks for fewer legs.
    pub budget_s: f64,
    /// This company's service tier, 0 the highest.
    pub tier: u8,
    /// How many tiers there are.
    pub tiers: u8,
}

impl Default for Degrade {
    fn default() -> Self {
        Self {
            budget_s: 1.0,
            tier: 0,
            tiers: 1,
        }
    }
}

impl Degrade {
    /// The budget for this tier: the full budget for tier 0, shrinking evenly down the tiers, so
    /// lower tiers ask for fewer legs first.
    pub fn tier_budget_s(&self) -> f64 {
        let tiers = f64::from(self.tiers.max(1));
        let tier = f64::from(self.tier.min(self.tiers.max(1) - 1));
        self.budget_s * (tiers - tier) / tiers
    }
}

/// The share of the budget a decision plans for. A call is shaped when dialtone answers it,
/// seconds before its legs are asked for; calls answered after it may reach their dial first
/// and queue ahead of it, so half the budget is kept for them.
pub const PLANNED_SHARE: f64 = 0.5;

/// The shape of a dial of `legs` destinations at `now`: full while every leg would start
/// within the planned share of the tier's budget, the primary first while the primary alone
/// would, else the primary only.
pub fn shape(mirror: &DialMirror, now: f64, legs: u32, policy: &Degrade) -> DialShape {
    if legs <= 1 {
        return DialShape::Full;
    }
    let budget = policy.tier_budget_s() * PLANNED_SHARE;
    if mirror.projected_wait_s(now, legs) <= budget {
        DialShape::Full
    } else if mirror.queue_s(now) <= budget {
        DialShape::PrimaryFirst
    } else {
        DialShape::PrimaryOnly
    }
}

/// Fits a shape under the carrier's cap on concurrent calls: with `active` legs up and room for
/// fewer than `legs` more, ask for the primary only (a carrier at its cap queues new legs until
/// others hang up, which is the seed's queue again). `None` when the account has no cap.
pub fn fit_concurrency(shape: DialShape, legs: u32, active: u32, cap: Option<u32>) -> DialShape {
    match cap {
        Some(cap) if legs > 1 && active.saturating_add(legs) > cap => DialShape::PrimaryOnly,
        _ => shape,
    }
}

/// Reads the carrier's effective setup limit from when legs actually start.
///
/// While the carrier's queue is not empty it sets up legs exactly at its limit, so the rate of
/// leg starts observed while legs wait is the limit. A leg is "waiting" when it started more than
/// `queued_s` after dialtone asked for it.
#[derive(Debug, Clone)]
pub struct LimitEstimator {
    window_s: f64,
    queued_s: f64,
    /// (started at, waited) of recent leg starts.
    starts: std::collections::VecDeque<(f64, f64)>,
}

impl LimitEstimator {
    pub fn new(window_s: f64, queued_s: f64) -> Self {
        Self {
            window_s,
            queued_s,
            starts: std::collections::VecDeque::new(),
        }
    }

    /// A leg asked for at `asked_at` started (its initiated callback) at `started_at`.
    pub fn leg_started(&mut self, asked_at: f64, started_at: f64) {
        self.starts.push_back((started_at, started_at - asked_at));
        while self
            .starts
            .front()
            .is_some_and(|(t, _)| *t < started_at - self.window_s)
        {
            self.starts.pop_front();
        }
    }

    /// The effective limit in setups per second, if legs have been queueing for most of the
    /// window (otherwise the carrier is not at its limit and the rate says nothing about it).
    pub fn effective_rate(&self, now: f64) -> Option<f64> {
        let recent: Vec<&(f64, f64)> = self
            .starts
            .iter()
            .filter(|(t, _)| *t >= now - self.window_s)
            .collect();
        if recent.len() < 10 {
            return None;
        }
        let queued = recent.iter().filter(|(_, w)| *w > self.queued_s).count();
        if queued * 10 < recent.len() * 8 {
            return None;
        }
        let first = recent.first().map(|(t, _)| *t)?;
        let last = recent.last().map(|(t, _)| *t)?;
        let span = last - first;
        (span > 0.0).then(|| (recent.len() - 1) as f64 / span)
    }

    /// Seconds legs waited recently (the mean), for the observed queue delay.
    pub fn mean_wait_s(&self) -> Option<f64> {
        (!self.starts.is_empty())
            .then(|| self.starts.iter().map(|(_, w)| w).sum::<f64>() / self.starts.len() as f64)
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn a_dial_that_would_pass_the_concurrency_cap_asks_for_the_primary_only() {
        assert_eq!(
            fit_concurrency(DialShape::Full, 3, 10, None),
            DialShape::Full
        );
        assert_eq!(
            fit_concurrency(DialShape::Full, 3, 7, Some(10)),
            DialShape::Full
        );
        assert_eq!(
            fit_concurrency(DialShape::Full, 3, 8, Some(10)),
            DialShape::PrimaryOnly
        );
        assert_eq!(
            fit_concurrency(DialShape::PrimaryFirst, 2, 9, Some(10)),
            DialShape::PrimaryOnly
        );
        // A single leg is never reshaped: there is nothing less to ask for.
        assert_eq!(
            fit_concurrency(DialShape::Full, 1, 10, Some(10)),
            DialShape::Full
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_mirror_holds_the_queue_the_carrier_holds() {
        let mut m = DialMirror::new(SetupLimit::per_second(10.0));
        assert_eq!(m.queue_s(0.0), 0.0);
        // 30 legs at once: the carrier sets up one every 0.1 s, the last at 2.9 s.
        m.request(0.0, 30);
        assert!((m.queue_s(0.0) - 3.0).abs() < 1e-9);
        assert!((m.queue_s(1.0) - 2.0).abs() < 1e-9);
        assert_eq!(m.queue_s(5.0), 0.0);
        assert!((m.projected_wait_s(1.0, 3) - 2.2).abs() < 1e-9);
    }

    #[test]
    fn legs_asked_for_later_queue_behind_legs_asked_for_sooner() {
        let mut m = DialMirror::new(SetupLimit::per_second(10.0));
        // A call answered at 0 whose dial runs after a 3 s notice...
        m.request(3.0, 3);
        // ...and one answered at 1 that dials at once: the carrier sees it first.
        assert!((m.projected_wait_s(1.0, 2) - 0.1).abs() < 1e-9);
        m.request(1.0, 2);
        assert!((m.queue_s(1.0) - 0.2).abs() < 1e-9);
        // At 3 s the first call's legs join a queue that has drained: only they are in it.
        assert!((m.queue_s(3.0) - 0.3).abs() < 1e-9, "{}", m.queue_s(3.0));
        m.advance(10.0);
        assert_eq!(m.queue_s(10.0), 0.0);
        assert!(m.pending.is_empty());
    }

    #[test]
    fn burst_lets_legs_through_at_once_after_a_quiet_spell() {
        let limit = SetupLimit {
            count: 10,
            period_s: 1.0,
            burst: 5,
        };
        let mut m = DialMirror::new(limit);
        assert_eq!(m.projected_wait_s(0.0, 5), 0.0);
        m.request(0.0, 5);
        assert!((m.queue_s(0.0) - 0.1).abs() < 1e-9, "{}", m.queue_s(0.0));
    }

    #[test]
    fn offered_rate_and_utilisation() {
        let mut m = DialMirror::new(SetupLimit::per_second(10.0));
        for i in 0..=200 {
            m.request(f64::from(i) * 0.1, 1);
        }
        assert!(
            (m.offered_rate() - 10.0).abs() < 0.2,
            "{}",
            m.offered_rate()
        );
        assert!((m.utilisation() - 1.0).abs() < 0.02);
    }

    #[test]
    fn lower_tiers_have_smaller_budgets() {
        let d = |tier| Degrade {
            budget_s: 1.0,
            tier,
            tiers: 3,
        };
        assert_eq!(d(0).tier_budget_s(), 1.0);
        assert!((d(1).tier_budget_s() - 2.0 / 3.0).abs() < 1e-12);
        assert!((d(2).tier_budget_s() - 1.0 / 3.0).abs() < 1e-12);
        assert!(
            (d(9).tier_budget_s() - 1.0 / 3.0).abs() < 1e-12,
            "past the last tier"
        );
    }

    #[test]
    fn the_estimator_reads_the_rate_legs_start_at_while_they_queue() {
        let mut e = LimitEstimator::new(60.0, 0.5);
        // Legs asked for faster than 7/s start every 1/7 s, each waiting longer.
        for i in 0..300 {
            let asked = f64::from(i) * 0.1;
            let started = f64::from(i) / 7.0 + 1.0;
            e.leg_started(asked, started);
        }
        let rate = e.effective_rate(300.0 / 7.0 + 1.0);
        assert!(rate.is_some_and(|r| (r - 7.0).abs() < 0.05), "{rate:?}");

        // Legs that start at once say nothing about the limit.
        let mut idle = LimitEstimator::new(60.0, 0.5);
        for i in 0..300 {
            let t = f64::from(i) * 0.2;
            idle.leg_started(t, t + 0.05);
        }
        assert_eq!(idle.effective_rate(60.0), None);
    }

    proptest! {
        /// Whatever the queue, the shape never asks for more legs as the queue grows, and a lower
        /// tier is never shaped less than a higher one.
        #[test]
        fn shaping_is_monotone_in_the_queue_and_in_the_tier(
            queued_legs in 0u32..400, more in 0u32..100, legs in 2u32..10, tier in 0u8..3,
        ) {
            let limit = SetupLimit::per_second(10.0);
            let policy = |tier| Degrade { budget_s: 1.0, tier, tiers: 3 };
            let mut a = DialMirror::new(limit);
            a.request(0.0, queued_legs);
            let mut b = a.clone();
            b.request(0.0, more);
            prop_assert!(shape(&a, 0.0, legs, &policy(tier)) <= shape(&b, 0.0, legs, &policy(tier)));
            if tier < 2 {
                prop_assert!(shape(&a, 0.0, legs, &policy(tier)) <= shape(&a, 0.0, legs, &policy(tier + 1)));
            }
        }

        /// A full dial is only asked for when its last leg would start within the planned
        /// budget, and the primary first only when the primary would.
        #[test]
        fn every_shape_keeps_its_promise(queued_legs in 0u32..100, legs in 2u32..10, budget in 0.1f64..5.0) {
            let mut m = DialMirror::new(SetupLimit::per_second(10.0));
            m.request(0.0, queued_legs);
            let policy = Degrade { budget_s: budget, ..Degrade::default() };
            let budget = budget * PLANNED_SHARE;
            match shape(&m, 0.0, legs, &policy) {
                DialShape::Full => prop_assert!(m.projected_wait_s(0.0, legs) <= budget),
                DialShape::PrimaryFirst => prop_assert!(m.queue_s(0.0) <= budget),
                DialShape::PrimaryOnly => prop_assert!(m.queue_s(0.0) > budget),
            }
        }
    }
}

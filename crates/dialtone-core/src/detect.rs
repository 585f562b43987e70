//! Drift detectors: the monitoring that would have seen the seed's slow climb.
//!
//! A plain threshold (the "sudden shift" monitoring of 2018) needs a large jump; CUSUM and EWMA
//! accumulate small, persistent ones. Both work on standardised samples z = (x − μ₀)/σ₀ against
//! a baseline. Multi-window burn-rate alerts watch an SLO; a trend forecast says when a rate
//! will reach a limit. Pure: samples and times are passed in.

use std::collections::VecDeque;

/// A baseline to standardise samples against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub mean: f64,
    pub sd: f64,
}

impl Baseline {
    pub fn z(&self, x: f64) -> f64 {
        (x - self.mean) / self.sd.max(1e-12)
    }

    /// Mean and standard deviation of `xs` (at least two samples).
    pub fn of(xs: &[f64]) -> Option<Self> {
        if xs.len() < 2 {
            return None;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Some(Self {
            mean,
            sd: var.sqrt(),
        })
    }
}

/// Upper one-sided CUSUM on standardised samples: S = max(0, S + z − k), alarm when S > h.
/// For a quantity that drifts down (a connect rate), feed −z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cusum {
    pub k: f64,
    pub h: f64,
    s: f64,
}

impl Cusum {
    pub fn new(k: f64, h: f64) -> Self {
        Self { k, h, s: 0.0 }
    }

    /// Adds a sample; `true` when it alarms (and the statistic restarts).
    pub fn push(&mut self, z: f64) -> bool {
        self.s = (self.s + z - self.k).max(0.0);
        if self.s > self.h {
            self.s = 0.0;
            return true;
        }
        false
    }

    pub fn statistic(&self) -> f64 {
        self.s
    }
}

/// EWMA of standardised samples, two-sided, with the steady-state limits ±L·√(λ/(2−λ)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    pub lambda: f64,
    pub l: f64,
    z: f64,
}

impl Ewma {
    pub fn new(lambda: f64, l: f64) -> Self {
        Self { lambda, l, z: 0.0 }
    }

    /// Adds a sample; `true` when the average leaves its limits (and restarts).
    pub fn push(&mut self, x: f64) -> bool {
        self.z = self.lambda * x + (1.0 - self.lambda) * self.z;
        let limit = self.l * (self.lambda / (2.0 - self.lambda)).sqrt();
        if self.z.abs() > limit {
            self.z = 0.0;
            return true;
        }
        false
    }

    pub fn value(&self) -> f64 {
        self.z
    }
}

/// The plain two-sided threshold |z| > limit: what "sudden shift" monitoring does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub limit: f64,
}

impl Threshold {
    pub fn push(&mut self, z: f64) -> bool {
        z.abs() > self.limit
    }
}

/// Good and bad events counted in fixed buckets, for error ratios over sliding windows.
#[derive(Debug, Clone)]
struct Buckets {
    bucket_s: f64,
    /// (bucket index, good, bad), oldest first.
    counts: VecDeque<(i64, u64, u64)>,
    keep: i64,
}

impl Buckets {
    fn add(&mut self, now: f64, good: bool) {
        let i = (now / self.bucket_s).floor() as i64;
        match self.counts.back_mut() {
            Some((b, g, x)) if *b == i => {
                if good {
                    *g += 1
                } else {
                    *x += 1
                }
            }
            _ => self
                .counts
                .push_back((i, u64::from(good), u64::from(!good))),
        }
        while self
            .counts
            .front()
            .is_some_and(|(b, _, _)| *b < i - self.keep)
        {
            self.counts.pop_front();
        }
    }

    /// The error ratio over the last `window_s` and how many events it saw.
    fn error_ratio(&self, now: f64, window_s: f64) -> (f64, u64) {
        let from = ((now - window_s) / self.bucket_s).floor() as i64;
        let (good, bad) = self
            .counts
            .iter()
            .filter(|(b, _, _)| *b > from)
            .fold((0, 0), |(g, x), (_, g2, x2)| (g + g2, x + x2));
        let total = good + bad;
        if total == 0 {
            (0.0, 0)
        } else {
            (bad as f64 / total as f64, total)
        }
    }
}

/// One alerting rule of a multi-window, multi-burn-rate SLO alert: both windows must burn the
/// error budget faster than `burn_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    pub long_s: f64,
    pub short_s: f64,
    pub burn_rate: f64,
}

/// The SRE workbook's paging pairs: 1 h and 5 min at 14.4; 6 h and 30 min at 6.
pub const PAGE_RULES: [BurnRule; 2] = [
    BurnRule {
        long_s: 3600.0,
        short_s: 300.0,
        burn_rate: 14.4,
    },
    BurnRule {
        long_s: 21600.0,
        short_s: 1800.0,
        burn_rate: 6.0,
    },
];

/// Multi-window, multi-burn-rate alerting on an SLO over good/bad events.
#[derive(Debug, Clone)]
pub struct BurnRateAlert {
    /// The objective: the fraction of events that must be good (e.g. 0.99 of calls connect).
    pub slo: f64,
    pub rules: Vec<BurnRule>,
    /// Windows with fewer events than this do not alert (a quiet night is not an outage).
    pub min_events: u64,
    buckets: Buckets,
}

impl BurnRateAlert {
    pub fn new(slo: f64, rules: &[BurnRule], min_events: u64) -> Self {
        let longest = rules.iter().map(|r| r.long_s).fold(0.0, f64::max);
        let bucket_s = 10.0;
        Self {
            slo,
            rules: rules.to_vec(),
            min_events,
            buckets: Buckets {
                bucket_s,
                counts: VecDeque::new(),
                keep: (longest / bucket_s).ceil() as i64 + 1,
            },
        }
    }

    pub fn record(&mut self, now: f64, good: bool) {
        self.buckets.add(now, good);
    }

    /// The first rule whose two windows both burn too fast at `now`.
    pub fn firing(&self, now: f64) -> Option<BurnRule> {
        let budget = (1.0 - self.slo).max(1e-12);
        self.rules.iter().copied().find(|r| {
            let (long, n_long) = self.buckets.error_ratio(now, r.long_s);
            let (short, n_short) = self.buckets.error_ratio(now, r.short_s);
            n_long >= self.min_events
                && n_short >= self.min_events
                && long / budget > r.burn_rate
                && short / budget > r.burn_rate
        })
    }
}

/// When a rate growing along the least-squares line through `samples` (time, rate) reaches
/// `limit`, in seconds after the last sample; `None` if it is not growing toward it. Zero if it
/// is already there.
pub fn time_to_limit(samples: &[(f64, f64)], limit: f64) -> Option<f64> {
    let (last_t, last_rate) = *samples.last()?;
    if last_rate >= limit {
        return Some(0.0);
    }
    if samples.len() < 3 {
        return None;
    }
    let n = samples.len() as f64;
    let mt = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mr = samples.iter().map(|s| s.1).sum::<f64>() / n;
    let cov: f64 = samples.iter().map(|(t, r)| (t - mt) * (r - mr)).sum();
    let var: f64 = samples.iter().map(|(t, _)| (t - mt).powi(2)).sum();
    if var <= 0.0 {
        return None;
    }
    let slope = cov / var;
    if slope <= 0.0 {
        return None;
    }
    let fitted_now = mr + slope * (last_t - mt);
    Some(((limit - fitted_now) / slope).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cusum_accumulates_what_a_threshold_ignores() {
        let mut c = Cusum::new(0.5, 5.0);
        let mut t = Threshold { limit: 3.0 };
        // A steady 1σ rise: never 3σ, but CUSUM gains 0.5 a sample and alarms on the 11th.
        let first = (1..=20).find(|_| c.push(1.0));
        assert_eq!(first, Some(11));
        assert!((0..20).all(|_| !t.push(1.0)));
    }

    #[test]
    fn burn_rate_needs_both_windows() {
        let mut a = BurnRateAlert::new(0.99, &PAGE_RULES, 10);
        // An hour of 1 % failures: exactly on budget, burn rate 1.
        for i in 0..3600 {
            a.record(f64::from(i), i % 100 != 0);
        }
        assert_eq!(a.firing(3600.0), None);
        // Then five minutes of 50 % failures: the 5-minute window burns at 50, the hour at
        // about 5 — under 14.4, so the fast pair holds.
        for i in 3600..3900 {
            a.record(f64::from(i), i % 2 == 0);
        }
        assert_eq!(a.firing(3900.0), None);
        // Half an hour of it: the hour burns at about 25 too.
        for i in 3900..5400 {
            a.record(f64::from(i), i % 2 == 0);
        }
        assert_eq!(a.firing(5400.0), Some(PAGE_RULES[0]));
    }

    #[test]
    fn a_rising_rate_is_forecast_to_reach_its_limit() {
        // 6 legs/s rising 1 leg/s per 10 minutes: 10/s in 40 minutes.
        let samples: Vec<(f64, f64)> = (0..=10)
            .map(|m| (f64::from(m) * 60.0, 6.0 + f64::from(m) * 0.1))
            .collect();
        let eta = time_to_limit(&samples, 10.0);
        assert!(eta.is_some_and(|s| (s - 1800.0).abs() < 1e-6), "{eta:?}");
        let flat: Vec<(f64, f64)> = (0..10).map(|m| (f64::from(m), 6.0)).collect();
        assert_eq!(time_to_limit(&flat, 10.0), None);
        assert_eq!(time_to_limit(&[(0.0, 11.0)], 10.0), Some(0.0));
    }
}

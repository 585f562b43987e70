//! The monitors behind dialtone's alerts on one carrier account: what the server sees of its
//! dials (legs asked for, their setup waits, first rings, how calls ended) turned into alerts
//! worth a person's attention. Pure: times are seconds on any monotonic timeline, passed in.
//!
//! Beside the limit forecast and the "degrading" share, each watched signal has a [`Drift`]:
//! a baseline learnt from its first windows, then a plain 3σ threshold (what 2018's monitoring
//! did), CUSUM and EWMA on the standardised window means, whichever fires first. Connect and
//! setup objectives have multi-window burn-rate alerts.

use std::collections::{HashMap, VecDeque};

use crate::admission::SetupLimit;
use crate::detect::{
    Baseline, BurnRateAlert, BurnRule, Cusum, Ewma, PAGE_RULES, Threshold, time_to_limit,
};

/// An alert to raise: its kind, what to tell a person, and the number it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// limit_forecast, degrading, setup_slo_burn, connect_slo_burn, dial_delay_drift,
    /// post_dial_delay_drift, connect_rate_drift (and the server's effective_limit).
    pub kind: &'static str,
    pub message: String,
    pub value: f64,
}

/// Seconds before an alert of the same kind is raised again.
pub const REALERT_S: f64 = 900.0;
/// Share of a minute's calls shaped before "degrading" is raised: a few calls are shaped at any
/// load by bursts of simulcalls, and that is dial admission working, not news.
pub const DEGRADING_SHARE: f64 = 0.1;
/// The setup objective: this share of legs are set up within `SETUP_SLO_S` of being asked for.
pub const SETUP_SLO: f64 = 0.99;
pub const SETUP_SLO_S: f64 = 2.0;
/// The connect objective: this share of dialed calls reach ringing phones before the caller
/// gives up (what the seed's queue took from callers).
pub const CONNECT_SLO: f64 = 0.99;
/// Windows learnt as a signal's baseline before its detectors watch.
pub const WARMUP_WINDOWS: usize = 30;
/// Sudden-shift monitoring's window, and how many of them its moving baseline spans.
pub const SUDDEN_SHIFT_WINDOW_S: f64 = 300.0;
pub const SUDDEN_SHIFT_BASELINE_WINDOWS: usize = 12;

/// What watches the signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Monitoring {
    /// Drift detectors against a learnt baseline (CUSUM, EWMA, 3σ), burn-rate alerts on the
    /// objectives, the limit forecast.
    #[default]
    Drift,
    /// What the 2018 platform had: a 3σ threshold against the recent past only, so a slow climb
    /// moves the baseline with it (for replaying the seed's outage as it happened).
    SuddenShift,
}

/// Which way a signal goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worse {
    Up,
    Down,
}

/// A drift watcher on one signal, averaged over fixed windows.
#[derive(Debug, Clone)]
pub struct Drift {
    window_s: f64,
    worse: Worse,
    /// The smallest standard deviation worth standardising by (signals near a floor vary by
    /// almost nothing, and every wobble would look like a shift).
    sd_floor: f64,
    /// Changes smaller than this from the baseline are not alerted.
    worth: f64,
    /// The current window: (start, sum, count).
    window: (f64, f64, u32),
    warmup: Vec<f64>,
    baseline: Option<Baseline>,
    threshold: Threshold,
    cusum: Cusum,
    ewma: Ewma,
    /// The last complete window's mean.
    last: Option<f64>,
    /// Sudden-shift mode: the baseline is the last windows', and only the threshold watches.
    rolling: Option<VecDeque<f64>>,
}

/// A drift found: the window's mean, the baseline's, and which detector saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drifted {
    pub mean: f64,
    pub baseline: f64,
    pub detector: &'static str,
}

impl Drift {
    pub fn new(window_s: f64, worse: Worse, sd_floor: f64, worth: f64) -> Self {
        Self {
            window_s,
            worse,
            sd_floor,
            worth,
            window: (f64::NEG_INFINITY, 0.0, 0),
            warmup: Vec::new(),
            baseline: None,
            threshold: Threshold { limit: 3.0 },
            // Page's textbook settings: CUSUM k = 0.5, h = 5; EWMA λ = 0.2, L = 3.
            cusum: Cusum::new(0.5, 5.0),
            ewma: Ewma::new(0.2, 3.0),
            last: None,
            rolling: None,
        }
    }

    /// The same signal watched as 2018's monitoring did: 5-minute averages, each against a 3σ
    /// threshold over the hour before it.
    pub fn sudden_shift(mut self) -> Self {
        self.window_s = SUDDEN_SHIFT_WINDOW_S;
        self.rolling = Some(VecDeque::new());
        self
    }

    /// The last complete window's mean.
    pub fn last(&self) -> Option<f64> {
        self.last
    }

    pub fn baseline(&self) -> Option<Baseline> {
        self.baseline
    }

    /// One observation `x` at `now`. When a window closes, its mean is standardised against the
    /// baseline and given to the detectors.
    pub fn push(&mut self, now: f64, x: f64) -> Option<Drifted> {
        let mut found = None;
        if now - self.window.0 >= self.window_s {
            let (start, sum, n) = self.window;
            if start.is_finite() && n > 0 {
                found = self.close(sum / f64::from(n));
            }
            self.window = (now, 0.0, 0);
        }
        self.window.1 += x;
        self.window.2 += 1;
        found
    }

    fn close(&mut self, mean: f64) -> Option<Drifted> {
        self.last = Some(mean);
        if let Some(recent) = &mut self.rolling {
            let baseline = Baseline::of(recent.make_contiguous())
                .filter(|_| recent.len() >= SUDDEN_SHIFT_BASELINE_WINDOWS);
            recent.push_back(mean);
            if recent.len() > SUDDEN_SHIFT_BASELINE_WINDOWS {
                recent.pop_front();
            }
            let (b, z) = self.standardise(baseline?, mean);
            return (z > self.threshold.limit)
                .then(|| self.worth_telling(b, mean, "3σ threshold"))
                .flatten();
        }
        let Some(b) = self.baseline else {
            self.warmup.push(mean);
            if self.warmup.len() >= WARMUP_WINDOWS {
                self.baseline = Baseline::of(&self.warmup).map(|b| self.standardise(b, mean).0);
            }
            return None;
        };
        let (b, z) = self.standardise(b, mean);
        // Every detector sees every window, so each keeps its own statistic. The threshold and
        // EWMA are two-sided: their alarms count when the window points the bad way.
        let sudden = self.threshold.push(z) && z > 0.0;
        let cusum = self.cusum.push(z);
        let ewma = self.ewma.push(z) && z > 0.0;
        let detector = if sudden {
            "3σ threshold"
        } else if cusum {
            "CUSUM"
        } else if ewma {
            "EWMA"
        } else {
            return None;
        };
        self.worth_telling(b, mean, detector)
    }

    /// The baseline with its spread floored, and `mean` standardised against it the bad way up.
    fn standardise(&self, b: Baseline, mean: f64) -> (Baseline, f64) {
        let b = Baseline {
            sd: b.sd.max(self.sd_floor),
            ..b
        };
        let z = match self.worse {
            Worse::Up => b.z(mean),
            Worse::Down => -b.z(mean),
        };
        (b, z)
    }

    /// A drift found by `detector`, if `mean` moved from the baseline by more than is worth a
    /// person's attention.
    fn worth_telling(&self, b: Baseline, mean: f64, detector: &'static str) -> Option<Drifted> {
        let change = match self.worse {
            Worse::Up => mean - b.mean,
            Worse::Down => b.mean - mean,
        };
        (change > self.worth).then_some(Drifted {
            mean,
            baseline: b.mean,
            detector,
        })
    }
}

/// The message of a burn-rate alert on the objective that `slo` of `what` go well.
fn burning(what: &str, slo: f64, rule: &BurnRule) -> String {
    format!(
        "{what}: burning the {:.0} % objective's error budget {:.0} x too fast (last {:.0} min and {:.0} min)",
        slo * 100.0,
        rule.burn_rate,
        rule.long_s / 60.0,
        rule.short_s / 60.0
    )
}

/// What became of a call that dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialedCall {
    /// A leg rang before the caller hung up: the carrier connected the call to the phones.
    pub rang: bool,
    pub answered: bool,
    /// The caller hung up before anyone answered and before the dial ended on its own.
    pub abandoned: bool,
}

/// The monitors of one carrier account.
#[derive(Debug, Clone)]
pub struct Monitor {
    mode: Monitoring,
    /// The current minute: (start, legs asked for, calls dialed, calls shaped).
    minute: (f64, u64, u32, u32),
    /// Legs per second asked for in each of the last minutes.
    rates: VecDeque<(f64, f64)>,
    setup_burn: BurnRateAlert,
    connect_burn: BurnRateAlert,
    /// Seconds from asking for a leg to its setup (initiated): the carrier's queue.
    pub setup_wait: Drift,
    /// Seconds from a dial to its first ringing leg.
    pub post_dial_delay: Drift,
    /// Share of dialed calls that reached ringing phones, per minute.
    pub connect: Drift,
    /// Share of dialed calls abandoned, per minute.
    pub abandoned: Drift,
    last_raised: HashMap<&'static str, f64>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new(Monitoring::Drift)
    }
}

impl Monitor {
    pub fn new(mode: Monitoring) -> Self {
        let watch = |d: Drift| match mode {
            Monitoring::Drift => d,
            Monitoring::SuddenShift => d.sudden_shift(),
        };
        Self {
            mode,
            minute: (f64::NEG_INFINITY, 0, 0, 0),
            rates: VecDeque::new(),
            setup_burn: BurnRateAlert::new(SETUP_SLO, &PAGE_RULES, 50),
            connect_burn: BurnRateAlert::new(CONNECT_SLO, &PAGE_RULES, 50),
            // Waits near zero vary by milliseconds: a quarter second is the smallest spread worth
            // standardising by; drifts under the 1 s budget are not worth a person's attention.
            setup_wait: watch(Drift::new(10.0, Worse::Up, 0.25, 1.0)),
            post_dial_delay: watch(Drift::new(10.0, Worse::Up, 0.25, 1.0)),
            // A minute's connect rate moves by a point or two with who calls; five points is news.
            connect: watch(Drift::new(60.0, Worse::Down, 0.02, 0.05)),
            abandoned: watch(Drift::new(60.0, Worse::Up, 0.02, 0.05)),
            last_raised: HashMap::new(),
        }
    }

    pub fn mode(&self) -> Monitoring {
        self.mode
    }

    /// Whether objectives, forecasts and estimates are watched (not in sudden-shift mode).
    fn drift(&self) -> bool {
        self.mode == Monitoring::Drift
    }

    /// Whether an alert of `kind` may be raised at `now` (not raised in the last 15 minutes);
    /// records it when it may.
    pub fn due(&mut self, kind: &'static str, now: f64) -> bool {
        match self.last_raised.get(kind) {
            Some(t) if now - t < REALERT_S => false,
            _ => {
                self.last_raised.insert(kind, now);
                true
            }
        }
    }

    fn raise(
        &mut self,
        out: &mut Vec<Raised>,
        kind: &'static str,
        now: f64,
        message: String,
        value: f64,
    ) {
        if self.due(kind, now) {
            out.push(Raised {
                kind,
                message,
                value,
            });
        }
    }

    /// Legs asked for at `now`; at the turn of a minute, the forecast and degradation checks.
    pub fn dialed(
        &mut self,
        now: f64,
        legs: u64,
        shaped: bool,
        limit: Option<SetupLimit>,
    ) -> Vec<Raised> {
        let mut raised = Vec::new();
        if now - self.minute.0 >= 60.0 {
            let (start, legs, calls, degraded) = self.minute;
            if start.is_finite() {
                let rate = legs as f64 / (now - start);
                self.rates.push_back((now, rate));
                while self.rates.len() > 15 {
                    self.rates.pop_front();
                }
                if let Some(limit) = limit.filter(|_| self.drift()) {
                    let eta = if self.rates.len() >= 10 {
                        let samples: Vec<(f64, f64)> = self.rates.iter().copied().collect();
                        time_to_limit(&samples, limit.rate())
                    } else {
                        None
                    };
                    if let Some(eta) = eta.filter(|s| *s < 1800.0) {
                        let message = if rate >= limit.rate() {
                            format!(
                                "legs asked of the carrier: {rate:.1}/s, over its limit of {:.1}/s",
                                limit.rate()
                            )
                        } else {
                            format!(
                                "legs asked of the carrier: {rate:.1}/s and rising; at this trend they reach the limit of {:.1}/s in {:.0} min",
                                limit.rate(),
                                eta / 60.0
                            )
                        };
                        self.raise(&mut raised, "limit_forecast", now, message, eta / 60.0);
                    }
                }
                let ratio = f64::from(degraded) / f64::from(calls.max(1));
                if degraded >= 3 && ratio > DEGRADING_SHARE && self.drift() {
                    let message = format!(
                        "dial admission shaped {:.0} % of last minute's calls: the carrier's limit is reached",
                        ratio * 100.0
                    );
                    self.raise(&mut raised, "degrading", now, message, ratio);
                }
            }
            self.minute = (now, 0, 0, 0);
        }
        self.minute.1 += legs;
        self.minute.2 += 1;
        self.minute.3 += u32::from(shaped);
        raised
    }

    /// A leg was set up `wait` s after it was asked for, at `now`.
    pub fn leg_set_up(&mut self, now: f64, wait: f64) -> Vec<Raised> {
        let mut raised = Vec::new();
        self.setup_burn.record(now, wait <= SETUP_SLO_S);
        if let Some(rule) = self.setup_burn.firing(now).filter(|_| self.drift()) {
            let message = burning(
                &format!("legs set up within {SETUP_SLO_S:.0} s"),
                SETUP_SLO,
                &rule,
            );
            self.raise(&mut raised, "setup_slo_burn", now, message, rule.burn_rate);
        }
        if let Some(d) = self.setup_wait.push(now, wait) {
            let message = format!(
                "legs wait {:.1} s for the carrier to set them up, up from {:.1} s ({}): its dial queue is growing",
                d.mean, d.baseline, d.detector
            );
            self.raise(&mut raised, "dial_delay_drift", now, message, d.mean);
        }
        raised
    }

    /// A dial's first leg rang `delay` s after the dial, at `now`.
    pub fn first_ring(&mut self, now: f64, delay: f64) -> Vec<Raised> {
        let mut raised = Vec::new();
        if let Some(d) = self.post_dial_delay.push(now, delay) {
            let message = format!(
                "callers wait {:.1} s from the dial to the first ring, up from {:.1} s ({})",
                d.mean, d.baseline, d.detector
            );
            self.raise(&mut raised, "post_dial_delay_drift", now, message, d.mean);
        }
        raised
    }

    /// A call that dialed ended at `now`.
    pub fn call_ended(&mut self, now: f64, call: DialedCall) -> Vec<Raised> {
        let mut raised = Vec::new();
        self.connect_burn.record(now, call.rang);
        if let Some(rule) = self.connect_burn.firing(now).filter(|_| self.drift()) {
            let message = burning("dialed calls reaching a ringing phone", CONNECT_SLO, &rule);
            self.raise(
                &mut raised,
                "connect_slo_burn",
                now,
                message,
                rule.burn_rate,
            );
        }
        if let Some(d) = self.connect.push(now, f64::from(u8::from(call.rang))) {
            let message = format!(
                "{:.0} % of dialed calls reach a ringing phone, down from {:.0} % ({})",
                d.mean * 100.0,
                d.baseline * 100.0,
                d.detector
            );
            self.raise(&mut raised, "connect_rate_drift", now, message, d.mean);
        }
        if let Some(d) = self
            .abandoned
            .push(now, f64::from(u8::from(call.abandoned)))
        {
            let message = format!(
                "{:.0} % of dialed callers hang up before an answer, up from {:.0} % ({})",
                d.mean * 100.0,
                d.baseline * 100.0,
                d.detector
            );
            self.raise(&mut raised, "abandonment_drift", now, message, d.mean);
        }
        raised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal steady at 0.2 s (±0.05) for the warm-up, then 0.5 s higher each 10 minutes.
    #[test]
    fn a_slow_climb_in_waits_is_seen_before_it_reaches_seconds() {
        let mut d = Drift::new(10.0, Worse::Up, 0.25, 1.0);
        let mut t = 0.0;
        let mut seen = None;
        for i in 0..2000 {
            t += 1.0;
            let climb = if t > 600.0 { (t - 600.0) / 1200.0 } else { 0.0 };
            let wobble = if i % 2 == 0 { 0.05 } else { -0.05 };
            if let Some(found) = d.push(t, 0.2 + climb + wobble) {
                seen = Some((t, found));
                break;
            }
        }
        let (at, found) = seen.expect("the climb is seen");
        // Worth telling only past 1 s over the baseline: at 1.2 s, 1,440 s into the climb.
        assert!(found.mean > 1.2 && found.mean < 1.6, "{found:?}");
        assert!(at < 600.0 + 1.6 * 1200.0, "{at}");
        assert!((found.baseline - 0.2).abs() < 0.01);
    }

    /// The climb of the seed's afternoon, watched as in 2018: the moving baseline climbs along.
    #[test]
    fn sudden_shift_monitoring_misses_a_slow_climb_that_drift_detection_sees() {
        let run = |d: &mut Drift| {
            let mut t = 0.0_f64;
            for i in 0..6000 {
                t += 1.0;
                // 0.2 s for 20 minutes, then 1 s more every 10 minutes, to 8 s.
                let climb = ((t - 1200.0) / 600.0).clamp(0.0, 7.8);
                let wobble = if i % 2 == 0 { 0.05 } else { -0.05 };
                if d.push(t, 0.2 + climb + wobble).is_some() {
                    return Some(t);
                }
            }
            None
        };
        let drift = run(&mut Drift::new(10.0, Worse::Up, 0.25, 1.0)).expect("seen");
        assert!(drift < 1200.0 + 900.0, "{drift}");
        assert_eq!(
            run(&mut Drift::new(10.0, Worse::Up, 0.25, 1.0).sudden_shift()),
            None
        );
        // A sudden jump of seconds is what it does see.
        let mut sudden = Drift::new(10.0, Worse::Up, 0.25, 1.0).sudden_shift();
        let jumped = (1..12_000).find(|&i| {
            let x = if i > 6000 {
                5.0
            } else {
                0.2 + f64::from(i % 2) * 0.1
            };
            sudden.push(f64::from(i), x).is_some()
        });
        assert!(
            jumped.is_some_and(|i| i > 6000 && i <= 6000 + 600),
            "{jumped:?}"
        );
    }

    #[test]
    fn a_falling_connect_rate_is_seen_and_a_rising_one_is_not() {
        let mut up = Drift::new(60.0, Worse::Down, 0.02, 0.05);
        let mut down = Drift::new(60.0, Worse::Down, 0.02, 0.05);
        let mut t = 0.0;
        let (mut fired_up, mut fired_down) = (false, false);
        for minute in 0..120 {
            for call in 0..100 {
                t = f64::from(minute) * 60.0 + f64::from(call) * 0.6;
                // 99 % connect during the warm-up; afterwards one gets better, the other worse.
                let rate_up = if minute < 40 { 99 } else { 100 };
                let rate_down = if minute < 40 { 99 } else { 90 };
                fired_up |= up.push(t, f64::from(u8::from(call < rate_up))).is_some();
                fired_down |= down
                    .push(t, f64::from(u8::from(call < rate_down)))
                    .is_some();
            }
        }
        assert!(t > 0.0);
        assert!(fired_down, "a 9-point fall is news");
        assert!(!fired_up, "a rise is not");
    }

    #[test]
    fn abandoned_calls_burn_the_connect_objective() {
        let mut m = Monitor::default();
        let mut raised: Vec<(f64, &str)> = Vec::new();
        for i in 0..10_000 {
            let t = f64::from(i) * 0.5;
            // After 40 minutes (the baselines are learnt in 30), one call in five is abandoned
            // before any phone rings.
            let lost = t > 2400.0 && i % 5 == 0;
            let call = DialedCall {
                rang: !lost,
                answered: !lost,
                abandoned: lost,
            };
            raised.extend(m.call_ended(t, call).into_iter().map(|r| (t, r.kind)));
        }
        for kind in [
            "connect_slo_burn",
            "connect_rate_drift",
            "abandonment_drift",
        ] {
            let times: Vec<f64> = raised.iter().filter(|r| r.1 == kind).map(|r| r.0).collect();
            assert!(!times.is_empty(), "{kind}: {raised:?}");
            assert!(times[0] > 2400.0, "{kind} before the onset: {raised:?}");
            // At most once in 15 minutes.
            assert!(
                times.windows(2).all(|w| w[1] - w[0] >= REALERT_S),
                "{raised:?}"
            );
        }
        // The drift detectors see it within minutes, before the hour-long burn windows.
        let first = |kind| {
            raised
                .iter()
                .find(|r| r.1 == kind)
                .map(|r| r.0)
                .unwrap_or(f64::MAX)
        };
        assert!(first("connect_rate_drift") < 2400.0 + 300.0, "{raised:?}");
    }
}

//! The server's side of dial admission: one GCRA mirror per carrier account, fed with every
//! leg dialtone asks for, and an estimator fed with when legs actually start (their `initiated`
//! callbacks). Flows ask it how many legs a dial may have ([`engine::Admission`]).
//!
//! Everything here is what a real server sees: its own configuration, the webhooks it answers
//! and the callbacks it gets. Time is the server's clock, in seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dialtone_core::admission::{Degrade, DialMirror, DialShape, LimitEstimator, SetupLimit, shape};
use dialtone_core::config::CarrierAccount;
use dialtone_core::detect::{Baseline, BurnRateAlert, Cusum, PAGE_RULES, time_to_limit};
use dialtone_core::engine;

use crate::telemetry::ALERTS;

/// Seconds a dial's request time is remembered for its legs' callbacks.
const ASKED_TTL_S: f64 = 300.0;
/// Dials remembered at most (memory stays bounded at any call rate).
const ASKED_MAX: usize = 100_000;
/// Legs waiting more than this are in the carrier's queue, for the estimator (the speech before
/// a dial is estimated, so some slack).
const QUEUED_S: f64 = 1.0;

pub fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Something an operator should know, raised by the monitors below.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// limit_forecast, dial_delay_drift, slo_burn, degrading, effective_limit.
    pub kind: &'static str,
    pub carrier_account_sid: String,
    pub at: DateTime<Utc>,
    pub message: String,
    /// The number the alert is about (minutes to the limit, seconds of delay, a ratio, a rate).
    pub value: f64,
}

/// Seconds before an alert of the same kind for the same account is raised again.
const REALERT_S: f64 = 900.0;
/// Seconds of observed leg waits averaged into one detector sample.
const SAMPLE_S: f64 = 10.0;
/// Samples learnt as the baseline before the drift detector watches.
const WARMUP_SAMPLES: usize = 30;
/// A drift in observed leg waits smaller than this is not alerted: the default added-delay
/// budget, below which callers hear at most part of an extra ring.
const DRIFT_WORTH_S: f64 = 1.0;
/// Share of a minute's calls shaped before "degrading" is raised: a few calls are shaped at any
/// load by bursts of simulcalls, and that is dial admission working, not news.
const DEGRADING_SHARE: f64 = 0.1;
/// The setup SLO: this share of legs ring within `SETUP_SLO_S` of being asked for.
const SETUP_SLO: f64 = 0.99;
const SETUP_SLO_S: f64 = 2.0;

/// The drift monitors of one carrier account.
struct Monitor {
    /// Observed waits of the current sample: (sample start, sum, count).
    sample: (f64, f64, u32),
    warmup: Vec<f64>,
    baseline: Option<Baseline>,
    cusum: Cusum,
    /// The current minute: (start, legs asked for, calls dialed, calls shaped).
    minute: (f64, u64, u32, u32),
    /// Legs per second asked for in each of the last minutes.
    rates: VecDeque<(f64, f64)>,
    /// Multi-window burn rate of the setup SLO.
    burn: BurnRateAlert,
    last_raised: HashMap<&'static str, f64>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            sample: (f64::NEG_INFINITY, 0.0, 0),
            warmup: Vec::new(),
            baseline: None,
            cusum: Cusum::new(0.5, 5.0),
            minute: (f64::NEG_INFINITY, 0, 0, 0),
            rates: VecDeque::new(),
            burn: BurnRateAlert::new(SETUP_SLO, &PAGE_RULES, 50),
            last_raised: HashMap::new(),
        }
    }
}

impl Monitor {
    fn due(&mut self, kind: &'static str, now: f64) -> bool {
        match self.last_raised.get(kind) {
            Some(t) if now - t < REALERT_S => false,
            _ => {
                self.last_raised.insert(kind, now);
                true
            }
        }
    }

    /// Legs asked for at `now`; at the turn of a minute, the forecast and degradation checks.
    fn dialed(
        &mut self,
        now: f64,
        legs: u64,
        shaped: bool,
        limit: Option<SetupLimit>,
    ) -> Vec<(&'static str, String, f64)> {
        let mut raised = Vec::new();
        if now - self.minute.0 >= 60.0 {
            let (start, legs, calls, degraded) = self.minute;
            if start.is_finite() {
                let rate = legs as f64 / (now - start);
                self.rates.push_back((now, rate));
                while self.rates.len() > 15 {
                    self.rates.pop_front();
                }
                if let Some(limit) = limit {
                    let eta = if self.rates.len() >= 10 {
                        let samples: Vec<(f64, f64)> = self.rates.iter().copied().collect();
                        time_to_limit(&samples, limit.rate())
                    } else {
                        None
                    };
                    if let Some(eta) = eta.filter(|s| *s < 1800.0)
                        && self.due("limit_forecast", now)
                    {
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
                        raised.push(("limit_forecast", message, eta / 60.0));
                    }
                }
                let ratio = f64::from(degraded) / f64::from(calls.max(1));
                if degraded >= 3 && ratio > DEGRADING_SHARE && self.due("degrading", now) {
                    raised.push((
                        "degrading",
                        format!(
                            "dial admission shaped {:.0} % of last minute's calls: the carrier's limit is reached",
                            ratio * 100.0
                        ),
                        ratio,
                    ));
                }
            }
            self.minute = (now, 0, 0, 0);
        }
        self.minute.1 += legs;
        self.minute.2 += 1;
        self.minute.3 += u32::from(shaped);
        raised
    }

    /// A leg waited `wait` s between being asked for and its initiated callback, at `now`.
    fn leg_waited(&mut self, now: f64, wait: f64) -> Vec<(&'static str, String, f64)> {
        let mut raised = Vec::new();
        self.burn.record(now, wait <= SETUP_SLO_S);
        if let Some(rule) = self.burn.firing(now)
            && self.due("slo_burn", now)
        {
            raised.push((
                "slo_burn",
                format!(
                    "legs ringing within {SETUP_SLO_S:.0} s: burning the {:.0} % objective's error budget over {:.0} x too fast (last {:.0} min and {:.0} min)",
                    SETUP_SLO * 100.0,
                    rule.burn_rate,
                    rule.long_s / 60.0,
                    rule.short_s / 60.0
                ),
                rule.burn_rate,
            ));
        }
        if now - self.sample.0 >= SAMPLE_S {
            let (start, sum, n) = self.sample;
            if start.is_finite() && n > 0 {
                let mean = sum / f64::from(n);
                match self.baseline {
                    None => {
                        self.warmup.push(mean);
                        if self.warmup.len() >= WARMUP_SAMPLES {
                            self.baseline = Baseline::of(&self.warmup).map(|b| Baseline {
                                // Waits near zero vary by milliseconds: a quarter second is the
                                // smallest spread worth standardising by.
                                sd: b.sd.max(0.25),
                                ..b
                            });
                        }
                    }
                    Some(b) => {
                        // Drifts smaller than the budget are not worth a person's attention.
                        let worth_telling = mean - b.mean > DRIFT_WORTH_S;
                        if self.cusum.push(b.z(mean))
                            && worth_telling
                            && self.due("dial_delay_drift", now)
                        {
                            raised.push((
                                "dial_delay_drift",
                                format!(
                                    "legs wait {mean:.1} s for the carrier to set them up, up from {:.1} s: its dial queue is growing",
                                    b.mean
                                ),
                                mean,
                            ));
                        }
                    }
                }
            }
            self.sample = (now, 0.0, 0);
        }
        self.sample.1 += wait;
        self.sample.2 += 1;
        raised
    }
}

struct Account {
    monitor: Monitor,
    configured: Option<SetupLimit>,
    mirror: Option<DialMirror>,
    estimator: LimitEstimator,
    /// Parent call sid → when its current dial was asked for.
    asked: HashMap<String, f64>,
    /// The same entries oldest first, to forget them in constant time per call.
    asked_order: VecDeque<(f64, String)>,
    /// The effective limit as last estimated (setups per second).
    estimated: Option<f64>,
}

impl Account {
    fn new(configured: Option<SetupLimit>) -> Self {
        Self {
            monitor: Monitor::default(),
            configured,
            mirror: configured.map(DialMirror::new),
            estimator: LimitEstimator::new(60.0, QUEUED_S),
            asked: HashMap::new(),
            asked_order: VecDeque::new(),
            estimated: None,
        }
    }

    /// The limit to shape by: the configured one, or what the carrier's behaviour shows when that
    /// is lower (or there is none).
    fn effective(&self) -> Option<SetupLimit> {
        match (self.configured, self.estimated) {
            (Some(c), Some(e)) if e < c.rate() * 0.95 => Some(SetupLimit::per_second(e)),
            (Some(c), _) => Some(c),
            (None, Some(e)) => Some(SetupLimit::per_second(e)),
            (None, None) => None,
        }
    }
}

/// What admission knows about one carrier account, for metrics and the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountStatus {
    pub account_sid: String,
    pub configured_limit_per_s: Option<f64>,
    pub estimated_limit_per_s: Option<f64>,
    pub offered_legs_per_s: f64,
    pub utilisation: Option<f64>,
    pub predicted_queue_s: f64,
    pub observed_queue_s: Option<f64>,
}

#[derive(Default)]
pub struct Admission {
    accounts: Mutex<HashMap<String, Account>>,
    degraded_calls: AtomicU64,
    alerts: Mutex<VecDeque<Alert>>,
    /// Where alerts are posted as JSON (Slack-compatible `text`), if anywhere.
    webhook: Mutex<Option<String>>,
}

/// Alerts kept for the API.
const ALERTS_KEPT: usize = 1000;

impl Admission {
    fn with_account<T>(&self, carrier: &CarrierAccount, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Looked up by reference: the key is copied only for a new account, not on every call.
        if !accounts.contains_key(&carrier.account_sid) {
            accounts.insert(
                carrier.account_sid.clone(),
                Account::new(carrier.dial_limit),
            );
        }
        let Some(account) = accounts.get_mut(&carrier.account_sid) else {
            unreachable!("inserted above")
        };
        // The configuration may have been reloaded with another limit.
        account.configured = carrier.dial_limit;
        match (account.effective(), &mut account.mirror) {
            (Some(limit), Some(m)) if m.limit() != limit => m.set_limit(limit),
            (Some(limit), None) => account.mirror = Some(DialMirror::new(limit)),
            _ => {}
        }
        f(account)
    }

    /// The engine's view for one call on `carrier` at `now`.
    pub fn for_call<'a>(
        &'a self,
        carrier: &'a CarrierAccount,
        policy: Degrade,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Shaper<'a> {
        Shaper {
            admission: self,
            carrier,
            policy,
            enabled,
            now: seconds(now),
        }
    }

    /// A flow asked the carrier for `legs` legs of `call_sid`'s dial at `now`; the carrier will
    /// reach the `<Dial>` `speech_s` later (after what the caller hears first).
    ///
    /// The mirror counts the legs at `now`, when the decision is made: a reservation in decision
    /// order, so no later decision can queue ahead of an earlier one's legs by more than that
    /// call's speech. (Counting them at their dial instant instead let calls decided later but
    /// dialing sooner push earlier decisions past their budget: replayed May 14, p95 added delay
    /// 1.6 s against 0.8 s.) Observed waits start when the Dial runs.
    pub fn dialed(
        &self,
        carrier: &CarrierAccount,
        call_sid: &str,
        now: DateTime<Utc>,
        speech_s: f64,
        legs: usize,
        degraded: bool,
    ) {
        if degraded {
            self.degraded_calls.fetch_add(1, Ordering::Relaxed);
        }
        if legs == 0 {
            return;
        }
        let at = now;
        let now = seconds(now);
        let raised = self.with_account(carrier, |a| {
            if let Some(m) = &mut a.mirror {
                m.advance(now);
                m.request(now, u32::try_from(legs).unwrap_or(u32::MAX));
            }
            // Forget dials older than the TTL, or the oldest past the cap: O(1) per call (a scan
            // of the map per call cost 100 µs a webhook at 30,000 calls a second).
            while a
                .asked_order
                .front()
                .is_some_and(|(t, _)| now - *t > ASKED_TTL_S || a.asked_order.len() > ASKED_MAX)
            {
                if let Some((t, sid)) = a.asked_order.pop_front()
                    && a.asked.get(&sid) == Some(&t)
                {
                    a.asked.remove(&sid);
                }
            }
            let dial_at = now + speech_s;
            a.asked.insert(call_sid.to_owned(), dial_at);
            a.asked_order.push_back((dial_at, call_sid.to_owned()));
            let limit = a.effective();
            a.monitor.dialed(now, legs as u64, degraded, limit)
        });
        self.raise(carrier, at, raised);
    }

    fn raise(
        &self,
        carrier: &CarrierAccount,
        at: DateTime<Utc>,
        raised: Vec<(&'static str, String, f64)>,
    ) {
        for (kind, message, value) in raised {
            tracing::warn!(kind, carrier_account = %carrier.name, "alert: {message}");
            metrics::counter!(ALERTS, "kind" => kind).increment(1);
            let alert = Alert {
                kind,
                carrier_account_sid: carrier.account_sid.clone(),
                at,
                message,
                value,
            };
            self.post(&alert, &carrier.name);
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            if alerts.len() >= ALERTS_KEPT {
                alerts.pop_front();
            }
            alerts.push_back(alert);
        }
    }

    /// Sends `alert` to the configured webhook, without waiting for it.
    fn post(&self, alert: &Alert, carrier_name: &str) {
        let Some(url) = self
            .webhook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = serde_json::json!({
            "text": format!("dialtone: {} ({carrier_name})", alert.message),
            "alert": alert,
        });
        runtime.spawn(async move {
            let sent = reqwest::Client::new()
                .post(&url)
                .json(&body)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await;
            if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(%url, "alert webhook failed: {e}");
            }
        });
    }

    /// Where alerts are posted (from the configuration; `None` stops posting).
    pub fn set_webhook(&self, url: Option<String>) {
        *self.webhook.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// Alerts raised so far, oldest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// A leg of `parent_sid` was set up (its `initiated` callback) at `now`.
    pub fn leg_started(&self, carrier: &CarrierAccount, parent_sid: &str, now: DateTime<Utc>) {
        let at = now;
        let now = seconds(now);
        let raised = self.with_account(carrier, |a| {
            let Some(&asked) = a.asked.get(parent_sid) else {
                return Vec::new();
            };
            a.estimator.leg_started(asked, now);
            let mut raised = a.monitor.leg_waited(now, now - asked);
            if let Some(rate) = a.estimator.effective_rate(now) {
                let first = a.estimated.is_none();
                a.estimated = Some(rate);
                let below_configured = a.configured.is_none_or(|c| rate < c.rate() * 0.95);
                if first && below_configured && a.monitor.due("effective_limit", now) {
                    let configured = match a.configured {
                        Some(c) => format!(" (configured: {:.1}/s)", c.rate()),
                        None => " (none configured)".to_owned(),
                    };
                    raised.push((
                        "effective_limit",
                        format!(
                            "effective dial limit ≈ {rate:.1}/s{configured}: legs are queueing at the carrier"
                        ),
                        rate,
                    ));
                }
            }
            raised
        });
        self.raise(carrier, at, raised);
    }

    /// Calls whose dial was shaped.
    pub fn degraded_calls(&self) -> u64 {
        self.degraded_calls.load(Ordering::Relaxed)
    }

    pub fn status(&self, now: DateTime<Utc>) -> Vec<AccountStatus> {
        let now = seconds(now);
        let accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out: Vec<AccountStatus> = accounts
            .iter()
            .map(|(sid, a)| AccountStatus {
                account_sid: sid.clone(),
                configured_limit_per_s: a.configured.map(|l| l.rate()),
                estimated_limit_per_s: a.estimated,
                offered_legs_per_s: a.mirror.as_ref().map_or(0.0, DialMirror::offered_rate),
                utilisation: a.mirror.as_ref().map(DialMirror::utilisation),
                predicted_queue_s: a.mirror.as_ref().map_or(0.0, |m| m.queue_s(now)),
                observed_queue_s: a.estimator.mean_wait_s(),
            })
            .collect();
        out.sort_by(|a, b| a.account_sid.cmp(&b.account_sid));
        out
    }
}

/// [`engine::Admission`] for one call: shapes by the account's mirror at the call's instant.
pub struct Shaper<'a> {
    admission: &'a Admission,
    carrier: &'a CarrierAccount,
    policy: Degrade,
    enabled: bool,
    now: f64,
}

impl engine::Admission for Shaper<'_> {
    fn shape(&self, legs: u32) -> DialShape {
        if !self.enabled {
            return DialShape::Full;
        }
        let at = self.now;
        self.admission
            .with_account(self.carrier, |a| match &a.mirror {
                Some(m) => shape(m, at, legs, &self.policy),
                None => DialShape::Full,
            })
    }
}

//! The server's side of dial admission: one GCRA mirror per carrier account, fed with every
//! leg dialtone asks for, and an estimator fed with when legs actually start (their `initiated`
//! callbacks). Flows ask it how many legs a dial may have ([`engine::Admission`]).
//!
//! Everything here is what a real server sees: its own configuration, the webhooks it answers
//! and the callbacks it gets. Time is the server's clock, in seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use dialtone_core::admission::{
    Degrade, DialMirror, DialShape, LimitEstimator, SetupLimit, fit_concurrency, shape,
};
use dialtone_core::config::CarrierAccount;
use dialtone_core::engine;
use dialtone_core::monitor::{DialedCall, Monitor, Monitoring, Raised};

use crate::alerts::{Alert, Alerts};
use crate::cluster::{Cluster, Message};
use crate::telemetry::{DIAL_LEGS, DIAL_SETUP_WAIT, DIALED_CALLS, POST_DIAL_DELAY, customer_label};

/// Seconds a call's dial is remembered for its legs' callbacks and its final status: long
/// enough for a long conversation, so answered calls are counted in the connect rate when they
/// end (a short memory would count only the short calls: the abandoned and unanswered ones).
const ASKED_TTL_S: f64 = 4.0 * 3600.0;
/// Dials remembered at most (memory stays bounded at any call rate).
const ASKED_MAX: usize = 100_000;
/// Legs waiting more than this are in the carrier's queue, for the estimator (the speech before
/// a dial is estimated, so some slack).
const QUEUED_S: f64 = 1.0;

pub fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Where a call's dial stands, from what the carrier has told so far.
struct Dialing {
    /// When the carrier reaches the `<Dial>` (seconds).
    dial_at: f64,
    company: String,
    rang: bool,
    answered: bool,
    /// The dial's action callback came: it ended on its own (answered, timed out, busy).
    ended: bool,
}

struct Account {
    monitor: Monitor,
    configured: Option<SetupLimit>,
    mirror: Option<DialMirror>,
    estimator: LimitEstimator,
    /// Parent call sid → its current dial.
    asked: HashMap<String, Dialing>,
    /// The same entries oldest first, to forget them in constant time per call.
    asked_order: VecDeque<(f64, String)>,
    /// The effective limit as last estimated (setups per second).
    estimated: Option<f64>,
    /// Legs up now (initiated, not yet ended): leg sid → when it started.
    active: HashMap<String, f64>,
    /// When `active` was last swept of legs whose end was never reported.
    swept_at: f64,
    /// The configured cap on concurrent calls.
    cap: Option<u32>,
}

/// Legs whose end the carrier never reported are forgotten after this long.
const ACTIVE_LEG_TTL_S: f64 = 4.0 * 3600.0;

impl Account {
    fn new(configured: Option<SetupLimit>, monitoring: Monitoring) -> Self {
        Self {
            monitor: Monitor::new(monitoring),
            configured,
            mirror: configured.map(DialMirror::new),
            estimator: LimitEstimator::new(60.0, QUEUED_S),
            asked: HashMap::new(),
            asked_order: VecDeque::new(),
            estimated: None,
            active: HashMap::new(),
            swept_at: f64::NEG_INFINITY,
            cap: None,
        }
    }

    /// A dial asked for: reserved in the mirror, remembered for its legs' callbacks.
    fn dialed(
        &mut self,
        company: &str,
        call_sid: &str,
        now: f64,
        speech_s: f64,
        legs: u32,
        shaped: bool,
    ) -> Vec<Raised> {
        if let Some(m) = &mut self.mirror {
            m.advance(now);
            m.request(now, legs);
        }
        // Forget dials older than the TTL, or the oldest past the cap: O(1) per call (a scan
        // of the map per call cost 100 µs a webhook at 30,000 calls a second).
        while self
            .asked_order
            .front()
            .is_some_and(|(t, _)| now - *t > ASKED_TTL_S || self.asked_order.len() > ASKED_MAX)
        {
            if let Some((t, sid)) = self.asked_order.pop_front()
                && self.asked.get(&sid).is_some_and(|d| d.dial_at == t)
            {
                self.asked.remove(&sid);
            }
        }
        let dial_at = now + speech_s;
        // A second dial of the same call (sequential, after a menu) starts afresh, but the
        // call keeps having rung.
        let rang = self.asked.get(call_sid).is_some_and(|d| d.rang);
        self.asked.insert(
            call_sid.to_owned(),
            Dialing {
                dial_at,
                company: company.to_owned(),
                rang,
                answered: false,
                ended: false,
            },
        );
        self.asked_order.push_back((dial_at, call_sid.to_owned()));
        let limit = self.effective();
        self.monitor.dialed(now, u64::from(legs), shaped, limit)
    }

    /// A leg set up: counted up, and its wait fed to the estimator and the monitors.
    fn leg_started(
        &mut self,
        carrier: &CarrierAccount,
        parent_sid: &str,
        leg_sid: &str,
        now: f64,
        here: bool,
    ) -> Vec<Raised> {
        if now - self.swept_at > 60.0 {
            self.active
                .retain(|_, started| now - *started < ACTIVE_LEG_TTL_S);
            self.swept_at = now;
        }
        self.active.insert(leg_sid.to_owned(), now);
        let Some(dialing) = self.asked.get(parent_sid) else {
            return Vec::new();
        };
        let asked = dialing.dial_at;
        if here {
            metrics::histogram!(DIAL_SETUP_WAIT, "carrier_account" => carrier.name.clone(), "company" => customer_label(&dialing.company))
                .record((now - asked).max(0.0));
        }
        self.estimator.leg_started(asked, now);
        let mut raised = self.monitor.leg_set_up(now, now - asked);
        if let Some(rate) = self.estimator.effective_rate(now) {
            let first = self.estimated.is_none();
            self.estimated = Some(rate);
            let below_configured = self.configured.is_none_or(|c| rate < c.rate() * 0.95);
            let watching = self.monitor.mode() == Monitoring::Drift;
            if first && below_configured && watching && self.monitor.due("effective_limit", now) {
                let configured = match self.configured {
                    Some(c) => format!(" (configured: {:.1}/s)", c.rate()),
                    None => " (none configured)".to_owned(),
                };
                raised.push(Raised {
                    kind: "effective_limit",
                    message: format!(
                        "effective dial limit ≈ {rate:.1}/s{configured}: legs are queueing at the carrier"
                    ),
                    value: rate,
                });
            }
        }
        raised
    }

    /// A leg rang: the first ring of a dial is its post-dial delay.
    fn leg_rang(
        &mut self,
        carrier: &CarrierAccount,
        parent_sid: &str,
        now: f64,
        here: bool,
    ) -> Vec<Raised> {
        let Some(dialing) = self.asked.get_mut(parent_sid) else {
            return Vec::new();
        };
        if dialing.rang {
            return Vec::new();
        }
        dialing.rang = true;
        let delay = (now - dialing.dial_at).max(0.0);
        if here {
            metrics::histogram!(POST_DIAL_DELAY, "carrier_account" => carrier.name.clone(), "company" => customer_label(&dialing.company))
                .record(delay);
        }
        self.monitor.first_ring(now, delay)
    }

    /// The inbound call ended: if it dialed, how (connected, answered, abandoned).
    fn call_ended(
        &mut self,
        carrier: &CarrierAccount,
        sid: &str,
        now: f64,
        here: bool,
    ) -> Vec<Raised> {
        let Some(d) = self.asked.remove(sid) else {
            return Vec::new();
        };
        let call = DialedCall {
            rang: d.rang,
            answered: d.answered,
            abandoned: !d.answered && !d.ended,
        };
        if here {
            let result = match (call.answered, call.abandoned) {
                (true, _) => "answered",
                (false, true) => "abandoned",
                (false, false) => "unanswered",
            };
            metrics::counter!(
                DIALED_CALLS,
                "carrier_account" => carrier.name.clone(),
                "company" => customer_label(&d.company),
                "result" => result,
                "rang" => if call.rang { "true" } else { "false" }
            )
            .increment(1);
        }
        self.monitor.call_ended(now, call)
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
    /// Mean seconds from a dial to its first ringing leg, last 10 s window.
    pub post_dial_delay_s: Option<f64>,
    /// Share of dialed calls that reached a ringing phone, last minute.
    pub connect_ratio: Option<f64>,
    /// Share of dialed calls abandoned before an answer, last minute.
    pub abandoned_ratio: Option<f64>,
    /// Legs up now, and the account's cap on them when it has one.
    pub active_legs: usize,
    pub concurrent_limit: Option<u32>,
}

/// What a node observes about a carrier account's dials, applied on every node (each node's
/// mirror, leg count, estimator and monitors see every node's calls). Times in seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "o")]
pub enum Observed {
    /// `legs` legs asked for call `sid` of `company` at `at`, dialed `speech_s` later.
    #[serde(rename = "dial")]
    Dialed {
        company: String,
        sid: String,
        at: f64,
        speech_s: f64,
        legs: u32,
        shaped: bool,
    },
    #[serde(rename = "up")]
    LegUp {
        parent: String,
        leg: String,
        at: f64,
    },
    #[serde(rename = "ring")]
    LegRang { parent: String, at: f64 },
    #[serde(rename = "answer")]
    LegAnswered { parent: String },
    #[serde(rename = "down")]
    LegDown { leg: String },
    #[serde(rename = "dial_end")]
    DialEnded { parent: String, answered: bool },
    #[serde(rename = "end")]
    CallEnded { sid: String, at: f64 },
}

impl Observed {
    /// When it was observed, if that is known (seconds; 0 otherwise).
    fn at(&self) -> f64 {
        match self {
            Observed::Dialed { at, .. }
            | Observed::LegUp { at, .. }
            | Observed::LegRang { at, .. }
            | Observed::CallEnded { at, .. } => *at,
            _ => 0.0,
        }
    }
}

#[derive(Default)]
pub struct Admission {
    accounts: Mutex<HashMap<String, Account>>,
    degraded_calls: AtomicU64,
    /// What the monitors raised, kept for the API and posted to the alert webhook.
    pub alerts: Arc<Alerts>,
    monitoring: Mutex<Monitoring>,
    /// The other nodes, told what this one observes.
    cluster: OnceLock<Arc<Cluster>>,
}

impl Admission {
    fn with_account<T>(&self, carrier: &CarrierAccount, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Looked up by reference: the key is copied only for a new account, not on every call.
        let monitoring = *self.monitoring.lock().unwrap_or_else(|p| p.into_inner());
        if !accounts.contains_key(&carrier.account_sid) {
            accounts.insert(
                carrier.account_sid.clone(),
                Account::new(carrier.dial_limit, monitoring),
            );
        }
        let Some(account) = accounts.get_mut(&carrier.account_sid) else {
            unreachable!("inserted above")
        };
        if account.monitor.mode() != monitoring {
            account.monitor = Monitor::new(monitoring);
        }
        // The configuration may have been reloaded with another limit.
        account.configured = carrier.dial_limit;
        account.cap = carrier.concurrent_calls;
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
    #[allow(clippy::too_many_arguments)]
    pub fn dialed(
        &self,
        carrier: &CarrierAccount,
        company: &str,
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
        metrics::counter!(DIAL_LEGS, "carrier_account" => carrier.name.clone(), "company" => customer_label(company))
            .increment(legs as u64);
        self.observed_here(
            carrier,
            Observed::Dialed {
                company: company.to_owned(),
                sid: call_sid.to_owned(),
                at: seconds(now),
                speech_s,
                legs: u32::try_from(legs).unwrap_or(u32::MAX),
                shaped: degraded,
            },
        );
    }

    /// A leg `leg_sid` of `parent_sid` was set up (its `initiated` callback) at `now`.
    pub fn leg_started(
        &self,
        carrier: &CarrierAccount,
        parent_sid: &str,
        leg_sid: &str,
        now: DateTime<Utc>,
    ) {
        self.observed_here(
            carrier,
            Observed::LegUp {
                parent: parent_sid.to_owned(),
                leg: leg_sid.to_owned(),
                at: seconds(now),
            },
        );
    }

    /// A leg of `parent_sid` rang (its `ringing` callback) at `now`: the first ring of a dial is
    /// its post-dial delay.
    pub fn leg_rang(&self, carrier: &CarrierAccount, parent_sid: &str, now: DateTime<Utc>) {
        self.observed_here(
            carrier,
            Observed::LegRang {
                parent: parent_sid.to_owned(),
                at: seconds(now),
            },
        );
    }

    /// A leg ended (completed, busy, failed, no answer, canceled): it no longer counts against
    /// the account's concurrent calls.
    pub fn leg_ended(&self, carrier: &CarrierAccount, leg_sid: &str) {
        self.observed_here(
            carrier,
            Observed::LegDown {
                leg: leg_sid.to_owned(),
            },
        );
    }

    /// A leg of `parent_sid` was answered.
    pub fn leg_answered(&self, carrier: &CarrierAccount, parent_sid: &str) {
        self.observed_here(
            carrier,
            Observed::LegAnswered {
                parent: parent_sid.to_owned(),
            },
        );
    }

    /// `parent_sid`'s dial ended on its own (the carrier requested its action URL).
    pub fn dial_ended(&self, carrier: &CarrierAccount, parent_sid: &str, answered: bool) {
        self.observed_here(
            carrier,
            Observed::DialEnded {
                parent: parent_sid.to_owned(),
                answered,
            },
        );
    }

    /// The inbound call `sid` ended at `now`: if it dialed, how (connected, answered, abandoned).
    pub fn call_ended(&self, carrier: &CarrierAccount, sid: &str, now: DateTime<Utc>) {
        self.observed_here(
            carrier,
            Observed::CallEnded {
                sid: sid.to_owned(),
                at: seconds(now),
            },
        );
    }

    /// Follows `cluster`'s other nodes: what this node observes is told to them.
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// What this node saw: applied here, with its metrics, and told to the other nodes.
    fn observed_here(&self, carrier: &CarrierAccount, observed: Observed) {
        self.apply(carrier, &observed, true);
        if let Some(cluster) = self.cluster.get() {
            cluster.send(&Message::Admission {
                a: carrier.account_sid.clone(),
                o: observed,
            });
        }
    }

    /// What another node saw: applied here too (its metrics are that node's), so every node's
    /// mirror, leg count, estimator and monitors see every node's calls.
    pub fn observed_elsewhere(&self, carrier: &CarrierAccount, observed: Observed) {
        self.apply(carrier, &observed, false);
    }

    fn apply(&self, carrier: &CarrierAccount, observed: &Observed, here: bool) {
        let raised = self.with_account(carrier, |a| match observed {
            Observed::Dialed {
                company,
                sid,
                at,
                speech_s,
                legs,
                shaped,
            } => a.dialed(company, sid, *at, *speech_s, *legs, *shaped),
            Observed::LegUp { parent, leg, at } => a.leg_started(carrier, parent, leg, *at, here),
            Observed::LegRang { parent, at } => a.leg_rang(carrier, parent, *at, here),
            Observed::LegAnswered { parent } => {
                if let Some(d) = a.asked.get_mut(parent) {
                    d.rang = true;
                    d.answered = true;
                }
                Vec::new()
            }
            Observed::LegDown { leg } => {
                a.active.remove(leg);
                Vec::new()
            }
            Observed::DialEnded { parent, answered } => {
                if let Some(d) = a.asked.get_mut(parent) {
                    d.ended = true;
                    d.answered |= answered;
                    d.rang |= answered;
                }
                Vec::new()
            }
            Observed::CallEnded { sid, at } => a.call_ended(carrier, sid, *at, here),
        });
        let at = DateTime::from_timestamp_micros((observed.at() * 1e6) as i64).unwrap_or_default();
        self.raise(carrier, at, raised);
    }

    fn raise(&self, carrier: &CarrierAccount, at: DateTime<Utc>, raised: Vec<Raised>) {
        for Raised {
            kind,
            message,
            value,
        } in raised
        {
            self.alerts.publish(
                Alert {
                    kind: kind.into(),
                    carrier_account_sid: carrier.account_sid.clone(),
                    at,
                    message,
                    value,
                },
                &carrier.name,
            );
        }
    }

    /// Follows the configuration's `[admission]`: where alerts are posted (`None` stops
    /// posting) and what watches the signals.
    pub fn configure(&self, settings: &dialtone_core::config::Admission) {
        self.alerts.set_webhook(settings.alert_webhook.clone());
        *self.monitoring.lock().unwrap_or_else(|p| p.into_inner()) = settings.monitoring;
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
                post_dial_delay_s: a.monitor.post_dial_delay.last(),
                connect_ratio: a.monitor.connect.last(),
                abandoned_ratio: a.monitor.abandoned.last(),
                active_legs: a.active.len(),
                concurrent_limit: a.cap,
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
        self.admission.with_account(self.carrier, |a| {
            let by_rate = match &a.mirror {
                Some(m) => shape(m, at, legs, &self.policy),
                None => DialShape::Full,
            };
            let active = u32::try_from(a.active.len()).unwrap_or(u32::MAX);
            fit_concurrency(by_rate, legs, active, self.carrier.concurrent_calls)
        })
    }
}

//! The server's side of dial admission: one GCRA mirror per carrier account, fed with every
//! leg dialtone asks for, and an estimator fed with when legs actually start (their `initiated`
//! callbacks). Flows ask it how many legs a dial may have ([`engine::Admission`]).
//!
//! Everything here is what a real server sees: its own configuration, the webhooks it answers
//! and the callbacks it gets. Time is the server's clock, in seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dialtone_core::admission::{Degrade, DialMirror, DialShape, LimitEstimator, SetupLimit, shape};
use dialtone_core::config::CarrierAccount;
use dialtone_core::engine;

/// Seconds a dial's request time is remembered for its legs' callbacks.
const ASKED_TTL_S: f64 = 300.0;
/// Legs waiting more than this are in the carrier's queue, for the estimator.
const QUEUED_S: f64 = 0.5;

pub fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

struct Account {
    configured: Option<SetupLimit>,
    mirror: Option<DialMirror>,
    estimator: LimitEstimator,
    /// Parent call sid → when its current dial was asked for.
    asked: HashMap<String, f64>,
    /// The effective limit as last estimated (setups per second).
    estimated: Option<f64>,
}

impl Account {
    fn new(configured: Option<SetupLimit>) -> Self {
        Self {
            configured,
            mirror: configured.map(DialMirror::new),
            estimator: LimitEstimator::new(60.0, QUEUED_S),
            asked: HashMap::new(),
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
}

impl Admission {
    fn with_account<T>(&self, carrier: &CarrierAccount, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let account = accounts
            .entry(carrier.account_sid.clone())
            .or_insert_with(|| Account::new(carrier.dial_limit));
        if account.configured != carrier.dial_limit {
            // The configuration was reloaded with another limit.
            account.configured = carrier.dial_limit;
        }
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

    /// A flow asked the carrier for `legs` legs of `call_sid`'s dial at `now`.
    pub fn dialed(
        &self,
        carrier: &CarrierAccount,
        call_sid: &str,
        now: DateTime<Utc>,
        legs: usize,
        degraded: bool,
    ) {
        if degraded {
            self.degraded_calls.fetch_add(1, Ordering::Relaxed);
        }
        if legs == 0 {
            return;
        }
        let now = seconds(now);
        self.with_account(carrier, |a| {
            if let Some(m) = &mut a.mirror {
                m.request(now, u32::try_from(legs).unwrap_or(u32::MAX));
            }
            if a.asked.len() > 10_000 {
                a.asked.retain(|_, t| now - *t < ASKED_TTL_S);
            }
            a.asked.insert(call_sid.to_owned(), now);
        });
    }

    /// A leg of `parent_sid` was set up (its `initiated` callback) at `now`.
    pub fn leg_started(&self, carrier: &CarrierAccount, parent_sid: &str, now: DateTime<Utc>) {
        let now = seconds(now);
        self.with_account(carrier, |a| {
            let Some(&asked) = a.asked.get(parent_sid) else {
                return;
            };
            a.estimator.leg_started(asked, now);
            if let Some(rate) = a.estimator.effective_rate(now) {
                let changed = a.estimated.is_none_or(|e| (e - rate).abs() > 0.05 * e);
                a.estimated = Some(rate);
                if changed {
                    tracing::warn!(
                        account_sid = %carrier.account_sid,
                        configured = ?a.configured.map(|l| l.rate()),
                        "effective dial limit ≈ {rate:.1}/s: legs are queueing at the carrier"
                    );
                }
            }
        });
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
        self.admission
            .with_account(self.carrier, |a| match &a.mirror {
                Some(m) => shape(m, self.now, legs, &self.policy),
                None => DialShape::Full,
            })
    }
}

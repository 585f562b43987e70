//! Operator backup routing: rules that send some calls straight to their company's primary
//! number — one tracker, one company, one service tier, or everyone, for all calls or a
//! percentage — each with a reason and an expiry, without touching anyone else. Calls in backup
//! are still logged. Pure: time is a parameter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Company, Config};

/// Which calls a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    All,
    Tier { tier: String },
    Company { company: String },
    Tracker { company: String, tracker: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRule {
    pub id: i64,
    pub scope: Scope,
    /// Share of the covered calls sent to backup, 1-100 (by a hash of the call sid, so a call's
    /// callbacks agree with its first webhook).
    pub percent: u8,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a backup rule needs a reason")]
    NoReason,
    #[error("percent must be 1 to 100, not {0}")]
    Percent(u32),
    #[error("the expiry must be after now")]
    Expired,
    #[error("unknown company `{0}`")]
    UnknownCompany(String),
    #[error("company `{0}` has no tracker `{1}`")]
    UnknownTracker(String, String),
    #[error("unknown tier `{0}` (tiers: {1})")]
    UnknownTier(String, String),
}

impl BackupRule {
    /// Checks a new rule against the configuration at `now`.
    pub fn check(&self, config: &Config, now: DateTime<Utc>) -> Result<(), RuleError> {
        if self.reason.trim().is_empty() {
            return Err(RuleError::NoReason);
        }
        if !(1..=100).contains(&self.percent) {
            return Err(RuleError::Percent(u32::from(self.percent)));
        }
        if self.expires_at <= now {
            return Err(RuleError::Expired);
        }
        match &self.scope {
            Scope::All => Ok(()),
            Scope::Tier { tier } => {
                if config.admission.tiers.contains(tier) {
                    Ok(())
                } else {
                    Err(RuleError::UnknownTier(
                        tier.clone(),
                        config.admission.tiers.join(", "),
                    ))
                }
            }
            Scope::Company { company } => config
                .company(company)
                .map(|_| ())
                .ok_or_else(|| RuleError::UnknownCompany(company.clone())),
            Scope::Tracker { company, tracker } => {
                let c = config
                    .company(company)
                    .ok_or_else(|| RuleError::UnknownCompany(company.clone()))?;
                if c.trackers.iter().any(|t| &t.name == tracker) {
                    Ok(())
                } else {
                    Err(RuleError::UnknownTracker(company.clone(), tracker.clone()))
                }
            }
        }
    }

    fn covers(&self, config: &Config, company: &Company, tracker: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Tier { tier } => config
                .admission
                .tiers
                .get(usize::from(company.tier))
                .is_some_and(|t| t == tier),
            Scope::Company { company: c } => *c == company.slug,
            Scope::Tracker {
                company: c,
                tracker: t,
            } => *c == company.slug && t == tracker,
        }
    }
}

/// A call's place among 100 buckets, stable for its sid (FNV-1a).
pub fn bucket(call_sid: &str) -> u8 {
    let h = call_sid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % 100) as u8
}

/// The first live rule that sends this call to backup, if any.
pub fn rule_for<'a>(
    rules: &'a [BackupRule],
    config: &Config,
    company: &Company,
    tracker: &str,
    call_sid: &str,
    now: DateTime<Utc>,
) -> Option<&'a BackupRule> {
    let b = bucket(call_sid);
    rules
        .iter()
        .find(|r| r.expires_at > now && b < r.percent && r.covers(config, company, tracker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;
    use proptest::prelude::*;

    fn config() -> Config {
        crate::config::load("demo", demo::CONFIG, &|_: &str| None).expect("demo loads")
    }

    fn rule(scope: Scope, percent: u8) -> BackupRule {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        BackupRule {
            id: 1,
            scope,
            percent,
            reason: "carrier queueing".into(),
            created_at: t,
            expires_at: t + chrono::TimeDelta::hours(1),
            created_by: "ops".into(),
        }
    }

    #[test]
    fn a_rule_covers_only_its_scope_and_only_until_it_expires() {
        let config = config();
        let acme = &config.companies[0];
        let now = rule(Scope::All, 100).created_at;
        let billboard = Scope::Tracker {
            company: acme.slug.clone(),
            tracker: "Billboard I-85".into(),
        };
        let rules = [rule(billboard, 100)];
        assert!(rule_for(&rules, &config, acme, "Billboard I-85", "CA1", now).is_some());
        assert!(rule_for(&rules, &config, acme, "Google Ads", "CA1", now).is_none());
        let later = now + chrono::TimeDelta::hours(2);
        assert!(rule_for(&rules, &config, acme, "Billboard I-85", "CA1", later).is_none());
        let other = [rule(
            Scope::Company {
                company: "someone-else".into(),
            },
            100,
        )];
        assert!(rule_for(&other, &config, acme, "Google Ads", "CA1", now).is_none());
        let tier = [rule(
            Scope::Tier {
                tier: "standard".into(),
            },
            100,
        )];
        assert!(rule_for(&tier, &config, acme, "Google Ads", "CA1", now).is_some());
    }

    #[test]
    fn rules_are_checked_against_the_configuration() {
        let config = config();
        let now = rule(Scope::All, 100).created_at;
        assert_eq!(rule(Scope::All, 100).check(&config, now), Ok(()));
        assert_eq!(
            rule(Scope::All, 0).check(&config, now),
            Err(RuleError::Percent(0))
        );
        let tracker = Scope::Tracker {
            company: "acme-plumbing".into(),
            tracker: "Radio".into(),
        };
        assert!(matches!(
            rule(tracker, 50).check(&config, now),
            Err(RuleError::UnknownTracker(..))
        ));
        let mut silent = rule(Scope::All, 100);
        silent.reason = " ".into();
        assert_eq!(silent.check(&config, now), Err(RuleError::NoReason));
        let late = now + chrono::TimeDelta::hours(3);
        assert_eq!(
            rule(Scope::All, 100).check(&config, late),
            Err(RuleError::Expired)
        );
    }

    proptest! {
        /// A percentage rule takes about that share of calls, and always the same calls.
        #[test]
        fn a_percentage_takes_its_share(percent in 1u8..=100, seed in 0u64..1000) {
            let config = config();
            let acme = &config.companies[0];
            let r = [rule(Scope::All, percent)];
            let now = r[0].created_at;
            let sids: Vec<String> = (0..2000).map(|i| format!("CA{:032x}", seed * 10_000 + i)).collect();
            let taken = sids.iter().filter(|s| rule_for(&r, &config, acme, "x", s, now).is_some()).count();
            let share = taken as f64 / 2000.0;
            prop_assert!((share - f64::from(percent) / 100.0).abs() < 0.05, "{share} for {percent} %");
            let again = sids.iter().filter(|s| rule_for(&r, &config, acme, "x", s, now).is_some()).count();
            prop_assert_eq!(taken, again);
        }
    }
}

/// The automatic backup policy for a failing call log: a circuit breaker.
///
/// Each webhook waits up to a few seconds for its events to be durable before it falls back to
/// backup routing; while the call log is down, every caller would wait that long. After
/// `after_failures` failures in a row the breaker opens: calls go to backup routing at once
/// (their events still queued for the store), for `cool_down_s`; then one call tries the normal
/// path, and its success closes the breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    pub after_failures: u32,
    pub cool_down_s: i64,
    failures: u32,
    state: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls take the normal path.
    Closed,
    /// Calls go to backup routing until `until`.
    Open {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// One call is trying the normal path; the others go to backup until it is done.
    Probing { since: DateTime<Utc> },
}

/// What the breaker says of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Normal,
    /// The call is the probe: its result decides.
    Probe,
    Backup,
}

/// How a breaker's state changed, for the log and the alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Closed,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new(3, 30)
    }
}

impl Breaker {
    pub fn new(after_failures: u32, cool_down_s: i64) -> Self {
        Self {
            after_failures: after_failures.max(1),
            cool_down_s,
            failures: 0,
            state: BreakerState::Closed,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call at `now` takes the normal path.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Admit {
        match self.state {
            BreakerState::Closed => Admit::Normal,
            BreakerState::Open { since, until } if now >= until => {
                self.state = BreakerState::Probing { since };
                Admit::Probe
            }
            BreakerState::Open { .. } => Admit::Backup,
            // A probe that never reported back (its task was dropped) is replaced after a
            // cool-down.
            BreakerState::Probing { since }
                if now - since > chrono::Duration::seconds(self.cool_down_s * 4) =>
            {
                self.state = BreakerState::Probing { since: now };
                Admit::Probe
            }
            BreakerState::Probing { .. } => Admit::Backup,
        }
    }

    /// The call log confirmed (or failed to confirm) a call's events at `now`.
    pub fn record(&mut self, now: DateTime<Utc>, ok: bool) -> Option<Change> {
        let until = now + chrono::Duration::seconds(self.cool_down_s);
        match (self.state, ok) {
            (BreakerState::Closed, true) => {
                self.failures = 0;
                None
            }
            (BreakerState::Closed, false) => {
                self.failures += 1;
                (self.failures >= self.after_failures).then(|| {
                    self.state = BreakerState::Open { since: now, until };
                    Change::Opened
                })
            }
            (BreakerState::Probing { .. } | BreakerState::Open { .. }, true) => {
                self.failures = 0;
                self.state = BreakerState::Closed;
                Some(Change::Closed)
            }
            (BreakerState::Probing { since } | BreakerState::Open { since, .. }, false) => {
                self.state = BreakerState::Open { since, until };
                None
            }
        }
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
    }

    #[test]
    fn opens_after_failures_in_a_row_probes_after_the_cool_down_and_closes_on_success() {
        let mut b = Breaker::new(3, 30);
        assert_eq!(b.admit(at(0)), Admit::Normal);
        assert_eq!(b.record(at(0), false), None);
        assert_eq!(b.record(at(1), true), None, "a success resets the count");
        assert_eq!(b.record(at(2), false), None);
        assert_eq!(b.record(at(3), false), None);
        assert_eq!(b.record(at(4), false), Some(Change::Opened));
        assert_eq!(b.admit(at(5)), Admit::Backup);
        assert_eq!(b.admit(at(33)), Admit::Backup);
        assert_eq!(b.admit(at(34)), Admit::Probe);
        assert_eq!(b.admit(at(34)), Admit::Backup, "one probe at a time");
        assert_eq!(b.record(at(35), false), None);
        assert_eq!(
            b.admit(at(40)),
            Admit::Backup,
            "a failed probe opens it again"
        );
        assert_eq!(b.admit(at(65)), Admit::Probe);
        assert_eq!(b.record(at(65), true), Some(Change::Closed));
        assert_eq!(b.admit(at(66)), Admit::Normal);
    }
}

//! The configuration file: carrier accounts, accounts, companies, their trackers and call flows.
//!
//! Loading is parse-then-check: the TOML is read into `raw` types that keep source spans, then
//! turned into the validated model. Every problem found is reported with its line, not only the
//! first one, so a user fixes a file in one pass.

mod company;
mod convert;
mod error;
mod flow;
mod load;
mod raw;

pub use error::{ConfigError, ConfigErrors};
pub use load::{Environment, load};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::admission::{Degrade, SetupLimit};
use crate::dni::{OriginPattern, SwapRule};
use crate::flow::Flow;
use crate::phone::PhoneNumber;

pub const DEFAULT_RECORDING_NOTICE: &str = "This call may be recorded for quality assurance.";
pub const DEFAULT_VOICEMAIL_PROMPT: &str =
    "Sorry, nobody is available to take your call. Please leave a message after the tone.";
pub const DEFAULT_INVALID_CHOICE: &str = "Sorry, that is not a valid choice.";

// ---------------------------------------------------------------------------------------------
// The validated model.

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub admission: Admission,
    pub dni: Dni,
    pub carrier_accounts: Vec<CarrierAccount>,
    pub accounts: Vec<Account>,
    pub companies: Vec<Company>,
    /// Tracking number → (company index, tracker index).
    /// Keyed by the E.164 text so a webhook's `To` is looked up without parsing or allocating.
    numbers: HashMap<String, (usize, usize)>,
}

/// How dialtone behaves under its carriers' dial limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Ask for fewer legs when the carrier's queue would delay callers past the budget.
    pub degrade: bool,
    /// Seconds of added delay the highest tier may get before its dials are shaped.
    pub budget_s: f64,
    /// Service tiers, highest first; companies name theirs (default: the first).
    pub tiers: Vec<String>,
    /// Where alerts are posted as JSON with a Slack-compatible `text` field.
    pub alert_webhook: Option<String>,
    /// What watches the dial signals: drift detectors (the default), or the 2018 platform's
    /// sudden-shift threshold alone (for replays of the seed's outage).
    pub monitoring: crate::monitor::Monitoring,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            degrade: true,
            budget_s: 1.0,
            tiers: vec!["standard".into()],
            alert_webhook: None,
            monitoring: crate::monitor::Monitoring::Drift,
        }
    }
}

/// Settings of dynamic number insertion shared by every company (`[dni]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dni {
    /// New sessions a minute one client address may create (a bot cannot drain a pool).
    pub sessions_per_minute_per_address: u32,
    /// New sessions a minute one visitor id may create.
    pub sessions_per_minute_per_visitor: u32,
    /// Sessions either may create at once before the rate applies.
    pub burst: u32,
    /// Seconds after a lease ends during which a call to its number still belongs to it.
    pub attribution_grace_s: u32,
    /// Which proxies in front of dialtone say who the client is (`X-Forwarded-For`).
    pub proxies: crate::dni::TrustedProxies,
    /// Live leases one client address may hold in one pool (more visitors from it share its
    /// numbers); never more than half a pool, so one address cannot take a pool from the others.
    pub leases_per_address: u32,
}

impl Default for Dni {
    fn default() -> Self {
        Self {
            sessions_per_minute_per_address: 30,
            sessions_per_minute_per_visitor: 6,
            burst: 10,
            attribution_grace_s: 120,
            proxies: Default::default(),
            leases_per_address: 2,
        }
    }
}

/// A company's website, as its DNI snippet sees it (`[companies.website]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Website {
    /// Origins allowed to call the session API (CORS).
    pub origins: Vec<OriginPattern>,
    /// Domain of the visitor cookie, to share it across subdomains (`acme.example`).
    pub cookie_domain: Option<String>,
    /// How long a visitor keeps a pool number without a sign of life.
    pub lease_idle_s: u32,
}

impl Default for Website {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            cookie_domain: None,
            lease_idle_s: 20 * 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CarrierAccount {
    pub name: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The account's limit on outbound call setups, when known.
    pub dial_limit: Option<SetupLimit>,
    /// The most calls (legs) the account may have up at once, when the carrier caps them.
    pub concurrent_calls: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub slug: String,
    pub name: String,
    pub account: String,
    /// Index into `Config::carrier_accounts`.
    pub carrier: usize,
    pub time_zone: Tz,
    pub website_number: Option<PhoneNumber>,
    pub website: Website,
    /// Where backup routing sends calls when nothing else can be done.
    pub primary_number: PhoneNumber,
    pub destinations: BTreeMap<String, PhoneNumber>,
    pub holidays: BTreeSet<NaiveDate>,
    pub recording: RecordingPolicy,
    pub trackers: Vec<Tracker>,
    pub flows: BTreeMap<String, Flow>,
    /// Index into `Admission::tiers`: lower tiers are shaped first.
    pub tier: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPolicy {
    pub notice: String,
    /// Set only when the company explicitly records without a notice, with its reason.
    pub without_notice_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerKind {
    /// One static number for one marketing source.
    Source,
    /// A pool of numbers shown to website visitors of one source (DNI).
    Session,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Source => "source",
            TrackerKind::Session => "session",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub name: String,
    pub kind: TrackerKind,
    pub numbers: Vec<PhoneNumber>,
    pub flow: String,
    /// Which website visits see a session tracker's numbers.
    pub swap: Vec<SwapRule>,
}

/// A tracking number's place in the configuration.
#[derive(Debug, Clone, Copy)]
pub struct TrackerRef<'a> {
    pub company: &'a Company,
    pub tracker: &'a Tracker,
    pub flow: &'a Flow,
    pub carrier: &'a CarrierAccount,
}

impl Config {
    pub fn tracker_for(&self, number: &str) -> Option<TrackerRef<'_>> {
        let &(c, t) = self.numbers.get(number)?;
        let company = &self.companies[c];
        let tracker = &company.trackers[t];
        Some(TrackerRef {
            company,
            tracker,
            flow: company.flows.get(&tracker.flow)?,
            carrier: &self.carrier_accounts[company.carrier],
        })
    }

    pub fn carrier_by_sid(&self, account_sid: &str) -> Option<&CarrierAccount> {
        self.carrier_accounts
            .iter()
            .find(|c| c.account_sid == account_sid)
    }

    pub fn company(&self, slug: &str) -> Option<&Company> {
        self.companies.iter().find(|c| c.slug == slug)
    }

    /// Where a tracking number is: (company index, tracker index, number's index in the tracker).
    pub fn locate(&self, number: &str) -> Option<(usize, usize, usize)> {
        let &(c, t) = self.numbers.get(number)?;
        let i = self.companies[c].trackers[t]
            .numbers
            .iter()
            .position(|n| n.as_str() == number)?;
        Some((c, t, i))
    }

    pub fn tracking_numbers(&self) -> usize {
        self.numbers.len()
    }

    /// The degradation policy of `company`.
    pub fn degrade(&self, company: &Company) -> Degrade {
        Degrade {
            budget_s: self.admission.budget_s,
            tier: company.tier,
            tiers: self.admission.tiers.len().clamp(1, usize::from(u8::MAX)) as u8,
        }
    }
}

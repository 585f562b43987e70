//! The configuration file: carrier accounts, accounts, companies, their trackers and call flows.
//!
//! Loading is parse-then-check: the TOML is read into `raw` types that keep source spans, then
//! turned into the validated model. Every problem found is reported with its line, not only the
//! first one, so a user fixes a file in one pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::admission::{Degrade, SetupLimit};
use crate::dni::{OriginPattern, ReferrerGroup, SwapRule};
use crate::flow::{
    Action, CallerId, DialStep, Flow, FlowProblem, Menu, Message, Schedule, Step, StepId, Strategy,
};
use crate::phone::PhoneNumber;
use crate::schedule::WeeklyHours;

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

// ---------------------------------------------------------------------------------------------
// Errors.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match (e.line, e.column) {
                (Some(l), Some(c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, e.message)?,
                (Some(l), None) => write!(f, "{}:{}: {}", self.file, l, e.message)?,
                _ => write!(f, "{}: {}", self.file, e.message)?,
            }
        }
        Ok(())
    }
}

struct Reporter<'s> {
    source: &'s str,
    errors: Vec<ConfigError>,
}

impl Reporter<'_> {
    fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, column) = match span {
            Some(s) => {
                let before = &self.source[..s.start.min(self.source.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        self.errors.push(ConfigError {
            line,
            column,
            message: message.into(),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    admission: Option<Spanned<RawAdmission>>,
    dni: Option<RawDni>,
    #[serde(default)]
    carrier_accounts: Vec<Spanned<RawCarrier>>,
    #[serde(default)]
    accounts: Vec<Spanned<RawAccount>>,
    #[serde(default)]
    companies: Vec<Spanned<RawCompany>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmission {
    degrade: Option<bool>,
    budget_s: Option<f64>,
    tiers: Option<Vec<String>>,
    alert_webhook: Option<Spanned<String>>,
    monitoring: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDni {
    sessions_per_minute_per_address: Option<Spanned<u32>>,
    sessions_per_minute_per_visitor: Option<Spanned<u32>>,
    burst: Option<Spanned<u32>>,
    attribution_grace_s: Option<u32>,
    trust_forwarded_for: Option<bool>,
    trusted_proxies: Option<Spanned<u32>>,
    trusted_proxy_cidrs: Option<Vec<Spanned<String>>>,
    leases_per_address: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebsite {
    #[serde(default)]
    origins: Vec<Spanned<String>>,
    cookie_domain: Option<Spanned<String>>,
    lease_idle_min: Option<Spanned<u32>>,
}

/// One swap rule: exactly one of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwapRule {
    landing: Option<BTreeMap<String, String>>,
    referrer: Option<String>,
    referrer_group: Option<String>,
    direct: Option<bool>,
    all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    count: u32,
    period_s: Option<f64>,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCarrier {
    name: Spanned<String>,
    account_sid: Spanned<String>,
    dial_limit: Option<Spanned<RawLimit>>,
    concurrent_calls: Option<Spanned<u32>>,
    auth_token: Option<String>,
    /// Name of an environment variable holding the token, so secrets stay out of the file.
    auth_token_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    slug: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompany {
    slug: Spanned<String>,
    name: String,
    account: Spanned<String>,
    carrier_account: Spanned<String>,
    time_zone: Spanned<String>,
    website_number: Option<Spanned<String>>,
    website: Option<RawWebsite>,
    primary_number: Spanned<String>,
    tier: Option<Spanned<String>>,
    #[serde(default)]
    destinations: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    #[serde(default)]
    recording: RawRecording,
    #[serde(default)]
    trackers: Vec<Spanned<RawTracker>>,
    #[serde(default)]
    flows: BTreeMap<String, Spanned<RawFlow>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRecording {
    notice: Option<String>,
    without_notice_reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracker {
    name: String,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    number: Option<Spanned<String>>,
    pool: Option<Vec<Spanned<String>>>,
    flow: Spanned<String>,
    #[serde(default)]
    swap: Vec<Spanned<RawSwapRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    start: Spanned<String>,
    steps: BTreeMap<String, Spanned<RawStep>>,
}

/// One struct for every step type (serde's tagged enums lose spans); which fields apply to which
/// type is checked in `convert_step`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    next: Option<Spanned<String>>,
    say: Option<String>,
    play: Option<String>,
    text: Option<String>,
    options: Option<BTreeMap<String, Spanned<String>>>,
    default: Option<Spanned<String>>,
    retries: Option<u32>,
    timeout_s: Option<u32>,
    invalid_say: Option<String>,
    hours: Option<Vec<Spanned<String>>>,
    holidays: Option<Vec<Spanned<String>>>,
    open: Option<Spanned<String>>,
    closed: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    to: Option<Vec<Spanned<String>>>,
    ring_timeout_s: Option<u32>,
    whisper: Option<String>,
    caller_id: Option<Spanned<String>>,
    max_length_s: Option<u32>,
}

impl RawStep {
    /// Names of the fields that are set, to refuse the ones a step type does not use.
    fn present_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        macro_rules! check {
            ($($name:ident),*) => { $( if self.$name.is_some() { f.push(stringify!($name)); } )* };
        }
        check!(
            next,
            say,
            play,
            text,
            options,
            default,
            retries,
            timeout_s,
            invalid_say,
            hours,
            holidays,
            open,
            closed,
            strategy,
            to,
            ring_timeout_s,
            whisper,
            caller_id,
            max_length_s
        );
        f
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Where `auth_token_env` values come from; the binary passes the process environment, tests a map.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses and checks a configuration file. `file` names it in error messages.
pub fn load(file: &str, source: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    let mut r = Reporter {
        source,
        errors: Vec::new(),
    };
    let Some(raw) = read_raw(source, &mut r) else {
        return Err(ConfigErrors {
            file: file.to_owned(),
            errors: r.errors,
        });
    };
    if raw.carrier_accounts.is_empty() {
        // Without a carrier account every webhook is refused: no call would be routed, not even
        // to backup. An empty file is a mistake (a failed copy, a truncated write), never a wish.
        r.at(
            None,
            "no [[carrier_accounts]]: with none, every carrier webhook would be refused and no call routed (is the file empty?)",
        );
    }
    let config = convert(raw, &mut r, env);
    if r.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = r.errors;
        // In file order; problems without a place last.
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        Err(ConfigErrors {
            file: file.to_owned(),
            errors,
        })
    }
}

/// The file as written, reporting every problem of its shape in one run. serde stops at the
/// first one (an unknown field, a value of the wrong type), so a problem on a `key = value` line
/// of its own is reported and the line set aside (blanked, offsets kept), and the file read
/// again, up to a bound; a problem elsewhere (a syntax error, a missing field) ends the reading.
/// `None` when the file could not be read whole; the problems are in `r` either way.
fn read_raw(source: &str, r: &mut Reporter) -> Option<RawConfig> {
    const MOST: usize = 100;
    let mut text = source.to_owned();
    for _ in 0..MOST {
        let e = match toml::from_str::<RawConfig>(&text) {
            // (Without the lines set aside, if any: their problems are reported, and what the
            // rest says is checked too.)
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let message = match e.message().trim() {
            "" => "the file ends in the middle of a table or value (is it cut short?)".to_owned(),
            m => m.to_owned(),
        };
        r.at(e.span(), message);
        let line = e.span().and_then(|s| own_line(&text, s.start))?;
        // Blank the line, keeping every offset (and so every other line number) as it was.
        let blank: String = text[line.clone()]
            .chars()
            .map(|c| if c == '\n' { c } else { ' ' })
            .collect();
        text.replace_range(line, &blank);
    }
    None
}

/// The byte range of the line holding `at`, if it is a `key = value` line complete on its own
/// (setting it aside cannot break the lines around it).
fn own_line(text: &str, at: usize) -> Option<Range<usize>> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') || !trimmed.contains('=') {
        return None;
    }
    // A value that goes on over several lines is not on a line of its own.
    line.parse::<toml::Table>().ok()?;
    Some(start..end)
}

fn convert(raw: RawConfig, r: &mut Reporter, env: &dyn Environment) -> Config {
    let mut admission = Admission::default();
    if let Some(a) = raw.admission {
        let span = a.span();
        let a = a.into_inner();
        admission.degrade = a.degrade.unwrap_or(admission.degrade);
        if let Some(b) = a.budget_s {
            if b.is_finite() && b >= 0.0 {
                admission.budget_s = b;
            } else {
                r.at(
                    Some(span.clone()),
                    "[admission] budget_s must be 0 or more seconds",
                );
            }
        }
        if let Some(url) = a.alert_webhook {
            let ok = url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://");
            if ok {
                admission.alert_webhook = Some(url.into_inner());
            } else {
                r.at(
                    Some(url.span()),
                    "[admission] alert_webhook must be an http:// or https:// URL",
                );
            }
        }
        if let Some(m) = a.monitoring {
            match m.get_ref().as_str() {
                "drift" => admission.monitoring = crate::monitor::Monitoring::Drift,
                "sudden_shift" => admission.monitoring = crate::monitor::Monitoring::SuddenShift,
                other => r.at(
                    Some(m.span()),
                    format!("[admission] monitoring `{other}` is not `drift` or `sudden_shift`"),
                ),
            }
        }
        if let Some(tiers) = a.tiers {
            let distinct: BTreeSet<&String> = tiers.iter().collect();
            if tiers.is_empty() || tiers.len() > 16 || distinct.len() != tiers.len() {
                r.at(
                    Some(span),
                    "[admission] tiers: 1 to 16 distinct names, highest service first",
                );
            } else {
                admission.tiers = tiers;
            }
        }
    }
    let mut dni = Dni::default();
    if let Some(d) = raw.dni {
        for (field, value, target) in [
            (
                "sessions_per_minute_per_address",
                d.sessions_per_minute_per_address,
                &mut dni.sessions_per_minute_per_address,
            ),
            (
                "sessions_per_minute_per_visitor",
                d.sessions_per_minute_per_visitor,
                &mut dni.sessions_per_minute_per_visitor,
            ),
            ("burst", d.burst, &mut dni.burst),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 {
                    r.at(Some(v.span()), format!("[dni] {field} must be 1 or more"));
                }
                *target = *v.get_ref();
            }
        }
        dni.attribution_grace_s = d.attribution_grace_s.unwrap_or(dni.attribution_grace_s);
        // `trust_forwarded_for = true`, as before: one proxy, which appends the client's address.
        dni.proxies.count = u8::from(d.trust_forwarded_for.unwrap_or(false));
        if let Some(n) = d.trusted_proxies {
            match u8::try_from(*n.get_ref()) {
                Ok(count) if count <= 16 => dni.proxies.count = count,
                _ => r.at(Some(n.span()), "[dni] trusted_proxies: 0 to 16"),
            }
        }
        for cidr in d.trusted_proxy_cidrs.unwrap_or_default() {
            match cidr.get_ref().parse::<ipnet::IpNet>() {
                Ok(net) => dni.proxies.cidrs.push(net),
                Err(_) => r.at(
                    Some(cidr.span()),
                    format!(
                        "[dni] trusted_proxy_cidrs: `{}` is not a network like 10.0.0.0/8 or fd00::/8",
                        cidr.get_ref()
                    ),
                ),
            }
        }
        if dni.proxies.count > 0 && !dni.proxies.cidrs.is_empty() {
            r.at(
                None,
                "[dni] say trusted_proxies (how many) or trusted_proxy_cidrs (which), not both",
            );
        }
        if let Some(n) = d.leases_per_address {
            if *n.get_ref() == 0 {
                r.at(Some(n.span()), "[dni] leases_per_address must be 1 or more");
            }
            dni.leases_per_address = *n.get_ref();
        }
    }
    let mut carrier_accounts = Vec::new();
    for c in raw.carrier_accounts {
        let span = c.span();
        let c = c.into_inner();
        if carrier_accounts
            .iter()
            .any(|x: &CarrierAccount| x.name == *c.name.get_ref())
        {
            r.at(
                Some(c.name.span()),
                format!("carrier account `{}` is defined twice", c.name.get_ref()),
            );
        }
        let sid = c.account_sid.get_ref();
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            r.at(
                Some(c.account_sid.span()),
                format!("`{sid}` is not an account SID (AC followed by 32 hex digits)"),
            );
        }
        let token = match (c.auth_token, c.auth_token_env) {
            (Some(t), None) if !t.is_empty() => t,
            (None, Some(var)) => match env.var(var.get_ref()) {
                Some(t) if !t.is_empty() => t,
                _ => {
                    r.at(
                        Some(var.span()),
                        format!("environment variable `{}` is not set", var.get_ref()),
                    );
                    String::new()
                }
            },
            _ => {
                r.at(
                    Some(span),
                    "a carrier account needs exactly one of `auth_token` or `auth_token_env`",
                );
                String::new()
            }
        };
        let dial_limit = c.dial_limit.and_then(|l| {
            let span = l.span();
            let l = l.into_inner();
            let period_s = l.period_s.unwrap_or(1.0);
            let ok = l.count > 0 && period_s.is_finite() && period_s > 0.0;
            if !ok {
                r.at(
                    Some(span),
                    "dial_limit: `count` setups (1 or more) per `period_s` seconds (more than 0)",
                );
            }
            ok.then_some(SetupLimit {
                count: l.count,
                period_s,
                burst: l.burst.unwrap_or(1).max(1),
            })
        });
        let concurrent_calls = c.concurrent_calls.and_then(|n| {
            if *n.get_ref() == 0 {
                r.at(Some(n.span()), "concurrent_calls must be 1 or more");
                None
            } else {
                Some(*n.get_ref())
            }
        });
        carrier_accounts.push(CarrierAccount {
            name: c.name.into_inner(),
            account_sid: sid.clone(),
            auth_token: token,
            dial_limit,
            concurrent_calls,
        });
    }

    let mut accounts = Vec::new();
    for a in raw.accounts {
        let a = a.into_inner();
        if !slug_ok(a.slug.get_ref()) {
            r.at(
                Some(a.slug.span()),
                format!(
                    "account slug `{}` may only use letters, digits, - and _",
                    a.slug.get_ref()
                ),
            );
        }
        if accounts
            .iter()
            .any(|x: &Account| x.slug == *a.slug.get_ref())
        {
            r.at(
                Some(a.slug.span()),
                format!("account `{}` is defined twice", a.slug.get_ref()),
            );
        }
        accounts.push(Account {
            slug: a.slug.into_inner(),
            name: a.name,
        });
    }

    // Where each tracking number is written, in file order, to point at a duplicate.
    let mut written: HashMap<String, Vec<Range<usize>>> = HashMap::new();
    for c in &raw.companies {
        for t in &c.get_ref().trackers {
            let t = t.get_ref();
            for n in t.number.iter().chain(t.pool.iter().flatten()) {
                if let Ok(number) = PhoneNumber::parse(n.get_ref()) {
                    written
                        .entry(number.to_string())
                        .or_default()
                        .push(n.span());
                }
            }
        }
    }
    let mut companies = Vec::new();
    let mut numbers: HashMap<String, (usize, usize)> = HashMap::new();
    for (ci, c) in raw.companies.into_iter().enumerate() {
        let company = convert_company(
            c.into_inner(),
            r,
            &carrier_accounts,
            &accounts,
            &companies,
            &admission.tiers,
        );
        for (ti, t) in company.trackers.iter().enumerate() {
            for n in &t.numbers {
                if let Some(&(oc, ot)) = numbers.get(n.as_str()) {
                    let other: &Company = if oc == ci { &company } else { &companies[oc] };
                    // The second place it is written.
                    let span = written.get(n.as_str()).and_then(|w| w.get(1)).cloned();
                    r.at(
                        span,
                        format!(
                            "tracking number {n} belongs to two trackers: `{}` of `{}` and `{}` of `{}`",
                            other.trackers[ot].name, other.slug, t.name, company.slug
                        ),
                    );
                } else {
                    numbers.insert(n.to_string(), (ci, ti));
                }
            }
        }
        companies.push(company);
    }
    Config {
        admission,
        dni,
        carrier_accounts,
        accounts,
        companies,
        numbers,
    }
}

fn phone(r: &mut Reporter, s: &Spanned<String>) -> Option<PhoneNumber> {
    PhoneNumber::parse(s.get_ref())
        .map_err(|e| r.at(Some(s.span()), e.to_string()))
        .ok()
}

fn date(r: &mut Reporter, s: &Spanned<String>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get_ref(), "%Y-%m-%d")
        .map_err(|_| {
            r.at(
                Some(s.span()),
                format!("`{}` is not a date (expected YYYY-MM-DD)", s.get_ref()),
            )
        })
        .ok()
}

fn convert_company(
    c: RawCompany,
    r: &mut Reporter,
    carriers: &[CarrierAccount],
    accounts: &[Account],
    earlier: &[Company],
    tiers: &[String],
) -> Company {
    let slug = c.slug.get_ref().clone();
    if !slug_ok(&slug) {
        r.at(
            Some(c.slug.span()),
            format!("company slug `{slug}` may only use letters, digits, - and _"),
        );
    }
    if earlier.iter().any(|x| x.slug == slug) {
        r.at(
            Some(c.slug.span()),
            format!("company `{slug}` is defined twice"),
        );
    }
    if !accounts.iter().any(|a| a.slug == *c.account.get_ref()) {
        r.at(
            Some(c.account.span()),
            format!(
                "company `{slug}`: unknown account `{}`",
                c.account.get_ref()
            ),
        );
    }
    let carrier = carriers
        .iter()
        .position(|a| a.name == *c.carrier_account.get_ref())
        .unwrap_or_else(|| {
            r.at(
                Some(c.carrier_account.span()),
                format!(
                    "company `{slug}`: unknown carrier account `{}`",
                    c.carrier_account.get_ref()
                ),
            );
            0
        });
    let time_zone: Tz = c.time_zone.get_ref().parse().unwrap_or_else(|_| {
        r.at(
            Some(c.time_zone.span()),
            format!(
                "`{}` is not an IANA time zone (like America/New_York)",
                c.time_zone.get_ref()
            ),
        );
        Tz::UTC
    });
    let mut destinations = BTreeMap::new();
    for (name, n) in &c.destinations {
        if let Some(p) = phone(r, n) {
            destinations.insert(name.clone(), p);
        }
    }
    // A destination is named in the company's table, or written out as a number.
    let resolve = |r: &mut Reporter, s: &Spanned<String>| -> Option<PhoneNumber> {
        if let Some(p) = destinations.get(s.get_ref()) {
            return Some(p.clone());
        }
        if s.get_ref().starts_with('+') {
            return phone(r, s);
        }
        r.at(
            Some(s.span()),
            format!(
                "unknown destination `{}` (not in [destinations] and not a +E.164 number)",
                s.get_ref()
            ),
        );
        None
    };
    let primary_number = resolve(r, &c.primary_number)
        .unwrap_or_else(|| PhoneNumber::parse("+10000000000").expect("valid"));
    let website_number = c.website_number.as_ref().and_then(|s| phone(r, s));
    let website = c.website.map(|w| convert_website(w, r)).unwrap_or_default();
    let tier = match &c.tier {
        None => 0,
        Some(t) => match tiers.iter().position(|x| x == t.get_ref()) {
            Some(i) => i as u8,
            None => {
                r.at(
                    Some(t.span()),
                    format!(
                        "company `{slug}`: tier `{}` is not one of [admission] tiers ({})",
                        t.get_ref(),
                        tiers.join(", ")
                    ),
                );
                0
            }
        },
    };
    let holidays = c.holidays.iter().filter_map(|d| date(r, d)).collect();

    let without_notice_reason = match c.recording.without_notice_reason {
        Some(reason) if reason.get_ref().trim().is_empty() => {
            r.at(
                Some(reason.span()),
                "`without_notice_reason` must say why calls are recorded without a notice",
            );
            None
        }
        other => other.map(Spanned::into_inner),
    };
    let recording = RecordingPolicy {
        notice: c
            .recording
            .notice
            .unwrap_or_else(|| DEFAULT_RECORDING_NOTICE.to_owned()),
        without_notice_reason,
    };

    // Trackers may name a flow that failed its checks: that flow's own errors are enough.
    let flow_names: BTreeSet<String> = c.flows.keys().cloned().collect();
    let mut flows = BTreeMap::new();
    for (name, f) in c.flows {
        let span = f.span();
        if !slug_ok(&name) {
            r.at(
                Some(span.clone()),
                format!("flow name `{name}` may only use letters, digits, - and _"),
            );
        }
        if let Some(flow) = convert_flow(&slug, &name, f.into_inner(), r, &resolve, &recording) {
            flows.insert(name, flow);
        }
    }

    let mut trackers = Vec::new();
    for t in c.trackers {
        let span = t.span();
        let t = t.into_inner();
        let kind = match t.kind.get_ref().as_str() {
            "source" => TrackerKind::Source,
            "session" => TrackerKind::Session,
            other => {
                r.at(
                    Some(t.kind.span()),
                    format!("tracker type `{other}` is not `source` or `session`"),
                );
                TrackerKind::Source
            }
        };
        let numbers: Vec<PhoneNumber> = match (kind, &t.number, &t.pool) {
            (TrackerKind::Source, Some(n), None) => phone(r, n).into_iter().collect(),
            (TrackerKind::Session, None, Some(pool)) if !pool.is_empty() => {
                pool.iter().filter_map(|n| phone(r, n)).collect()
            }
            (TrackerKind::Source, _, _) => {
                r.at(
                    Some(span.clone()),
                    format!(
                        "source tracker `{}` needs one `number` (and no `pool`)",
                        t.name
                    ),
                );
                vec![]
            }
            (TrackerKind::Session, _, _) => {
                r.at(
                    Some(span.clone()),
                    format!(
                        "session tracker `{}` needs a non-empty `pool` (and no `number`)",
                        t.name
                    ),
                );
                vec![]
            }
        };
        if !flow_names.contains(t.flow.get_ref()) {
            r.at(
                Some(t.flow.span()),
                format!("tracker `{}`: unknown flow `{}`", t.name, t.flow.get_ref()),
            );
        }
        let swap: Vec<SwapRule> = t
            .swap
            .into_iter()
            .filter_map(|rule| swap_rule(rule, r))
            .collect();
        match kind {
            TrackerKind::Source if !swap.is_empty() => r.at(
                Some(span),
                format!(
                    "source tracker `{}`: `swap` rules belong to session trackers (their pool is what the website shows)",
                    t.name
                ),
            ),
            TrackerKind::Session if swap.is_empty() => r.at(
                Some(span),
                format!(
                    "session tracker `{}` needs `swap` rules saying which visitors see its pool (like swap = [{{ landing = {{ gclid = \"*\" }} }}])",
                    t.name
                ),
            ),
            _ => {}
        }
        trackers.push(Tracker {
            name: t.name,
            kind,
            numbers,
            flow: t.flow.into_inner(),
            swap,
        });
    }

    if trackers.iter().any(|t| t.kind == TrackerKind::Session) {
        if website_number.is_none() {
            r.at(
                Some(c.slug.span()),
                format!("company `{slug}` has session trackers but no `website_number` for the snippet to swap"),
            );
        }
        if website.origins.is_empty() {
            r.at(
                Some(c.slug.span()),
                format!("company `{slug}` has session trackers but no [companies.website] origins allowed to ask for numbers"),
            );
        }
    }
    Company {
        slug,
        name: c.name,
        account: c.account.into_inner(),
        carrier,
        time_zone,
        website_number,
        website,
        primary_number,
        destinations,
        holidays,
        recording,
        trackers,
        flows,
        tier,
    }
}

fn convert_website(w: RawWebsite, r: &mut Reporter) -> Website {
    let mut website = Website::default();
    for o in &w.origins {
        match OriginPattern::parse(o.get_ref()) {
            Ok(p) => website.origins.push(p),
            Err(e) => r.at(Some(o.span()), e),
        }
    }
    if let Some(d) = w.cookie_domain {
        let ok = !d.get_ref().is_empty()
            && d.get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            website.cookie_domain = Some(d.get_ref().trim_start_matches('.').to_owned());
        } else {
            r.at(
                Some(d.span()),
                format!("`{}` is not a domain (like acme.example)", d.get_ref()),
            );
        }
    }
    if let Some(m) = w.lease_idle_min {
        if (1..=24 * 60).contains(m.get_ref()) {
            website.lease_idle_s = m.get_ref() * 60;
        } else {
            r.at(Some(m.span()), "lease_idle_min: 1 to 1440 minutes");
        }
    }
    website
}

fn swap_rule(rule: Spanned<RawSwapRule>, r: &mut Reporter) -> Option<SwapRule> {
    let span = rule.span();
    let rule = rule.into_inner();
    let mut found = Vec::new();
    if let Some(params) = rule.landing {
        if params.is_empty() {
            r.at(Some(span.clone()), "`landing` needs at least one parameter");
            return None;
        }
        found.push(SwapRule::Landing(
            params
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ));
    }
    if let Some(url) = rule.referrer {
        found.push(SwapRule::Referrer(url));
    }
    if let Some(g) = rule.referrer_group {
        match ReferrerGroup::parse(&g) {
            Some(g) => found.push(SwapRule::ReferrerGroup(g)),
            None => {
                r.at(
                    Some(span.clone()),
                    format!("referrer_group `{g}` is not `search` or `social`"),
                );
                return None;
            }
        }
    }
    if rule.direct == Some(true) {
        found.push(SwapRule::Direct);
    }
    if rule.all == Some(true) {
        found.push(SwapRule::All);
    }
    if found.len() != 1 {
        r.at(
            Some(span),
            "a swap rule is exactly one of `landing = { param = \"value\" }`, `referrer = \"URL\"`, `referrer_group = \"search\"|\"social\"`, `direct = true`, `all = true`",
        );
        return None;
    }
    found.pop()
}

/// Resolves a step reference: (reporter, field name, step name, reference) → index.
type StepLookup<'a> = dyn Fn(&mut Reporter, &str, &str, &Spanned<String>) -> Option<StepId> + 'a;

type Resolver<'a> = dyn Fn(&mut Reporter, &Spanned<String>) -> Option<PhoneNumber> + 'a;

fn convert_flow(
    company: &str,
    name: &str,
    f: RawFlow,
    r: &mut Reporter,
    resolve: &Resolver,
    recording: &RecordingPolicy,
) -> Option<Flow> {
    let errors_before = r.errors.len();
    let ids: Vec<String> = f.steps.keys().cloned().collect();
    let spans: Vec<Range<usize>> = f.steps.values().map(|s| s.span()).collect();
    for (id, span) in ids.iter().zip(&spans) {
        if !slug_ok(id) {
            r.at(
                Some(span.clone()),
                format!("flow `{name}`: step name `{id}` may only use letters, digits, - and _"),
            );
        }
    }
    let lookup =
        |r: &mut Reporter, field: &str, step: &str, s: &Spanned<String>| -> Option<StepId> {
            let found = ids.iter().position(|id| id == s.get_ref());
            if found.is_none() {
                r.at(
                    Some(s.span()),
                    format!(
                        "flow `{name}` step `{step}`: `{field}` refers to unknown step `{}`",
                        s.get_ref()
                    ),
                );
            }
            found
        };
    let start = ids.iter().position(|id| id == f.start.get_ref());
    if start.is_none() {
        r.at(
            Some(f.start.span()),
            format!(
                "flow `{name}`: `start` refers to unknown step `{}`",
                f.start.get_ref()
            ),
        );
    }
    let mut steps = Vec::new();
    for (id, raw) in f.steps {
        let span = raw.span();
        let action = convert_step(
            name,
            &id,
            span,
            raw.into_inner(),
            r,
            &lookup,
            resolve,
            recording,
        );
        steps.push(action.map(|action| Step { id, action }));
    }
    if r.errors.len() > errors_before {
        return None;
    }
    let flow = Flow {
        name: name.to_owned(),
        start: start?,
        steps: steps.into_iter().collect::<Option<Vec<_>>>()?,
    };
    let line_of = |id: StepId| Some(spans[id].clone());
    let names = |path: &[StepId]| {
        path.iter()
            .map(|s| flow.steps[*s].id.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    };
    for problem in flow.problems(recording.without_notice_reason.is_some()) {
        match problem {
            FlowProblem::Unreachable(s) => r.at(
                line_of(s),
                format!("flow `{name}` of `{company}`: step `{}` can never be reached from `start`", flow.steps[s].id),
            ),
            FlowProblem::EndlessLoop(cycle) => r.at(
                line_of(cycle[0]),
                format!(
                    "flow `{name}` of `{company}`: the steps {} → {} loop without the caller pressing a key, so the call could never end",
                    names(&cycle),
                    flow.steps[cycle[0]].id
                ),
            ),
            FlowProblem::RecordingWithoutNotice { record, path } => r.at(
                line_of(record),
                format!(
                    "flow `{name}` of `{company}`: step `{}` records the call but the path {} plays no recording notice first \
                     (add a `recording_notice` step, or set [companies.recording] without_notice_reason if the company records without one)",
                    flow.steps[record].id,
                    names(&path)
                ),
            ),
        }
    }
    Some(flow)
}

#[allow(clippy::too_many_arguments)]
fn convert_step(
    flow: &str,
    id: &str,
    span: Range<usize>,
    s: RawStep,
    r: &mut Reporter,
    lookup: &StepLookup,
    resolve: &Resolver,
    recording: &RecordingPolicy,
) -> Option<Action> {
    let here = format!("flow `{flow}` step `{id}`");
    let Some(kind) = &s.kind else {
        r.at(Some(span), format!("{here}: missing `type`"));
        return None;
    };
    let allowed: &[&str] = match kind.get_ref().as_str() {
        "greeting" => &["say", "play", "next"],
        "recording_notice" => &["text", "next"],
        "record" => &["next"],
        "menu" => &[
            "say",
            "play",
            "options",
            "default",
            "retries",
            "timeout_s",
            "invalid_say",
        ],
        "schedule" => &["hours", "holidays", "open", "closed"],
        "dial" => &[
            "strategy",
            "to",
            "ring_timeout_s",
            "whisper",
            "caller_id",
            "next",
        ],
        "voicemail" => &["say", "play", "max_length_s"],
        "hangup" => &["say", "play"],
        other => {
            r.at(
                Some(kind.span()),
                format!("{here}: unknown step type `{other}` (greeting, recording_notice, record, menu, schedule, dial, voicemail, hangup)"),
            );
            return None;
        }
    };
    let kind = kind.get_ref().as_str();
    let mut ok = true;
    for f in s.present_fields() {
        if !allowed.contains(&f) {
            r.at(
                Some(span.clone()),
                format!("{here}: `{f}` does not apply to a `{kind}` step"),
            );
            ok = false;
        }
    }
    let next = match &s.next {
        Some(n) => Some(lookup(r, "next", id, n)?),
        None => None,
    };
    let required = |field: &str, v: &Option<Spanned<String>>, r: &mut Reporter| -> Option<StepId> {
        match v {
            Some(v) => lookup(r, field, id, v),
            None => {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a `{kind}` step needs `{field}`"),
                );
                None
            }
        }
    };
    let message = |r: &mut Reporter, required: bool| -> Option<Option<Message>> {
        match (&s.say, &s.play) {
            (Some(t), None) => Some(Some(Message::Say(t.clone()))),
            (None, Some(u)) => Some(Some(Message::Play(u.clone()))),
            (None, None) if !required => Some(None),
            _ => {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a `{kind}` step needs exactly one of `say` or `play`"),
                );
                None
            }
        }
    };
    let action = match kind {
        "greeting" => Action::Greeting {
            message: message(r, true)??,
            next,
        },
        "recording_notice" => Action::RecordingNotice {
            text: s.text.clone().unwrap_or_else(|| recording.notice.clone()),
            next,
        },
        "record" => Action::Record { next },
        "menu" => {
            let prompt = message(r, true)??;
            let mut options = BTreeMap::new();
            for (digits, target) in s.options.iter().flatten() {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*') {
                    r.at(
                        Some(target.span()),
                        format!("{here}: option `{digits}` is not a key sequence (digits or *)"),
                    );
                    continue;
                }
                if let Some(t) = lookup(r, &format!("options.{digits}"), id, target) {
                    options.insert(digits.clone(), t);
                }
            }
            if options.is_empty() {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a menu needs at least one entry in `options`"),
                );
            }
            let Some(default) = &s.default else {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a menu needs a `default` step for callers who press nothing or an invalid key"),
                );
                return None;
            };
            Action::Menu(Menu {
                prompt,
                options,
                default: lookup(r, "default", id, default)?,
                retries: s.retries.unwrap_or(2).min(10),
                timeout_s: s.timeout_s.unwrap_or(5).clamp(1, 60),
                invalid_message: s
                    .invalid_say
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INVALID_CHOICE.to_owned()),
            })
        }
        "schedule" => {
            let mut hours = Vec::new();
            for h in s.hours.iter().flatten() {
                match WeeklyHours::parse(h.get_ref()) {
                    Ok(h) => hours.push(h),
                    Err(e) => r.at(Some(h.span()), format!("{here}: {e}")),
                }
            }
            if s.hours.is_none() {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a schedule needs `hours`, like [\"mon-fri 08:00-18:00\"]"),
                );
            }
            let holidays = s
                .holidays
                .iter()
                .flatten()
                .filter_map(|d| date(r, d))
                .collect();
            let open = required("open", &s.open, r);
            let closed = required("closed", &s.closed, r);
            Action::Schedule(Schedule {
                hours,
                holidays,
                open: open?,
                closed: closed?,
            })
        }
        "dial" => {
            let strategy = match s
                .strategy
                .as_ref()
                .map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("simulcall", _)) => Strategy::Simulcall,
                Some(("sequential", _)) => Strategy::Sequential,
                Some(("round_robin", _)) => Strategy::RoundRobin,
                Some((other, sp)) => {
                    r.at(
                        Some(sp),
                        format!(
                            "{here}: strategy `{other}` is not simulcall, sequential or round_robin"
                        ),
                    );
                    return None;
                }
            };
            let destinations: Vec<PhoneNumber> =
                s.to.iter()
                    .flatten()
                    .filter_map(|d| resolve(r, d))
                    .collect();
            if s.to.as_ref().is_none_or(|t| t.is_empty()) {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a dial step needs destinations in `to`"),
                );
            }
            if strategy == Strategy::Simulcall && destinations.len() > 10 {
                r.at(
                    Some(span.clone()),
                    format!("{here}: a simulcall rings at most 10 destinations at once"),
                );
            }
            let caller_id = match s.caller_id.as_ref() {
                None => CallerId::Caller,
                Some(c) if c.get_ref() == "caller" => CallerId::Caller,
                Some(c) if c.get_ref() == "tracking_number" => CallerId::TrackingNumber,
                Some(c) => CallerId::Fixed(phone(r, c)?),
            };
            Action::Dial(DialStep {
                strategy,
                destinations,
                ring_timeout_s: s.ring_timeout_s.unwrap_or(20).clamp(5, 600),
                whisper: s.whisper.clone(),
                caller_id,
                next,
            })
        }
        "voicemail" => Action::Voicemail {
            prompt: message(r, false)?
                .unwrap_or_else(|| Message::Say(DEFAULT_VOICEMAIL_PROMPT.to_owned())),
            max_length_s: s.max_length_s.unwrap_or(120).clamp(5, 3600),
        },
        "hangup" => Action::Hangup {
            message: message(r, false)?,
        },
        _ => unreachable!("step types are matched above"),
    };
    ok.then_some(action)
}

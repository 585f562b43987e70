//! Replay scenario files: a day of traffic (a time-of-day curve), many companies with different
//! call flows and fan-outs, the callers, the agents and the carrier's limit, in one TOML file.
//! From it come the dialtone configuration the replay serves and the emulator's scenario.
//!
//! Built-in scenarios live in `crates/dialtone/scenarios/` and are named on the command line
//! (`dialtone replay business-day`); any other name is read as a file.

use std::fmt::Write;

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use dialtone_carrier::emulator::{Duration, Scenario};
use dialtone_carrier::queue::{DialLimit, Pacing};
use serde::Deserialize;

/// (name, what it is, the file).
pub const BUILTIN: [(&str, &str, &str); 2] = [
    (
        "business-day",
        "a US east-coast business day of about 200,000 calls across 200 companies, simulcall, single-number and menu flows, under a 15/s dial limit",
        include_str!("../scenarios/business-day.toml"),
    ),
    (
        "may14",
        "May 14, 2018, 08:00-18:00 EDT: 850 companies, up to 37,000 calls an hour, and a carrier limit of 20 setups a second that the offered legs exceed from 13:30 to about 16:40",
        include_str!("../scenarios/may14.toml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Shown in reports and plots.
    pub name: String,
    /// When the run starts (RFC 3339): the server's clock, the call records' times.
    pub start: DateTime<chrono::FixedOffset>,
    pub duration_s: f64,
    /// When the offered legs first exceed the carrier's limit, if the scenario has such a moment
    /// (reports measure how long dialtone took to alert after it).
    pub onset: Option<DateTime<chrono::FixedOffset>>,
    pub traffic: Traffic,
    #[serde(default)]
    pub callers: Callers,
    #[serde(default)]
    pub agents: Agents,
    #[serde(default)]
    pub carrier: Carrier,
    /// Service tiers, highest first, for companies' `tier` (dial shaping goes lowest first).
    #[serde(default)]
    pub tiers: Vec<String>,
    pub companies: Vec<CompanyGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Calls expected over the whole run; sets the rate with the curve. Or `arrivals_per_second`.
    pub calls: Option<f64>,
    /// Mean arrivals per second at a curve value of 1.
    pub arrivals_per_second: Option<f64>,
    /// Rate multipliers by hour of the run (linearly interpolated); empty = flat.
    #[serde(default)]
    pub curve: Vec<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callers {
    /// How long callers wait for a person; absent = for ever.
    pub patience: Option<Duration>,
    /// Keys pressed at menus, one drawn per call; "" presses nothing.
    #[serde(default)]
    pub menu_choices: Vec<String>,
    #[serde(default = "default_voicemail_s")]
    pub voicemail_s: u32,
}

fn default_voicemail_s() -> u32 {
    20
}

impl Default for Callers {
    fn default() -> Self {
        Self {
            patience: None,
            menu_choices: Vec::new(),
            voicemail_s: default_voicemail_s(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    #[serde(default = "one")]
    pub answer_probability: f64,
    #[serde(default)]
    pub busy_probability: f64,
    #[serde(default = "instant")]
    pub ring: Duration,
    #[serde(default = "two_minutes")]
    pub talk: Duration,
}

fn one() -> f64 {
    1.0
}
fn instant() -> Duration {
    Duration::Fixed { s: 0.0 }
}
fn two_minutes() -> Duration {
    Duration::Exponential { mean_s: 120.0 }
}

impl Default for Agents {
    fn default() -> Self {
        Self {
            answer_probability: 1.0,
            busy_probability: 0.0,
            ring: instant(),
            talk: two_minutes(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carrier {
    /// Outbound setups allowed per `period_s` (absent: unlimited).
    pub dial_limit: Option<u32>,
    #[serde(default = "one")]
    pub period_s: f64,
    /// `spaced` (evenly, with `burst`) or `window` (fixed windows of one period).
    #[serde(default)]
    pub pacing: PacingName,
    #[serde(default)]
    pub burst: u32,
    pub max_concurrent: Option<u32>,
    /// Whether `<Dial>` legs count against the limit (default: they do, as in the seed).
    pub dial_legs_limited: Option<bool>,
    /// Whether the carrier cancels a queued leg when its caller hangs up (default: it does).
    pub cancels_abandoned_legs: Option<bool>,
}

impl Default for Carrier {
    fn default() -> Self {
        Self {
            dial_limit: None,
            period_s: 1.0,
            pacing: PacingName::Spaced,
            burst: 0,
            max_concurrent: None,
            dial_legs_limited: None,
            cancels_abandoned_legs: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacingName {
    #[default]
    Spaced,
    Window,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Ring every destination at once.
    Simulcall,
    /// Ring one destination.
    Single,
    /// Ring destinations one after another.
    Sequential,
    /// A greeting and a menu: 1 rings everyone at once, 2 one number, else everyone.
    Menu,
}

/// `count` alike companies sharing `share` of the calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyGroup {
    pub name: String,
    pub count: u32,
    /// Relative share of all calls (shares are normalised).
    pub share: f64,
    pub flow: FlowKind,
    /// Destinations each company rings (1 for `single`).
    #[serde(default = "one_u32")]
    pub fanout: u32,
    #[serde(default = "twenty")]
    pub ring_timeout_s: u32,
    /// Record calls (after a recording notice).
    #[serde(default)]
    pub record: bool,
    /// The group's service tier, one of the file's `tiers`.
    pub tier: Option<String>,
}

fn one_u32() -> u32 {
    1
}
fn twenty() -> u32 {
    20
}

/// A scenario ready to run.
pub struct Loaded {
    pub file: File,
    pub config: String,
    pub scenario: Scenario,
}

/// The text of a built-in scenario or a file.
pub fn source(name: &str) -> anyhow::Result<(String, String)> {
    if let Some((_, _, text)) = BUILTIN.iter().find(|(n, _, _)| *n == name) {
        return Ok((format!("built-in scenario {name}"), (*text).to_owned()));
    }
    let text = std::fs::read_to_string(name).with_context(|| {
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _, _)| *n).collect();
        format!(
            "{name} is neither a built-in scenario ({}) nor a readable file",
            names.join(", ")
        )
    })?;
    Ok((name.to_owned(), text))
}

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "replay-auth-token";

/// Tracking number of company `k` (counted over all groups) and its destination `d`.
fn tracking_number(k: u32) -> String {
    format!("+1404{:07}", 2_000_000 + k)
}
fn destination(k: u32, d: u32) -> String {
    format!("+1678{:07}", 1_000_000 + k * 10 + d)
}

pub fn load(origin: &str, text: &str, seed: u64, platform: Platform) -> anyhow::Result<Loaded> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    check(&file).with_context(|| format!("{origin}: invalid scenario"))?;
    let mut numbers = Vec::new();
    let mut weights = Vec::new();
    let total_share: f64 = file.companies.iter().map(|g| g.share).sum();
    let mut k = 0;
    for g in &file.companies {
        for _ in 0..g.count {
            numbers.push(tracking_number(k));
            weights.push(g.share / total_share / f64::from(g.count));
            k += 1;
        }
    }
    let curve = file.traffic.curve.clone();
    let mut scenario = Scenario {
        duration_s: file.duration_s,
        arrivals_per_second: 1.0,
        curve,
        numbers,
        number_weights: weights,
        patience: file.callers.patience,
        answer_probability: file.agents.answer_probability,
        busy_probability: file.agents.busy_probability,
        ring: file.agents.ring,
        talk: file.agents.talk,
        voicemail_s: file.callers.voicemail_s,
        menu_choices: file.callers.menu_choices.clone(),
        limit: file.carrier.dial_limit.map(|count| DialLimit {
            count,
            period_s: file.carrier.period_s,
            pacing: match file.carrier.pacing {
                PacingName::Spaced => Pacing::Spaced {
                    burst: file.carrier.burst.max(1),
                },
                PacingName::Window => Pacing::Window,
            },
            max_concurrent: file.carrier.max_concurrent,
        }),
        dial_legs_limited: file.carrier.dial_legs_limited.unwrap_or(true),
        cancels_abandoned_legs: file.carrier.cancels_abandoned_legs.unwrap_or(true),
        seed,
        ..Scenario::default()
    };
    let config = dialtone_config(&file, platform, scenario.limit.as_ref());
    scenario.arrivals_per_second = match (file.traffic.calls, file.traffic.arrivals_per_second) {
        (Some(calls), None) => calls / (scenario.mean_rate_multiplier() * file.duration_s),
        (None, Some(rate)) => rate,
        _ => bail!("{origin}: [traffic] needs exactly one of `calls` and `arrivals_per_second`"),
    };
    Ok(Loaded {
        file,
        config,
        scenario,
    })
}

fn check(f: &File) -> anyhow::Result<()> {
    let positive = |what: &str, v: f64| {
        ensure!(v.is_finite() && v > 0.0, "{what} must be positive, not {v}");
        Ok(())
    };
    positive("duration_s", f.duration_s)?;
    if let Some(c) = f.traffic.calls {
        positive("[traffic] calls", c)?;
    }
    if let Some(r) = f.traffic.arrivals_per_second {
        positive("[traffic] arrivals_per_second", r)?;
    }
    ensure!(
        f.traffic.curve.iter().all(|v| v.is_finite() && *v >= 0.0)
            && (f.traffic.curve.is_empty() || f.traffic.curve.iter().any(|v| *v > 0.0)),
        "[traffic] curve: multipliers are 0 or more, and not all 0"
    );
    let a = &f.agents;
    ensure!(
        (0.0..=1.0).contains(&a.answer_probability)
            && (0.0..=1.0).contains(&a.busy_probability)
            && a.answer_probability + a.busy_probability <= 1.0,
        "[agents] answer_probability and busy_probability are probabilities adding up to 1 at most"
    );
    positive("[carrier] period_s", f.carrier.period_s)?;
    if f.carrier.dial_limit == Some(0) {
        bail!("[carrier] dial_limit must be at least 1 (leave it out for no limit)");
    }
    ensure!(!f.companies.is_empty(), "no [[companies]]");
    let mut total = 0;
    for g in &f.companies {
        let here = format!("companies `{}`", g.name);
        ensure!(g.count > 0, "{here}: count must be at least 1");
        positive(&format!("{here}: share"), g.share)?;
        ensure!(
            (1..=10).contains(&g.fanout),
            "{here}: fanout is 1 to 10 (the carrier rings at most 10 numbers)"
        );
        ensure!(
            g.flow != FlowKind::Single || g.fanout == 1,
            "{here}: a `single` flow rings one number; use simulcall or sequential for fanout {}",
            g.fanout
        );
        ensure!(
            g.ring_timeout_s > 0,
            "{here}: ring_timeout_s must be positive"
        );
        total += g.count;
    }
    ensure!(
        total <= 100_000,
        "{total} companies: at most 100,000 fit the numbering"
    );
    Ok(())
}

/// How the replayed dialtone behaves under the carrier's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The 2018 platform: every leg the flows ask for, whatever the carrier's queue.
    None,
    /// Dial admission: shape dials when the carrier's queue would delay callers.
    Adaptive,
}

/// What the replayed dialtone is told about its carrier.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    pub policy: Policy,
    /// The carrier's limit is in dialtone's configuration (else dialtone must estimate it).
    pub limit_known: bool,
}

/// The `[admission]` table and the carrier account, as `platform` configures them.
pub fn carrier_config(
    platform: Platform,
    limit: Option<&DialLimit>,
    concurrent_calls: Option<u32>,
    tiers: &[String],
) -> String {
    // The 2018 platform asked for every leg and watched for sudden shifts only.
    let adaptive = platform.policy == Policy::Adaptive;
    let mut out = format!(
        "[admission]\ndegrade = {adaptive}\nmonitoring = \"{}\"\n",
        if adaptive { "drift" } else { "sudden_shift" }
    );
    if !tiers.is_empty() {
        let names: Vec<String> = tiers.iter().map(|t| toml_string(t)).collect();
        let _ = writeln!(out, "tiers = [{}]", names.join(", "));
    }
    let _ = write!(
        out,
        "\n[[carrier_accounts]]\nname = \"replay-carrier\"\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\n"
    );
    if let Some(l) = limit.filter(|_| platform.limit_known) {
        let burst = match l.pacing {
            Pacing::Spaced { burst } => burst.max(1),
            Pacing::Window => l.count,
        };
        let _ = writeln!(
            out,
            "dial_limit = {{ count = {}, period_s = {}, burst = {burst} }}",
            l.count, l.period_s
        );
    }
    if let Some(n) = concurrent_calls.filter(|_| platform.limit_known) {
        let _ = writeln!(out, "concurrent_calls = {n}");
    }
    out.push('\n');
    out
}

/// The dialtone configuration of the scenario: one account per group, one company per
/// tracking number.
fn dialtone_config(f: &File, platform: Platform, limit: Option<&DialLimit>) -> String {
    let mut out = carrier_config(platform, limit, f.carrier.max_concurrent, &f.tiers);
    for (gi, g) in f.companies.iter().enumerate() {
        let _ = write!(
            out,
            "[[accounts]]\nslug = \"group{gi}\"\nname = {}\n\n",
            toml_string(&g.name)
        );
    }
    let mut k = 0;
    for (gi, g) in f.companies.iter().enumerate() {
        for i in 0..g.count {
            company(&mut out, gi, i, k, g);
            k += 1;
        }
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn company(out: &mut String, gi: usize, i: u32, k: u32, g: &CompanyGroup) {
    let slug = format!("g{gi}-c{i}");
    let names: Vec<String> = (0..g.fanout).map(|d| format!("agent{d}")).collect();
    let _ = write!(
        out,
        "[[companies]]\nslug = \"{slug}\"\nname = {}\naccount = \"group{gi}\"\ncarrier_account = \"replay-carrier\"\ntime_zone = \"America/New_York\"\nwebsite_number = \"{}\"\nprimary_number = \"agent0\"\n",
        toml_string(&format!("{} {i}", g.name)),
        tracking_number(k)
    );
    if let Some(t) = &g.tier {
        let _ = writeln!(out, "tier = {}", toml_string(t));
    }
    out.push_str("\n[companies.destinations]\n");
    for (d, name) in names.iter().enumerate() {
        let _ = writeln!(out, "{name} = \"{}\"", destination(k, d as u32));
    }
    let _ = write!(
        out,
        "\n[[companies.trackers]]\nname = \"main line\"\ntype = \"source\"\nnumber = \"{}\"\nflow = \"main\"\n\n[companies.flows.main]\n",
        tracking_number(k)
    );
    let all = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dial = |name: &str, strategy: &str, to: &str| {
        format!(
            "[companies.flows.main.steps.{name}]\ntype = \"dial\"\nstrategy = \"{strategy}\"\nto = [{to}]\nring_timeout_s = {}\nnext = \"voicemail\"\n\n",
            g.ring_timeout_s
        )
    };
    let first = match g.flow {
        FlowKind::Menu => "greeting",
        _ => "ring",
    };
    let start = if g.record { "notice" } else { first };
    let _ = write!(out, "start = \"{start}\"\n\n");
    if g.record {
        let _ = write!(
            out,
            "[companies.flows.main.steps.notice]\ntype = \"recording_notice\"\nnext = \"record\"\n\n[companies.flows.main.steps.record]\ntype = \"record\"\nnext = \"{first}\"\n\n"
        );
    }
    match g.flow {
        FlowKind::Simulcall => out.push_str(&dial("ring", "simulcall", &all)),
        FlowKind::Single => out.push_str(&dial("ring", "simulcall", "\"agent0\"")),
        FlowKind::Sequential => out.push_str(&dial("ring", "sequential", &all)),
        FlowKind::Menu => {
            out.push_str(
                "[companies.flows.main.steps.greeting]\ntype = \"greeting\"\nsay = \"Thanks for calling.\"\nnext = \"choose\"\n\n\
                 [companies.flows.main.steps.choose]\ntype = \"menu\"\nsay = \"For sales press 1, for service press 2.\"\n\
                 options = { 1 = \"ring\", 2 = \"service\" }\ndefault = \"ring\"\nretries = 1\ntimeout_s = 5\n\n",
            );
            out.push_str(&dial("ring", "simulcall", &all));
            out.push_str(&dial("service", "simulcall", "\"agent0\""));
        }
    }
    out.push_str(
        "[companies.flows.main.steps.voicemail]\ntype = \"voicemail\"\nsay = \"Please leave a message.\"\n\n",
    );
}

/// Shown by `--list-scenarios`.
pub fn list() -> String {
    BUILTIN
        .iter()
        .map(|(n, what, _)| format!("{n}: {what}\n"))
        .collect()
}

impl File {
    pub fn start_utc(&self) -> DateTime<Utc> {
        self.start.with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADAPTIVE: Platform = Platform {
        policy: Policy::Adaptive,
        limit_known: true,
    };

    #[test]
    fn every_built_in_scenario_loads_into_a_valid_dialtone_config() {
        for (name, _, text) in BUILTIN {
            let loaded = load(name, text, 1, ADAPTIVE).expect("loads");
            let source = dialtone_server::ConfigSource::Builtin {
                name: "scenario",
                text: Box::leak(loaded.config.into_boxed_str()),
            };
            if let Err(e) = source.load() {
                panic!("{name}: {e}");
            }
            assert!(loaded.scenario.arrivals_per_second > 0.0);
        }
    }

    #[test]
    fn calls_set_the_rate_through_the_curve() {
        let text = r#"
name = "t"
start = "2026-05-14T08:00:00-04:00"
duration_s = 7200
[traffic]
calls = 10800
curve = [1.0, 2.0, 1.0]
[[companies]]
name = "a"
count = 2
share = 1
flow = "single"
"#;
        let loaded = load("t", text, 1, ADAPTIVE).expect("loads");
        // Mean multiplier over two hours of 1→2→1 is 1.5: 10,800 / (1.5 · 7,200) = 1 call/s.
        assert!((loaded.scenario.arrivals_per_second - 1.0).abs() < 0.01);
        assert_eq!(loaded.scenario.numbers.len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        let base = "name = \"t\"\nstart = \"2026-05-14T08:00:00-04:00\"\nduration_s = 60\n[traffic]\ncalls = 10\n";
        for (tail, want) in [
            (
                "[[companies]]\nname = \"a\"\ncount = 1\nshare = 1\nflow = \"single\"\nfanout = 3\n",
                "single",
            ),
            (
                "[[companies]]\nname = \"a\"\ncount = 1\nshare = 1\nflow = \"ring\"\n",
                "unknown variant",
            ),
            (
                "[[companies]]\nname = \"a\"\ncount = 0\nshare = 1\nflow = \"single\"\n",
                "count",
            ),
            (
                "[[companies]]\nname = \"a\"\ncount = 1\nshare = 1\nflow = \"single\"\ncolour = 1\n",
                "unknown field",
            ),
        ] {
            let err = match load("t.toml", &format!("{base}{tail}"), 1, ADAPTIVE) {
                Ok(_) => panic!("accepted: {tail}"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                err.contains(want) && err.contains("t.toml"),
                "{want}: {err}"
            );
        }
    }
}

//! The world around the emulated carrier's calls, from flags shared by `dialtone carrier` and
//! `dialtone replay`: who answers, how patient callers are, and the carrier's dial limit.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::Args;
use dialtone_carrier::cdr;
use dialtone_carrier::emulator::{CallRun, Duration, Report, Scenario};
use dialtone_carrier::queue::{DialLimit, Pacing};

#[derive(Args, Debug, Clone)]
pub struct WorldArgs {
    /// Mean seconds a caller waits for a person before hanging up (exponential); none = for ever.
    #[arg(long)]
    pub patience_mean_s: Option<f64>,
    /// Probability that a dialed person answers.
    #[arg(long, default_value_t = 1.0)]
    pub answer_probability: f64,
    /// Probability that a dialed number is busy.
    #[arg(long, default_value_t = 0.0)]
    pub busy_probability: f64,
    /// Median seconds a phone rings before it is answered (log-normal, σ 0.5); 0 = at once.
    #[arg(long, default_value_t = 0.0)]
    pub ring_median_s: f64,
    /// Mean seconds of conversation (exponential) [default: 120 in replay, 10 in carrier].
    #[arg(long)]
    pub talk_mean_s: Option<f64>,
    /// Seconds of the message a caller leaves at a voicemail prompt; 0 = hangs up at the beep.
    #[arg(long, default_value_t = 20)]
    pub voicemail_s: u32,
    /// Keys a caller presses at a menu (repeatable: each call picks one at random; "" presses
    /// nothing).
    #[arg(long = "menu-choice")]
    pub menu_choices: Vec<String>,
    /// The carrier's limit on outbound leg setups per second (none: unlimited).
    #[arg(long)]
    pub dial_limit: Option<f64>,
    /// Setups allowed at once after a quiet spell.
    #[arg(long, default_value_t = 1)]
    pub dial_burst: u32,
    /// Concurrent legs the carrier allows.
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn positive(name: &str, v: f64) -> anyhow::Result<()> {
    ensure!(
        v.is_finite() && v > 0.0,
        "--{name} must be a positive number, not {v}"
    );
    Ok(())
}

impl WorldArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(v) = self.talk_mean_s {
            positive("talk-mean-s", v)?;
        }
        if let Some(v) = self.dial_limit {
            positive("dial-limit", v)?;
        }
        if let Some(v) = self.patience_mean_s {
            positive("patience-mean-s", v)?;
        }
        for (name, p) in [
            ("answer-probability", self.answer_probability),
            ("busy-probability", self.busy_probability),
        ] {
            ensure!((0.0..=1.0).contains(&p), "--{name} must be between 0 and 1");
        }
        ensure!(
            self.answer_probability + self.busy_probability <= 1.0,
            "--answer-probability and --busy-probability add up to more than 1"
        );
        ensure!(
            self.ring_median_s.is_finite() && self.ring_median_s >= 0.0,
            "--ring-median-s must be 0 or more"
        );
        for c in &self.menu_choices {
            ensure!(
                c.chars()
                    .all(|k| k.is_ascii_digit() || k == '*' || k == '#'),
                "--menu-choice {c:?}: keys are 0-9, * and #"
            );
        }
        Ok(())
    }

    pub fn limit(&self) -> Option<DialLimit> {
        let burst = self.dial_burst.max(1);
        self.dial_limit.map(|per_s| DialLimit {
            count: burst,
            period_s: f64::from(burst) / per_s,
            pacing: Pacing::Spaced { burst },
            max_concurrent: self.max_concurrent,
        })
    }

    /// The scenario's world; the caller sets arrivals, numbers and length.
    pub fn scenario(&self, default_talk_mean_s: f64) -> Scenario {
        Scenario {
            patience: self
                .patience_mean_s
                .map(|mean_s| Duration::Exponential { mean_s }),
            answer_probability: self.answer_probability,
            busy_probability: self.busy_probability,
            ring: if self.ring_median_s > 0.0 {
                Duration::LogNormal {
                    median_s: self.ring_median_s,
                    sigma: 0.5,
                }
            } else {
                Duration::Fixed { s: 0.0 }
            },
            talk: Duration::Exponential {
                mean_s: self.talk_mean_s.unwrap_or(default_talk_mean_s),
            },
            voicemail_s: self.voicemail_s,
            menu_choices: self.menu_choices.clone(),
            limit: self.limit(),
            seed: self.seed,
            ..Scenario::default()
        }
    }
}

/// The outcome lines of a report, for people.
pub fn print_report(r: &Report) {
    println!(
        "connected {}, voicemail {}, abandoned {}, failed {}",
        r.connected, r.voicemail, r.abandoned, r.failed
    );
    println!(
        "legs {} (rang {}, never rang {}); queue wait mean {:.3} s, p95 {:.3} s, p99 {:.3} s",
        r.legs.requested,
        r.legs.started,
        r.legs.never_rang,
        r.queue_wait_s.mean,
        r.queue_wait_s.p95,
        r.queue_wait_s.p99
    );
    println!(
        "post-dial delay mean {:.3} s, p95 {:.3} s",
        r.post_dial_delay_s.mean, r.post_dial_delay_s.p95
    );
}

/// Writes the carrier's call records of `calls`, in arrival order, one JSON object a line.
pub fn write_cdrs(
    path: &Path,
    calls: &[CallRun],
    account_sid: &str,
    start: DateTime<Utc>,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut sorted: Vec<&CallRun> = calls.iter().collect();
    sorted.sort_by(|a, b| a.arrived_at.total_cmp(&b.arrived_at));
    for c in sorted {
        cdr::write_jsonl(&mut out, &cdr::records(c, account_sid, start))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Draws the report's per-minute series to `path` (SVG), minutes labelled with clock times from
/// `start`, in its offset.
pub fn write_plot(
    path: &Path,
    report: &Report,
    title: &str,
    start: DateTime<chrono::FixedOffset>,
) -> anyhow::Result<()> {
    let label = |m: u32| {
        (start + chrono::TimeDelta::minutes(i64::from(m)))
            .format("%H:%M")
            .to_string()
    };
    let zone = match start.offset().local_minus_utc() {
        0 => "UTC".to_owned(),
        _ => format!("UTC{}", start.format("%:z")),
    };
    let doc = dialtone_carrier::plot::svg(report, &format!("{title} (times {zone})"), &label);
    std::fs::write(path, doc).with_context(|| format!("writing {}", path.display()))
}

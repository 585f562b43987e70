//! `dialtone replay`: the emulated carrier in virtual time against the real dialtone router,
//! in-process (no sockets), with the server's clock driven by the simulation.

use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use clap::Args;
use dialtone_carrier::emulator::{self, Account, CallRun, Duration, Report, Scenario};
use dialtone_carrier::queue::{DialLimit, Pacing};
use dialtone_carrier::sim::{Sim, SimTime};
use dialtone_carrier::{CallOutcome, Transport, TransportError, WebhookReply, WebhookRequest};
use dialtone_core::links::Links;
use dialtone_server::{AppState, Clock, ConfigSource, RoundRobin};
use dialtone_store::{CallQuery, SqliteStore, Store};
use tower::ServiceExt;

/// The base URL the in-process carrier requests (and signs): never resolved.
const PUBLIC_URL: &str = "http://replay.dialtone.invalid";
const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
const AUTH_TOKEN: &str = "replay-auth-token";
const TRACKING_NUMBER: &str = "+14045550100";

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Mean inbound calls per second (Poisson).
    #[arg(long, default_value_t = 1.0)]
    arrivals_per_second: f64,
    /// The carrier's limit on outbound leg setups per second (none: unlimited).
    #[arg(long)]
    dial_limit: Option<f64>,
    /// Setups allowed at once after a quiet spell.
    #[arg(long, default_value_t = 1)]
    dial_burst: u32,
    /// Concurrent legs the carrier allows.
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Numbers each call rings at once (simulcall).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    fanout: u32,
    /// Mean seconds a caller waits for a person before hanging up (exponential); none = for ever.
    #[arg(long)]
    patience_mean_s: Option<f64>,
    /// Probability that a dialed person answers.
    #[arg(long, default_value_t = 1.0)]
    answer_probability: f64,
    /// Median seconds a phone rings before it is answered (log-normal, σ 0.5); 0 = at once.
    #[arg(long, default_value_t = 0.0)]
    ring_median_s: f64,
    /// Mean seconds of conversation (exponential).
    #[arg(long, default_value_t = 120.0)]
    talk_mean_s: f64,
    /// Seconds of virtual time to simulate.
    #[arg(long, default_value_t = 3600.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write the carrier's call records, one JSON object a line.
    #[arg(long)]
    cdr_out: Option<PathBuf>,
}

/// The server's clock in a replay: the simulation's time from a fixed start.
struct SimClock {
    start: DateTime<Utc>,
    time: SimTime,
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::TimeDelta::microseconds((self.time.seconds() * 1e6) as i64)
    }
}

/// The carrier's requests, handed to the router in-process.
struct InProcess {
    router: Router,
}

impl Transport for InProcess {
    async fn send(
        &self,
        request: &WebhookRequest,
        signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        let url = request.full_url();
        let Some(path) = url.strip_prefix(PUBLIC_URL) else {
            return Err(TransportError::Connect(format!(
                "{url} is not dialtone (replay reaches only {PUBLIC_URL})"
            )));
        };
        let body = match request.method {
            dialtone_twiml::Method::Post => dialtone_twiml::encode(&request.params),
            dialtone_twiml::Method::Get => String::new(),
        };
        let req = axum::http::Request::builder()
            .method(request.method.as_str())
            .uri(path)
            .header("host", "replay.dialtone.invalid")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(axum::body::Body::from(body))
            .map_err(|e| TransportError::Other(e.to_string()))?;
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .map_err(|e| TransportError::Other(e.to_string()))?;
        Ok(WebhookReply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: std::time::Duration::ZERO,
        })
    }
}

/// One company whose tracking number rings `fanout` destinations at once for 30 s, then
/// voicemail.
fn scenario_config(fanout: u32) -> String {
    let names: Vec<String> = (1..=fanout).map(|i| format!("agent{i}")).collect();
    let destinations: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} = \"+1404555{:04}\"\n", 1000 + i))
        .collect();
    let to = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[[carrier_accounts]]
name = "replay-carrier"
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"

[[accounts]]
slug = "replay"
name = "Replay"

[[companies]]
slug = "replay-co"
name = "Replay Co"
account = "replay"
carrier_account = "replay-carrier"
time_zone = "America/New_York"
website_number = "+14045550199"
primary_number = "agent1"

[companies.destinations]
{destinations}
[[companies.trackers]]
name = "Replay line"
type = "source"
number = "{TRACKING_NUMBER}"
flow = "ring"

[companies.flows.ring]
start = "ring"

[companies.flows.ring.steps.ring]
type = "dial"
strategy = "simulcall"
to = [{to}]
ring_timeout_s = 30
next = "voicemail"

[companies.flows.ring.steps.voicemail]
type = "voicemail"
say = "Please leave a message."
"#
    )
}

fn scenario(args: &ReplayArgs) -> Scenario {
    Scenario {
        duration_s: args.duration_s,
        arrivals_per_second: args.arrivals_per_second,
        numbers: vec![TRACKING_NUMBER.into()],
        patience: args
            .patience_mean_s
            .map(|mean_s| Duration::Exponential { mean_s }),
        answer_probability: args.answer_probability,
        ring: if args.ring_median_s > 0.0 {
            Duration::LogNormal {
                median_s: args.ring_median_s,
                sigma: 0.5,
            }
        } else {
            Duration::Fixed { s: 0.0 }
        },
        talk: Duration::Exponential {
            mean_s: args.talk_mean_s,
        },
        limit: args.dial_limit.map(|per_s| DialLimit {
            count: args.dial_burst.max(1),
            period_s: f64::from(args.dial_burst.max(1)) / per_s,
            pacing: Pacing::Spaced {
                burst: args.dial_burst,
            },
            max_concurrent: args.max_concurrent,
        }),
        seed: args.seed,
        ..Scenario::default()
    }
}

fn check(args: &ReplayArgs) -> anyhow::Result<()> {
    let positive = |name: &str, v: f64| {
        anyhow::ensure!(
            v.is_finite() && v > 0.0,
            "--{name} must be a positive number, not {v}"
        );
        Ok(())
    };
    positive("arrivals-per-second", args.arrivals_per_second)?;
    positive("duration-s", args.duration_s)?;
    positive("talk-mean-s", args.talk_mean_s)?;
    if let Some(v) = args.dial_limit {
        positive("dial-limit", v)?;
    }
    if let Some(v) = args.patience_mean_s {
        positive("patience-mean-s", v)?;
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.answer_probability),
        "--answer-probability must be between 0 and 1"
    );
    anyhow::ensure!(
        args.ring_median_s.is_finite() && args.ring_median_s >= 0.0,
        "--ring-median-s must be 0 or more"
    );
    Ok(())
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    check(&args)?;
    let dir = std::env::temp_dir().join(format!(
        "dialtone-replay-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = replay(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn replay(args: &ReplayArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let db = dir.join("replay.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_inline(&db.to_string_lossy())?);
    let text: &'static str = Box::leak(scenario_config(args.fanout).into_boxed_str());
    let source = ConfigSource::Builtin {
        name: "replay scenario",
        text,
    };
    let config = source.load().map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = Sim::new();
    let start = Utc
        .with_ymd_and_hms(2026, 5, 14, 13, 0, 0)
        .single()
        .context("replay start time")?;
    let state = Arc::new(AppState {
        config: ArcSwap::from_pointee(config),
        config_source: source,
        store: store.clone(),
        clock: Arc::new(SimClock {
            start,
            time: sim.time(),
        }),
        links: Links::new(PUBLIC_URL),
        turns: RoundRobin::default(),
        metrics: None,
    });
    let transport = Rc::new(InProcess {
        router: dialtone_server::router(state),
    });
    let account = Account {
        sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
        voice_url: format!("{PUBLIC_URL}/twilio/voice"),
        status_callback: Some(format!("{PUBLIC_URL}/twilio/status")),
        fallback_url: None,
    };
    let calls = emulator::start(&sim, transport, account, scenario(args));

    let bar = indicatif::ProgressBar::new(args.duration_s.ceil() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replaying {bar:40} {pos}/{len} simulated s ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let wall = std::time::Instant::now();
    // The whole simulation runs inside one poll of this task. Unconstrained, so that tokio's
    // cooperative budget (spent by the queue's channels) does not run out and make every
    // channel answer "yield" for ever.
    tokio::task::unconstrained(async {
        sim.run(4096, &mut |t| {
            bar.set_position(t.min(args.duration_s) as u64)
        });
    })
    .await;
    bar.finish_and_clear();
    let wall_s = wall.elapsed().as_secs_f64();
    store.flush().await?;

    let calls = std::mem::take(&mut *calls.borrow_mut());
    let report = Report::of(&calls, sim.now());
    let logged = store
        .calls(CallQuery {
            account: "replay".into(),
            page: 1,
            per_page: 1,
            ..CallQuery::default()
        })
        .await?
        .total_records;
    if let Some(path) = &args.cdr_out {
        write_cdrs(path, &calls, start)?;
    }
    let out = serde_json::json!({
        "report": report,
        "dialtone_logged_calls": logged,
        "wall_s": (wall_s * 1000.0).round() / 1000.0,
        "calls_per_wall_second": (report.calls as f64 / wall_s.max(1e-9)).round(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let r = &report;
        println!(
            "{} calls in {:.0} simulated s ({:.1} s of wall time, {:.0} calls/s)",
            r.calls,
            r.simulated_s,
            wall_s,
            r.calls as f64 / wall_s.max(1e-9)
        );
        println!(
            "connected {}, voicemail {}, abandoned {}, failed {}; dialtone logged {logged}",
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
    Ok(())
}

/// The carrier's Calls resource, one JSON object a line: each inbound call, then its legs.
fn write_cdrs(path: &PathBuf, calls: &[CallRun], start: DateTime<Utc>) -> anyhow::Result<()> {
    let at = |s: f64| (start + chrono::TimeDelta::microseconds((s * 1e6) as i64)).to_rfc2822();
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut sorted: Vec<&CallRun> = calls.iter().collect();
    sorted.sort_by(|a, b| a.arrived_at.total_cmp(&b.arrived_at));
    for c in sorted {
        let t = &c.transcript;
        let status = match t.outcome {
            CallOutcome::Rejected => "busy",
            _ => "completed",
        };
        let call = serde_json::json!({
            "sid": t.call_sid,
            "parent_call_sid": null,
            "account_sid": ACCOUNT_SID,
            "from": c.from,
            "to": c.to,
            "status": status,
            "direction": "inbound",
            "start_time": at(c.arrived_at),
            "end_time": at(c.arrived_at + t.duration_s),
            "duration": t.duration_s.round().to_string(),
            "queue_time": "0",
            "answered_by": null,
            "forwarded_from": null,
        });
        writeln!(out, "{call}")?;
        for leg in &t.legs {
            let started = leg.started_at_s.unwrap_or(leg.ended_at_s);
            let record = serde_json::json!({
                "sid": leg.sid,
                "parent_call_sid": t.call_sid,
                "account_sid": ACCOUNT_SID,
                "from": leg.from,
                "to": leg.to,
                "status": leg.status,
                "direction": "outbound-dial",
                "start_time": at(c.arrived_at + started),
                "end_time": at(c.arrived_at + leg.ended_at_s),
                "duration": leg.talk_s.round().to_string(),
                "queue_time": (leg.queue_s() * 1000.0).round().to_string(),
                "answered_by": if leg.answered_at_s.is_some() { Some("human") } else { None },
                "forwarded_from": null,
            });
            writeln!(out, "{record}")?;
        }
    }
    out.flush()?;
    Ok(())
}

//! `dialtone replay`: the emulated carrier in virtual time against the real dialtone router,
//! in-process (no sockets), with the server's clock driven by the simulation.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use clap::Args;
use dialtone_carrier::cdr;
use dialtone_carrier::emulator::{self, Account, Report, Scenario};
use dialtone_carrier::sim::{Sim, SimTime};
use dialtone_carrier::{Transport, TransportError, WebhookReply, WebhookRequest};
use dialtone_core::links::Links;
use dialtone_server::{AppState, Clock, ConfigSource};
use dialtone_store::{CallQuery, Store};
use tower::ServiceExt;

use crate::reconcile;
use crate::scenario::{self, ACCOUNT_SID, AUTH_TOKEN, Platform, Policy};
use crate::world::{WorldArgs, positive, print_report, write_cdrs, write_plot};

/// The base URL the in-process carrier requests (and signs): never resolved.
const PUBLIC_URL: &str = "http://replay.dialtone.invalid";
const TRACKING_NUMBER: &str = "+14045550100";

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A scenario: a built-in one by name (see --list-scenarios) or a TOML file. Without one,
    /// a single company under the flags below.
    #[arg(conflicts_with_all = [
        "arrivals_per_second", "fanout", "duration_s", "patience_mean_s", "answer_probability",
        "busy_probability", "ring_median_s", "talk_mean_s", "voicemail_s", "menu_choices",
        "dial_limit", "dial_burst", "max_concurrent",
    ])]
    scenario: Option<String>,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    list_scenarios: bool,
    /// Print the scenario's file (a starting point for your own) and exit.
    #[arg(long, requires = "scenario")]
    show_scenario: bool,
    /// Mean inbound calls per second (Poisson).
    #[arg(long, default_value_t = 1.0)]
    arrivals_per_second: f64,
    /// Numbers each call rings at once (simulcall).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    fanout: u32,
    /// Seconds of virtual time to simulate.
    #[arg(long, default_value_t = 3600.0)]
    duration_s: f64,
    #[command(flatten)]
    world: WorldArgs,
    /// How dialtone meets the carrier's limit: `adaptive` shapes dials when the carrier's queue
    /// would delay callers; `none` asks for every leg, as the 2018 platform did.
    #[arg(long, value_enum, default_value_t = Policy::Adaptive)]
    policy: Policy,
    /// Leave the carrier's limit out of dialtone's configuration: it must estimate it.
    #[arg(long)]
    limit_unknown: bool,
    /// Run the carrier without its limit: the baseline a policy's connected calls are compared
    /// with (`connected_ratio`).
    #[arg(long)]
    without_limit: bool,
    /// Make dialtone unreachable from HH:MM to HH:MM (the scenario's local time): the carrier
    /// serves the exported backup documents, and afterwards the calls dialtone missed are
    /// reconciled from the carrier's records.
    #[arg(long)]
    outage: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Draw the per-minute series (queue wait, post-dial delay, outcomes) to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
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

/// Where the carrier finds the backup documents (`dialtone backup export`) while dialtone is
/// unreachable: a static host, one document per tracking number.
const BACKUP_URL: &str = "http://backup.dialtone.invalid/fallback";

/// The carrier's requests, handed to the router in-process.
struct InProcess {
    router: Router,
    /// While the simulated time is in this window dialtone is unreachable.
    outage: Option<(f64, f64)>,
    time: SimTime,
    /// Tracking number → its company's backup document.
    backup_docs: std::collections::HashMap<String, String>,
}

impl Transport for InProcess {
    async fn send(
        &self,
        request: &WebhookRequest,
        signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        let url = request.full_url();
        if url == BACKUP_URL {
            let to = request
                .params
                .iter()
                .find(|(k, _)| k == "To")
                .map(|(_, v)| v.as_str());
            return match to.and_then(|to| self.backup_docs.get(to)) {
                Some(doc) => Ok(WebhookReply {
                    status: 200,
                    content_type: Some("application/xml".into()),
                    body: doc.clone(),
                    elapsed: std::time::Duration::ZERO,
                }),
                None => Ok(WebhookReply {
                    status: 404,
                    content_type: None,
                    body: String::new(),
                    elapsed: std::time::Duration::ZERO,
                }),
            };
        }
        if let Some((from, until)) = self.outage {
            let now = self.time.seconds();
            if now >= from && now < until {
                return Err(TransportError::Connect(
                    "dialtone is unreachable (the replay's outage)".into(),
                ));
            }
        }
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
fn scenario_config(fanout: u32, header: &str) -> String {
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
        r#"{header}[[accounts]]
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `HH:MM-HH:MM` on the run's first day, in seconds since its start.
fn outage_window(text: &str, start: DateTime<chrono::FixedOffset>) -> anyhow::Result<(f64, f64)> {
    let parse = |hm: &str| -> anyhow::Result<f64> {
        let time = chrono::NaiveTime::parse_from_str(hm.trim(), "%H:%M")
            .with_context(|| format!("--outage {text}: `{hm}` is not HH:MM"))?;
        let at = start
            .date_naive()
            .and_time(time)
            .and_local_timezone(*start.offset())
            .single()
            .with_context(|| format!("--outage {text}: `{hm}` is not a time of that day"))?;
        Ok((at - start).num_milliseconds() as f64 / 1000.0)
    };
    let (from, until) = text
        .split_once('-')
        .with_context(|| format!("--outage {text}: expected HH:MM-HH:MM"))?;
    let (from, until) = (parse(from)?, parse(until)?);
    anyhow::ensure!(
        from < until,
        "--outage {text}: the end must be after the start"
    );
    Ok((from, until))
}

/// What to replay: dialtone's configuration and the world around it.
struct Plan {
    title: String,
    config: String,
    scenario: Scenario,
    start: DateTime<Utc>,
    /// The start in the scenario's own offset, for the plot's clock.
    plot_start: DateTime<chrono::FixedOffset>,
    /// When the offered legs first exceed the carrier's limit, if known.
    onset: Option<DateTime<Utc>>,
    /// dialtone accounts whose call logs hold the calls.
    accounts: Vec<String>,
    /// Company groups: name and tracking numbers, for the report by group.
    groups: Vec<(String, Vec<String>)>,
}

fn plan(args: &ReplayArgs) -> anyhow::Result<Plan> {
    let platform = Platform {
        policy: args.policy,
        limit_known: !args.limit_unknown,
    };
    if let Some(name) = &args.scenario {
        let (origin, text) = scenario::source(name)?;
        let loaded = scenario::load(&origin, &text, args.world.seed, platform)?;
        let mut groups = Vec::new();
        let mut numbers = loaded.scenario.numbers.iter();
        for g in &loaded.file.companies {
            let of_group = numbers.by_ref().take(g.count as usize).cloned().collect();
            groups.push((g.name.clone(), of_group));
        }
        return Ok(Plan {
            title: format!("dialtone replay: {}", loaded.file.name),
            start: loaded.file.start_utc(),
            plot_start: loaded.file.start,
            onset: loaded.file.onset.map(|t| t.with_timezone(&Utc)),
            accounts: (0..groups.len()).map(|g| format!("group{g}")).collect(),
            groups,
            config: loaded.config,
            scenario: loaded.scenario,
        });
    }
    positive("arrivals-per-second", args.arrivals_per_second)?;
    positive("duration-s", args.duration_s)?;
    args.world.check()?;
    let start = Utc
        .with_ymd_and_hms(2026, 5, 14, 13, 0, 0)
        .single()
        .context("replay start time")?;
    Ok(Plan {
        title: format!(
            "dialtone replay: {} calls/s, dial limit {}, fan-out {}",
            args.arrivals_per_second,
            args.world
                .dial_limit
                .map_or("none".to_owned(), |l| format!("{l}/s")),
            args.fanout
        ),
        config: scenario_config(
            args.fanout,
            &scenario::carrier_config(
                platform,
                args.world.limit().as_ref(),
                args.world.max_concurrent,
                &[],
            ),
        ),
        scenario: Scenario {
            duration_s: args.duration_s,
            arrivals_per_second: args.arrivals_per_second,
            numbers: vec![TRACKING_NUMBER.into()],
            ..args.world.scenario(120.0)
        },
        start,
        plot_start: start.fixed_offset(),
        onset: None,
        accounts: vec!["replay".into()],
        groups: Vec::new(),
    })
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if args.list_scenarios {
        print!("{}", scenario::list());
        return Ok(());
    }
    if args.show_scenario
        && let Some(name) = &args.scenario
    {
        print!("{}", scenario::source(name)?.1);
        return Ok(());
    }
    let mut plan = plan(&args)?;
    if args.without_limit {
        plan.scenario.limit = None;
        plan.title.push_str(" (carrier without its limit)");
    }
    let dir = std::env::temp_dir().join(format!(
        "dialtone-replay-{}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = replay(&args, plan, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn replay(args: &ReplayArgs, plan: Plan, dir: &std::path::Path) -> anyhow::Result<()> {
    let db = dir.join("replay.db");
    let store: Arc<dyn Store> =
        Arc::new(dialtone_store::sqlite::open_inline(&db.to_string_lossy())?);
    let text: &'static str = Box::leak(plan.config.into_boxed_str());
    let source = ConfigSource::Builtin {
        name: "replay scenario",
        text,
    };
    let config = source.load().map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = Sim::new();
    let start = plan.start;
    let duration_s = plan.scenario.duration_s;
    let clock = Arc::new(SimClock {
        start,
        time: sim.time(),
    });
    let links = Links::new(PUBLIC_URL);
    let state = Arc::new(AppState::new(
        config,
        source,
        store.clone(),
        clock,
        links,
        Default::default(),
    ));
    let config_now = state.config.load_full();
    let backup_docs = config_now
        .companies
        .iter()
        .flat_map(|c| {
            let doc = dialtone_core::engine::backup(&c.primary_number).to_xml();
            c.trackers
                .iter()
                .flat_map(|t| t.numbers.iter())
                .map(move |n| (n.to_string(), doc.clone()))
        })
        .collect();
    let outage = match &args.outage {
        Some(window) => Some(outage_window(window, plan.plot_start)?),
        None => None,
    };
    let transport = Rc::new(InProcess {
        router: dialtone_server::router(state.clone()),
        outage,
        time: sim.time(),
        backup_docs,
    });
    let account = Account {
        sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
        voice_url: format!("{PUBLIC_URL}/twilio/voice"),
        status_callback: Some(format!("{PUBLIC_URL}/twilio/status")),
        // The exported backup documents, as an operator would set the numbers' Fallback URL.
        fallback_url: Some(BACKUP_URL.into()),
        api_base_url: None,
        epoch: plan.start,
    };
    let calls = emulator::start(&sim, transport, account, plan.scenario);

    let bar = indicatif::ProgressBar::new(duration_s.ceil() as u64);
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
        sim.run(4096, &mut |t| bar.set_position(t.min(duration_s) as u64));
    })
    .await;
    bar.finish_and_clear();
    let wall_s = wall.elapsed().as_secs_f64();
    store.flush().await?;

    let calls = std::mem::take(&mut *calls.borrow_mut());
    let degraded_calls = state.admission.degraded_calls();
    let alerts = state.admission.alerts.list();
    // Negative: dialtone warned before the offered legs crossed the limit.
    let first_alert_after_onset_s = plan.onset.and_then(|onset| {
        alerts
            .first()
            .map(|a| (a.at - onset).num_milliseconds() as f64 / 1000.0)
    });
    let alert_lines: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| {
            serde_json::json!({
                "kind": a.kind,
                "at": a.at.with_timezone(&plan.plot_start.timezone()).to_rfc3339(),
                "message": a.message,
            })
        })
        .collect();
    let report = Report::of(&calls, sim.now());
    if let Some(path) = &args.plot {
        write_plot(path, &report, &plan.title, plan.plot_start)?;
    }
    let count_logged = || async {
        let mut logged = 0;
        for account in &plan.accounts {
            logged += store
                .calls(CallQuery {
                    account: account.clone(),
                    page: 1,
                    per_page: 1,
                    ..CallQuery::default()
                })
                .await?
                .total_records;
        }
        anyhow::Ok(logged)
    };
    // Calls dialtone logged itself, before any reconcile: the tracked share.
    let tracked = count_logged().await?;
    let mut recovered = 0;
    if let Some((from, until)) = outage {
        // The carrier's records of the calls that arrived while dialtone was unreachable.
        for run in calls
            .iter()
            .filter(|c| c.arrived_at >= from && c.arrived_at < until)
        {
            let records = cdr::records(run, ACCOUNT_SID, start);
            let Some((call, legs)) = records.calls.split_first() else {
                continue;
            };
            let account = config_now
                .tracker_for(&call.to)
                .map(|t| t.company.account.clone())
                .unwrap_or_default();
            if store.call(&account, &call.sid).await?.is_some() {
                continue;
            }
            let legs: Vec<&cdr::CallRecord> = legs.iter().collect();
            if let Some(events) = reconcile::events_for(&config_now, call, &legs) {
                store
                    .append(dialtone_store::Batch {
                        events,
                        turns: vec![],
                        ..Default::default()
                    })
                    .await?;
                recovered += 1;
            }
        }
        store.flush().await?;
    }
    let logged = count_logged().await?;
    let group_of: std::collections::HashMap<&str, usize> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, numbers))| numbers.iter().map(move |n| (n.as_str(), g)))
        .collect();
    let by_group: Vec<serde_json::Value> = plan
        .groups
        .iter()
        .enumerate()
        .map(|(g, (name, _))| {
            let of_group = calls
                .iter()
                .filter(|c| group_of.get(c.to.as_str()) == Some(&g));
            let r = Report::of(of_group, sim.now());
            serde_json::json!({
                "group": name,
                "calls": r.calls,
                "connected": r.connected,
                "voicemail": r.voicemail,
                "abandoned": r.abandoned,
                "failed": r.failed,
                "legs": r.legs.requested,
                "queue_wait_p95_s": r.queue_wait_s.p95,
                "post_dial_delay_p95_s": r.post_dial_delay_s.p95,
            })
        })
        .collect();
    if let Some(path) = &args.cdr_out {
        write_cdrs(path, &calls, ACCOUNT_SID, start)?;
    }
    let out = serde_json::json!({
        "scenario": plan.title,
        "start": plan.plot_start.to_rfc3339(),
        "policy": args.policy,
        "limit_known": !args.limit_unknown,
        "degraded_calls": degraded_calls,
        "tracked_ratio": round3(tracked as f64 / report.calls.max(1) as f64),
        // What the carrier's queue added before a call's first leg rang (nothing without a limit).
        "added_delay_s": {
            "p50": report.post_dial_delay_s.p50,
            "p95": report.post_dial_delay_s.p95,
            "p99": report.post_dial_delay_s.p99,
        },
        // Calls the carrier routed with the backup documents while dialtone was unreachable.
        "backup_calls": outage.map_or(0, |(from, until)| {
            calls
                .iter()
                .filter(|c| c.arrived_at >= from && c.arrived_at < until)
                .count()
        }),
        "recovered_calls": recovered,
        "first_alert_after_onset_s": first_alert_after_onset_s,
        "alerts": alert_lines,
        "report": report,
        "by_group": by_group,
        "dialtone_logged_calls": logged,
        "wall_s": (wall_s * 1000.0).round() / 1000.0,
        "calls_per_wall_second": (report.calls as f64 / wall_s.max(1e-9)).round(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} calls in {:.0} simulated s ({:.1} s of wall time, {:.0} calls/s); dialtone logged {logged}",
            report.calls,
            report.simulated_s,
            wall_s,
            report.calls as f64 / wall_s.max(1e-9)
        );
        print_report(&report);
        println!("degraded calls (fewer legs asked for): {degraded_calls}");
        if outage.is_some() {
            println!(
                "tracked by dialtone: {tracked} of {} calls; {recovered} recovered from the carrier's records afterwards",
                report.calls
            );
        }
        for a in &alert_lines {
            println!(
                "alert {} {}: {}",
                a["at"].as_str().unwrap_or(""),
                a["kind"].as_str().unwrap_or(""),
                a["message"].as_str().unwrap_or("")
            );
        }
        for g in &by_group {
            println!(
                "  {}: {} calls, {} connected, {} voicemail, {} abandoned, {} failed",
                g["group"].as_str().unwrap_or(""),
                g["calls"],
                g["connected"],
                g["voicemail"],
                g["abandoned"],
                g["failed"]
            );
        }
    }
    Ok(())
}

//! `dialtone carrier`: the emulated carrier in real time, over HTTP, against any TwiML app.
//!
//! The same emulator as `dialtone replay` (arrivals, patience, the dial queue, who answers),
//! driven by the wall clock: calls arrive and ring for real seconds and every webhook is a signed
//! HTTP request. Finished calls go to the call records file as they end and, with `--api-listen`,
//! to the carrier's Calls and Recordings API.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{Context, ensure};
use chrono::Utc;
use clap::Args;
use dialtone_carrier::api::{self, CallLog, NumberSettings};
use dialtone_carrier::cdr;
use dialtone_carrier::emulator::{self, Account, CallRun, Report, Scenario};
use dialtone_carrier::sim::Sim;
use dialtone_carrier::{CallOutcome, HttpTransport};

use crate::world::{WorldArgs, positive, print_report, write_plot};

#[derive(Args, Debug)]
pub struct CarrierArgs {
    /// The tracking number's Voice URL (any TwiML app).
    #[arg(long)]
    voice_url: String,
    /// The carrier account the calls arrive on.
    #[arg(long, env = "DIALTONE_CARRIER_ACCOUNT_SID")]
    account_sid: String,
    /// The account's auth token: every request is signed with it.
    #[arg(long, env = "DIALTONE_CARRIER_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
    /// The number called (repeatable: each call picks one at random).
    #[arg(long = "to", required = true)]
    to: Vec<String>,
    /// Calls to place.
    #[arg(long, default_value_t = 1)]
    calls: u64,
    /// Mean calls arriving per second (Poisson).
    #[arg(long, default_value_t = 1.0)]
    arrivals_per_second: f64,
    /// Stop placing calls after this many seconds, even if fewer than --calls arrived.
    #[arg(long)]
    duration_s: Option<f64>,
    /// The number's status callback URL (completed).
    #[arg(long)]
    status_callback: Option<String>,
    /// The number's Fallback URL, requested with ErrorCode and ErrorUrl when the Voice URL fails.
    #[arg(long)]
    fallback_url: Option<String>,
    /// Append the carrier's call records, one JSON object a line, as calls end.
    #[arg(long)]
    cdr_out: Option<PathBuf>,
    /// Serve the carrier's REST API here (Calls, Recordings and their audio, IncomingPhoneNumbers
    /// with the --to numbers in it, AvailablePhoneNumbers), and keep serving it after the calls
    /// until interrupted.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    #[command(flatten)]
    world: WorldArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Draw the per-minute series (queue wait, post-dial delay, outcomes) to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Do not print a line per finished call.
    #[arg(long, short)]
    quiet: bool,
}

fn check(args: &CarrierArgs) -> anyhow::Result<()> {
    positive("arrivals-per-second", args.arrivals_per_second)?;
    if let Some(d) = args.duration_s {
        positive("duration-s", d)?;
    }
    ensure!(args.calls > 0, "--calls must be at least 1");
    for (name, url) in [
        ("voice-url", Some(&args.voice_url)),
        ("status-callback", args.status_callback.as_ref()),
        ("fallback-url", args.fallback_url.as_ref()),
    ] {
        if let Some(url) = url {
            let parsed = url::Url::parse(url).with_context(|| format!("--{name} {url}"))?;
            ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "--{name} {url}: the carrier requests http or https URLs"
            );
        }
    }
    for to in &args.to {
        ensure!(
            to.starts_with('+') && to.len() > 4 && to[1..].bytes().all(|b| b.is_ascii_digit()),
            "--to {to}: numbers are E.164, like +14045550100"
        );
    }
    args.world.check()
}

/// One line for a finished call.
fn describe(run: &CallRun) -> String {
    let t = &run.transcript;
    let outcome = match t.outcome {
        CallOutcome::Answered => {
            let by = t
                .legs
                .iter()
                .find(|l| l.answered_at_s.is_some())
                .map_or("?", |l| l.to.as_str());
            format!("answered by {by}")
        }
        CallOutcome::Voicemail => "left a voicemail".into(),
        CallOutcome::NotAnswered => "nobody answered".into(),
        CallOutcome::Rejected => "rejected".into(),
        CallOutcome::ApplicationError => "application error".into(),
        CallOutcome::Abandoned => "caller hung up waiting".into(),
    };
    let queued = t
        .legs
        .iter()
        .filter(|l| l.started_at_s.is_some())
        .map(|l| l.queue_s())
        .fold(0.0, f64::max);
    let queue = if queued >= 0.05 {
        format!(", {queued:.1} s in the dial queue")
    } else {
        String::new()
    };
    format!(
        "{} {} → {}: {outcome} after {:.1} s{queue}",
        t.call_sid, run.from, run.to, t.duration_s
    )
}

pub async fn run(args: CarrierArgs) -> anyhow::Result<()> {
    check(&args)?;
    let log = CallLog::new(&args.account_sid, &args.auth_token);
    // The numbers called are the account's, set to the app as the carrier's console would.
    // The carrier's clock at the run's second 0.
    let start = Utc::now();
    let bought = cdr::rfc2822(start);
    for to in &args.to {
        let settings = NumberSettings {
            voice_url: Some(args.voice_url.clone()),
            voice_fallback_url: args.fallback_url.clone(),
            status_callback: args.status_callback.clone(),
            ..NumberSettings::default()
        };
        log.provision(to, settings, &bought);
    }
    let api_base_url = match args.api_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let bound = listener.local_addr()?;
            let app = api::router(log.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            let base = format!("http://{bound}");
            eprintln!(
                "carrier API on {base}/2010-04-01/Accounts/{}/Calls.json",
                args.account_sid
            );
            Some(base)
        }
        None => None,
    };
    let mut cdr_out = match &args.cdr_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
        None => None,
    };

    let account = Account {
        sid: args.account_sid.clone(),
        auth_token: args.auth_token.clone(),
        voice_url: args.voice_url.clone(),
        status_callback: args.status_callback.clone(),
        fallback_url: args.fallback_url.clone(),
        api_base_url,
        epoch: start,
    };
    let scenario = Scenario {
        duration_s: args.duration_s.unwrap_or(f64::INFINITY),
        arrivals_per_second: args.arrivals_per_second,
        max_calls: Some(args.calls),
        numbers: args.to.clone(),
        ..args.world.scenario(10.0)
    };
    let sim = Sim::new();
    let calls = emulator::start(&sim, Rc::new(HttpTransport::new()), account, scenario);
    let bar = indicatif::ProgressBar::new(args.calls);
    bar.set_style(
        indicatif::ProgressStyle::with_template("calls {bar:40} {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut finished: Vec<CallRun> = Vec::new();
    let mut write_error: Option<anyhow::Error> = None;
    let mut on_tick = |_: f64| {
        let new: Vec<CallRun> = std::mem::take(&mut *calls.borrow_mut());
        for run in new {
            let records = cdr::records(&run, &args.account_sid, start);
            // Kept for the API only: an hour at 200 calls/s is over a million records.
            if args.api_listen.is_some() {
                log.add(&records);
            }
            if let Some(out) = &mut cdr_out {
                let written = cdr::write_jsonl(out, &records).and_then(|()| out.flush());
                if let Err(e) = written {
                    write_error
                        .get_or_insert(anyhow::Error::new(e).context("writing call records"));
                }
            }
            if args.quiet {
            } else if args.json {
                eprintln!("{}", describe(&run));
            } else if bar.is_hidden() {
                // Not a terminal: indicatif would drop the line with the bar.
                println!("{}", describe(&run));
            } else {
                bar.println(describe(&run));
            }
            bar.inc(1);
            finished.push(run);
        }
    };
    let interrupted = tokio::select! {
        // Unconstrained: the calls share this task, and tokio's cooperative budget would
        // otherwise run out inside it.
        () = tokio::task::unconstrained(sim.run_realtime(&mut on_tick)) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    // Calls that ended between the last tick and an interruption.
    on_tick(sim.now());
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    let report = Report::of(&finished, sim.now());
    if let Some(path) = &args.plot {
        let title = format!("dialtone carrier: {}", args.voice_url);
        write_plot(path, &report, &title, start.fixed_offset())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} calls in {:.1} s{}",
            report.calls,
            report.simulated_s,
            if interrupted {
                " (interrupted: calls in progress are not in the report)"
            } else {
                ""
            }
        );
        print_report(&report);
    }
    if args.api_listen.is_some() && !interrupted {
        eprintln!("calls done; the carrier API keeps serving until interrupted (Ctrl-C)");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

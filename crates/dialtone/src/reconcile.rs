//! `dialtone reconcile --cdr FILE`: imports the carrier's call records (JSON lines in the Calls
//! resource's shape, as `dialtone carrier` and `replay --cdr-out` write them) for calls dialtone
//! never saw — while it was unreachable and the carrier served backup routing. Idempotent by
//! call sid; each recovered call is attributed through its tracking number — and, for a DNI pool
//! number, to the website visitor whose stored lease held the number when the call came — and
//! marked as recovered (routing `backup`, with the reason).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use dialtone_carrier::cdr::CallRecord;
use dialtone_core::config::{Config, TrackerKind};
use dialtone_core::dni::{self, LeaseSpan};
use dialtone_core::event::{
    self, Answer, CallAttribution, CallStatusUpdate, Event, EventBody, LegUpdate, Routing,
};
use dialtone_store::{Batch, Store, StoredSession};

pub const RECOVERED: &str =
    "recovered from the carrier's call records: dialtone did not see this call";

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// The carrier's call records, one JSON object a line.
    #[arg(long)]
    cdr: PathBuf,
    /// The configuration the calls are attributed with (their tracking numbers).
    #[arg(long, env = "DIALTONE_CONFIG")]
    config: Option<PathBuf>,
    /// Use the demo configuration.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    database: crate::DatabaseArg,
    /// Say what would be added without writing.
    #[arg(long)]
    dry_run: bool,
}

/// What a reconcile found.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub records: usize,
    pub calls: usize,
    pub already_logged: usize,
    pub added: usize,
    pub legs_added: usize,
    /// Recovered calls to DNI pool numbers attributed to a website visitor.
    pub attributed: usize,
    pub not_tracked: usize,
    /// (line, problem) of lines that are not call records.
    pub invalid: Vec<(usize, String)>,
}

fn time(s: &Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref()
        .and_then(|t| DateTime::parse_from_rfc2822(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The events that log `call` and its `legs` as dialtone would have, had it seen them; `None`
/// when the number is not a tracking number of `config`.
pub fn events_for(config: &Config, call: &CallRecord, legs: &[&CallRecord]) -> Option<Vec<Event>> {
    let t = config.tracker_for(&call.to)?;
    let start = started_at(call)?;
    let end = time(&call.end_time).unwrap_or(start);
    let at = |t: Option<DateTime<Utc>>| t.unwrap_or(start);
    let sid = call.sid.clone();
    let mut events = vec![Event {
        call_sid: sid.clone(),
        at: start,
        body: EventBody::CallReceived(event::CallReceived::to_tracker(
            &t,
            &call.account_sid,
            &call.to,
            &call.from,
            call.forwarded_from.clone(),
            call.caller_name.clone(),
            Answer {
                dialed: legs.iter().map(|l| l.to.clone()).collect(),
                routing: Some(Routing::Backup),
                reason: Some(RECOVERED.into()),
                ..Answer::default()
            },
        )),
    }];
    for leg in legs {
        let leg_start = time(&leg.start_time);
        let mut update = |status: &str, ev: &str, when: DateTime<Utc>, duration_s| {
            events.push(Event {
                call_sid: sid.clone(),
                at: when,
                body: EventBody::Leg(LegUpdate {
                    leg_sid: leg.sid.clone(),
                    to: leg.to.clone(),
                    status: status.into(),
                    event: Some(ev.into()),
                    duration_s,
                }),
            });
        };
        if let Some(s) = leg_start {
            update("initiated", "initiated", s, None);
        }
        // A dialed leg that ends `completed` was answered (unanswered ones end no-answer, busy,
        // failed or canceled); `answered_by` is set only by machine detection, so it cannot
        // tell. It was answered its duration before it ended.
        if leg.status == "completed" {
            let talk = leg.duration.parse::<i64>().unwrap_or(0);
            let answered = time(&leg.end_time).map(|end| end - chrono::TimeDelta::seconds(talk));
            update("in-progress", "answered", at(answered.or(leg_start)), None);
        }
        update(
            &leg.status,
            "completed",
            at(time(&leg.end_time)),
            leg.duration.parse().ok(),
        );
    }
    events.push(Event {
        call_sid: sid,
        at: end,
        body: EventBody::CallStatus(CallStatusUpdate {
            status: call.status.clone(),
            duration_s: call.duration.parse().ok(),
        }),
    });
    Some(events)
}

/// When the carrier says a call started.
pub fn started_at(call: &CallRecord) -> Option<DateTime<Utc>> {
    time(&call.start_time).or_else(|| time(&Some(call.date_created.clone())))
}

/// The visitor whose lease held pool number `number` at `at`, from the stored leases (the same
/// rule the server applies live).
pub fn attribute_stored(
    leases: &[StoredSession],
    at: DateTime<Utc>,
    grace: chrono::Duration,
) -> Option<CallAttribution> {
    let spans = leases.iter().map(|s| LeaseSpan {
        session: s.id,
        start: s.created_at,
        end: s.expires_at,
        seen: s.seen_at,
    });
    let got = dni::attribute(spans, at, grace)?;
    let session = leases.iter().find(|s| s.id == got.session)?;
    Some(CallAttribution {
        session: session.id,
        visitor: session.visitor.clone(),
        visit: session.visit.clone(),
        shared_with: got.shared_with,
    })
}

/// Attributes a recovered call to a DNI pool number to its visitor, from the store.
async fn attribute_recovered(
    store: &dyn Store,
    config: &Config,
    call: &CallRecord,
    events: &mut [Event],
) -> anyhow::Result<bool> {
    let Some(t) = config.tracker_for(&call.to) else {
        return Ok(false);
    };
    let Some(at) = started_at(call).filter(|_| t.tracker.kind == TrackerKind::Session) else {
        return Ok(false);
    };
    let grace = chrono::Duration::seconds(i64::from(config.dni.attribution_grace_s));
    let leases = store.dni_leases(&call.to, at - grace, at).await?;
    let attribution = attribute_stored(&leases, at, grace);
    let found = attribution.is_some();
    if let Some(EventBody::CallReceived(c)) = events.first_mut().map(|e| &mut e.body) {
        c.attribution = attribution.map(Box::new);
    }
    Ok(found)
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    let source = crate::config_source(args.config.clone(), args.demo)?;
    let config = source
        .load()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("configuration refused")?;
    let file = std::fs::File::open(&args.cdr)
        .with_context(|| format!("opening {}", args.cdr.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let store = dialtone_store::open(&args.database.url())
        .await
        .with_context(|| format!("opening {}", args.database.shown()))?;

    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "reading {bar:40} {bytes}/{total_bytes} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut summary = Summary::default();
    let mut calls: Vec<CallRecord> = Vec::new();
    let mut legs: HashMap<String, Vec<CallRecord>> = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.cdr.display()))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        summary.records += 1;
        match serde_json::from_str::<CallRecord>(&line) {
            Ok(r) => match r.parent_call_sid.clone() {
                Some(parent) => legs.entry(parent).or_default().push(r),
                None => calls.push(r),
            },
            Err(e) => summary.invalid.push((i + 1, e.to_string())),
        }
    }
    bar.finish_and_clear();

    let bar = indicatif::ProgressBar::new(calls.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("reconciling {bar:40} {pos}/{len} calls ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    summary.calls = calls.len();
    for call in &calls {
        bar.inc(1);
        let call_legs: Vec<&CallRecord> = legs
            .get(&call.sid)
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let Some(mut events) = events_for(&config, call, &call_legs) else {
            summary.not_tracked += 1;
            continue;
        };
        let account = config
            .tracker_for(&call.to)
            .map(|t| t.company.account.clone())
            .unwrap_or_default();
        if store.call(&account, &call.sid).await?.is_some() {
            summary.already_logged += 1;
            continue;
        }
        summary.added += 1;
        summary.legs_added += call_legs.len();
        if attribute_recovered(store.as_ref(), &config, call, &mut events).await? {
            summary.attributed += 1;
        }
        if !args.dry_run {
            store
                .append(Batch {
                    events,
                    turns: vec![],
                    ..Default::default()
                })
                .await
                .with_context(|| format!("logging {}", call.sid))?;
        }
    }
    store.flush().await?;
    // Into the sid index before exiting: a server running on this database reads back only at
    // its start the calls another process left unmerged, and finds the rest by the index.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.stats().unmerged_sids > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();

    println!(
        "{}: {} records, {} inbound calls: {} already in the call log, {} {} ({} legs, {} attributed to website visitors), {} to numbers that are not tracking numbers",
        args.cdr.display(),
        summary.records,
        summary.calls,
        summary.already_logged,
        summary.added,
        if args.dry_run {
            "would be recovered"
        } else {
            "recovered"
        },
        summary.legs_added,
        summary.attributed,
        summary.not_tracked,
    );
    if !summary.invalid.is_empty() {
        for (line, problem) in summary.invalid.iter().take(10) {
            eprintln!(
                "{}:{line}: not a call record: {problem}",
                args.cdr.display()
            );
        }
        if summary.invalid.len() > 10 {
            eprintln!("... and {} more", summary.invalid.len() - 10);
        }
        anyhow::bail!(
            "{} line(s) of {} are not call records; the others were reconciled",
            summary.invalid.len(),
            args.cdr.display()
        );
    }
    Ok(())
}

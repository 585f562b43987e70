//! The call log alone under webhook-like load: C tasks each appending one inbound call at a time
//! and waiting for it to be durable, as the webhook handlers do. Prints appends per second and
//! process CPU per append (utime + stime from /proc/self/stat).
//!
//!   cargo run --release -p dialtone-store --example append_load -- [SECONDS=5] [TASKS=64] [DB_OPTIONS]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use dialtone_core::event::{Answer, CallReceived, Event, EventBody, Routing};
use dialtone_store::Batch;

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn call(n: u64) -> Event {
    Event {
        call_sid: format!("CA{:032x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        at: Utc::now(),
        body: EventBody::CallReceived(CallReceived {
            account: "demo".into(),
            company: "acme-plumbing".into(),
            tracker: "Google Business Profile".into(),
            tracker_kind: "source".into(),
            carrier_account_sid: "AC00000000000000000000000000000001".into(),
            tracking_number: "+14045550100".into(),
            caller: "+17705550123".into(),
            forwarded_from: None,
            caller_name: None,
            flow: "main".into(),
            answer: Answer {
                answered_at: Some(Utc::now()),
                path: vec!["notice".into(), "record".into(), "ring".into()],
                dialed: vec!["+14045550111".into(), "+14045550112".into()],
                strategy: Some("simulcall".into()),
                recording: true,
                notice_played: true,
                voicemail_offered: false,
                routing: Some(Routing::Normal),
                reason: None,
                degraded: None,
            },
            attribution: None,
            first_call: None,
        }),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let tasks: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let options = args.get(2).cloned().unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("dialtone-append-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = dialtone_store::open(&format!("sqlite://{}/load.db{options}", dir.display()))
        .await
        .expect("open store");
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (started, cpu_before) = (Instant::now(), cpu_ticks());
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    store
                        .append(Batch {
                            events: vec![call(n)],
                            turns: vec![],
                            ..Default::default()
                        })
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.await;
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_ticks() - cpu_before);
    let appends = next.load(Ordering::Relaxed);
    let stats = store.stats();
    println!(
        "{{\"appends\":{appends},\"per_second\":{:.0},\"cpu_us_per_append\":{:.1},\"events_per_commit\":{:.1}}}",
        appends as f64 / elapsed,
        cpu as f64 * 1e6 / 100.0 / appends.max(1) as f64,
        stats.events as f64 / stats.commits.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Load generator for the inbound-call webhook: every request is a distinct call (its own CallSid)
//! signed as the carrier would sign it, so the server does all of its real work each time.
//! With `--dni COMPANY`, for DNI session creation instead: every request a new visitor from a
//! Google Ads click, sent as the snippet sends it (text/plain JSON, a browser's user agent).
//!
//! Closed loop (`--connections C`): C requests in flight, as fast as the server answers.
//! Open loop (`--rate R`): R requests per second on a fixed schedule; latency is measured from
//! when each request was due, so a slow server cannot hide its queueing (latency correction).
//!
//! Prints one JSON object: requests, errors, seconds, rps, p50/p90/p99/max latency in ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    token: String,
    account_sid: String,
    to: String,
    connections: usize,
    rate: Option<f64>,
    seconds: f64,
    /// Write `signature<TAB>body` lines for wrk instead of sending.
    write_requests: Option<String>,
    count: usize,
    /// The first request's number: calls (and DNI visitors) are numbered from here, so runs given
    /// disjoint ranges never repeat a CallSid (a repeat is a carrier retry, not a new call).
    first: usize,
    dni: Option<String>,
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

fn parse_args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080/twilio/voice".into(),
        token: "demo-auth-token".into(),
        account_sid: "AC00000000000000000000000000000001".into(),
        to: "+14045550100".into(),
        connections: 64,
        rate: None,
        seconds: 10.0,
        write_requests: None,
        count: 50_000,
        first: 0,
        dni: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--url" => a.url = v,
            "--token" => a.token = v,
            "--account-sid" => a.account_sid = v,
            "--to" => a.to = v,
            "--connections" => a.connections = v.parse().expect("--connections N"),
            "--rate" => a.rate = Some(v.parse().expect("--rate R")),
            "--seconds" => a.seconds = v.parse().expect("--seconds S"),
            "--write-requests" => a.write_requests = Some(v),
            "--count" => a.count = v.parse().expect("--count N"),
            "--first" => a.first = v.parse().expect("--first N"),
            "--dni" => a.dni = Some(v),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A carrier-like inbound-call body (about 400 bytes) and its signature; or, with `--dni`, a new
/// visitor's session request (and no signature).
fn signed_request(a: &Args, i: usize) -> (String, String) {
    if let Some(company) = &a.dni {
        let body = format!(
            r#"{{"company":"{company}","visitor_id":"bench-visitor-{i:012}","landing_url":"https://acme.example/plumbing?utm_source=google&utm_medium=cpc&utm_campaign=winter&utm_term=emergency+plumber&gclid=Cj0KCQiA{i:x}","referrer":"https://www.google.com/"}}"#
        );
        return (body, String::new());
    }
    let sid = format!("CA{:032x}", 0xbe00_0000_0000_0000_u128 + i as u128);
    let params: Vec<(String, String)> = [
        ("AccountSid", a.account_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid.as_str()),
        ("CallStatus", "ringing"),
        ("Called", a.to.as_str()),
        ("CalledCity", "ATLANTA"),
        ("CalledCountry", "US"),
        ("CalledState", "GA"),
        ("Caller", "+17705550123"),
        ("CallerCity", "MARIETTA"),
        ("CallerCountry", "US"),
        ("CallerState", "GA"),
        ("Direction", "inbound"),
        ("From", "+17705550123"),
        ("FromCity", "MARIETTA"),
        ("FromCountry", "US"),
        ("FromState", "GA"),
        ("To", a.to.as_str()),
        ("ToCity", "ATLANTA"),
        ("ToCountry", "US"),
        ("ToState", "GA"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = dialtone_twiml::compute_signature(&a.token, &a.url, &params);
    (dialtone_twiml::encode(&params), signature)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Some(path) = &args.write_requests {
        use std::io::Write;
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(path).expect("create requests file"));
        for i in args.first..args.first + args.count {
            let (body, signature) = signed_request(&args, i);
            writeln!(out, "{signature}\t{body}").expect("write requests file");
        }
        return;
    }
    let expected = match args.rate {
        Some(r) => (r * args.seconds) as usize + 1,
        None => 400_000,
    };
    let requests: Arc<Vec<(String, String)>> = Arc::new(
        (args.first..args.first + expected)
            .map(|i| signed_request(&args, i))
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("http client");
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let url = Arc::new(args.url.clone());

    let send = {
        let (client, url, errors) = (client.clone(), url.clone(), errors.clone());
        move |req: (String, String)| {
            let (client, url, errors) = (client.clone(), url.clone(), errors.clone());
            async move {
                let res = if req.1.is_empty() {
                    client
                        .post(url.as_str())
                        .header("content-type", "text/plain;charset=UTF-8")
                        .header("user-agent", BROWSER)
                        .header("origin", "http://127.0.0.1:8000")
                        .body(req.0)
                        .send()
                        .await
                } else {
                    client
                        .post(url.as_str())
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-twilio-signature", req.1)
                        .body(req.0)
                        .send()
                        .await
                };
                let ok = match res {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };

    let mut latencies: Vec<u64> = Vec::new();
    match args.rate {
        None => {
            let mut tasks = Vec::new();
            for _ in 0..args.connections {
                let (requests, next, send) = (requests.clone(), next.clone(), send.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
                        let t = Instant::now();
                        send(requests[i].clone()).await;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    lat
                }));
            }
            for t in tasks {
                latencies.extend(t.await.unwrap_or_default());
            }
        }
        Some(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut tasks = Vec::with_capacity(expected);
            for (i, req) in requests.iter().enumerate() {
                let due = started + interval.mul_f64(i as f64);
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let (req, send) = (req.clone(), send.clone());
                tasks.push(tokio::spawn(async move {
                    send(req).await;
                    // From when it was due, not when it was sent.
                    due.elapsed().as_micros() as u64
                }));
            }
            for t in tasks {
                if let Ok(l) = t.await {
                    latencies.push(l);
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx] as f64 / 1000.0
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"seconds\":{:.3},\"rps\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        latencies.len(),
        errors.load(Ordering::Relaxed),
        elapsed,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}

//! A hostile client for `scripts/bench-connections.sh`: holds as many idle (or slow-header)
//! connections to a server as it can, from several loopback addresses, reopening each one the
//! server closes, for a while; then prints what it managed as one JSON object.
//!
//! `hostile --addr 127.0.0.1:8080 --connections 20000 --addresses 20 --seconds 30 [--slow]`
//! (`--slow`: each connection sends a request header a byte every second, a slowloris, instead
//! of nothing).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Tally {
    open: AtomicUsize,
    peak: AtomicUsize,
    opened: AtomicU64,
    closed_by_server: AtomicU64,
    failed: AtomicU64,
}

#[tokio::main]
async fn main() {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse().expect("address");
    let (mut connections, mut addresses, mut seconds, mut slow) = (20_000usize, 20u32, 30.0, false);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--addr" => addr = v.parse().expect("--addr HOST:PORT"),
            "--connections" => connections = v.parse().expect("--connections N"),
            "--addresses" => addresses = v.parse().expect("--addresses K (1-250)"),
            "--seconds" => seconds = v.parse().expect("--seconds S"),
            "--slow" => {
                slow = true;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(connections);
    for n in 0..connections {
        let from: IpAddr = format!("127.0.2.{}", 1 + n as u32 % addresses.clamp(1, 250))
            .parse()
            .expect("loopback");
        tasks.push(tokio::spawn(hold(addr, from, slow, until, tally.clone())));
        if n % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "{{\"connections\":{connections},\"addresses\":{addresses},\"slow\":{slow},\"peak_open\":{},\"opened\":{},\"closed_by_server\":{},\"failed\":{}}}",
        tally.peak.load(Ordering::Relaxed),
        tally.opened.load(Ordering::Relaxed),
        tally.closed_by_server.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
}

/// One connection slot: open, hold until the server closes it, open again, until `until`.
async fn hold(addr: SocketAddr, from: IpAddr, slow: bool, until: Instant, tally: Arc<Tally>) {
    while Instant::now() < until {
        let socket = match from {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let stream = match socket.and_then(|s| {
            s.bind(SocketAddr::new(from, 0))?;
            Ok(s)
        }) {
            Ok(s) => tokio::time::timeout(Duration::from_secs(5), s.connect(addr)).await,
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(Ok(mut stream)) = stream else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        tally.opened.fetch_add(1, Ordering::Relaxed);
        let open = tally.open.fetch_add(1, Ordering::Relaxed) + 1;
        tally.peak.fetch_max(open, Ordering::Relaxed);
        let header = b"POST /twilio/voice HTTP/1.1\r\nhost: x\r\nx-slow: ";
        let mut sent = 0;
        let mut buf = [0u8; 256];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = if slow { Duration::from_secs(1) } else { left };
            match tokio::time::timeout(wait.min(left), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ok(_)) => {}
                Err(_) if slow => {
                    let byte = header.get(sent).copied().unwrap_or(b'a');
                    sent += 1;
                    if stream.write_all(&[byte]).await.is_err() {
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        tally.open.fetch_sub(1, Ordering::Relaxed);
    }
}

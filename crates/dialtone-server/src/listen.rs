//! Serving HTTP connections so that no client can starve the carrier's webhooks.
//!
//! `axum::serve` keeps every connection for as long as the client likes: idle, slow-header and
//! slow-body connections stay open for ever, and one client holding thousands of them runs the
//! process out of file descriptors, after which the carrier's webhooks wait (or fail) to
//! connect. Here each connection has
//!
//! - a deadline for its request headers (`header_timeout`, from the connection's start or the
//!   end of its previous response) and for its request body (`body_timeout`, answered 408);
//! - an idle deadline between requests (`idle_timeout`);
//!
//! and the process has a cap on connections (`max_connections`); past half of it, at most
//! `max_per_address` of them from one address; the last tenth kept for addresses holding
//! few connections — the carrier's webhooks come from many addresses with a few connections each,
//! a flood from one or a few with many. At start the descriptor soft limit is raised to the hard
//! limit, and the cap is set below it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// How connections are bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Descriptors kept for everything that is not a client connection (the database, its WAL,
/// outbound requests, logs).
const DESCRIPTORS_KEPT: u64 = 512;
/// A connection from an address holding fewer than this may use the last tenth of the cap.
const FEW: usize = 8;

impl Limits {
    /// Raises the descriptor soft limit to the hard limit and sets the cap below it.
    pub fn for_this_process() -> Self {
        let descriptors = raise_descriptor_limit();
        let max_connections = descriptors
            .saturating_sub(DESCRIPTORS_KEPT)
            .clamp(64, 1_000_000) as usize;
        Self {
            max_connections,
            // A quarter: one address (a reverse proxy, a carrier egress, the emulator at 200
            // calls a second) may need thousands. A cap of 1,000 starved `dialtone carrier` in
            // the soak once a busy machine slowed answers and its connections piled up.
            max_per_address: (max_connections / 4).max(1),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The soft limit on open descriptors after raising it as far as the hard limit allows.
fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Connections open now, in all and per address.
#[derive(Default)]
pub struct Connections {
    total: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

impl Connections {
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Connections refused since start (over a cap).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A connection from `ip`, if the caps allow it; it is counted until the guard drops.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Guard> {
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let held = by_address.get(&ip).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Relaxed);
        let shared_part = limits.max_connections - limits.max_connections / 10;
        // The per-address cap applies only under pressure (past half the cap): refusing a busy
        // address that is the carrier (or a proxy in front of everyone) loses calls, so it is
        // done only when the process would otherwise run out.
        let admitted = total < limits.max_connections
            && (total < limits.max_connections / 2 || held < limits.max_per_address)
            && (total < shared_part || held < FEW);
        if !admitted {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *by_address.entry(ip).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Guard {
            connections: self.clone(),
            ip,
        })
    }
}

struct Guard {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut by_address = self
            .connections
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.ip);
            }
        }
        self.connections.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to close instead of spinning.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(guard) = connections.admit(peer.ip(), &limits) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            guard,
            stopped.clone(),
        ));
    }
    let _ = stop.send(true);
    // Open requests get a moment to finish; idle connections close at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    _guard: Guard,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    // HTTP/1.1 only: what carriers and browsers without TLS speak. (hyper-util's automatic
    // HTTP/2 detection reads the first bytes itself, before hyper's header deadline starts: a
    // connection that never sent a byte stayed open.)
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    // Idle: no byte for `idle_timeout` between requests; a connection that never sent one has
    // only the header deadline.
    let idle = async {
        loop {
            let allowed = if activity.ever_read() {
                limits.idle_timeout
            } else {
                limits.header_timeout
            };
            let quiet = activity.quiet_for();
            if quiet >= allowed {
                return;
            }
            tokio::time::sleep(allowed - quiet).await;
        }
    };
    tokio::select! {
        _ = conn.as_mut() => return,
        () = idle => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
    // Idle too long, or shutting down: finish what is in flight, then close.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.body_timeout, conn).await;
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    read_any: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_any: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn ever_read(&self) -> bool {
        self.read_any.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let since = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(since)
    }
}

/// A stream that notes when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
            self.activity.read_any.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: usize) -> Limits {
        Limits {
            max_connections: max,
            max_per_address: per_address,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn one_address_cannot_take_every_connection_and_the_last_tenth_is_for_the_few() {
        let c = Arc::new(Connections::default());
        let l = limits(100, 50);
        let flood: IpAddr = "203.0.113.1".parse().unwrap();
        let mut held: Vec<Guard> = (0..60).filter_map(|_| c.admit(flood, &l)).collect();
        assert_eq!(held.len(), 50, "the per-address cap");
        let second: IpAddr = "203.0.113.2".parse().unwrap();
        held.extend((0..60).filter_map(|_| c.admit(second, &l)));
        assert_eq!(c.open(), 90, "two floods stop at the shared part");
        // A carrier address with few connections still gets in, up to the cap.
        let carrier: IpAddr = "198.51.100.7".parse().unwrap();
        let carrier_held: Vec<Guard> = (0..FEW).filter_map(|_| c.admit(carrier, &l)).collect();
        assert_eq!(carrier_held.len(), FEW);
        assert_eq!(
            c.refused(),
            10 + 20,
            "past the per-address cap, and past the shared part"
        );
        drop(held);
        assert_eq!(c.open(), FEW, "closed connections are given back");
        assert!(c.admit(flood, &l).is_some());
    }
}

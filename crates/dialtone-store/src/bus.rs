//! Messages between the `dialtone serve` nodes that share one database, and claims that only
//! one of them wins.
//!
//! What several nodes must agree on while they route calls (the carrier's dial queue, the legs
//! up now, who has called before, round-robin turns) changes on every call. Asking the database
//! on every call would put a round trip and a hot row on the webhook's path (measured in
//! ARCHITECTURE.md: a shared-row update per call costs more CPU than the whole webhook), so
//! each node keeps that state in memory and tells the others what it changed: a [`Bus`]. Lost
//! messages cost accuracy, never a call. What must happen once (an alert raised, a job taken)
//! is a [`Bus::claim`], decided by the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::StoreError;

/// The longest message a bus carries (PostgreSQL's notifications take under 8,000 bytes, and
/// several messages share one).
pub const MAX_MESSAGE: usize = 7_000;

/// How the bus is doing, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BusStats {
    /// Whether the node is connected to the others now (always true alone).
    pub connected: bool,
    /// Messages this node handed to the bus (sent, waiting, or dropped since).
    pub published: u64,
    pub sent: u64,
    pub received: u64,
    /// Messages this node could not send (the bus down or its outbox full).
    pub dropped: u64,
}

/// The nodes sharing a database, from one node's side.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// This node's id (random per process), so nothing it sends comes back to it.
    fn node(&self) -> u64;
    /// Sends `message` (at most [`MAX_MESSAGE`] bytes, one line) to every other node. Never
    /// waits: messages are batched, and dropped (counted) when the bus is down.
    fn publish(&self, message: String);
    /// The other nodes' messages, in the order each node sent them. The first call takes the
    /// stream; later calls get `None`.
    fn subscribe(&self) -> Option<flume::Receiver<String>>;
    /// Whether `owner` (a node, a session) holds `key` from `now` until `until`: `true` if
    /// nobody held it, its hold ran out, or `owner` held it already (the hold is extended);
    /// `false` while another owner holds it.
    async fn claim(
        &self,
        key: &str,
        owner: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives up `owner`'s hold on `key`, if it has one.
    async fn unclaim(&self, key: &str, owner: u64) -> Result<(), StoreError>;
    fn stats(&self) -> BusStats;
}

/// The bus of a node alone (SQLite): nobody to tell, every claim its own.
pub struct Alone {
    node: u64,
    receiver: std::sync::Mutex<Option<flume::Receiver<String>>>,
    // Kept so the receiver never reports a closed channel.
    _sender: flume::Sender<String>,
}

impl Default for Alone {
    fn default() -> Self {
        let (sender, receiver) = flume::bounded(1);
        Self {
            node: new_node_id(),
            receiver: std::sync::Mutex::new(Some(receiver)),
            _sender: sender,
        }
    }
}

#[async_trait::async_trait]
impl Bus for Alone {
    fn node(&self) -> u64 {
        self.node
    }
    fn publish(&self, _message: String) {}
    fn subscribe(&self) -> Option<flume::Receiver<String>> {
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
    async fn claim(
        &self,
        _: &str,
        _: u64,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn unclaim(&self, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
    fn stats(&self) -> BusStats {
        BusStats {
            connected: true,
            ..BusStats::default()
        }
    }
}

/// A random node id.
pub fn new_node_id() -> u64 {
    let mut bytes = [0u8; 8];
    // Without an entropy source, the time and the process id still tell nodes apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        return nanos ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

/// The bus for the database `url` names: PostgreSQL's notifications, or [`Alone`] for SQLite.
pub async fn open_bus(url: &str) -> Result<Arc<dyn Bus>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(crate::postgres::bus::PgBus::start(url)?));
    }
    Ok(Arc::new(Alone::default()))
}

/// Counters a bus implementation keeps.
#[derive(Default)]
pub(crate) struct Counters {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
}

impl Counters {
    pub fn stats(&self) -> BusStats {
        BusStats {
            connected: self.connected.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

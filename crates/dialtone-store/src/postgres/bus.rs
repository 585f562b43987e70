//! The bus between nodes on PostgreSQL: `LISTEN`/`NOTIFY` on one channel, over a connection of
//! its own, and claims as rows of `dialtone_claims`.
//!
//! A notification carries the sending node's id on its first line and a batch of messages, one
//! per line: messages published within [`LINGER`] of each other share one notification (at
//! 2,000 calls a second, a few dozen notifications a second rather than thousands). PostgreSQL
//! delivers each session's notifications in order, to every listening session, the sender's
//! own included (skipped by its id). When the connection fails the bus reconnects, with
//! backoff; meanwhile messages wait in a bounded outbox, then are dropped and counted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::error;
use crate::StoreError;
use crate::bus::{Bus, BusStats, Counters, MAX_MESSAGE, new_node_id};

const CHANNEL: &str = "dialtone_cluster";
/// A notification's payload at most (PostgreSQL's limit is 8,000 bytes).
const MAX_PAYLOAD: usize = 7_900;
/// How long a message waits for others to share its notification.
const LINGER: Duration = Duration::from_millis(5);
/// Messages waiting to be sent at most; past it new ones are dropped.
const OUTBOX: usize = 16_384;
/// Connections for claims (alerts, DNI leases: a few a second).
const CLAIMERS: usize = 2;
/// Messages received and not yet applied at most; past it new ones are dropped.
const INBOX: usize = 65_536;
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct PgBus {
    node: u64,
    outbox: flume::Sender<String>,
    inbox: Mutex<Option<flume::Receiver<String>>>,
    claims: Pool,
    counters: Arc<Counters>,
}

impl PgBus {
    /// Starts listening on the database `url` names (in the background: the bus connects, and
    /// reconnects, on its own).
    pub fn start(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        let node = new_node_id();
        let (outbox, pending) = flume::bounded(OUTBOX);
        let (deliver, inbox) = flume::bounded(INBOX);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(config, node, pending, deliver, counters.clone()));
        Ok(Self {
            node,
            outbox,
            inbox: Mutex::new(Some(inbox)),
            claims: super::pool(url, CLAIMERS)?,
            counters,
        })
    }
}

#[async_trait::async_trait]
impl Bus for PgBus {
    fn node(&self) -> u64 {
        self.node
    }

    fn publish(&self, message: String) {
        if message.len() > MAX_MESSAGE || message.contains('\n') {
            tracing::warn!(
                len = message.len(),
                "a bus message too long or on several lines"
            );
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        if self.outbox.try_send(message).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn subscribe(&self) -> Option<flume::Receiver<String>> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    async fn claim(
        &self,
        key: &str,
        owner: u64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.claims.get().await.map_err(error::pool)?;
        let owner = owner as i64;
        let won = client
            .query_opt(
                "INSERT INTO dialtone_claims (key, owner, until) VALUES ($1, $2, $4)
                 ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
                 WHERE dialtone_claims.until <= $3 OR dialtone_claims.owner = EXCLUDED.owner
                 RETURNING owner",
                &[&key, &owner, &now, &until],
            )
            .await?;
        Ok(won.is_some())
    }

    async fn unclaim(&self, key: &str, owner: u64) -> Result<(), StoreError> {
        let client = self.claims.get().await.map_err(error::pool)?;
        client
            .execute(
                "DELETE FROM dialtone_claims WHERE key = $1 AND owner = $2",
                &[&key, &(owner as i64)],
            )
            .await?;
        Ok(())
    }

    fn stats(&self) -> BusStats {
        self.counters.stats()
    }
}

/// Keeps a session with the database until the node stops (its outbox closes).
async fn run(
    config: tokio_postgres::Config,
    node: u64,
    pending: flume::Receiver<String>,
    deliver: flume::Sender<String>,
    counters: Arc<Counters>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = session(&config, node, &pending, &deliver, &counters).await;
        counters.connected.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cluster bus disconnected");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection: listens, and sends what is published, until either fails.
async fn session(
    config: &tokio_postgres::Config,
    node: u64,
    pending: &flume::Receiver<String>,
    deliver: &flume::Sender<String>,
    counters: &Arc<Counters>,
) -> Result<(), StoreError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let own = format!("{node:016x}");
    let mut driver = {
        let (own, deliver, counters) = (own.clone(), deliver.clone(), counters.clone());
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                if let AsyncMessage::Notification(n) = message? {
                    received(n.payload(), &own, &deliver, &counters);
                }
            }
            Ok::<(), tokio_postgres::Error>(())
        })
    };
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let notify = client.prepare("SELECT pg_notify($1, $2)").await?;
        counters.connected.store(true, Ordering::Relaxed);
        tracing::info!("cluster bus connected");
        loop {
            let first = tokio::select! {
                first = pending.recv_async() => first,
                ended = &mut driver => {
                    return Err(match ended {
                        Ok(Err(e)) => StoreError::from(e),
                        _ => StoreError::Unavailable("the bus connection closed".into()),
                    });
                }
            };
            let Ok(first) = first else { return Ok(()) };
            for payload in batch(&own, first, pending).await {
                let sent = payload.lines().count() as u64 - 1;
                client.execute(&notify, &[&CHANNEL, &payload]).await?;
                counters.sent.fetch_add(sent, Ordering::Relaxed);
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// `first` and whatever else is published within [`LINGER`], as notification payloads.
async fn batch(own: &str, first: String, pending: &flume::Receiver<String>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut payloads = vec![format!("{own}\n{first}")];
    while let Ok(Ok(message)) = tokio::time::timeout_at(deadline, pending.recv_async()).await {
        let Some(last) = payloads.last_mut() else {
            break;
        };
        if last.len() + 1 + message.len() > MAX_PAYLOAD {
            payloads.push(format!("{own}\n{message}"));
        } else {
            last.push('\n');
            last.push_str(&message);
        }
        if payloads.len() >= 8 {
            break;
        }
    }
    payloads
}

/// Hands another node's messages to this node.
fn received(payload: &str, own: &str, deliver: &flume::Sender<String>, counters: &Counters) {
    let mut lines = payload.lines();
    if lines.next().is_none_or(|node| node == own) {
        return;
    }
    for line in lines {
        counters.received.fetch_add(1, Ordering::Relaxed);
        if deliver.try_send(line.to_owned()).is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

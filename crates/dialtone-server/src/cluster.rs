//! Several `dialtone serve` nodes on one database, acting as one: what each node changes in the
//! state they must share, told to the others over the store's [`Bus`].
//!
//! The carrier counts every node's calls against one dial limit and one cap on concurrent
//! calls; a caller who called through one node has called; a round-robin turn taken on one node
//! is taken. Each node keeps this state in memory, where calls read it without waiting, and
//! publishes every change as a [`Message`]; the others apply it as it arrives (within a few
//! milliseconds on a healthy database). A message lost (the database unreachable) costs
//! accuracy for a while, never a call. What must happen once (an alert) is a claim the
//! database decides (`Bus::claim`). Alone (SQLite), nothing is sent and every claim is won.

use std::sync::Arc;

use dialtone_store::{Alone, Bus, BusStats, SessionWrite};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::AppState;
use crate::admission::Observed;
use crate::alerts::Alert;

/// A change one node made to what all share. Short field names: a call publishes one or two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Message {
    /// What this node observed of carrier account `a`'s dials (the carrier counts every
    /// node's legs against one limit and one cap).
    #[serde(rename = "adm")]
    Admission { a: String, o: Observed },
    /// DNI lease changes made durable (sessions started, renewed, released).
    #[serde(rename = "dni")]
    Dni { w: Vec<SessionWrite> },
    /// A session started on pool number `number` at `at`, too long to tell: read it from the
    /// store.
    #[serde(rename = "dni_stored")]
    DniStored {
        number: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A first call, as nodes before first calls moved into the call log told each other: read
    /// and ignored, so a rolling upgrade logs no unreadable messages.
    #[serde(rename = "caller")]
    Caller { k: u64 },
    /// Round-robin counter `k` has reached `n` turns.
    #[serde(rename = "turn")]
    Turn { k: String, n: u64 },
    /// The configuration was reloaded: read it again.
    #[serde(rename = "reload")]
    Reload { allow_removals: bool },
    /// Backup routing rules were added or ended: read them again.
    #[serde(rename = "rules")]
    BackupRules,
    /// An alert this node raised (and claimed): the others keep it for their API without
    /// posting it again.
    #[serde(rename = "alert")]
    Alert(Alert),
}

/// One node's side of the cluster.
pub struct Cluster {
    bus: Arc<dyn Bus>,
    /// Whether there are other nodes to tell (false alone: nothing is encoded).
    shared: bool,
    /// Messages from other nodes applied so far (tests wait on it).
    applied: watch::Sender<u64>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new(Arc::new(Alone::default()), false)
    }
}

impl Cluster {
    /// A node on `bus`; `shared` when other nodes may use the same database.
    pub fn new(bus: Arc<dyn Bus>, shared: bool) -> Self {
        Self {
            bus,
            shared,
            applied: watch::Sender::new(0),
        }
    }

    pub fn shared(&self) -> bool {
        self.shared
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Tells the other nodes.
    pub fn send(&self, message: &Message) {
        if !self.shared {
            return;
        }
        match serde_json::to_string(message) {
            Ok(line) => self.bus.publish(line),
            Err(e) => tracing::warn!(error = %e, "a cluster message could not be encoded"),
        }
    }

    /// How many messages from other nodes this node has applied, as it changes.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    pub fn stats(&self) -> BusStats {
        self.bus.stats()
    }
}

/// Applies the other nodes' messages to `state` until the bus closes.
pub fn follow(state: Arc<AppState>) {
    let Some(inbox) = state.cluster.bus.subscribe() else {
        return;
    };
    tokio::spawn(async move {
        while let Ok(line) = inbox.recv_async().await {
            match serde_json::from_str::<Message>(&line) {
                Ok(message) => apply(&state, message).await,
                Err(e) => {
                    tracing::warn!(error = %e, "an unreadable cluster message (another version?)")
                }
            }
            state.cluster.applied.send_modify(|n| *n += 1);
        }
    });
}

async fn apply(state: &Arc<AppState>, message: Message) {
    let config = state.config.load();
    match message {
        Message::Admission { a, o } => {
            if let Some(carrier) = config.carrier_by_sid(&a) {
                state.admission.observed_elsewhere(carrier, o);
            }
        }
        Message::Dni { w } => {
            let now = state.clock.now();
            for write in w {
                state.dni.apply_elsewhere(&config, write, now);
            }
        }
        Message::DniStored { number, at } => match state.store.dni_leases(&number, at, at).await {
            Ok(sessions) => {
                let now = state.clock.now();
                for stored in sessions.into_iter().filter(|s| s.created_at == at) {
                    let write = SessionWrite::Start(Box::new(stored));
                    state.dni.apply_elsewhere(&config, write, now);
                }
            }
            Err(e) => tracing::warn!(error = %e, "another node's DNI session could not be read"),
        },
        Message::Caller { .. } => {}
        Message::Turn { k, n } => state.turns.seen(&k, n),
        Message::Reload { allow_removals } => match state.reload(allow_removals).await {
            Ok(summary) => tracing::info!(
                companies = summary.companies,
                "configuration reloaded: another node reloaded"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "another node reloaded the configuration, and this node's copy was refused; the running configuration stays")
            }
        },
        Message::BackupRules => {
            if let Err(e) = state.refresh_backup_rules().await {
                tracing::warn!(error = %e, "another node changed backup routing rules, and they could not be read");
            }
        }
        Message::Alert(alert) => state.admission.alerts.keep(alert),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes other nodes read: a renamed field or tag would be unreadable to a node of the
    /// previous version during a rolling upgrade.
    #[test]
    fn messages_keep_their_wire_shape() {
        let dial = Message::Admission {
            a: "AC1".into(),
            o: Observed::LegUp {
                parent: "CA1".into(),
                leg: "CA2".into(),
                at: 1.5,
            },
        };
        assert_eq!(
            serde_json::to_string(&dial).unwrap(),
            r#"{"t":"adm","a":"AC1","o":{"o":"up","parent":"CA1","leg":"CA2","at":1.5}}"#
        );
        assert_eq!(
            serde_json::to_string(&Message::BackupRules).unwrap(),
            r#"{"t":"rules"}"#
        );
        for m in [
            dial,
            Message::Admission {
                a: "AC1".into(),
                o: Observed::Dialed {
                    company: "acme".into(),
                    sid: "CA1".into(),
                    at: 2.0,
                    speech_s: 3.5,
                    legs: 2,
                    shaped: true,
                },
            },
            Message::Caller { k: u64::MAX },
            Message::Turn {
                k: "x".into(),
                n: 4,
            },
            Message::Reload {
                allow_removals: true,
            },
        ] {
            let line = serde_json::to_string(&m).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Message>(&line).unwrap(), m);
        }
    }
}

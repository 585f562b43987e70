//! DNI sessions when several nodes share the store: ids no two nodes give out, leases on free
//! numbers held against the other nodes' (a claim in the database), and every lease change
//! told to the others, so any node attributes a call to any node's visitor.
//!
//! Alone, a session is the node's business: [`start`] is `Dni::start`, and [`durable`] writes
//! the lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dialtone_core::config::Config;
use dialtone_store::{Batch, SessionWrite};

use crate::AppState;
use crate::cluster::Message;
use crate::dni::{DniError, Started, Visiting};
use crate::telemetry::DNI_CLAIMS_LOST;

/// Fewer ids than this left and the node reserves another block before a new session.
const IDS_LOW: u64 = 20;
/// Tries to hold a free number before the page keeps the website number.
const ATTEMPTS: usize = 3;

/// Starts (or resumes) a visitor's session. With other nodes, a free number is claimed for the
/// session before it is given: if another node's visitor got it a moment ago (this node has not
/// heard yet), this node waits to hear and allocates again.
pub(crate) async fn start(
    state: &Arc<AppState>,
    config: &Config,
    v: Visiting<'_>,
    now: DateTime<Utc>,
) -> Result<Started, DniError> {
    if !state.cluster.shared() {
        return state.dni.start(config, v, now);
    }
    let visitor = v.visitor.map(str::to_owned);
    for _ in 0..ATTEMPTS {
        reserve_ids(state).await;
        let mut heard = state.cluster.applied();
        let started = state.dni.start(config, v.clone(), now)?;
        let Started::Swap {
            session,
            sharing,
            resumed,
            expires_at,
            ..
        } = &started
        else {
            return Ok(started);
        };
        // A resumed session holds its number already; a shared one was not free anyway.
        if *resumed || *sharing > 1 {
            return Ok(started);
        }
        let Some(key) = state.dni.claim_key(*session) else {
            return Ok(started);
        };
        match state
            .cluster
            .bus()
            .claim(&key, *session, now, *expires_at)
            .await
        {
            Ok(true) => return Ok(started),
            Ok(false) => {
                metrics::counter!(DNI_CLAIMS_LOST).increment(1);
                state.dni.abandon(config, *session, now);
                let _ = tokio::time::timeout(Duration::from_millis(200), heard.changed()).await;
            }
            // The database is unreachable: the lease cannot be made durable either, and the
            // page keeps the website number when that fails.
            Err(e) => {
                tracing::warn!(error = %e, "a pool number could not be claimed");
                return Ok(started);
            }
        }
    }
    Ok(Started::Keep {
        visitor,
        reason: "busy",
    })
}

/// Reserves session ids ahead when few are left.
async fn reserve_ids(state: &AppState) {
    if state.dni.ids_left().is_none_or(|left| left >= IDS_LOW) {
        return;
    }
    match state.store.reserve_session_ids().await {
        Ok(Some(ids)) => state.dni.add_ids(ids),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "DNI session ids could not be reserved"),
    }
}

/// Makes lease changes durable (within 3 s), then, with other nodes, extends or gives up the
/// claims on their numbers and tells the others.
pub(crate) async fn durable(state: &AppState, writes: Vec<SessionWrite>) -> Result<(), String> {
    let append = state.store.append(Batch {
        sessions: writes.clone(),
        ..Default::default()
    });
    match tokio::time::timeout(Duration::from_secs(3), append).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("the store took over 3 s".into()),
    }
    if !state.cluster.shared() {
        return Ok(());
    }
    let bus = state.cluster.bus();
    for write in &writes {
        let held = match write {
            SessionWrite::Start(_) => continue,
            SessionWrite::Renew { id, expires_at, .. } => match state.dni.claim_key(*id) {
                Some(key) => bus
                    .claim(&key, *id, state.clock.now(), *expires_at)
                    .await
                    .map(|_| ()),
                None => continue,
            },
            SessionWrite::Release { id, .. } => match state.dni.claim_key(*id) {
                Some(key) => bus.unclaim(&key, *id).await,
                None => continue,
            },
        };
        if let Err(e) = held {
            tracing::warn!(error = %e, "the claim on a pool number could not be updated");
        }
    }
    for write in writes {
        let message = Message::Dni { w: vec![write] };
        let fits = serde_json::to_string(&message)
            .is_ok_and(|m| m.len() <= dialtone_store::bus::MAX_MESSAGE);
        match message {
            Message::Dni { w } if !fits => {
                // A visit with long URLs: the others read the lease from the store.
                if let Some(SessionWrite::Start(stored)) = w.first() {
                    state.cluster.send(&Message::DniStored {
                        number: stored.number.clone(),
                        at: stored.created_at,
                    });
                }
            }
            message => state.cluster.send(&message),
        }
    }
    Ok(())
}

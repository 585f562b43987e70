//! The store's seam, one trait per concern, and [`Layered`], which puts an event log in front of
//! a backend's reads.
//!
//! A backend is two halves: an [`EventLog`] (the write path every webhook waits on) and [`Reads`]
//! (the call log's listings, API keys, backup rules, DNI leases). A test double, or a log that
//! spools in front of an unreachable database, replaces the first half and keeps the second.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dialtone_core::backup::BackupRule;

use crate::StoreError;
use crate::model::{
    ApiKey, Batch, Call, CallCursor, CallPage, CallQuery, CallsAfter, StoredSession, Traffic,
    WriterStats,
};

/// The append-only event log. Appends are durable when they return `Ok`.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends events (and counters) durably: on `Ok` they survive a crash of the process.
    async fn append(&self, batch: Batch) -> Result<(), StoreError>;
    /// Commits whatever the log acknowledged before committing it (replay's inline writer).
    /// Reads through [`Layered`] call it first, so they see every acknowledged append.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Events written and batches committed since start.
    fn stats(&self) -> WriterStats;
}

/// The call log as the API and the server read it: projections of the events.
#[async_trait::async_trait]
pub trait CallLog: Send + Sync + 'static {
    async fn calls(&self, query: CallQuery) -> Result<CallPage, StoreError>;
    /// The calls matching `query` after `after` (from the newest when `None`), `query.per_page`
    /// of them, without counting the rest; `query.page` is not used.
    async fn calls_after(
        &self,
        query: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError>;
    /// One call of `account`, with its legs and every event; `None` for another account's.
    async fn call(&self, account: &str, sid: &str) -> Result<Option<Call>, StoreError>;
    /// Calls received since `since` per (carrier account sid, tracking number), for `accounts`'
    /// companies: what a configuration change would stop routing.
    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError>;
    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError>;
}

/// API keys, kept as hashes.
#[async_trait::async_trait]
pub trait ApiKeys: Send + Sync + 'static {
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Whether any account has an API key yet (a fresh database has none).
    async fn has_accounts(&self) -> Result<bool, StoreError>;
}

/// Backup routing rules an operator or an account's admin set.
#[async_trait::async_trait]
pub trait BackupRules: Send + Sync + 'static {
    /// Rules neither ended nor expired at `now`.
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError>;
    /// Saves a new rule; its id.
    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError>;
    /// Ends a rule; `false` if there is no such live rule.
    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// DNI visitor sessions and their leases on pool numbers (written through the event log).
#[async_trait::async_trait]
pub trait DniLeases: Send + Sync + 'static {
    /// Sessions whose lease ended at or after `since`, oldest first, and the next unused
    /// session id (sessions are restored into memory at startup).
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError>;
    /// A block of session ids no other node will use, when several nodes share the store;
    /// `None` alone (the node numbers its sessions itself, after the last stored).
    async fn reserve_session_ids(&self) -> Result<Option<std::ops::Range<u64>>, StoreError> {
        Ok(None)
    }
    /// Leases on `number` that overlap `from..=to` (for attributing calls after the fact).
    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError>;
}

/// Everything but the event log: what a backend reads (and its rarely written settings).
pub trait Reads: CallLog + ApiKeys + BackupRules + DniLeases {}
impl<T: CallLog + ApiKeys + BackupRules + DniLeases> Reads for T {}

/// Storage for everything dialtone keeps.
pub trait Store: EventLog + Reads {}
impl<T: EventLog + Reads> Store for T {}

/// An event log in front of a backend's reads; every read first flushes the log, so it sees
/// every append acknowledged before it.
#[derive(Clone)]
pub struct Layered {
    log: Arc<dyn EventLog>,
    reads: Arc<dyn Reads>,
}

impl Layered {
    pub fn new(log: Arc<dyn EventLog>, reads: Arc<dyn Reads>) -> Self {
        Self { log, reads }
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.log.clone()
    }

    pub fn reads(&self) -> Arc<dyn Reads> {
        self.reads.clone()
    }
}

#[async_trait::async_trait]
impl EventLog for Layered {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        self.log.append(batch).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.log.flush().await
    }
    fn stats(&self) -> WriterStats {
        self.log.stats()
    }
}

#[async_trait::async_trait]
impl CallLog for Layered {
    async fn calls(&self, query: CallQuery) -> Result<CallPage, StoreError> {
        self.log.flush().await?;
        self.reads.calls(query).await
    }
    async fn calls_after(
        &self,
        query: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError> {
        self.log.flush().await?;
        self.reads.calls_after(query, after).await
    }
    async fn call(&self, account: &str, sid: &str) -> Result<Option<Call>, StoreError> {
        self.log.flush().await?;
        self.reads.call(account, sid).await
    }
    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError> {
        self.log.flush().await?;
        self.reads.traffic(accounts, since).await
    }
    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.log.flush().await?;
        self.reads.round_robin_turns().await
    }
}

#[async_trait::async_trait]
impl ApiKeys for Layered {
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        self.reads.api_key(key).await
    }
    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.reads.create_api_key(key, scope, label, now).await
    }
    async fn has_accounts(&self) -> Result<bool, StoreError> {
        self.reads.has_accounts().await
    }
}

#[async_trait::async_trait]
impl BackupRules for Layered {
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError> {
        self.reads.backup_rules(now).await
    }
    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError> {
        self.reads.add_backup_rule(rule).await
    }
    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.reads.end_backup_rule(id, at).await
    }
}

#[async_trait::async_trait]
impl DniLeases for Layered {
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError> {
        self.log.flush().await?;
        self.reads.dni_sessions(since).await
    }
    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        self.log.flush().await?;
        self.reads.dni_leases(number, from, to).await
    }
    async fn reserve_session_ids(&self) -> Result<Option<std::ops::Range<u64>>, StoreError> {
        self.reads.reserve_session_ids().await
    }
}

//! dialtone's storage: the [`Store`] trait and its backends.
//!
//! The call log is append-only events; the `calls` and `legs` views the API reads are projections
//! updated in the same transaction as the events they come from. SQLite is the embedded default;
//! PostgreSQL is planned as a second backend behind the same trait.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use dialtone_core::backup::BackupRule;
use dialtone_core::event::Event;
use serde::Serialize;
use sha2::{Digest, Sha256};

mod sqlite;

pub use sqlite::{SqliteOptions, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("unsupported database URL `{0}` (use sqlite://PATH)")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Invalid(String),
}

/// What one request appends: events, and round-robin counters that moved.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub turns: Vec<(String, u64)>,
}

/// Filters of `GET /api/v1/calls`.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    pub account: String,
    pub company: Option<String>,
    pub tracker: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive, on the UTC date of the call's start.
    pub start_date: Option<NaiveDate>,
    /// Inclusive.
    pub end_date: Option<NaiveDate>,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallPage {
    pub page: u32,
    pub per_page: u32,
    pub total_pages: u32,
    pub total_records: u64,
    pub calls: Vec<CallRecord>,
}

/// A call as the API shows it, shaped after CallRail's call object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub answered: bool,
    pub direction: &'static str,
    pub duration: Option<u32>,
    pub start_time: String,
    pub end_time: Option<String>,
    pub tracking_phone_number: String,
    /// The destination that answered.
    pub business_phone_number: Option<String>,
    pub customer_phone_number: String,
    pub customer_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub company_id: String,
    /// The tracker the call came through: its name is the marketing source.
    pub source: String,
    pub source_type: String,
    /// Search keywords; filled by DNI attribution.
    pub keywords: Option<String>,
    pub voicemail: bool,
    pub voicemail_recording: Option<String>,
    pub recording: Option<String>,
    pub recording_duration: Option<u32>,
    pub recording_notice_played: bool,
    /// in_progress, answered, voicemail, missed, failed.
    pub outcome: String,
    /// The carrier's last status for the call.
    pub status: Option<String>,
    /// normal, or backup when dialtone answered with its backup routing.
    pub routing: String,
    pub routing_reason: Option<String>,
    /// How the dial was shaped under the carrier's limit (primary_first, primary_only), when it
    /// was.
    pub degraded: Option<String>,
    pub flow: String,
    pub flow_path: Vec<String>,
    pub legs: Vec<LegRecord>,
    /// Every event of the call, oldest first (single-call view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LegRecord {
    pub sid: String,
    pub to: String,
    pub status: String,
    pub initiated_at: Option<String>,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineEntry {
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub account: String,
    pub admin: bool,
}

/// Storage for everything dialtone keeps. Appends are durable when they return `Ok`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events (and counters) durably: on `Ok` they survive a crash of the process.
    async fn append(&self, batch: Batch) -> Result<(), StoreError>;
    async fn calls(&self, query: CallQuery) -> Result<CallPage, StoreError>;
    async fn call(&self, account: &str, sid: &str) -> Result<Option<CallRecord>, StoreError>;
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn create_api_key(
        &self,
        key: &str,
        account: &str,
        admin: bool,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Whether any account has an API key yet (a fresh database has none).
    async fn has_accounts(&self) -> Result<bool, StoreError>;
    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError>;
    /// Backup routing rules neither ended nor expired at `now`.
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError>;
    /// Saves a new rule; its id.
    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError>;
    /// Ends a rule; `false` if there is no such live rule.
    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Commits whatever a store acknowledged before committing it (replay's inline writer).
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Events written and batches committed since start: the writer's own gauge.
    fn stats(&self) -> WriterStats;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    pub events: u64,
    pub commits: u64,
    pub failed_commits: u64,
    /// Events waiting to be retried after a failed commit.
    pub spooled: u64,
    /// Calls whose sid is looked up in memory until the next merge into the sid index.
    pub unmerged_sids: u64,
}

/// Opens the store a database URL names, creating and migrating it if needed.
pub fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let mut options = SqliteOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("synchronous", "full")) => options.fsync_every_commit = true,
                Some(("synchronous", "normal")) => options.fsync_every_commit = false,
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "unknown database option `{pair}` (sqlite supports synchronous=full|normal)"
                    )));
                }
            }
        }
        return Ok(Arc::new(SqliteStore::open(path, options)?));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}

/// How keys are kept: hex SHA-256.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so text order is time order.
pub fn timestamp(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's format strings are parsed anew on every call.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000 % 1_000_000
    )
}

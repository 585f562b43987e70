//! dialtone's storage: the [`Store`] trait and its backends.
//!
//! The call log is append-only events; the `calls` and `legs` views the API reads are projections
//! updated in the same transaction as the events they come from. SQLite is the embedded default;
//! PostgreSQL is planned as a second backend behind the same trait.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use dialtone_core::backup::BackupRule;
use dialtone_core::dni::Visit;
use dialtone_core::event::{CallAttribution, Event};
use serde::Serialize;
use sha2::{Digest, Sha256};

mod fallback;
mod sqlite;

pub use fallback::{Fallback, Replace};
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
    /// The batch was refused whole and nothing of it was written.
    #[error("{0}")]
    Refused(Refusal),
}

/// Why the store refused a carrier request's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An event names a call of another carrier account than the one that signed the request.
    #[error("the call belongs to another carrier account")]
    OtherAccount,
    /// The inbound-call webhook of a call already received (a replay or a carrier retry).
    #[error("the call was already received")]
    AlreadyReceived,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::OtherAccount => "other_account",
            Refusal::AlreadyReceived => "already_received",
        }
    }
}

/// What one request appends: events, round-robin counters that moved, DNI leases that changed.
///
/// A batch is written whole or not at all, in the order appended: a call's events from one
/// request are never split across transactions.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub turns: Vec<(String, u64)>,
    pub sessions: Vec<SessionWrite>,
    /// The carrier account that signed the request the events come from. When set, the batch is
    /// refused whole ([`Refusal`]) if an event names a call of another carrier account, or if it
    /// receives a call already received. `None` for dialtone's own writes (reconcile, DNI).
    pub signed_by: Option<String>,
    /// What the request answered instead, if it gave up waiting (see [`Fallback`]).
    pub fallback: Option<std::sync::Arc<Fallback>>,
}

/// A DNI visitor session and its lease on a pool number, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredSession {
    pub id: u64,
    pub secret: String,
    pub account: String,
    pub company: String,
    pub tracker: String,
    pub number: String,
    pub visitor: String,
    pub visit: Visit,
    /// Live sessions on the number when it was given, this one included.
    pub sharing: u32,
    pub created_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// The lease's end: its expiry while renewed, or when it was released.
    pub expires_at: DateTime<Utc>,
    pub released: bool,
}

/// A change to a session's lease.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SessionWrite {
    Start(Box<StoredSession>),
    Renew {
        id: u64,
        seen_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    Release {
        id: u64,
        at: DateTime<Utc>,
    },
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

/// Where a page of calls ends, newest first: the next page starts after this call. Keyset
/// pagination: each page costs the same however deep, where an offset walks every call before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    /// As stored (`calls.started_at`), so comparisons match the order exactly.
    pub started_at: String,
    pub sid: String,
}

/// One page of a relative listing and the cursor of the next page, if there is one.
#[derive(Debug, Clone)]
pub struct CallsAfter {
    pub calls: Vec<CallRecord>,
    pub next: Option<CallCursor>,
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
    /// Where the caller came from, when a website visit is attributed (DNI).
    #[serde(flatten)]
    pub marketing: Marketing,
    /// Whether this was the caller's first call to the company (null when unknown).
    pub first_call: Option<bool>,
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

/// The marketing fields of a call attributed to a website visit; all null otherwise.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Marketing {
    /// Search keywords (utm_term or the ad platform's keyword parameter).
    pub keywords: Option<String>,
    pub utm_source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub utm_content: Option<String>,
    pub gclid: Option<String>,
    pub msclkid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page_url: Option<String>,
    pub referring_url: Option<String>,
    pub referrer_domain: Option<String>,
    pub attribution: Option<AttributionView>,
}

/// Which session a call was attributed to and how sure that is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributionView {
    pub session_id: u64,
    pub visitor_id: String,
    /// `certain`, or `shared` when the pool was exhausted and several visitors held the number.
    pub confidence: &'static str,
    pub shared_with: u32,
}

impl Marketing {
    pub fn of(a: Option<CallAttribution>) -> Self {
        let Some(a) = a else {
            return Self::default();
        };
        let v = a.visit;
        Self {
            keywords: v.keyword,
            utm_source: Some(v.source),
            medium: Some(v.medium),
            campaign: v.campaign,
            utm_content: v.content,
            gclid: v.gclid,
            msclkid: v.msclkid,
            fbclid: v.fbclid,
            landing_page_url: Some(v.landing_page),
            referring_url: v.referrer,
            referrer_domain: v.referrer_domain,
            attribution: Some(AttributionView {
                session_id: a.session,
                visitor_id: a.visitor,
                confidence: if a.shared_with > 1 {
                    "shared"
                } else {
                    "certain"
                },
                shared_with: a.shared_with,
            }),
        }
    }
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

/// Calls to one tracking number through one carrier account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub carrier_account_sid: String,
    pub tracking_number: String,
    pub calls: u64,
}

/// What an API key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The account whose companies and calls it acts on (empty for an operator key).
    pub account: String,
    /// May change its account's settings (backup rules for its companies), not just read.
    pub admin: bool,
    /// Acts on the whole installation: configuration reloads, backup routing across accounts,
    /// carrier limits and alerts, `/metrics`. Made only from the command line.
    pub operator: bool,
}

impl ApiKey {
    pub fn account(account: &str, admin: bool) -> Self {
        Self {
            account: account.to_owned(),
            admin,
            operator: false,
        }
    }

    pub fn operator() -> Self {
        Self {
            account: String::new(),
            admin: true,
            operator: true,
        }
    }
}

/// Storage for everything dialtone keeps. Appends are durable when they return `Ok`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends events (and counters) durably: on `Ok` they survive a crash of the process.
    async fn append(&self, batch: Batch) -> Result<(), StoreError>;
    async fn calls(&self, query: CallQuery) -> Result<CallPage, StoreError>;
    /// The calls matching `query` after `after` (from the newest when `None`), `query.per_page`
    /// of them, without counting the rest; `query.page` is not used.
    async fn calls_after(
        &self,
        query: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError>;
    async fn call(&self, account: &str, sid: &str) -> Result<Option<CallRecord>, StoreError>;
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
    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError>;
    /// Backup routing rules neither ended nor expired at `now`.
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError>;
    /// Saves a new rule; its id.
    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError>;
    /// Ends a rule; `false` if there is no such live rule.
    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// DNI sessions whose lease ended at or after `since`, oldest first, and the next unused
    /// session id (sessions are restored into memory at startup).
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError>;
    /// Leases on `number` that overlap `from..=to` (for attributing calls after the fact).
    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError>;
    /// Calls received since `since` per (carrier account sid, tracking number), for `accounts`'
    /// companies: what a configuration change would stop routing.
    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError>;
    /// Every (company, caller number) that has called, to tell first calls from repeat ones.
    async fn callers(&self) -> Result<Vec<(String, String)>, StoreError>;
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
    /// Bytes of them spilled to the spool file beside the database (past the memory bound).
    pub spilled_bytes: u64,
    /// Calls whose sid is looked up in memory until the next merge into the sid index.
    pub unmerged_sids: u64,
    /// Times the writer started the WAL over between commits, and times a RESTART checkpoint
    /// had to hold the writer back to do it (see `checkpoint_loop` in sqlite/wal.rs).
    pub wal_resets: u64,
    pub wal_restarts: u64,
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

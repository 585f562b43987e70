//! What the store takes and gives back, the same for every backend: batches of events to append,
//! and calls, sessions, keys and counters as stored, typed. How the API shows them is the
//! server's business (dialtone-server's `api/views.rs`).

use chrono::{DateTime, Utc};
use dialtone_core::dni::Visit;
use dialtone_core::event::{CallAttribution, Event, LeadStatus, Outcome};
use serde::Serialize;

use crate::Fallback;

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
    /// refused whole ([`crate::Refusal`]) if an event names a call of another carrier account, or
    /// if it receives a call already received. `None` for dialtone's own writes (reconcile, DNI).
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

/// Filters of a listing of calls.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    pub account: String,
    pub company: Option<String>,
    pub tracker: Option<String>,
    /// Calls that ended in any of these outcomes; every call when empty.
    pub outcomes: Vec<Outcome>,
    /// Calls that started at or after this instant (the API decides in which time zone a day
    /// begins).
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this instant.
    pub until: Option<DateTime<Utc>>,
    pub page: u32,
    pub per_page: u32,
}

impl CallQuery {
    /// Calls per page, as asked, within 1 to 250.
    pub fn page_size(&self) -> u32 {
        self.per_page.clamp(1, 250)
    }
}

/// Where a page of calls ends, newest first: the next page starts after this call. Keyset
/// pagination: each page costs the same however deep, where an offset walks every call before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    pub started_at: DateTime<Utc>,
    pub sid: String,
}

/// Of a keyset page read one row past its end (`rows`, with each call's row id), keeps the page
/// and says where the next one starts, if there is one.
pub(crate) fn keyset_page<T>(rows: &mut Vec<(T, Call)>, per_page: usize) -> Option<CallCursor> {
    let more = rows.len() > per_page;
    rows.truncate(per_page);
    match rows.last() {
        Some((_, c)) if more => Some(CallCursor {
            started_at: c.started_at,
            sid: c.sid.clone(),
        }),
        _ => None,
    }
}

/// One page of a relative listing and the cursor of the next page, if there is one.
#[derive(Debug, Clone)]
pub struct CallsAfter {
    pub calls: Vec<Call>,
    pub next: Option<CallCursor>,
}

/// One page of an offset listing, and how many calls match in all.
#[derive(Debug, Clone)]
pub struct CallPage {
    pub page: u32,
    pub per_page: u32,
    pub total_pages: u32,
    pub total_records: u64,
    pub calls: Vec<Call>,
}

/// A call as the call log holds it: the projection of its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub sid: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub answered: bool,
    /// The carrier's duration of the call, once it ended.
    pub duration_s: Option<u32>,
    pub tracking_number: String,
    /// The destination that answered.
    pub answered_by: Option<String>,
    pub caller: String,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub company: String,
    /// The tracker the call came through (its name is the marketing source) and its kind.
    pub tracker: String,
    pub tracker_kind: String,
    /// The website visit the call is attributed to (DNI), if any.
    pub attribution: Option<CallAttribution>,
    /// Whether this was the caller's first call to the company (`None` when unknown).
    pub first_call: Option<bool>,
    /// What people said of the call (CallRail's call update): its tags, a note, what it was
    /// worth (a decimal amount), whether it was a lead; spam calls are left out of listings.
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub value: Option<String>,
    pub lead_status: Option<LeadStatus>,
    pub spam: bool,
    pub voicemail: bool,
    pub voicemail_url: Option<String>,
    pub recording_url: Option<String>,
    pub recording_duration_s: Option<u32>,
    pub notice_played: bool,
    pub outcome: Outcome,
    /// The carrier's last status for the call.
    pub status: Option<String>,
    /// `normal`, or `backup` when dialtone answered with its backup routing.
    pub routing: String,
    pub routing_reason: Option<String>,
    /// How the dial was shaped under the carrier's limit, when it was.
    pub dial_shape: Option<String>,
    pub flow: String,
    pub path: Vec<String>,
    pub legs: Vec<Leg>,
    /// Every event of the call, oldest first: read only for a single call.
    pub events: Option<Vec<StoredEvent>>,
}

/// A dialed leg of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub sid: String,
    pub to: String,
    pub status: String,
    pub initiated_at: Option<DateTime<Utc>>,
    pub ringing_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_s: Option<u32>,
}

/// One event of a call's log: its time, its type and its body without the type.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub at: DateTime<Utc>,
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

/// What the event log's writer has done since start: its own gauge.
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
    /// had to hold the writer back to do it (SQLite; see `checkpoint_loop` in sqlite/wal.rs).
    pub wal_resets: u64,
    pub wal_restarts: u64,
}

//! dialtone's storage: the [`Store`] traits and their backends.
//!
//! The call log is append-only events; the `calls` and `legs` views the API reads are projections
//! updated in the same transaction as the events they come from. SQLite is the embedded default;
//! PostgreSQL, for several nodes sharing one database, is the second. Nothing here names a
//! backend's library: errors say what went wrong ([`StoreError`]), and what is read comes back
//! typed ([`Call`]), for the server to shape.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub mod bus;
mod fallback;
mod model;
pub mod postgres;
mod projection;
mod queue;
pub mod sqlite;
mod traits;

pub use bus::{Alone, Bus, BusStats, open_bus};
pub use fallback::{Fallback, Replace};
pub use model::{
    ApiKey, Batch, Call, CallCursor, CallPage, CallQuery, CallsAfter, Leg, SessionWrite,
    StoredEvent, StoredSession, Traffic, WriterStats,
};
pub use sqlite::SqliteOptions;
pub use traits::{ApiKeys, BackupRules, CallLog, DniLeases, EventLog, Layered, Reads, Store};

/// The store's traits, for calling their methods on an `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::traits::{ApiKeys, BackupRules, CallLog, DniLeases, EventLog, Reads, Store};
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, locked, or written (busy, full, an I/O error, a lost
    /// connection): nothing is wrong with the data, and a later try may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the data itself (a constraint, a value it cannot hold).
    #[error("the database refused the data: {0}")]
    Rejected(String),
    /// What is stored cannot be read back as dialtone wrote it: damaged, or not dialtone's.
    #[error("the database holds what dialtone cannot read: {0}")]
    Corrupt(String),
    /// A query dialtone made is wrong: a bug, reported as such.
    #[error("a database query failed: {0}")]
    Query(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error(
        "unsupported database URL `{0}` (use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
    )]
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

/// Opens the store a database URL names (`sqlite://PATH` or `postgres://…`), creating and
/// migrating it if needed. On PostgreSQL, events the database cannot take are kept in memory
/// only: a node that serves calls opens its store with [`open_with`] and a spool directory.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, None).await
}

/// [`open`], and on PostgreSQL events the database cannot take are also kept on this node's
/// disk in `spool_dir` until they are written (SQLite keeps its spool beside its database file).
pub async fn open_with(
    url: &str,
    spool_dir: Option<&std::path::Path>,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::open(url, spool_dir).await?));
    }
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
        return Ok(Arc::new(sqlite::open(path, options)?));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}

/// A database URL fit for logs and messages: its password, if it has one, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// How keys are kept: hex SHA-256.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_database_urls_password_is_never_shown() {
        assert_eq!(
            redact("postgres://dialtone:s3cr%40t:x@db.example:5432/calls?sslmode=disable"),
            "postgres://dialtone:***@db.example:5432/calls?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://dialtone@db/calls"),
            "postgres://dialtone@db/calls"
        );
        assert_eq!(redact("sqlite://dialtone.db"), "sqlite://dialtone.db");
        assert_eq!(
            redact("sqlite:///var/lib/a@b.db"),
            "sqlite:///var/lib/a@b.db"
        );
    }
}

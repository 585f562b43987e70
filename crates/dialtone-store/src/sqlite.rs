//! The SQLite backend: an event log ([`writer`]'s group commit, or replay's [`inline`] writer)
//! in front of a few reader connections, one module per concern.
//!
//! WAL mode with `synchronous = FULL`: a commit is on disk when it returns, and readers never
//! wait for the writer. Every append waits for the commit of the batch it landed in, so many
//! concurrent requests share one fsync.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

mod calls;
mod dni;
mod error;
mod inline;
mod keys;
mod project;
mod rules;
mod sid_index;
mod spool;
mod wal;
mod writer;

use sid_index::{RecentSids, unmerged_sids};
use wal::checkpoint_loop;

use crate::{Layered, StoreError, WriterStats};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_call_log.sql"),
    include_str!("../migrations/sqlite/0002_sid_index.sql"),
    include_str!("../migrations/sqlite/0003_dial_shape.sql"),
    include_str!("../migrations/sqlite/0004_backup_rules.sql"),
    include_str!("../migrations/sqlite/0005_dni.sql"),
    include_str!("../migrations/sqlite/0006_operator_keys.sql"),
    include_str!("../migrations/sqlite/0007_first_calls.sql"),
    include_str!("../migrations/sqlite/0008_call_changes.sql"),
];
const READERS: usize = 3;

/// The schema version this dialtone writes (SQLite's `user_version` after its migrations).
pub(crate) fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// `synchronous = FULL` (the default): every commit is fsynced, so an acknowledged event
    /// survives a power cut. `false` (`NORMAL`) survives a crash or `kill -9` of the process,
    /// not a power cut, for less I/O per commit.
    pub fsync_every_commit: bool,
    /// Bytes (estimated) of unwritten events the spool keeps in memory during a storage outage
    /// before it spills the oldest to `<database>-spool` (8 MiB estimated; the real footprint
    /// is a few times the estimate: at 50 calls a second RSS grew about 4 KB per spooled event).
    pub spool_memory_bytes: usize,
    /// How long an unwritten batch stays in memory before it may be spilled (10 s: past every
    /// request's wait, so a request can still replace what it answered; see `Fallback`).
    pub spool_spill_after: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            fsync_every_commit: true,
            spool_memory_bytes: 8 * 1024 * 1024,
            spool_spill_after: Duration::from_secs(10),
        }
    }
}

/// Opens the database at `path` (creating and migrating it): a writer thread that
/// group-commits concurrent appends, in front of reader connections.
pub fn open(path: &str, options: SqliteOptions) -> Result<Layered, StoreError> {
    let (conn, parts) = open_parts(path, options)?;
    let log = writer::GroupCommit::start(conn, path, options, &parts)?;
    Ok(Layered::new(Arc::new(log), Arc::new(parts.reads)))
}

/// Replay's store: appends run on the caller's thread and are acknowledged at once, and every
/// few thousand of them are committed in one transaction (see [`inline`]).
pub fn open_inline(path: &str) -> Result<Layered, StoreError> {
    let options = SqliteOptions {
        fsync_every_commit: false,
        ..Default::default()
    };
    let (conn, parts) = open_parts(path, options)?;
    let log = inline::InlineLog::new(conn, &parts);
    Ok(Layered::new(Arc::new(log), Arc::new(parts.reads)))
}

/// What the writer and the readers share.
struct Parts {
    reads: SqliteReads,
    counters: Arc<Counters>,
    recent_sids: Arc<RecentSids>,
}

/// The writer's gauges, shared with the checkpointer and read by `stats`.
#[derive(Default)]
struct Counters {
    events: AtomicU64,
    commits: AtomicU64,
    failed_commits: AtomicU64,
    spooled: AtomicU64,
    spilled_bytes: AtomicU64,
    /// Set by the checkpointer when the WAL has grown past its bound: the writer, between
    /// commits, copies the last frames back itself so that its next transaction starts the WAL
    /// over (see `checkpoint_loop`).
    wal_reset_wanted: AtomicBool,
    wal_resets: AtomicU64,
    wal_restarts: AtomicU64,
}

impl Counters {
    fn stats(&self, recent: &RecentSids) -> WriterStats {
        WriterStats {
            events: self.events.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            unmerged_sids: recent.read().map(|m| m.len() as u64).unwrap_or(0),
            wal_resets: self.wal_resets.load(Ordering::Relaxed),
            wal_restarts: self.wal_restarts.load(Ordering::Relaxed),
        }
    }
}

/// The reader connections, and what reads share with the writer: calls and settings.
pub(crate) struct SqliteReads {
    /// Dropping it ends the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicU64,
    recent_sids: Arc<RecentSids>,
}

impl SqliteReads {
    /// Runs `f` on the next reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) as usize % self.readers.len();
        let conn = self.readers[i].clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| StoreError::Invalid("a reader connection panicked".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("reader task failed: {e}")))?
    }
}

fn connect(path: &str, options: SqliteOptions) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = if options.fsync_every_commit {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(migration = i + 1, "applied database migration");
    }
    Ok(())
}

/// Opens and migrates the database; the writer's connection, the readers, and the checkpointer
/// started.
fn open_parts(path: &str, options: SqliteOptions) -> Result<(Connection, Parts), StoreError> {
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|d| !d.exists()) {
        return Err(StoreError::Invalid(format!(
            "directory {} does not exist",
            dir.display()
        )));
    }
    let mut conn = connect(path, options)?;
    migrate(&mut conn)?;
    let recent_sids = Arc::new(RwLock::new(unmerged_sids(&conn)?));
    let readers = (0..READERS)
        .map(|_| connect(path, options).map(|c| Arc::new(Mutex::new(c))))
        .collect::<Result<_, _>>()?;
    // Checkpoints copy the WAL back into the database file. Done by the writer (SQLite's
    // default), every append would wait behind them; a thread of their own does them.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // A larger cache costs more than it saves: SQLite walks the whole cache at every commit.
    conn.pragma_update(None, "cache_size", -2_000)?;
    // After a busy spell the WAL file is cut back to this size when it starts over.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    let checkpointer = connect(path, options)?;
    let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
    let counters = Arc::new(Counters::default());
    let checkpoint_counters = counters.clone();
    std::thread::Builder::new()
        .name("dialtone-sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(&checkpointer, &stopped, &checkpoint_counters))
        .map_err(|e| StoreError::Invalid(format!("cannot start the checkpointer: {e}")))?;
    let reads = SqliteReads {
        _stop_checkpoints: stop_checkpoints,
        readers,
        next_reader: AtomicU64::new(0),
        recent_sids: recent_sids.clone(),
    };
    Ok((
        conn,
        Parts {
            reads,
            counters,
            recent_sids,
        },
    ))
}

/// Takes the write lock at BEGIN, waiting out a checkpoint that holds it. A transaction that read
/// first and then tried to write would instead fail at once if the WAL was restarted meanwhile.
fn write_transaction(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, rusqlite::Error> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// A stored timestamp (fixed-width RFC 3339 UTC text, see [`crate::timestamp`]) of column `i`.
fn time_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = r.get(i)?;
    parse_time(i, &text)
}

fn time_or_null_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = r.get(i)?;
    text.map(|t| parse_time(i, &t)).transpose()
}

fn parse_time(i: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
}

/// A JSON column of column `i`.
fn json_at<T: serde::de::DeserializeOwned>(r: &rusqlite::Row, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

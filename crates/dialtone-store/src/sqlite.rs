//! The SQLite backend: one writer thread that group-commits, and a few reader connections.
//!
//! WAL mode with `synchronous = FULL`: a commit is on disk when it returns, and readers never
//! wait for the writer. Every append waits for the commit of the batch it landed in, so many
//! concurrent requests share one fsync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dialtone_core::backup::BackupRule;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

mod project;
mod sid_index;
mod spool;
mod wal;

use project::apply;
use sid_index::{MERGE_AT, MERGE_WHEN_IDLE, Merge, RecentSids, find_call, unmerged_sids};
use spool::{Source, Spool};
use wal::{checkpoint_loop, reset_wal_if_wanted};

use crate::fallback::End;
use crate::{
    ApiKey, Batch, CallCursor, CallPage, CallQuery, CallRecord, CallsAfter, LegRecord, Marketing,
    Refusal, Store, StoreError, StoredSession, TimelineEntry, Traffic, WriterStats, hash_key,
    timestamp,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_call_log.sql"),
    include_str!("../migrations/sqlite/0002_sid_index.sql"),
    include_str!("../migrations/sqlite/0003_dial_shape.sql"),
    include_str!("../migrations/sqlite/0004_backup_rules.sql"),
    include_str!("../migrations/sqlite/0005_dni.sql"),
    include_str!("../migrations/sqlite/0006_operator_keys.sql"),
];
/// Appends taken into one transaction at most.
const MAX_BATCH: usize = 1024;
const READERS: usize = 3;

struct Append {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

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
    wal_reset_wanted: std::sync::atomic::AtomicBool,
    wal_resets: AtomicU64,
    wal_restarts: AtomicU64,
}

pub struct SqliteStore {
    /// Dropping it ends the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
    writer: Writer,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicU64,
    counters: Arc<Counters>,
    recent_sids: Arc<RecentSids>,
}

enum Writer {
    /// The writer thread, group-committing what waits in its queue.
    Thread(flume::Sender<Append>),
    /// Replay's writer: appends run on the caller's thread and are acknowledged at once, and
    /// every `INLINE_BATCH` of them is committed in one transaction. Deterministic and fast, and
    /// not durable until [`Store::flush`]: a simulation has no crash to survive.
    Inline(Mutex<InlineWriter>),
}

struct InlineWriter {
    conn: Connection,
    pending: Vec<Batch>,
}

const INLINE_BATCH: usize = 4096;

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

impl SqliteStore {
    pub fn open(path: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::open_with(path, options, false)
    }

    /// A store whose appends run on the caller's thread, for replay (see [`Writer::Inline`]).
    pub fn open_inline(path: &str) -> Result<Self, StoreError> {
        let options = SqliteOptions {
            fsync_every_commit: false,
            ..Default::default()
        };
        Self::open_with(path, options, true)
    }

    fn open_with(path: &str, options: SqliteOptions, inline: bool) -> Result<Self, StoreError> {
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
        let writer = if inline {
            Writer::Inline(Mutex::new(InlineWriter {
                conn,
                pending: Vec::new(),
            }))
        } else {
            let (tx, rx) = flume::bounded::<Append>(65_536);
            let thread_counters = counters.clone();
            let writer_sids = recent_sids.clone();
            let written_back: i64 = conn
                .query_row(
                    "SELECT value FROM store_meta WHERE key = 'spool_offset'",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let spool = Spool::new(
                path,
                options.spool_memory_bytes,
                options.spool_spill_after,
                written_back.max(0) as u64,
            );
            if !spool.is_empty() {
                tracing::warn!(
                    bytes = spool.spilled_bytes(),
                    "a spool file left by an earlier run: its events are written first"
                );
            }
            counters
                .spilled_bytes
                .store(spool.spilled_bytes(), Ordering::Relaxed);
            std::thread::Builder::new()
                .name("dialtone-sqlite-writer".into())
                .spawn(move || write_loop(conn, rx, &thread_counters, &writer_sids, spool))
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot start the database writer: {e}"))
                })?;
            Writer::Thread(tx)
        };
        Ok(Self {
            _stop_checkpoints: stop_checkpoints,
            writer,
            readers,
            next_reader: AtomicU64::new(0),
            counters,
            recent_sids,
        })
    }

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

/// Takes whatever appends are waiting, writes them in one transaction, acknowledges them all.
/// A refused append is retried alone so it cannot fail its neighbours. A failed commit (disk
/// full, I/O error) keeps the events in a spool that is retried before new work. Between
/// commits, merges recent sids into the sid index.
fn write_loop(
    mut conn: Connection,
    rx: flume::Receiver<Append>,
    counters: &Counters,
    recent: &Arc<RecentSids>,
    mut spool: Spool,
) {
    let mut merge = Merge::default();
    loop {
        merge.poll();
        let holding_sids = recent.read().map(|m| !m.is_empty()).unwrap_or(false);
        let first = if !spool.is_empty() {
            // Writing the spool back: new work joins each chunk, nobody waits for more.
            rx.try_recv().ok()
        } else if !merge.pending.is_empty() {
            rx.try_recv().ok()
        } else if merge.sorting.is_some() {
            // Back soon to take up the sorted merge.
            rx.recv_timeout(Duration::from_millis(5)).ok()
        } else if holding_sids {
            match rx.recv_timeout(MERGE_WHEN_IDLE) {
                Ok(a) => Some(a),
                Err(flume::RecvTimeoutError::Timeout) => {
                    merge.start_in_background(recent);
                    None
                }
                Err(flume::RecvTimeoutError::Disconnected) => None,
            }
        } else {
            match rx.recv() {
                Ok(a) => Some(a),
                Err(_) => return,
            }
        };
        let mut work: Vec<Append> = first.into_iter().collect();
        while work.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(a) => work.push(a),
                Err(_) => break,
            }
        }
        if !work.is_empty() || !spool.is_empty() {
            let (retry, source) = if spool.is_empty() {
                (Vec::new(), Source::Memory)
            } else {
                spool.take_chunk().unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read the spool file; retrying later");
                    (Vec::new(), Source::Memory)
                })
            };
            let offset = matches!(source, Source::File { .. }).then(|| spool.offset_after(source));
            match commit(&mut conn, recent, &retry, &mut work, offset) {
                Ok(results) => {
                    let events: usize = retry.iter().map(|b| b.events.len()).sum::<usize>()
                        + work.iter().map(|a| a.batch.events.len()).sum::<usize>();
                    counters.events.fetch_add(events as u64, Ordering::Relaxed);
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = spool.committed(source) {
                        tracing::error!(error = %e, "cannot remove the written-back spool file");
                    }
                    counters.spooled.store(spool.events(), Ordering::Relaxed);
                    counters
                        .spilled_bytes
                        .store(spool.spilled_bytes(), Ordering::Relaxed);
                    if !retry.is_empty() && spool.is_empty() {
                        tracing::info!("spooled events all written after an earlier failure");
                    }
                    for (a, r) in work.into_iter().zip(results) {
                        let _ = a.done.send(r);
                    }
                    // After the acknowledgements: no caller waits for this.
                    reset_wal_if_wanted(&conn, counters);
                }
                Err(e) => {
                    counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "call log commit failed; events kept to retry");
                    spool.put_back(retry, source);
                    // Kept (and counted) before anyone is told: a caller that hears of the
                    // failure finds its batch in the spool.
                    let mut waiting = Vec::with_capacity(work.len());
                    for a in work {
                        if let Err(e) = spool.push(a.batch, std::time::Instant::now()) {
                            tracing::error!(error = %e, "cannot spill the spool to disk; it stays in memory");
                        }
                        waiting.push(a.done);
                    }
                    counters.spooled.store(spool.events(), Ordering::Relaxed);
                    counters
                        .spilled_bytes
                        .store(spool.spilled_bytes(), Ordering::Relaxed);
                    for done in waiting {
                        let _ = done.send(Err(StoreError::Invalid(format!("commit failed: {e}"))));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
        }
        if !merge.in_progress() && recent.read().map(|m| m.len()).unwrap_or(0) >= MERGE_AT {
            merge.start_in_background(recent);
        }
        if !merge.pending.is_empty() {
            // A failed chunk stays pending and is tried again after the next appends.
            if let Err(e) = merge.step(&mut conn, recent, &|| !rx.is_empty()) {
                tracing::warn!(error = %e, "merging call sids into their index failed; will retry");
            }
        }
        if rx.is_disconnected() && rx.is_empty() && spool.is_empty() {
            return;
        }
    }
}

/// Writes everything in one transaction (one fsync for all). If the database refuses one append
/// (a constraint, a value it cannot store), rolls back and writes each append on its own, so
/// only that one fails. Other errors (disk full, I/O) fail the whole commit: the caller spools.
/// A batch the store refuses ([`Refusal`]) is left out whole and does not fail the others.
fn commit(
    conn: &mut Connection,
    recent: &RecentSids,
    retry: &[Batch],
    work: &mut [Append],
    spool_offset: Option<u64>,
) -> Result<Vec<Result<(), StoreError>>, rusqlite::Error> {
    let batches = retry.iter().chain(work.iter().map(|a| &a.batch));
    match in_one_transaction(conn, recent, batches, spool_offset) {
        Ok(results) => {
            return Ok(results
                .into_iter()
                .skip(retry.len())
                .map(|r| r.map_err(StoreError::Refused))
                .collect());
        }
        Err(e) if !refused(&e) => return Err(e),
        Err(e) => tracing::warn!(error = %e, "an append was refused; writing appends one by one"),
    }
    for b in retry {
        if let Err(e) = in_one_transaction(conn, recent, std::iter::once(b), None) {
            if !refused(&e) {
                return Err(e);
            }
            dropped(b);
            tracing::error!(error = %e, "dropping a spooled batch the database refuses");
        }
    }
    let mut results = Vec::with_capacity(work.len());
    for a in work.iter() {
        match in_one_transaction(conn, recent, std::iter::once(&a.batch), None) {
            Ok(mut r) => results.push(r.pop().unwrap_or(Ok(())).map_err(StoreError::Refused)),
            Err(e) if refused(&e) => {
                dropped(&a.batch);
                results.push(Err(StoreError::from(e)));
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(offset) = spool_offset {
        in_one_transaction(conn, recent, std::iter::empty(), Some(offset))?;
    }
    Ok(results)
}

/// The database refused `batch` for good: its request is told, if it waits to replace it.
fn dropped(batch: &Batch) {
    if let Some(f) = &batch.fallback {
        f.end(End::Dropped);
    }
}

/// Applies the batches and commits; the calls they created join the recent sids only once the
/// commit has succeeded. Each batch's result: written, or refused whole.
fn in_one_transaction<'a>(
    conn: &mut Connection,
    recent: &RecentSids,
    batches: impl Iterator<Item = &'a Batch>,
    spool_offset: Option<u64>,
) -> Result<Vec<Result<(), Refusal>>, rusqlite::Error> {
    let tx = write_transaction(conn)?;
    if let Some(offset) = spool_offset {
        // How far the spool file is written back, committed with what was written.
        tx.prepare_cached(
            "INSERT INTO store_meta (key, value) VALUES ('spool_offset', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([offset as i64])?;
    }
    let mut created = HashMap::new();
    let mut results = Vec::new();
    let mut fallbacks = Vec::new();
    let mut applied = Ok(());
    for b in batches {
        fallbacks.push(b.fallback.as_deref());
        match apply(&tx, recent, &mut created, b) {
            Ok(r) => results.push(r),
            Err(e) => {
                applied = Err(e);
                break;
            }
        }
    }
    let committed = applied.and_then(|()| tx.commit());
    for (i, f) in fallbacks.into_iter().enumerate() {
        let Some(f) = f else { continue };
        f.end(match (&committed, results.get(i)) {
            (Ok(()), Some(Ok(()))) => End::Committed,
            (Ok(()), _) => End::Dropped,
            (Err(_), _) => End::RolledBack,
        });
    }
    committed?;
    if let Ok(mut map) = recent.write() {
        map.extend(created);
    }
    Ok(results)
}

/// Takes the write lock at BEGIN, waiting out a checkpoint that holds it. A transaction that read
/// first and then tried to write would instead fail at once if the WAL was restarted meanwhile.
fn write_transaction(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, rusqlite::Error> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// The database said no to the data itself, as opposed to failing to write.
fn refused(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ConstraintViolation | TypeMismatch | TooBig | ApiMisuse
        ),
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::InvalidParameterCount(..) => {
            true
        }
        _ => false,
    }
}

const SESSION_COLUMNS: &str =
    "id, secret, account, company, tracker, number, visitor, visit, sharing,
    created_at, seen_at, expires_at, released";

fn session_from_row(r: &rusqlite::Row) -> rusqlite::Result<StoredSession> {
    let time = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
        let text: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    };
    let visit: String = r.get(7)?;
    Ok(StoredSession {
        id: r.get::<_, i64>(0)? as u64,
        secret: r.get(1)?,
        account: r.get(2)?,
        company: r.get(3)?,
        tracker: r.get(4)?,
        number: r.get(5)?,
        visitor: r.get(6)?,
        visit: serde_json::from_str(&visit).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
        })?,
        sharing: r.get(8)?,
        created_at: time(9)?,
        seen_at: time(10)?,
        expires_at: time(11)?,
        released: r.get(12)?,
    })
}

/// The `WHERE` clause and its arguments for a listing's filters.
fn call_filter(q: &CallQuery) -> (String, Vec<String>) {
    let mut filter = String::from("account = ?1");
    let mut args: Vec<String> = vec![q.account.clone()];
    let mut add = |clause: &str, value: String| {
        args.push(value);
        filter.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(c) = &q.company {
        add("company =", c.clone());
    }
    if let Some(t) = &q.tracker {
        add("tracker =", t.clone());
    }
    if let Some(o) = &q.outcome {
        add("outcome =", o.clone());
    }
    if let Some(d) = q.start_date {
        add("started_at >=", format!("{d}T00:00:00"));
    }
    if let Some(d) = q.end_date {
        // Inclusive of the whole end date.
        add(
            "started_at <",
            format!("{}T00:00:00", d.succ_opt().unwrap_or(d)),
        );
    }
    (filter, args)
}

const CALL_COLUMNS: &str = "sid, answered, duration_s, started_at, ended_at, tracking_number, answered_by, caller,
    caller_name, forwarded_from, company, tracker, tracker_kind, voicemail, voicemail_url, recording_url,
    recording_duration_s, notice_played, outcome, status, routing, routing_reason, flow, path, id, dial_shape,
    attribution, first_call";

/// A call and its row id, by which its legs and events find it.
fn call_from_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, CallRecord)> {
    let path: String = r.get(23)?;
    let attribution: Option<String> = r.get(26)?;
    let attribution = attribution.and_then(|a| serde_json::from_str(&a).ok());
    Ok((
        r.get(24)?,
        CallRecord {
            id: r.get(0)?,
            answered: r.get(1)?,
            direction: "inbound",
            duration: r.get(2)?,
            start_time: r.get(3)?,
            end_time: r.get(4)?,
            tracking_phone_number: r.get(5)?,
            business_phone_number: r.get(6)?,
            customer_phone_number: r.get(7)?,
            customer_name: r.get(8)?,
            forwarded_from: r.get(9)?,
            company_id: r.get(10)?,
            source: r.get(11)?,
            source_type: r.get(12)?,
            marketing: Marketing::of(attribution),
            first_call: r.get(27)?,
            voicemail: r.get(13)?,
            voicemail_recording: r.get(14)?,
            recording: r.get(15)?,
            recording_duration: r.get(16)?,
            recording_notice_played: r.get(17)?,
            outcome: r.get(18)?,
            status: r.get(19)?,
            routing: r.get(20)?,
            routing_reason: r.get(21)?,
            degraded: r.get(25)?,
            flow: r.get(22)?,
            flow_path: serde_json::from_str(&path).unwrap_or_default(),
            legs: Vec::new(),
            timeline: None,
        },
    ))
}

fn legs_of(conn: &Connection, call: i64) -> Result<Vec<LegRecord>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT sid, to_number, status, initiated_at, ringing_at, answered_at, completed_at, duration_s
         FROM legs WHERE call_id = ?1 ORDER BY coalesce(initiated_at, ringing_at, answered_at, completed_at), sid",
    )?;
    let rows = stmt.query_map([call], |r| {
        Ok(LegRecord {
            sid: r.get(0)?,
            to: r.get(1)?,
            status: r.get(2)?,
            initiated_at: r.get(3)?,
            ringing_at: r.get(4)?,
            answered_at: r.get(5)?,
            completed_at: r.get(6)?,
            duration: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        match &self.writer {
            Writer::Thread(writer) => {
                let (done, wait) = oneshot::channel();
                writer
                    .send_async(Append { batch, done })
                    .await
                    .map_err(|_| StoreError::WriterGone)?;
                wait.await.map_err(|_| StoreError::WriterGone)?
            }
            Writer::Inline(inline) => {
                let full = {
                    let mut w = inline.lock().map_err(|_| StoreError::WriterGone)?;
                    w.pending.push(batch);
                    w.pending.len() >= INLINE_BATCH
                };
                if full { self.flush().await } else { Ok(()) }
            }
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let Writer::Inline(inline) = &self.writer else {
            return Ok(());
        };
        let mut w = inline.lock().map_err(|_| StoreError::WriterGone)?;
        let InlineWriter { conn, pending } = &mut *w;
        if pending.is_empty() {
            return Ok(());
        }
        let events: usize = pending.iter().map(|b| b.events.len()).sum();
        // Replay's requests are acknowledged before this: a refused batch is only left out.
        in_one_transaction(conn, &self.recent_sids, pending.iter(), None)?;
        pending.clear();
        self.counters
            .events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        let held = self.recent_sids.read().map(|m| m.len()).unwrap_or(0);
        if held >= MERGE_AT {
            let mut merge = Merge::default();
            merge.start(&self.recent_sids);
            while !merge.pending.is_empty() {
                merge.step(conn, &self.recent_sids, &|| false)?;
            }
        }
        Ok(())
    }

    async fn calls(&self, q: CallQuery) -> Result<CallPage, StoreError> {
        self.flush().await?;
        self.read(move |conn| {
            let (filter, args) = call_filter(&q);
            let total: u64 = conn
                .prepare(&format!("SELECT count(*) FROM calls WHERE {filter}"))?
                .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))?;
            let per_page = q.per_page.clamp(1, 250);
            let page = q.page.max(1);
            let offset = u64::from(page - 1) * u64::from(per_page);
            let mut stmt = conn.prepare(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC, sid DESC LIMIT {per_page} OFFSET {offset}"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(&args), call_from_row)?.collect::<Result<Vec<_>, _>>()?;
            let mut calls = Vec::with_capacity(rows.len());
            for (id, mut c) in rows {
                c.legs = legs_of(conn, id)?;
                calls.push(c);
            }
            Ok(CallPage {
                page,
                per_page,
                total_pages: total.div_ceil(u64::from(per_page)) as u32,
                total_records: total,
                calls,
            })
        })
        .await
    }

    async fn calls_after(
        &self,
        q: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError> {
        self.flush().await?;
        self.read(move |conn| {
            let (mut filter, mut args) = call_filter(&q);
            if let Some(c) = after {
                // The first conjunct bounds the index range; the second breaks ties by sid.
                args.push(c.started_at);
                args.push(c.sid);
                let (at, sid) = (args.len() - 1, args.len());
                filter.push_str(&format!(
                    " AND started_at <= ?{at} AND (started_at < ?{at} OR sid < ?{sid})"
                ));
            }
            let per_page = q.per_page.clamp(1, 250) as usize;
            let mut stmt = conn.prepare(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC, sid DESC LIMIT {}",
                per_page + 1
            ))?;
            let mut rows = stmt
                .query_map(rusqlite::params_from_iter(&args), |r| {
                    Ok((call_from_row(r)?, r.get::<_, String>(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let more = rows.len() > per_page;
            rows.truncate(per_page);
            let next = match rows.last() {
                Some(((_, c), started_at)) if more => Some(CallCursor {
                    started_at: started_at.clone(),
                    sid: c.id.clone(),
                }),
                _ => None,
            };
            let mut calls = Vec::with_capacity(rows.len());
            for ((id, mut c), _) in rows {
                c.legs = legs_of(conn, id)?;
                calls.push(c);
            }
            Ok(CallsAfter { calls, next })
        })
        .await
    }

    async fn call(&self, account: &str, sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.flush().await?;
        let (account, sid) = (account.to_owned(), sid.to_owned());
        let recent = self.recent_sids.clone();
        self.read(move |conn| {
            let Some(id) = find_call(conn, &recent, &HashMap::new(), &sid)? else {
                return Ok(None);
            };
            let call = conn
                .prepare_cached(&format!(
                    "SELECT {CALL_COLUMNS} FROM calls WHERE id = ?1 AND account = ?2"
                ))?
                .query_row(params![id, account], call_from_row)
                .optional()?;
            let Some((id, mut call)) = call else {
                return Ok(None);
            };
            call.legs = legs_of(conn, id)?;
            let mut stmt = conn.prepare_cached(
                "SELECT at, kind, body FROM events WHERE call_id = ?1 ORDER BY id",
            )?;
            let timeline = stmt
                .query_map([id], |r| {
                    let body: String = r.get(2)?;
                    let mut detail: serde_json::Value =
                        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                    if let Some(o) = detail.as_object_mut() {
                        o.remove("type");
                    }
                    Ok(TimelineEntry {
                        at: r.get(0)?,
                        kind: r.get(1)?,
                        detail,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            call.timeline = Some(timeline);
            Ok(Some(call))
        })
        .await
    }

    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash_key(key);
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT account, admin, operator FROM api_keys WHERE hash = ?1")?
                .query_row([hash], |r| {
                    Ok(ApiKey {
                        account: r.get(0)?,
                        admin: r.get(1)?,
                        operator: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (hash, scope, label) = (hash_key(key), scope.clone(), label.to_owned());
        // Rare and not on the call path: a reader connection may write (WAL serialises writers).
        self.read(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (hash, account, admin, operator, label, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (hash) DO NOTHING",
                params![
                    hash,
                    scope.account,
                    scope.admin,
                    scope.operator,
                    label,
                    timestamp(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn has_accounts(&self) -> Result<bool, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
        })
        .await
    }

    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT key, turns FROM round_robin")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError> {
        let now = timestamp(now);
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, scope, percent, reason, created_at, expires_at, created_by FROM backup_rules
                 WHERE ended_at IS NULL AND expires_at > ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([now], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut rules = Vec::new();
            for row in rows {
                let (id, scope, percent, reason, created_at, expires_at, created_by) = row?;
                let parse = |t: &str| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| StoreError::Invalid(format!("backup rule {id}: {e}")))
                };
                rules.push(BackupRule {
                    id,
                    scope: serde_json::from_str(&scope)
                        .map_err(|e| StoreError::Invalid(format!("backup rule {id}: {e}")))?,
                    percent: u8::try_from(percent).unwrap_or(100),
                    reason,
                    created_at: parse(&created_at)?,
                    expires_at: parse(&expires_at)?,
                    created_by,
                });
            }
            Ok(rules)
        })
        .await
    }

    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError> {
        let rule = rule.clone();
        let scope =
            serde_json::to_string(&rule.scope).map_err(|e| StoreError::Invalid(e.to_string()))?;
        // Rare and not on the call path: a reader connection may write (WAL serialises writers).
        self.read(move |conn| {
            conn.execute(
                "INSERT INTO backup_rules (scope, percent, reason, created_at, expires_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    scope,
                    rule.percent,
                    rule.reason,
                    timestamp(rule.created_at),
                    timestamp(rule.expires_at),
                    rule.created_by
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.read(move |conn| {
            let n = conn.execute(
                "UPDATE backup_rules SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                params![id, timestamp(at)],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError> {
        self.flush().await?;
        self.read(move |conn| {
            let sessions = conn
                .prepare(&format!(
                    "SELECT {SESSION_COLUMNS} FROM dni_sessions WHERE expires_at >= ?1 ORDER BY id"
                ))?
                .query_map([timestamp(since)], session_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let last: Option<i64> =
                conn.query_row("SELECT max(id) FROM dni_sessions", [], |r| r.get(0))?;
            Ok((sessions, last.unwrap_or(0) as u64 + 1))
        })
        .await
    }

    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        self.flush().await?;
        let number = number.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM dni_sessions
                     WHERE number = ?1 AND created_at <= ?3 AND expires_at >= ?2 ORDER BY id"
                ))?
                .query_map(
                    params![number, timestamp(from), timestamp(to)],
                    session_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError> {
        self.flush().await?;
        let accounts = accounts.to_vec();
        let since = timestamp(since);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT carrier_account_sid, tracking_number, count(*) FROM calls
                 WHERE account = ?1 AND started_at >= ?2 GROUP BY 1, 2",
            )?;
            let mut all = Vec::new();
            for account in &accounts {
                let rows = stmt.query_map(params![account, since], |r| {
                    Ok(Traffic {
                        carrier_account_sid: r.get(0)?,
                        tracking_number: r.get(1)?,
                        calls: r.get::<_, i64>(2)? as u64,
                    })
                })?;
                for row in rows {
                    all.push(row?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn callers(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.flush().await?;
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT DISTINCT company, caller FROM calls WHERE company != ''")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            events: self.counters.events.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            failed_commits: self.counters.failed_commits.load(Ordering::Relaxed),
            spooled: self.counters.spooled.load(Ordering::Relaxed),
            spilled_bytes: self.counters.spilled_bytes.load(Ordering::Relaxed),
            unmerged_sids: self.recent_sids.read().map(|m| m.len() as u64).unwrap_or(0),
            wal_resets: self.counters.wal_resets.load(Ordering::Relaxed),
            wal_restarts: self.counters.wal_restarts.load(Ordering::Relaxed),
        }
    }
}

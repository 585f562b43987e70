//! The group-commit writer: one thread takes whatever appends wait in its queue, writes them in
//! one transaction, and acknowledges them all after the commit. A failed commit keeps their
//! events in the spool, retried before new work; between commits the thread merges recent sids
//! into the sid index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::error::refused;
use super::project::apply;
use super::sid_index::{MERGE_AT, MERGE_WHEN_IDLE, Merge, RecentSids};
use super::spool::{Source, Spool};
use super::wal::reset_wal_if_wanted;
use super::{Counters, Parts, SqliteOptions, write_transaction};
use crate::fallback::End;
use crate::queue::{Append, QUEUE_BOUND, append_and_wait};
use crate::{Batch, EventLog, Refusal, StoreError, WriterStats};

/// Appends taken into one transaction at most.
const MAX_BATCH: usize = 1024;

/// The event log of a served database: appends queue for the writer thread and wait for the
/// commit of the transaction they land in.
pub(super) struct GroupCommit {
    queue: flume::Sender<Append>,
    counters: Arc<Counters>,
    recent_sids: Arc<RecentSids>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn`, first writing back a spool file an earlier run left.
    pub(super) fn start(
        conn: Connection,
        path: &str,
        options: SqliteOptions,
        parts: &Parts,
    ) -> Result<Self, StoreError> {
        let (queue, rx) = flume::bounded::<Append>(QUEUE_BOUND);
        let counters = parts.counters.clone();
        let recent_sids = parts.recent_sids.clone();
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
        let (thread_counters, writer_sids) = (counters.clone(), recent_sids.clone());
        std::thread::Builder::new()
            .name("dialtone-sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &thread_counters, &writer_sids, spool))
            .map_err(|e| StoreError::Invalid(format!("cannot start the database writer: {e}")))?;
        Ok(Self {
            queue,
            counters,
            recent_sids,
        })
    }
}

#[async_trait::async_trait]
impl EventLog for GroupCommit {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        append_and_wait(&self.queue, batch).await
    }

    fn stats(&self) -> WriterStats {
        self.counters.stats(&self.recent_sids)
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
            // Writing the spool back: new work joins a chunk, nobody waits for more.
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
        if !spool.within_one_chunk() && !work.is_empty() {
            // More than a chunk is kept: new appends go behind it (written ahead of older kept
            // batches, a call's callback could reach the log before the call itself), and their
            // callers hear so now rather than wait for the whole write-back.
            behind_the_spool(&mut spool, work.drain(..), counters);
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
                    let failed = StoreError::from(e);
                    for done in waiting {
                        let _ = done.send(Err(failed.clone()));
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

/// Keeps `appends` at the back of the spool and tells their callers they are not written yet.
fn behind_the_spool(spool: &mut Spool, appends: impl Iterator<Item = Append>, counters: &Counters) {
    let waiting = StoreError::Unavailable(
        "the call log is writing back what it kept during an outage".into(),
    );
    for a in appends {
        if let Err(e) = spool.push(a.batch, std::time::Instant::now()) {
            tracing::error!(error = %e, "cannot spill the spool to disk; it stays in memory");
        }
        let _ = a.done.send(Err(waiting.clone()));
    }
    counters.spooled.store(spool.events(), Ordering::Relaxed);
    counters
        .spilled_bytes
        .store(spool.spilled_bytes(), Ordering::Relaxed);
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
pub(super) fn in_one_transaction<'a>(
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

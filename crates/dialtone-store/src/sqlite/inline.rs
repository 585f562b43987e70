//! Replay's event log: appends run on the caller's thread and are acknowledged at once, and
//! every `INLINE_BATCH` of them is committed in one transaction. Deterministic and fast, and not
//! durable until [`EventLog::flush`] (which every read through `Layered` calls first): a
//! simulation has no crash to survive.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::sid_index::{MERGE_AT, Merge, RecentSids};
use super::writer::in_one_transaction;
use super::{Counters, Parts};
use crate::{Batch, EventLog, StoreError, WriterStats};

/// Acknowledged appends committed at once.
const INLINE_BATCH: usize = 4096;

pub(super) struct InlineLog {
    writer: Mutex<InlineWriter>,
    counters: Arc<Counters>,
    recent_sids: Arc<RecentSids>,
}

struct InlineWriter {
    conn: Connection,
    pending: Vec<Batch>,
}

impl InlineLog {
    pub(super) fn new(conn: Connection, parts: &Parts) -> Self {
        Self {
            writer: Mutex::new(InlineWriter {
                conn,
                pending: Vec::new(),
            }),
            counters: parts.counters.clone(),
            recent_sids: parts.recent_sids.clone(),
        }
    }
}

#[async_trait::async_trait]
impl EventLog for InlineLog {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        let full = {
            let mut w = self.writer.lock().map_err(|_| StoreError::WriterGone)?;
            w.pending.push(batch);
            w.pending.len() >= INLINE_BATCH
        };
        if full { self.flush().await } else { Ok(()) }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let mut w = self.writer.lock().map_err(|_| StoreError::WriterGone)?;
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

    fn stats(&self) -> WriterStats {
        self.counters.stats(&self.recent_sids)
    }
}

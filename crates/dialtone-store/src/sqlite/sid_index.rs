//! Finding a call by its carrier sid. Sids are random, so a B-tree keyed on them puts every new
//! call on a random page: recent sids are kept in memory and merged into `call_sids` in sorted
//! chunks between appends (see ARCHITECTURE.md, "Storage").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::write_transaction;

/// Sid -> `calls.id` for calls not yet merged into `call_sids`. Only the writer changes it, and
/// only after a commit, so a reader that misses here finds the call in `call_sids` (a merge
/// commits before its sids leave this map).
pub(super) type RecentSids = RwLock<HashMap<Arc<str>, i64>>;

/// Sids held in memory before a merge into `call_sids` starts, and sids per merge transaction.
/// A merge of N sorted sids touches each index page at most once, where N single inserts touch
/// about one page each; the gain shrinks as the index outgrows N (see ARCHITECTURE.md).
pub(super) const MERGE_AT: usize = 65_536;
/// A merge transaction takes up to `MERGE_CHUNK` sids, but stops at `MERGE_CHUNK_UNDER_LOAD` once
/// appends are waiting: once the index is much larger than the page cache each sid costs a page
/// read and a page write, and a full chunk held appends up for 30 to 190 ms (fixed-rate p99 at
/// 2,000 calls/s went from 3 to 33 ms).
const MERGE_CHUNK: usize = 1024;
const MERGE_CHUNK_UNDER_LOAD: usize = 64;
/// A writer with nothing to do for this long merges whatever sids it holds.
pub(super) const MERGE_WHEN_IDLE: Duration = Duration::from_secs(1);

/// The sids of calls newer than the last completed merge, read back at startup.
pub(super) fn unmerged_sids(conn: &Connection) -> Result<HashMap<Arc<str>, i64>, rusqlite::Error> {
    let through: i64 = conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'call_sids_merged_through'",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare("SELECT sid, id FROM calls WHERE id > ?1")?;
    let rows = stmt.query_map([through], |r| {
        Ok((Arc::from(r.get::<_, String>(0)?), r.get::<_, i64>(1)?))
    })?;
    rows.collect()
}

/// Finds a call's id by sid: calls written in this transaction, then the recent sids in memory,
/// then the merged index.
pub(super) fn find_call(
    conn: &Connection,
    recent: &RecentSids,
    this_transaction: &HashMap<Arc<str>, i64>,
    sid: &str,
) -> Result<Option<i64>, rusqlite::Error> {
    if let Some(id) = this_transaction.get(sid) {
        return Ok(Some(*id));
    }
    if let Some(id) = recent.read().ok().and_then(|m| m.get(sid).copied()) {
        return Ok(Some(id));
    }
    conn.prepare_cached("SELECT call_id FROM call_sids WHERE sid = ?1")?
        .query_row([sid], |r| r.get(0))
        .optional()
}

/// Sids and their call ids, in sid order.
type SortedSids = Vec<(Arc<str>, i64)>;

/// A merge of the recent sids into `call_sids`, in sorted order, a chunk per transaction so
/// appends are never held up for long.
#[derive(Default)]
pub(super) struct Merge {
    pub(super) pending: VecDeque<(Arc<str>, i64)>,
    /// The ids being merged, in order: the watermark advances over them.
    ids: Vec<i64>,
    /// A merge being prepared: the recent sids, sorted on a thread of their own while the writer
    /// goes on appending (on the writer, sorting 65,536 sids held appends up for 11 to 27 ms).
    pub(super) sorting: Option<std::sync::mpsc::Receiver<SortedSids>>,
}

impl Merge {
    fn snapshot(recent: &RecentSids) -> SortedSids {
        let mut sids: SortedSids = match recent.read() {
            Ok(map) => map.iter().map(|(s, id)| (s.clone(), *id)).collect(),
            Err(_) => Vec::new(),
        };
        sids.sort_unstable();
        sids
    }

    fn begin(&mut self, sids: SortedSids) {
        self.ids = sids.iter().map(|(_, id)| *id).collect();
        self.ids.sort_unstable();
        self.pending = sids.into();
    }

    /// Starts a merge of everything held now (replay's inline writer).
    pub(super) fn start(&mut self, recent: &RecentSids) {
        self.begin(Self::snapshot(recent));
    }

    /// Starts preparing a merge in the background; `poll` picks it up once sorted.
    pub(super) fn start_in_background(&mut self, recent: &Arc<RecentSids>) {
        let (done, sorted) = std::sync::mpsc::channel();
        let held = recent.clone();
        let spawned = std::thread::Builder::new()
            .name("dialtone-sqlite-sort".into())
            .spawn(move || {
                let _ = done.send(Self::snapshot(&held));
            });
        match spawned {
            Ok(_) => self.sorting = Some(sorted),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to sort sids; sorting on the writer");
                self.start(recent);
            }
        }
    }

    /// Takes up a merge prepared in the background, if it is ready.
    pub(super) fn poll(&mut self) {
        if let Some(sorted) = &self.sorting {
            match sorted.try_recv() {
                Ok(sids) => {
                    self.sorting = None;
                    self.begin(sids);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.sorting = None,
            }
        }
    }

    pub(super) fn in_progress(&self) -> bool {
        self.sorting.is_some() || !self.pending.is_empty()
    }

    /// The new watermark once this merge is in `call_sids`: past the old one over an unbroken
    /// run of ids that are merged — ours, or another process's it merged itself. Another
    /// process on the same database (`reconcile` while serving) has calls this one never held;
    /// stopping at the first of them unmerged keeps them read back at the next start.
    fn watermark(&self, tx: &rusqlite::Transaction<'_>) -> Result<i64, rusqlite::Error> {
        let mut w: i64 = tx.query_row(
            "SELECT value FROM store_meta WHERE key = 'call_sids_merged_through'",
            [],
            |r| r.get(0),
        )?;
        let mut merged_elsewhere = tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM calls c JOIN call_sids s ON s.sid = c.sid WHERE c.id = ?1)",
        )?;
        let start = w;
        for &id in self.ids.iter().filter(|&&id| id > start) {
            while w + 1 < id {
                if !merged_elsewhere.query_row([w + 1], |r| r.get::<_, bool>(0))? {
                    return Ok(w);
                }
                w += 1;
            }
            w = id;
        }
        Ok(w)
    }

    /// Merges the next chunk in one transaction: up to `MERGE_CHUNK` sids, fewer once `waiting`
    /// says appends are queued. The commit is not fsynced: what it wrote is made durable by the
    /// next append's commit (the WAL is fsynced as a whole), and if the machine loses power
    /// first, the sids are still past the watermark and are read back from `calls` at start.
    pub(super) fn step(
        &mut self,
        conn: &mut Connection,
        recent: &RecentSids,
        waiting: &dyn Fn() -> bool,
    ) -> Result<(), rusqlite::Error> {
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let merged = self.merge_chunk(conn, recent, waiting);
        conn.pragma_update(None, "synchronous", synchronous)?;
        merged
    }

    fn merge_chunk(
        &mut self,
        conn: &mut Connection,
        recent: &RecentSids,
        waiting: &dyn Fn() -> bool,
    ) -> Result<(), rusqlite::Error> {
        let tx = write_transaction(conn)?;
        let mut n = 0;
        {
            let mut insert = tx
                .prepare_cached("INSERT OR IGNORE INTO call_sids (sid, call_id) VALUES (?1, ?2)")?;
            for (sid, id) in &self.pending {
                if n == MERGE_CHUNK || (n >= MERGE_CHUNK_UNDER_LOAD && n % 16 == 0 && waiting()) {
                    break;
                }
                insert.execute(params![sid, id])?;
                n += 1;
            }
            let last = n == self.pending.len();
            if last {
                let through = self.watermark(&tx)?;
                tx.execute(
                    "UPDATE store_meta SET value = ?1 WHERE key = 'call_sids_merged_through'",
                    [through],
                )?;
            }
        }
        tx.commit()?;
        if let Ok(mut map) = recent.write() {
            for (sid, _) in self.pending.drain(..n) {
                map.remove(&sid);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::sqlite::{SqliteOptions, connect, migrate};

    fn merged(conn: &Connection, sid: &str) -> Option<i64> {
        conn.query_row("SELECT call_id FROM call_sids WHERE sid = ?1", [sid], |r| {
            r.get(0)
        })
        .optional()
        .expect("query")
    }

    #[test]
    fn under_load_a_merge_takes_small_steps_and_still_merges_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("merge.db");
        let mut conn =
            connect(path.to_str().expect("utf-8"), SqliteOptions::default()).expect("connect");
        migrate(&mut conn).expect("migrate");
        let recent: RecentSids = RwLock::new(
            (1..=200)
                .map(|id| (Arc::from(format!("CA{id:032x}")), id))
                .collect(),
        );
        let mut merge = Merge::default();
        merge.start(&recent);

        // Appends are waiting all along: 64 sids per transaction, not 1,024.
        let mut steps = 0;
        while !merge.pending.is_empty() {
            merge.step(&mut conn, &recent, &|| true).expect("step");
            steps += 1;
            let held = recent.read().expect("lock").len();
            assert_eq!(held, 200 - (64 * steps).min(200), "after step {steps}");
        }
        assert_eq!(steps, 4);
        assert_eq!(merged(&conn, &format!("CA{:032x}", 200)), Some(200));
        let through: i64 = conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'call_sids_merged_through'",
                [],
                |r| r.get(0),
            )
            .expect("watermark");
        assert_eq!(through, 200);
        // The connection is back to fsyncing every commit.
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("pragma");
        assert_eq!(synchronous, 2, "FULL");

        // Idle, a merge takes up to 1,024 per transaction.
        let recent: RecentSids = RwLock::new(
            (201..=1300)
                .map(|id| (Arc::from(format!("CA{id:032x}")), id))
                .collect(),
        );
        merge.start(&recent);
        merge.step(&mut conn, &recent, &|| false).expect("step");
        assert_eq!(recent.read().expect("lock").len(), 1100 - 1024);
        while merge.in_progress() {
            merge.step(&mut conn, &recent, &|| false).expect("step");
        }

        // The writer has the sids sorted on another thread, and keeps appending meanwhile: sids
        // it adds after the snapshot wait for the next merge.
        let recent: Arc<RecentSids> = Arc::new(RwLock::new(
            (1301..=1400)
                .map(|id| (Arc::from(format!("CA{id:032x}")), id))
                .collect(),
        ));
        merge.start_in_background(&recent);
        assert!(merge.in_progress());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while merge.pending.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sort never came back"
            );
            std::thread::sleep(Duration::from_millis(1));
            merge.poll();
        }
        if let Ok(mut map) = recent.write() {
            map.insert(Arc::from("CA-added-meanwhile"), 1401);
        }
        while merge.in_progress() {
            merge.step(&mut conn, &recent, &|| false).expect("step");
        }
        let held: Vec<Arc<str>> = recent.read().expect("lock").keys().cloned().collect();
        assert_eq!(held, [Arc::<str>::from("CA-added-meanwhile")]);
        assert_eq!(merged(&conn, &format!("CA{:032x}", 1400)), Some(1400));
    }
}

//! What the writer could not commit, kept to be written when the database is back.
//!
//! A storage outage must not stop calls (they get backup routing) nor lose their events, nor
//! take the process down: at 50 calls a second a 30-minute outage is 90,000 calls. The spool
//! keeps the newest batches in memory up to a bound and spills the oldest to an append-only
//! file beside the database (`<database>-spool`, one JSON batch a line, fsynced), and gives them
//! back oldest first, a chunk at a time, so a retry never rewrites the whole outage in one
//! transaction. The offset read back up to is committed in the same transaction as the chunk
//! (`store_meta.spool_offset`): after a crash the rest of the file is written at the next start,
//! and nothing twice.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dialtone_core::event::Event;
use serde::{Deserialize, Serialize};

use crate::{Batch, SessionWrite};

/// Batches retried in one transaction at most.
pub(super) const RETRY_CHUNK: usize = 256;

/// A batch as spilled: what is written, without the request it came from.
#[derive(Serialize, Deserialize)]
struct Spilled {
    events: Vec<Event>,
    #[serde(default)]
    turns: Vec<(String, u64)>,
    #[serde(default)]
    sessions: Vec<SessionWrite>,
    #[serde(default)]
    signed_by: Option<String>,
}

/// Where a retried chunk came from, to be told whether it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Memory,
    /// From the spill file, ending at this offset.
    File {
        end: u64,
    },
}

pub(super) struct Spool {
    memory: VecDeque<(Instant, Batch)>,
    /// When each batch of the chunk taken from memory was first kept: a chunk that fails again
    /// goes back as old as it was (else retries would keep the oldest forever young, and never
    /// spilled).
    taken_at: Vec<Instant>,
    memory_bytes: usize,
    memory_limit: usize,
    /// A failed batch stays in memory at least this long before it may be spilled: long enough
    /// for the request that appended it to replace it (`Fallback`), which happens within its
    /// durability budget.
    spill_after: Duration,
    path: PathBuf,
    file: Option<File>,
    /// Bytes of the file written back to the database (committed with them).
    read_offset: u64,
    file_len: u64,
    events: u64,
}

/// A rough size of a batch in memory: enough to bound the spool, not to account for it.
fn estimate(b: &Batch) -> usize {
    256 + b.events.len() * 768 + b.sessions.len() * 512 + b.turns.len() * 64
}

impl Spool {
    /// The spool of the database at `database`; `read_offset` is what the database says was
    /// already written back from an earlier spill file.
    pub(super) fn new(
        database: &str,
        memory_limit: usize,
        spill_after: Duration,
        read_offset: u64,
    ) -> Self {
        let path = PathBuf::from(format!("{database}-spool"));
        let file_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let read_offset = read_offset.min(file_len);
        Self {
            memory: VecDeque::new(),
            taken_at: Vec::new(),
            memory_bytes: 0,
            memory_limit,
            spill_after,
            path,
            file: None,
            read_offset,
            file_len,
            events: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.read_offset >= self.file_len
    }

    /// Whether the next chunk takes everything kept (or nothing is kept): new appends may then
    /// join it, after it, in order.
    pub(super) fn within_one_chunk(&self) -> bool {
        self.read_offset >= self.file_len && self.memory.len() <= RETRY_CHUNK
    }

    /// Events waiting (those read back from a file left by an earlier process not counted until
    /// they are read).
    pub(super) fn events(&self) -> u64 {
        self.events
    }

    /// Bytes in the spill file not yet written back.
    pub(super) fn spilled_bytes(&self) -> u64 {
        self.file_len - self.read_offset
    }

    /// Keeps `batch` (the newest, failed at `now`) to retry; spills the oldest batches past the
    /// memory bound.
    pub(super) fn push(&mut self, batch: Batch, now: Instant) -> std::io::Result<()> {
        self.events += batch.events.len() as u64;
        self.memory_bytes += estimate(&batch);
        self.memory.push_back((now, batch));
        self.spill_excess(now)
    }

    /// A chunk that failed again goes back in front, in its order.
    pub(super) fn put_back(&mut self, chunk: Vec<Batch>, source: Source) {
        if source == Source::Memory {
            let taken_at = std::mem::take(&mut self.taken_at);
            for (i, b) in chunk.into_iter().enumerate().rev() {
                self.memory_bytes += estimate(&b);
                self.events += b.events.len() as u64;
                let at = taken_at.get(i).copied().unwrap_or_else(Instant::now);
                self.memory.push_front((at, b));
            }
        } else {
            // Still in the file: it is read again from the same offset.
            self.events += chunk.iter().map(|b| b.events.len() as u64).sum::<u64>();
        }
    }

    /// The oldest batches, at most [`RETRY_CHUNK`]: from the spill file first, then memory.
    pub(super) fn take_chunk(&mut self) -> std::io::Result<(Vec<Batch>, Source)> {
        if self.read_offset < self.file_len {
            let mut reader = BufReader::new(File::open(&self.path)?);
            reader.seek(SeekFrom::Start(self.read_offset))?;
            let mut chunk = Vec::new();
            let mut end = self.read_offset;
            let mut line = String::new();
            while chunk.len() < RETRY_CHUNK {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break; // the end, or a line cut short by a crash mid-write
                }
                end += n as u64;
                match serde_json::from_str::<Spilled>(&line) {
                    Ok(s) => chunk.push(Batch {
                        events: s.events,
                        turns: s.turns,
                        sessions: s.sessions,
                        signed_by: s.signed_by,
                        fallback: None,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, offset = end - n as u64, "an unreadable line in the spool file is skipped")
                    }
                }
            }
            if end == self.read_offset {
                // Only a torn last line: nothing more can be read.
                self.file_len = self.read_offset;
            }
            self.events = self
                .events
                .saturating_sub(chunk.iter().map(|b| b.events.len() as u64).sum());
            return Ok((chunk, Source::File { end }));
        }
        let mut chunk = Vec::new();
        self.taken_at.clear();
        while chunk.len() < RETRY_CHUNK {
            let Some((at, b)) = self.memory.pop_front() else {
                break;
            };
            self.taken_at.push(at);
            self.memory_bytes -= estimate(&b);
            self.events = self.events.saturating_sub(b.events.len() as u64);
            chunk.push(b);
        }
        Ok((chunk, Source::Memory))
    }

    /// The chunk from `source` is committed (with `offset` when it came from the file). When
    /// the file is all written back, it is emptied.
    pub(super) fn committed(&mut self, source: Source) -> std::io::Result<()> {
        if let Source::File { end } = source {
            self.read_offset = end;
            if self.read_offset >= self.file_len {
                self.file = None;
                std::fs::remove_file(&self.path).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                self.read_offset = 0;
                self.file_len = 0;
            }
        }
        Ok(())
    }

    /// The offset to commit with a chunk from `source` (what the database will have written).
    pub(super) fn offset_after(&self, source: Source) -> u64 {
        match source {
            Source::File { end } if end >= self.file_len => 0,
            Source::File { end } => end,
            Source::Memory => self.read_offset,
        }
    }

    /// Moves the oldest batches to the file while memory is over its bound (only batches old
    /// enough that their requests have stopped waiting on them), in one fsynced append. If the
    /// file cannot be written (the disk the database failed on is often the one it is on), they
    /// stay in memory.
    fn spill_excess(&mut self, now: Instant) -> std::io::Result<()> {
        if self.memory_bytes <= self.memory_limit {
            return Ok(());
        }
        let mut resolved = Vec::new();
        let mut bytes = self.memory_bytes;
        while bytes > self.memory_limit / 2 {
            let Some((at, _)) = self.memory.front() else {
                break;
            };
            if now.saturating_duration_since(*at) < self.spill_after {
                break;
            }
            let Some((at, mut b)) = self.memory.pop_front() else {
                break;
            };
            bytes -= estimate(&b);
            // What the request answered instead, if it did; from now on it can only append a
            // correction after it.
            if let Some(replaced) = b.fallback.take().and_then(|f| f.spill()) {
                b.events = replaced;
            }
            resolved.push((at, b));
        }
        if resolved.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (_, b) in &resolved {
            let line = serde_json::to_string(&SpilledRef {
                events: &b.events,
                turns: &b.turns,
                sessions: &b.sessions,
                signed_by: &b.signed_by,
            })
            .map_err(std::io::Error::other)?;
            text.push_str(&line);
            text.push('\n');
        }
        let written = self.append(&text);
        if let Err(e) = written {
            for item in resolved.into_iter().rev() {
                self.memory.push_front(item);
            }
            return Err(e);
        }
        self.memory_bytes = bytes;
        self.file_len += text.len() as u64;
        let events: usize = resolved.iter().map(|(_, b)| b.events.len()).sum();
        tracing::warn!(
            events,
            file = %self.path.display(),
            "call log spool over its memory bound: oldest events spilled to disk"
        );
        Ok(())
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }
}

#[derive(Serialize)]
struct SpilledRef<'a> {
    events: &'a [Event],
    turns: &'a [(String, u64)],
    sessions: &'a [SessionWrite],
    signed_by: &'a Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u64) -> Batch {
        Batch {
            turns: vec![(format!("k{n}"), n)],
            ..Default::default()
        }
    }

    #[test]
    fn a_chunk_that_fails_again_keeps_its_age_and_is_spilled_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let limit = 2 * estimate(&batch(0));
        let mut spool = Spool::new(db.to_str().unwrap(), limit, Duration::from_secs(10), 0);
        // Two batches failed half a minute ago and have been retried and failed again since.
        let t0 = Instant::now() - Duration::from_secs(30);
        spool.push(batch(1), t0).unwrap();
        spool.push(batch(2), t0).unwrap();
        assert_eq!(spool.spilled_bytes(), 0, "within the bound");
        for _ in 0..3 {
            let (chunk, source) = spool.take_chunk().unwrap();
            assert_eq!(chunk.len(), 2);
            spool.put_back(chunk, source);
        }
        // A third batch fails now: over the bound, the two oldest — still half a minute old, for
        // all their retries — are spilled.
        spool.push(batch(3), Instant::now()).unwrap();
        assert!(spool.spilled_bytes() > 0);
        // They come back first, from the file, in order; then memory.
        let (from_file, source) = spool.take_chunk().unwrap();
        assert!(matches!(source, Source::File { .. }));
        let turns: Vec<u64> = from_file.iter().map(|b| b.turns[0].1).collect();
        assert_eq!(turns, [1, 2]);
        spool.committed(source).unwrap();
        let (from_memory, source) = spool.take_chunk().unwrap();
        assert_eq!(source, Source::Memory);
        assert_eq!(from_memory[0].turns[0].1, 3);
        spool.committed(source).unwrap();
        assert!(spool.is_empty());
        assert!(!dir.path().join("x.db-spool").exists());
    }
}

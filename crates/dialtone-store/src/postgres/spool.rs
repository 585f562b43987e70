//! What a node kept while the database was unreachable, on its own disk.
//!
//! A node that loses PostgreSQL keeps routing (backup routing where the call log cannot say what
//! happened) and keeps the events its commits could not write, in order, to write them back when
//! the database returns. In memory alone they would die with the process; so, once the request
//! that appended a batch has settled what it answered (a moment after it was told of the
//! failure, see [`SPILL_AFTER`]), the batch is also appended to a spool file in the node's spool
//! directory (`dialtone-spool-<id>.jsonl`, one JSON line each, numbered, fsynced).
//!
//! The commit that writes spooled batches back records the last line's number in
//! `dialtone_spools` in the same transaction, so a node that restarts after a crash writes back
//! the rest of its file, and nothing twice, whatever became of the commit it was in. A file is
//! held under an exclusive lock by the process writing it back: nodes may share a directory, and a
//! node that starts adopts every file no live process holds. A file all written back is removed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dialtone_core::event::Event;
use serde::{Deserialize, Serialize};

use crate::{Batch, SessionWrite};

/// How long after its caller was told a kept batch waits before it is spooled: the request
/// replaces its events with what it answered instead at once (see [`crate::Fallback`]); this is
/// ample for that, and the most a crash can lose of what was kept.
pub(super) const SPILL_AFTER: Duration = Duration::from_secs(1);

const PREFIX: &str = "dialtone-spool-";
const SUFFIX: &str = ".jsonl";

/// Which spool file and line a kept batch is.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    pub(super) spool: Arc<str>,
    pub(super) line: i64,
}

/// One line of a spool file.
#[derive(Deserialize)]
struct Line {
    line: i64,
    events: Vec<Event>,
    #[serde(default)]
    turns: Vec<(String, u64)>,
    #[serde(default)]
    sessions: Vec<SessionWrite>,
    #[serde(default)]
    signed_by: Option<String>,
}

#[derive(Serialize)]
struct LineRef<'a> {
    line: i64,
    events: &'a [Event],
    turns: &'a [(String, u64)],
    sessions: &'a [SessionWrite],
    signed_by: &'a Option<String>,
}

/// A spool file this process holds (locked) with lines not yet written back.
struct Held {
    path: PathBuf,
    /// Open for the lock it holds (and, for the file being written, to append).
    file: File,
    waiting: usize,
    bytes: u64,
}

pub(super) struct Spool {
    dir: PathBuf,
    /// The file new lines go to, and the next line's number in it.
    active: Option<(Arc<str>, i64)>,
    held: HashMap<Arc<str>, Held>,
}

impl Spool {
    /// The spool in `dir` (created if missing), with the batches of every file there that no
    /// live process holds, oldest file first, in order.
    pub(super) fn adopt(dir: &Path) -> std::io::Result<(Self, Vec<(Mark, Batch)>)> {
        std::fs::create_dir_all(dir)?;
        let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX));
            if named {
                let modified = path
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((modified, path));
            }
        }
        files.sort();
        let mut spool = Self {
            dir: dir.to_owned(),
            active: None,
            held: HashMap::new(),
        };
        let mut kept = Vec::new();
        for (_, path) in files {
            match spool.adopt_file(&path) {
                Ok(batches) => kept.extend(batches),
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "cannot read a spool file; left for later")
                }
            }
        }
        Ok((spool, kept))
    }

    /// The lines of the file at `path`, unless another process holds it.
    fn adopt_file(&mut self, path: &Path) -> std::io::Result<Vec<(Mark, Batch)>> {
        let file = OpenOptions::new().read(true).append(true).open(path)?;
        if file.try_lock().is_err() {
            return Ok(Vec::new()); // another node's, being written now
        }
        let id: Arc<str> = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .unwrap_or_default()
            .into();
        let mut batches = Vec::new();
        let mut bytes = 0;
        let mut reader = BufReader::new(&file);
        let mut text = String::new();
        loop {
            text.clear();
            let n = reader.read_line(&mut text)?;
            if n == 0 || !text.ends_with('\n') {
                break; // the end, or a line cut short by a crash mid-write
            }
            bytes += n as u64;
            match serde_json::from_str::<Line>(&text) {
                Ok(l) => batches.push((
                    Mark {
                        spool: id.clone(),
                        line: l.line,
                    },
                    Batch {
                        events: l.events,
                        turns: l.turns,
                        sessions: l.sessions,
                        signed_by: l.signed_by,
                        fallback: None,
                    },
                )),
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "an unreadable line in a spool file is skipped")
                }
            }
        }
        if batches.is_empty() {
            std::fs::remove_file(path)?;
            return Ok(batches);
        }
        tracing::warn!(
            file = %path.display(),
            batches = batches.len(),
            "a spool file left by an earlier run: its events are written back first"
        );
        self.held.insert(
            id,
            Held {
                path: path.to_owned(),
                file,
                waiting: batches.len(),
                bytes,
            },
        );
        Ok(batches)
    }

    /// Appends `batches` to the file being written (a new one if none), fsynced: their marks, in
    /// order. Nothing is marked if the write fails.
    pub(super) fn append(&mut self, batches: &[&Batch]) -> std::io::Result<Vec<Mark>> {
        let (id, first) = match &self.active {
            Some((id, next)) => (id.clone(), *next),
            None => (self.create()?, 1),
        };
        let mut text = String::new();
        let mut marks = Vec::with_capacity(batches.len());
        for (i, b) in batches.iter().enumerate() {
            let line = first + i as i64;
            let json = serde_json::to_string(&LineRef {
                line,
                events: &b.events,
                turns: &b.turns,
                sessions: &b.sessions,
                signed_by: &b.signed_by,
            })
            .map_err(std::io::Error::other)?;
            text.push_str(&json);
            text.push('\n');
            marks.push(Mark {
                spool: id.clone(),
                line,
            });
        }
        let Some(held) = self.held.get_mut(&id) else {
            return Err(std::io::Error::other("the spool file is no longer held"));
        };
        held.file.write_all(text.as_bytes())?;
        held.file.sync_data()?;
        held.waiting += marks.len();
        held.bytes += text.len() as u64;
        self.active = Some((id, first + marks.len() as i64));
        Ok(marks)
    }

    /// A new file, locked, under a fresh random id (a file's line numbers start at 1, and the
    /// database remembers how far each id was written back).
    fn create(&mut self) -> std::io::Result<Arc<str>> {
        loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
            let id: Arc<str> = hex::encode(bytes).into();
            let path = self.dir.join(format!("{PREFIX}{id}{SUFFIX}"));
            let file = match OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .open(&path)
            {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                other => other?,
            };
            if file.try_lock().is_err() {
                continue; // a node starting in the same directory took it first
            }
            self.held.insert(
                id.clone(),
                Held {
                    path,
                    file,
                    waiting: 0,
                    bytes: 0,
                },
            );
            return Ok(id);
        }
    }

    /// These spooled batches are written back (or refused for good): a file with none left
    /// waiting is removed.
    pub(super) fn written<'a>(&mut self, marks: impl Iterator<Item = &'a Mark>) {
        for m in marks {
            let Some(held) = self.held.get_mut(&m.spool) else {
                continue;
            };
            held.waiting = held.waiting.saturating_sub(1);
            if held.waiting > 0 {
                continue;
            }
            if let Some(held) = self.held.remove(&m.spool) {
                if let Err(e) = std::fs::remove_file(&held.path) {
                    tracing::error!(error = %e, file = %held.path.display(), "cannot remove a written-back spool file");
                }
                if self.active.as_ref().is_some_and(|(id, _)| *id == m.spool) {
                    self.active = None;
                }
            }
        }
    }

    /// Bytes in spool files not yet all written back.
    pub(super) fn bytes(&self) -> u64 {
        self.held.values().map(|h| h.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(key: &str) -> Batch {
        Batch {
            turns: vec![(key.to_owned(), 1)],
            ..Default::default()
        }
    }

    #[test]
    fn a_file_is_adopted_by_one_process_and_removed_once_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, none) = Spool::adopt(dir.path()).unwrap();
        assert!(none.is_empty());
        let marks = first.append(&[&batch("a"), &batch("b")]).unwrap();
        let more = first.append(&[&batch("c")]).unwrap();
        assert_eq!(
            marks
                .iter()
                .chain(&more)
                .map(|m| m.line)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(first.bytes() > 0);

        // Held by the first: a second process in the same directory leaves it alone.
        let (_, seen) = Spool::adopt(dir.path()).unwrap();
        assert!(seen.is_empty(), "a held file is not adopted");

        // The first stops (its lock goes with it): the next adopts every line, in order.
        drop(first);
        let (mut next, kept) = Spool::adopt(dir.path()).unwrap();
        let keys: Vec<&str> = kept.iter().map(|(_, b)| b.turns[0].0.as_str()).collect();
        assert_eq!(keys, vec!["a", "b", "c"]);
        next.written(kept.iter().take(2).map(|(m, _)| m));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        next.written(kept.iter().skip(2).map(|(m, _)| m));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "removed once all is written back"
        );
        assert_eq!(next.bytes(), 0);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::adopt(dir.path()).unwrap();
        spool.append(&[&batch("whole")]).unwrap();
        let path = spool.held.values().next().unwrap().path.clone();
        drop(spool);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"line":2,"events":[],"tur"#).unwrap();
        drop(f);
        let (_, kept) = Spool::adopt(dir.path()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1.turns[0].0, "whole");
    }
}

//! Copying the WAL back into the database, and starting it over while appends never pause.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::Connection;

use super::Counters;

/// How often the WAL is copied back into the database, and the WAL size (in 4 KiB frames) past
/// which it should start over.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
const WAL_RESET_FRAMES: i64 = 16_384;
/// Past this size the writer's resets are not working (a reader keeps an old snapshot open):
/// a RESTART checkpoint waits for readers and holds the writer back until the WAL starts over.
const WAL_RESTART_FRAMES: i64 = 4 * WAL_RESET_FRAMES;

/// Passive checkpoints copy the WAL back without blocking the writer or readers. But while
/// appends never stop, the WAL never starts over by itself: SQLite starts it over only when a
/// write begins with every frame already copied back. So once it has grown past its bound, the
/// checkpointer keeps copying with short pauses (leaving little behind) and asks the writer to
/// copy the rest itself between commits (`wal_reset_wanted`), after which its next transaction
/// starts the WAL over. A RESTART checkpoint, which blocks the writer, is the last resort: done
/// every time the WAL passed 64 MiB, it held appends up for as long as 470 ms.
pub(super) fn checkpoint_loop(
    conn: &Connection,
    stop: &std::sync::mpsc::Receiver<()>,
    counters: &Counters,
) {
    let checkpoint = |mode: &str| -> Result<(i64, i64), rusqlite::Error> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
    };
    let mut pause = CHECKPOINT_EVERY;
    loop {
        let last = !matches!(
            stop.recv_timeout(pause),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        pause = CHECKPOINT_EVERY;
        match checkpoint("PASSIVE") {
            Ok((frames, _)) if frames > WAL_RESTART_FRAMES => {
                counters.wal_restarts.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = checkpoint("RESTART") {
                    tracing::warn!(error = %e, "WAL restart checkpoint failed");
                }
            }
            Ok((frames, _)) if frames > WAL_RESET_FRAMES => {
                counters.wal_reset_wanted.store(true, Ordering::Relaxed);
                pause = Duration::from_millis(10);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
        if last {
            return;
        }
    }
}

/// The writer's part in starting the WAL over: copies back the frames the checkpointer has not,
/// so that the next transaction starts the WAL over. Asked again if another checkpoint was
/// running or something was left.
pub(super) fn reset_wal_if_wanted(conn: &Connection, counters: &Counters) {
    if !counters.wal_reset_wanted.swap(false, Ordering::Relaxed) {
        return;
    }
    let copied = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match copied {
        Ok((0, frames, done)) if done == frames => {
            counters.wal_resets.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => counters.wal_reset_wanted.store(true, Ordering::Relaxed),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint by the writer failed"),
    }
}

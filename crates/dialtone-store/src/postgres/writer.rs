//! The group-commit writer on PostgreSQL: one task takes whatever appends wait in its queue and
//! writes them in one transaction, its statements sent pipelined (all at once, in order), then
//! acknowledges them all after the commit. A failed commit keeps its batches, in order, at the
//! front of the queue, and in the node's spool file once their requests have answered
//! ([`super::spool`]); a commit whose answer was lost is looked up by its transaction id rather
//! than written twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool, Transaction};

use super::plan::{Op, op, p, plan, refresh_outcomes, run};
use super::spool::{Mark, SPILL_AFTER, Spool};
use super::{Counters, error};
use crate::fallback::End;
use crate::queue::{Append, QUEUE_BOUND, append_and_wait};
use crate::{Batch, EventLog, StoreError, WriterStats};

/// Appends taken into one transaction at most, and retried batches added to one.
const MAX_BATCH: usize = 1024;

pub(super) struct GroupCommit {
    queue: flume::Sender<Append>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts the writer task, with a pool of its own (one connection), and the spool (if the
    /// node has one) with what earlier runs left in it, written back first.
    pub(super) fn start(
        pool: Pool,
        counters: Arc<Counters>,
        spool: Option<(Spool, Vec<(Mark, Batch)>)>,
    ) -> Self {
        let (queue, rx) = flume::bounded::<Append>(QUEUE_BOUND);
        let (spool, left) = match spool {
            Some((spool, left)) => (Some(spool), left),
            None => (None, Vec::new()),
        };
        let kept = left
            .into_iter()
            .map(|(mark, batch)| {
                Pending::Told(Kept {
                    batch,
                    told_at: Instant::now(),
                    mark: Some(mark),
                })
            })
            .collect();
        tokio::spawn(write_loop(pool, rx, counters.clone(), kept, spool));
        Self { queue, counters }
    }
}

#[async_trait::async_trait]
impl EventLog for GroupCommit {
    async fn append(&self, batch: Batch) -> Result<(), StoreError> {
        append_and_wait(&self.queue, batch).await
    }

    fn stats(&self) -> WriterStats {
        self.counters.stats()
    }
}

/// An append in the writer's queue: its caller still waiting, or already told that its commit
/// failed (the batch is kept and written later).
enum Pending {
    Waiting(Append),
    Told(Kept),
}

/// A batch whose caller was told it is not written yet.
struct Kept {
    batch: Batch,
    told_at: Instant,
    /// Where it is in the spool file, once there.
    mark: Option<Mark>,
}

impl Pending {
    fn batch(&self) -> &Batch {
        match self {
            Pending::Waiting(a) => &a.batch,
            Pending::Told(k) => &k.batch,
        }
    }

    fn mark(&self) -> Option<&Mark> {
        match self {
            Pending::Waiting(_) => None,
            Pending::Told(k) => k.mark.as_ref(),
        }
    }
}

/// A commit whose answer was lost (the connection failed during `COMMIT`): it may have been
/// written. Its transaction id, and how many batches at the front of the queue it held.
type Unsure = (i64, usize);

/// Commits the queue front to back. While batches wait after a failed commit, new appends join
/// the back of the queue rather than being written ahead of them: a call's events reach the log
/// in the order they were appended, so a callback is never written before its call.
async fn write_loop(
    pool: Pool,
    rx: flume::Receiver<Append>,
    counters: Arc<Counters>,
    kept: VecDeque<Pending>,
    mut spool: Option<Spool>,
) {
    let mut queue = kept;
    let mut unsure: Vec<Unsure> = Vec::new();
    let mut replan = Replan::default();
    let mut spool_failing = false;
    loop {
        if let Some(spool) = &mut spool {
            to_spool(&mut queue, spool, &mut spool_failing);
            counters
                .spilled_bytes
                .store(spool.bytes(), Ordering::Relaxed);
        }
        if queue.is_empty() {
            match rx.recv_async().await {
                Ok(a) => queue.push_back(Pending::Waiting(a)),
                Err(_) => return,
            }
        }
        while let Ok(a) = rx.try_recv() {
            queue.push_back(Pending::Waiting(a));
        }
        // More than a commit's worth is kept from failed commits: what came since goes behind it
        // and its callers hear so now, rather than wait for the whole write-back.
        if queue
            .iter()
            .filter(|p| matches!(p, Pending::Told(_)))
            .count()
            >= MAX_BATCH
        {
            tell_all(
                &mut queue,
                &StoreError::Unavailable(
                    "the call log is writing back what it kept during an outage".into(),
                ),
            );
        }
        // The batches of a commit that may have been written are all in this one.
        let must = unsure.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let take = queue.len().min(MAX_BATCH).max(must).min(queue.len());
        let head: Vec<Pending> = queue.drain(..take).collect();
        let batches: Vec<&Batch> = head.iter().map(Pending::batch).collect();
        let events: usize = batches.iter().map(|b| b.events.len()).sum();
        let attempt = Attempt {
            unsure: &unsure,
            marks: head.iter().map(Pending::mark).collect(),
        };
        match commit(&pool, &batches, &attempt).await {
            Ok(written) => {
                counters.events.fetch_add(events as u64, Ordering::Relaxed);
                replan.after(events, &pool);
                counters.commits.fetch_add(1, Ordering::Relaxed);
                if written.skipped > 0 {
                    tracing::warn!(
                        batches = written.skipped,
                        "a commit whose answer was lost had been written; not written again"
                    );
                }
                let retried = head.iter().any(|p| matches!(p, Pending::Told(_)));
                unsure.clear();
                if let Some(spool) = &mut spool {
                    spool.written(head.iter().filter_map(Pending::mark));
                }
                for (p, r) in head.into_iter().zip(written.results) {
                    match (p, r) {
                        (Pending::Waiting(a), r) => {
                            let _ = a.done.send(r);
                        }
                        (Pending::Told(_), Err(e)) => {
                            tracing::error!(error = %e, "dropping a kept batch the database refuses");
                        }
                        (Pending::Told(_), Ok(())) => {}
                    }
                }
                if retried && !queue.iter().any(|p| matches!(p, Pending::Told(_))) {
                    tracing::info!("events kept after a failed commit are all written");
                }
            }
            Err(failure) => {
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %failure.error, "call log commit failed; events kept to retry");
                if let Some(xid) = failure.in_doubt {
                    unsure.push((xid, head.len()));
                }
                // Kept, in order, before anyone is told: a caller that hears of the failure has
                // its batch in the queue. Those queued behind hear it too.
                for p in head.into_iter().rev() {
                    queue.push_front(p);
                }
                tell_all(&mut queue, &failure.error);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let kept: usize = queue
            .iter()
            .filter(|p| matches!(p, Pending::Told(_)))
            .map(|p| p.batch().events.len())
            .sum();
        counters.spooled.store(kept as u64, Ordering::Relaxed);
    }
}

/// The writer's statements are prepared once per connection, and after a few runs PostgreSQL
/// keeps one generic plan for each. One made while `calls` was nearly empty reads the whole
/// table to find a call by sid, and is kept until autovacuum analyzes the table — a minute or
/// more on a young database that grows by thousands of calls a second (measured: `calls` read
/// whole 1,346 times in 20 s, throughput falling from 2,675 to 1,504 webhooks/s). So the writer
/// prepares its statements again each time the events it has written double, from 1,024: plans
/// follow the table while it is young, a few dozen times in all. (Planning every run instead,
/// `plan_cache_mode = force_custom_plan`, cost about a tenth of the throughput.)
struct Replan {
    written: usize,
    at: usize,
}

impl Default for Replan {
    fn default() -> Self {
        Self {
            written: 0,
            at: 1024,
        }
    }
}

impl Replan {
    fn after(&mut self, events: usize, pool: &Pool) {
        self.written += events;
        if self.written >= self.at {
            self.at = self.written.saturating_mul(2);
            pool.manager().statement_caches.clear();
        }
    }
}

/// Tells every caller still waiting in `queue` that its batch is kept, not written yet.
fn tell_all(queue: &mut VecDeque<Pending>, error: &StoreError) {
    let now = Instant::now();
    for p in queue.iter_mut() {
        if matches!(p, Pending::Waiting(_)) {
            let placeholder = Pending::Told(Kept {
                batch: Batch::default(),
                told_at: now,
                mark: None,
            });
            let Pending::Waiting(a) = std::mem::replace(p, placeholder) else {
                continue;
            };
            let _ = a.done.send(Err(error.clone()));
            *p = Pending::Told(Kept {
                batch: a.batch,
                told_at: now,
                mark: None,
            });
        }
    }
}

/// Appends to the spool file the kept batches at the front of the queue whose requests have had
/// time to settle what they answered (from then on a request can only append a correction after
/// its batch). Kept in memory as well, to be written back from there; if the file cannot be
/// written they stay in memory only, and it is tried again.
fn to_spool(queue: &mut VecDeque<Pending>, spool: &mut Spool, failing: &mut bool) {
    let now = Instant::now();
    let mut due = Vec::new();
    for (i, p) in queue.iter().enumerate() {
        match p {
            Pending::Told(k) if k.mark.is_some() => {}
            Pending::Told(k) if now.saturating_duration_since(k.told_at) >= SPILL_AFTER => {
                due.push(i)
            }
            _ => break,
        }
    }
    if due.is_empty() {
        return;
    }
    for &i in &due {
        if let Some(Pending::Told(k)) = queue.get_mut(i)
            && let Some(fallback) = k.batch.fallback.take()
            && let Some(replaced) = fallback.spill()
        {
            k.batch.events = replaced;
        }
    }
    let batches: Vec<&Batch> = due
        .iter()
        .filter_map(|&i| queue.get(i).map(Pending::batch))
        .collect();
    match spool.append(&batches) {
        Ok(marks) => {
            for (&i, mark) in due.iter().zip(marks) {
                if let Some(Pending::Told(k)) = queue.get_mut(i) {
                    k.mark = Some(mark);
                }
            }
            *failing = false;
        }
        Err(e) => {
            if !*failing {
                tracing::error!(error = %e, "cannot write the spool file: kept events stay in memory only");
            }
            *failing = true;
        }
    }
}

/// The earlier commits that may have been written, and where each batch of this one is in the
/// spool file (if it is).
struct Attempt<'a> {
    unsure: &'a [Unsure],
    marks: Vec<Option<&'a Mark>>,
}

/// A commit that went through: each batch's result, and how many at the front had already been
/// written by a commit whose answer was lost.
struct Written {
    results: Vec<Result<(), StoreError>>,
    skipped: usize,
}

/// A commit that did not: the id of its transaction if it may have been written all the same
/// (the failure came during `COMMIT`), and whether the database refused the data itself.
struct Failure {
    error: StoreError,
    in_doubt: Option<i64>,
    refused: bool,
}

impl Failure {
    fn before_commit(e: tokio_postgres::Error) -> Self {
        Self {
            refused: error::refused(&e),
            error: e.into(),
            in_doubt: None,
        }
    }

    fn still_in_doubt() -> Self {
        Self {
            error: StoreError::Unavailable(
                "a commit whose answer was lost is still in progress".into(),
            ),
            in_doubt: None,
            refused: false,
        }
    }
}

/// Writes every batch in one transaction. If the database refuses one batch's data (a
/// constraint, a value it cannot hold), writes each batch alone, so only that one fails; other
/// failures (a lost connection) fail the whole commit, and the caller keeps the batches.
async fn commit(
    pool: &Pool,
    batches: &[&Batch],
    attempt: &Attempt<'_>,
) -> Result<Written, Failure> {
    let mut client = pool.get().await.map_err(|e| Failure {
        error: error::pool(e),
        in_doubt: None,
        refused: false,
    })?;
    match in_one_transaction(&mut client, batches, attempt).await {
        Ok(written) => return Ok(written),
        Err(f) if !f.refused => return Err(f),
        Err(f) => {
            tracing::warn!(error = %f.error, "an append was refused; writing appends one by one")
        }
    }
    // What a commit whose answer was lost wrote is not written again.
    let skipped = {
        let tx = client.transaction().await.map_err(Failure::before_commit)?;
        already_written(&tx, attempt)
            .await
            .map_err(Failure::before_commit)?
            .ok_or_else(Failure::still_in_doubt)?
    };
    let mut results: Vec<Result<(), StoreError>> = (0..skipped).map(|_| Ok(())).collect();
    for (i, b) in batches.iter().enumerate().skip(skipped) {
        let alone = Attempt {
            unsure: &[],
            marks: vec![attempt.marks.get(i).copied().flatten()],
        };
        match in_one_transaction(&mut client, std::slice::from_ref(b), &alone).await {
            Ok(mut w) => results.push(w.results.pop().unwrap_or(Ok(()))),
            Err(f) if f.refused => {
                if let Some(fallback) = &b.fallback {
                    fallback.end(End::Dropped);
                }
                results.push(Err(f.error));
            }
            Err(f) => return Err(f),
        }
    }
    Ok(Written { results, skipped })
}

/// How many batches at the front earlier commits had written: those in doubt, asked of
/// PostgreSQL by their transaction ids (`txid_status`; `None` while one of them is still in
/// progress), and those written back from the spool file, as `dialtone_spools` says.
async fn already_written(
    tx: &Transaction<'_>,
    attempt: &Attempt<'_>,
) -> Result<Option<usize>, tokio_postgres::Error> {
    let spooled = spooled_written(tx, &attempt.marks).await?;
    let mut written = 0;
    for (xid, n) in attempt.unsure {
        let status: Option<String> = tx
            .query_one("SELECT txid_status($1)", &[xid])
            .await?
            .try_get(0)?;
        match status.as_deref() {
            Some("committed") => written = written.max(*n),
            Some("in progress") => return Ok(None),
            // Aborted, or too old to say (an aborted transaction is what that leaves).
            _ => {}
        }
    }
    Ok(Some(written.max(spooled)))
}

/// How many batches at the front an earlier commit wrote back from their spool files.
async fn spooled_written(
    tx: &Transaction<'_>,
    marks: &[Option<&Mark>],
) -> Result<usize, tokio_postgres::Error> {
    let ids: Vec<&str> = marks
        .iter()
        .flatten()
        .map(|m| &*m.spool)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let written: HashMap<String, i64> = tx
        .query(
            "SELECT id, written FROM dialtone_spools WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(marks
        .iter()
        .take_while(|m| m.is_some_and(|m| written.get(&*m.spool).is_some_and(|w| m.line <= *w)))
        .count())
}

/// Records, with the batches, how far each spool file they come from is written back.
fn spool_written(marks: &[Option<&Mark>]) -> Vec<Op> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for m in marks.iter().flatten() {
        let line = last.entry(&m.spool).or_insert(m.line);
        *line = (*line).max(m.line);
    }
    last.into_iter()
        .map(|(id, line)| {
            op(
                "INSERT INTO dialtone_spools (id, written) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET written = greatest(dialtone_spools.written, excluded.written)",
                vec![p(id.to_owned()), p(line)],
            )
        })
        .collect()
}

/// Applies the batches and commits. Each batch's result: written, or refused whole.
async fn in_one_transaction(
    client: &mut Object,
    batches: &[&Batch],
    attempt: &Attempt<'_>,
) -> Result<Written, Failure> {
    let tx = client.transaction().await.map_err(Failure::before_commit)?;
    let written = async {
        // This transaction's id (if the answer to its COMMIT is lost, the next commit asks
        // whether it committed), asked in the same round trip as the reads the plan needs.
        let xid = async {
            tx.query_one("SELECT txid_current()", &[])
                .await?
                .try_get::<_, i64>(0)
        };
        let planned = async {
            let Some(skipped) = already_written(&tx, attempt).await? else {
                return Ok(None);
            };
            let skipped = skipped.min(batches.len());
            Ok(Some((skipped, plan(&tx, &batches[skipped..]).await?)))
        };
        let (xid, planned) = tokio::try_join!(xid, planned)?;
        let Some((skipped, mut plan)) = planned else {
            return Ok(None);
        };
        plan.ops
            .extend(spool_written(attempt.marks.get(skipped..).unwrap_or(&[])));
        let affected = run(&tx, &plan.ops).await?;
        let outcomes = refresh_outcomes(&tx, &plan.touched).await?;
        Ok::<_, tokio_postgres::Error>(Some((xid, skipped, plan, affected, outcomes)))
    }
    .await;
    let committed = match written {
        Ok(Some((xid, skipped, plan, affected, outcomes))) => tx
            .commit()
            .await
            .map(|()| (skipped, plan, affected, outcomes))
            .map_err(|e| Failure {
                // The answer to COMMIT was lost: it may have been written.
                in_doubt: Some(xid),
                ..Failure::before_commit(e)
            }),
        Ok(None) => Err(Failure::still_in_doubt()),
        // Dropping the transaction rolls it back.
        Err(e) => Err(Failure::before_commit(e)),
    };
    for (i, b) in batches.iter().enumerate() {
        let Some(f) = &b.fallback else { continue };
        f.end(match &committed {
            Ok((skipped, _, _, _)) if i < *skipped => End::Committed,
            Ok((skipped, plan, _, _)) if matches!(plan.results.get(i - skipped), Some(Ok(()))) => {
                End::Committed
            }
            Ok(_) => End::Dropped,
            Err(_) => End::RolledBack,
        });
    }
    let (skipped, plan, affected, outcomes) = committed?;
    // Counted once, when the call ends (a voicemail arriving later does not recount it).
    for (op, n) in plan.ops.iter().zip(affected) {
        if let (Some(sid), 1) = (&op.ends, n)
            && let Some(outcome) = outcomes.get(sid)
        {
            metrics::counter!("dialtone_calls_total", "outcome" => outcome.clone()).increment(1);
        }
    }
    let mut results: Vec<Result<(), StoreError>> = (0..skipped).map(|_| Ok(())).collect();
    results.extend(
        plan.results
            .into_iter()
            .map(|r| r.map_err(StoreError::Refused)),
    );
    Ok(Written { results, skipped })
}

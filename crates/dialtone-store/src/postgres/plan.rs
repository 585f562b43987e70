//! What a commit writes on PostgreSQL: each batch checked (refused whole if it names another
//! carrier account's call, or receives a call already received), then turned into statements —
//! the event rows and the `calls`, `legs`, `round_robin` and `dni_sessions` projections — sent
//! pipelined on the writer's connection, and each touched call's outcome derived again.
//! The live writer ([`super::writer`]) and the copy from SQLite ([`super::copy`]) share them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Transaction;
use dialtone_core::event::{CallReceived, Event, EventBody};
use tokio_postgres::types::ToSql;

use crate::projection::{
    LegTime, change_column, dial_answered, ends_call, flow_never_started, kind_of, recording_usable,
};
use crate::{Batch, Refusal, SessionWrite};

/// One statement of a commit and its parameters.
pub(super) struct Op {
    sql: &'static str,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// Set for the statement that ends the call `sid`, if it was still open (one row changed).
    pub(super) ends: Option<String>,
}

pub(super) fn op(sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Op {
    Op {
        sql,
        params,
        ends: None,
    }
}

/// A parameter, boxed.
pub(super) fn p<T: ToSql + Sync + Send + 'static>(value: T) -> Box<dyn ToSql + Sync + Send> {
    Box::new(value)
}

fn int(n: Option<u32>) -> Box<dyn ToSql + Sync + Send> {
    p(n.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
}

/// What a commit writes: each batch's result, its statements in order, and the calls they touch.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) results: Vec<Result<(), Refusal>>,
    pub(super) ops: Vec<Op>,
    pub(super) touched: HashSet<String>,
}

/// Decides what each batch writes, refusing a signed batch whole (before writing any of it) if
/// an event names another carrier account's call or receives a call already received.
pub(super) async fn plan(
    tx: &Transaction<'_>,
    batches: &[&Batch],
) -> Result<Plan, tokio_postgres::Error> {
    // The request's replacement, if it gave up waiting and answered otherwise.
    let events: Vec<Cow<'_, [Event]>> = batches
        .iter()
        .map(|b| match b.fallback.as_ref().and_then(|f| f.begin()) {
            Some(replaced) => Cow::Owned(replaced),
            None => Cow::Borrowed(&b.events[..]),
        })
        .collect();
    let sids: Vec<&str> = events
        .iter()
        .flat_map(|es| es.iter().map(|e| e.call_sid.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Who owns each call already logged; calls received in this commit join as they are planned.
    let mut owners: HashMap<String, String> = tx
        .query(
            "SELECT sid, carrier_account_sid FROM calls WHERE sid = ANY($1)",
            &[&sids],
        )
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let mut plan = Plan::default();
    for (b, events) in batches.iter().zip(&events) {
        if let Some(signer) = &b.signed_by
            && let Some(refusal) = refusal(&owners, signer, events)
        {
            plan.results.push(Err(refusal));
            continue;
        }
        for e in events.iter() {
            let known = owners.contains_key(&e.call_sid);
            match (&e.body, known) {
                (EventBody::CallReceived(c), false) => {
                    plan.ops.push(insert_call(e, c));
                    owners.insert(e.call_sid.clone(), c.carrier_account_sid.clone());
                    plan.touched.insert(e.call_sid.clone());
                }
                // Unsigned batches (reconcile) may say again what is known: logged, not
                // projected.
                (EventBody::CallReceived(_), true) => {}
                (body, true) => {
                    project(&mut plan.ops, e, body);
                    plan.touched.insert(e.call_sid.clone());
                }
                // An event for a call never received (a stray callback) is kept, belonging to
                // none.
                (_, false) => {}
            }
            let body = serde_json::to_value(&e.body).unwrap_or(serde_json::Value::Null);
            plan.ops.push(op(
                "INSERT INTO events (call_sid, call_id, at, kind, body)
                 VALUES ($1, (SELECT id FROM calls WHERE sid = $1), $2, $3, $4)",
                vec![
                    p(e.call_sid.clone()),
                    p(e.at),
                    p(kind_of(&e.body).to_owned()),
                    p(body),
                ],
            ));
        }
        for (key, turns) in &b.turns {
            plan.ops.push(op(
                "INSERT INTO round_robin (key, turns) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET turns = greatest(round_robin.turns, excluded.turns)",
                vec![p(key.clone()), p(i64::try_from(*turns).unwrap_or(i64::MAX))],
            ));
        }
        for w in &b.sessions {
            plan.ops.push(write_session(w));
        }
        plan.results.push(Ok(()));
    }
    Ok(plan)
}

/// Whether a batch signed by carrier account `signer` may be written.
fn refusal(owners: &HashMap<String, String>, signer: &str, events: &[Event]) -> Option<Refusal> {
    events
        .iter()
        .find_map(|e| match (owners.get(&e.call_sid), &e.body) {
            (Some(owner), _) if owner != signer => Some(Refusal::OtherAccount),
            (Some(_), EventBody::CallReceived(_)) => Some(Refusal::AlreadyReceived),
            _ => None,
        })
}

fn insert_call(e: &Event, c: &CallReceived) -> Op {
    let a = &c.answer;
    op(
        "INSERT INTO calls (sid, account, company, tracker, tracker_kind, carrier_account_sid,
            tracking_number, caller, caller_name, forwarded_from, flow, path, routing, routing_reason,
            started_at, first_answer_at, outcome, notice_played, dial_shape, attribution, first_call)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'in_progress',
            $17, $18, $19, coalesce($20, CASE WHEN $3 = '' THEN NULL
                ELSE NOT EXISTS (SELECT 1 FROM calls WHERE company = $3 AND caller = $8) END))
         ON CONFLICT (sid) DO NOTHING",
        vec![
            p(e.call_sid.clone()),
            p(c.account.clone()),
            p(c.company.clone()),
            p(c.tracker.clone()),
            p(c.tracker_kind.clone()),
            p(c.carrier_account_sid.clone()),
            p(c.tracking_number.clone()),
            p(c.caller.clone()),
            p(c.caller_name.clone()),
            p(c.forwarded_from.clone()),
            p(c.flow.clone()),
            p(serde_json::to_value(&a.path).unwrap_or_else(|_| serde_json::json!([]))),
            p(a.routing.map_or("normal", |r| r.as_str()).to_owned()),
            p(a.reason.clone()),
            p(e.at),
            p(a.answered_at),
            p(a.notice_played),
            p(a.degraded.clone()),
            p(c.attribution.as_ref().and_then(|at| serde_json::to_value(at).ok())),
            p(c.first_call),
        ],
    )
}

/// A `legs` upsert setting one of the leg's times, the first one the carrier reports.
macro_rules! leg_upsert {
    ($column:literal) => {
        concat!(
            "INSERT INTO legs (call_id, sid, to_number, status, ",
            $column,
            ", duration_s)
             SELECT id, $2::text, $3::text, $4::text, $5::timestamptz, $6::integer FROM calls WHERE sid = $1
             ON CONFLICT (call_id, sid) DO UPDATE SET status = excluded.status, ",
            $column,
            " = coalesce(legs.",
            $column,
            ", excluded.",
            $column,
            "), duration_s = coalesce(excluded.duration_s, legs.duration_s)"
        )
    };
}

/// Keeps `calls` and `legs` in step with one event of a call already received.
fn project(ops: &mut Vec<Op>, e: &Event, body: &EventBody) {
    let sid = || p(e.call_sid.clone());
    match body {
        EventBody::CallReceived(_) => {}
        EventBody::FlowAnswered(f) => ops.push(op(
            "UPDATE calls SET
                path = CASE WHEN $2::boolean THEN '[]'::jsonb ELSE path || $3::jsonb END,
                notice_played = CASE WHEN $2::boolean THEN $4::boolean ELSE notice_played OR $4::boolean END,
                routing = CASE WHEN $5::text = 'backup' THEN 'backup' ELSE routing END,
                routing_reason = coalesce($6::text, routing_reason),
                dial_shape = CASE WHEN $2::boolean THEN $7::text ELSE coalesce($7::text, dial_shape) END
             WHERE sid = $1",
            vec![
                sid(),
                p(flow_never_started(f)),
                p(serde_json::to_value(&f.answer.path).unwrap_or_else(|_| serde_json::json!([]))),
                p(f.answer.notice_played),
                p(f.answer.routing.map(|r| r.as_str().to_owned())),
                p(f.answer.reason.clone()),
                p(f.answer.degraded.clone()),
            ],
        )),
        EventBody::Leg(l) => {
            let time = LegTime::of(l);
            let sql = match time {
                LegTime::Initiated => leg_upsert!("initiated_at"),
                LegTime::Ringing => leg_upsert!("ringing_at"),
                LegTime::Answered => leg_upsert!("answered_at"),
                LegTime::Completed => leg_upsert!("completed_at"),
            };
            ops.push(op(
                sql,
                vec![
                    sid(),
                    p(l.leg_sid.clone()),
                    p(l.to.clone()),
                    p(l.status.clone()),
                    p(e.at),
                    int(l.duration_s),
                ],
            ));
            if time == LegTime::Answered {
                ops.push(op(
                    "UPDATE calls SET answered = true, answered_by = coalesce(answered_by, $2::text)
                     WHERE sid = $1",
                    vec![sid(), p(l.to.clone())],
                ));
            }
        }
        EventBody::DialEnded(d) if dial_answered(d) => ops.push(op(
            "UPDATE calls c SET answered = true, answered_by = coalesce(c.answered_by,
                (SELECT l.to_number FROM legs l WHERE l.call_id = c.id AND l.sid = $2::text))
             WHERE c.sid = $1",
            vec![sid(), p(d.dial_call_sid.clone())],
        )),
        EventBody::DialEnded(_) => {}
        EventBody::Recording(r) if recording_usable(r) && r.voicemail => ops.push(op(
            "UPDATE calls SET voicemail = true, voicemail_url = $2::text,
                voicemail_duration_s = coalesce($3::integer, voicemail_duration_s)
             WHERE sid = $1",
            vec![sid(), p(r.url.clone()), int(r.duration_s)],
        )),
        EventBody::Recording(r) if recording_usable(r) => ops.push(op(
            "UPDATE calls SET recording_url = $2::text,
                recording_duration_s = coalesce($3::integer, recording_duration_s)
             WHERE sid = $1",
            vec![sid(), p(r.url.clone()), int(r.duration_s)],
        )),
        EventBody::Recording(_) => {}
        EventBody::CallStatus(s) => {
            if ends_call(&s.status) {
                ops.push(Op {
                    ends: Some(e.call_sid.clone()),
                    ..op(
                        "UPDATE calls SET ended_at = $2 WHERE sid = $1 AND ended_at IS NULL",
                        vec![sid(), p(e.at)],
                    )
                });
            }
            ops.push(op(
                "UPDATE calls SET status = $2::text, duration_s = coalesce($3::integer, duration_s)
                 WHERE sid = $1",
                vec![sid(), p(s.status.clone()), int(s.duration_s)],
            ));
        }
        EventBody::CallModified(m) => {
            for change in &m.changes {
                let (column, value) = change_column(change);
                let sql = match column {
                    "tags" => "UPDATE calls SET tags = $2::text::jsonb WHERE sid = $1",
                    "note" => "UPDATE calls SET note = $2::text WHERE sid = $1",
                    "value" => "UPDATE calls SET value = $2::text WHERE sid = $1",
                    "lead_status" => "UPDATE calls SET lead_status = $2::text WHERE sid = $1",
                    "caller_name" => "UPDATE calls SET caller_name = $2::text WHERE sid = $1",
                    _ => "UPDATE calls SET spam = $2::text::boolean WHERE sid = $1",
                };
                ops.push(op(sql, vec![sid(), p(value)]));
            }
        }
    }
}

fn write_session(w: &SessionWrite) -> Op {
    match w {
        SessionWrite::Start(s) => op(
            "INSERT INTO dni_sessions (id, secret, account, company, tracker, number, visitor, visit,
                sharing, created_at, seen_at, expires_at, released)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            vec![
                p(i64::try_from(s.id).unwrap_or(i64::MAX)),
                p(s.secret.clone()),
                p(s.account.clone()),
                p(s.company.clone()),
                p(s.tracker.clone()),
                p(s.number.clone()),
                p(s.visitor.clone()),
                p(serde_json::to_value(&s.visit).unwrap_or(serde_json::Value::Null)),
                int(Some(s.sharing)),
                p(s.created_at),
                p(s.seen_at),
                p(s.expires_at),
                p(s.released),
            ],
        ),
        SessionWrite::Renew {
            id,
            seen_at,
            expires_at,
        } => op(
            "UPDATE dni_sessions SET seen_at = $2, expires_at = greatest(expires_at, $3) WHERE id = $1",
            vec![
                p(i64::try_from(*id).unwrap_or(i64::MAX)),
                p(*seen_at),
                p(*expires_at),
            ],
        ),
        SessionWrite::Release { id, at } => op(
            "UPDATE dni_sessions SET expires_at = least(expires_at, $2), released = true WHERE id = $1",
            vec![p(i64::try_from(*id).unwrap_or(i64::MAX)), p(*at)],
        ),
    }
}

/// A statement on its way: rows it changed.
type Statement<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Sends every statement at once and waits for them in order: rows changed by each.
pub(super) async fn run(
    tx: &Transaction<'_>,
    ops: &[Op],
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let mut statements = Vec::with_capacity(ops.len());
    for o in ops {
        // Prepared once per connection, then taken from its cache.
        statements.push(tx.prepare_cached(o.sql).await?);
    }
    let futures: Vec<Statement<'_>> = ops
        .iter()
        .zip(&statements)
        .map(|(o, statement)| {
            let params: Vec<&(dyn ToSql + Sync)> = o
                .params
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            Box::pin(async move { tx.execute(statement, &params).await }) as Pin<Box<_>>
        })
        .collect();
    pipelined(futures).await
}

/// Polls each future once, in order, then waits for each in order. tokio-postgres sends a
/// statement when its future is first polled, so the statements leave together (pipelined) and
/// in order, and the server runs them in that order; awaiting them one by one after that costs
/// no extra round trip. The first error in order is the one returned: the statements after it
/// only fail because the transaction was aborted.
async fn pipelined<'a>(mut futures: Vec<Statement<'a>>) -> Result<Vec<u64>, tokio_postgres::Error> {
    let mut ready: Vec<Option<Result<u64, tokio_postgres::Error>>> =
        Vec::with_capacity(futures.len());
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            ready.push(match f.as_mut().poll(cx) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            });
        }
        Poll::Ready(())
    })
    .await;
    let mut results = Vec::with_capacity(futures.len());
    for (f, r) in futures.into_iter().zip(ready) {
        results.push(match r {
            Some(r) => r,
            None => f.await,
        });
    }
    results.into_iter().collect()
}

/// Derives the outcome of every call the commit touched (`dialtone_outcome`, the rule
/// `Outcome::at_end` states); each call's outcome now.
pub(super) async fn refresh_outcomes(
    tx: &Transaction<'_>,
    touched: &HashSet<String>,
) -> Result<HashMap<String, String>, tokio_postgres::Error> {
    if touched.is_empty() {
        return Ok(HashMap::new());
    }
    let sids: Vec<&str> = touched.iter().map(String::as_str).collect();
    let statement = tx
        .prepare_cached(
            "UPDATE calls SET outcome = dialtone_outcome(status, ended_at IS NOT NULL, answered, voicemail)
             WHERE sid = ANY($1) RETURNING sid, outcome",
        )
        .await?;
    tx.query(&statement, &[&sids])
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

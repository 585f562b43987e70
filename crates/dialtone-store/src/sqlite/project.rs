//! The writer's side of the call log: one batch applied (or refused whole, before any of it is
//! written), and the `calls` and `legs` projections kept in step with each event in the same
//! transaction.

use std::collections::HashMap;
use std::sync::Arc;

use dialtone_core::event::{CallChange, CallReceived, EventBody, Outcome};
use rusqlite::{Connection, OptionalExtension, params};

use super::sid_index::{RecentSids, find_call};
use crate::projection::{
    LegTime, change_column, dial_answered, ends_call, flow_never_started, kind_of, recording_usable,
};
use crate::{Batch, Refusal, SessionWrite, timestamp};

/// Writes one batch, or refuses it whole before writing any of it.
pub(super) fn apply(
    conn: &Connection,
    recent: &RecentSids,
    created: &mut HashMap<Arc<str>, i64>,
    batch: &Batch,
) -> Result<Result<(), Refusal>, rusqlite::Error> {
    let replaced = batch.fallback.as_ref().and_then(|f| f.begin());
    let events = replaced.as_deref().unwrap_or(&batch.events);
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        let id = find_call(conn, recent, created, &e.call_sid)?;
        if let (Some(signer), Some(call)) = (&batch.signed_by, id)
            && let Some(refusal) = refusal(conn, call, signer, &e.body)?
        {
            return Ok(Err(refusal));
        }
        ids.push(id);
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (call_sid, call_id, at, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (e, found) in events.iter().zip(ids) {
        let body = serde_json::to_string(&e.body)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
        let at = timestamp(e.at);
        // A call received earlier in this batch.
        let mut id = match found {
            Some(id) => Some(id),
            None => created.get(e.call_sid.as_str()).copied(),
        };
        match (&e.body, id) {
            (EventBody::CallReceived(c), None) => {
                let new = insert_call(conn, &e.call_sid, &at, c)?;
                created.insert(Arc::from(e.call_sid.as_str()), new);
                id = Some(new);
            }
            // Unsigned batches (reconcile) may say again what is known: logged, not projected.
            (EventBody::CallReceived(_), Some(_)) => {}
            (body, Some(call)) => project(conn, call, &at, body)?,
            // An event for a call never received (a stray callback) is kept, belonging to none.
            (_, None) => {}
        }
        insert.execute(params![e.call_sid, id, at, kind_of(&e.body), body])?;
    }
    let mut turn = conn.prepare_cached(
        "INSERT INTO round_robin (key, turns) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET turns = max(turns, excluded.turns)",
    )?;
    for (key, turns) in &batch.turns {
        turn.execute(params![key, *turns as i64])?;
    }
    for w in &batch.sessions {
        write_session(conn, w)?;
    }
    Ok(Ok(()))
}

/// Whether an event of a request signed by carrier account `signer` may touch `call`.
fn refusal(
    conn: &Connection,
    call: i64,
    signer: &str,
    body: &EventBody,
) -> Result<Option<Refusal>, rusqlite::Error> {
    let owner: Option<String> = conn
        .prepare_cached("SELECT carrier_account_sid FROM calls WHERE id = ?1")?
        .query_row([call], |r| r.get(0))
        .optional()?;
    Ok(match (owner, body) {
        (Some(owner), _) if owner != signer => Some(Refusal::OtherAccount),
        (_, EventBody::CallReceived(_)) => Some(Refusal::AlreadyReceived),
        _ => None,
    })
}

fn write_session(conn: &Connection, w: &SessionWrite) -> Result<(), rusqlite::Error> {
    match w {
        SessionWrite::Start(s) => {
            let visit = serde_json::to_string(&s.visit)
                .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
            conn.prepare_cached(
                "INSERT INTO dni_sessions (id, secret, account, company, tracker, number, visitor, visit,
                    sharing, created_at, seen_at, expires_at, released)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                s.id as i64,
                s.secret,
                s.account,
                s.company,
                s.tracker,
                s.number,
                s.visitor,
                visit,
                s.sharing,
                timestamp(s.created_at),
                timestamp(s.seen_at),
                timestamp(s.expires_at),
                s.released,
            ])?;
        }
        SessionWrite::Renew {
            id,
            seen_at,
            expires_at,
        } => {
            conn.prepare_cached(
                "UPDATE dni_sessions SET seen_at = ?2, expires_at = max(expires_at, ?3) WHERE id = ?1",
            )?
            .execute(params![*id as i64, timestamp(*seen_at), timestamp(*expires_at)])?;
        }
        SessionWrite::Release { id, at } => {
            conn.prepare_cached(
                "UPDATE dni_sessions SET expires_at = min(expires_at, ?2), released = 1 WHERE id = ?1",
            )?
            .execute(params![*id as i64, timestamp(*at)])?;
        }
    }
    Ok(())
}

fn insert_call(
    conn: &Connection,
    sid: &str,
    at: &str,
    c: &CallReceived,
) -> Result<i64, rusqlite::Error> {
    let a = &c.answer;
    conn.prepare_cached(
        "INSERT INTO calls (sid, account, company, tracker, tracker_kind, carrier_account_sid, tracking_number,
            caller, caller_name, forwarded_from, flow, path, routing, routing_reason, started_at, first_answer_at,
            outcome, notice_played, dial_shape, attribution, first_call)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'in_progress', ?17, ?18, ?19,
            coalesce(?20, CASE WHEN ?3 = '' THEN NULL
                ELSE NOT EXISTS (SELECT 1 FROM calls WHERE company = ?3 AND caller = ?8) END))",
    )?
    .execute(params![
        sid,
        c.account,
        c.company,
        c.tracker,
        c.tracker_kind,
        c.carrier_account_sid,
        c.tracking_number,
        c.caller,
        c.caller_name,
        c.forwarded_from,
        c.flow,
        serde_json::to_string(&a.path).unwrap_or_else(|_| "[]".into()),
        a.routing.map(|r| r.as_str()).unwrap_or("normal"),
        a.reason,
        at,
        a.answered_at.map(timestamp),
        a.notice_played,
        a.degraded,
        c.attribution
            .as_ref()
            .and_then(|at| serde_json::to_string(at).ok()),
        c.first_call,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Keeps `calls` and `legs` in step with one event of a call already received.
fn project(
    conn: &Connection,
    call: i64,
    at: &str,
    body: &EventBody,
) -> Result<(), rusqlite::Error> {
    match body {
        EventBody::CallReceived(_) => {}
        EventBody::FlowAnswered(f) => {
            let path: Option<String> = conn
                .prepare_cached("SELECT path FROM calls WHERE id = ?1")?
                .query_row([call], |r| r.get(0))
                .optional()?;
            let mut steps: Vec<String> = path
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default();
            steps.extend(f.answer.path.iter().cloned());
            if flow_never_started(f) {
                conn.prepare_cached(
                    "UPDATE calls SET path = '[]', notice_played = 0, dial_shape = NULL WHERE id = ?1",
                )?
                .execute([call])?;
                steps.clear();
            }
            conn.prepare_cached(
                "UPDATE calls SET path = ?2, notice_played = notice_played OR ?3,
                    routing = CASE WHEN ?4 = 'backup' THEN 'backup' ELSE routing END,
                    routing_reason = coalesce(?5, routing_reason),
                    dial_shape = coalesce(?6, dial_shape)
                 WHERE id = ?1",
            )?
            .execute(params![
                call,
                serde_json::to_string(&steps).unwrap_or_else(|_| "[]".into()),
                f.answer.notice_played,
                f.answer.routing.map(|r| r.as_str()),
                f.answer.reason,
                f.answer.degraded,
            ])?;
        }
        EventBody::Leg(l) => {
            let column = LegTime::of(l).column();
            let sql = format!(
                "INSERT INTO legs (call_id, sid, to_number, status, {column}, duration_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (call_id, sid) DO UPDATE SET status = excluded.status, {column} = coalesce({column}, excluded.{column}),
                    duration_s = coalesce(excluded.duration_s, duration_s)"
            );
            conn.prepare_cached(&sql)?.execute(params![
                call,
                l.leg_sid,
                l.to,
                l.status,
                at,
                l.duration_s
            ])?;
            if column == "answered_at" {
                conn.prepare_cached("UPDATE calls SET answered = 1, answered_by = coalesce(answered_by, ?2) WHERE id = ?1")?
                    .execute(params![call, l.to])?;
                refresh_outcome(conn, call)?;
            }
        }
        EventBody::DialEnded(d) => {
            if dial_answered(d) {
                let answered_by: Option<String> = match &d.dial_call_sid {
                    Some(leg) => conn
                        .prepare_cached(
                            "SELECT to_number FROM legs WHERE call_id = ?1 AND sid = ?2",
                        )?
                        .query_row(params![call, leg], |r| r.get(0))
                        .optional()?,
                    None => None,
                };
                conn.prepare_cached("UPDATE calls SET answered = 1, answered_by = coalesce(answered_by, ?2) WHERE id = ?1")?
                    .execute(params![call, answered_by])?;
                refresh_outcome(conn, call)?;
            }
        }
        EventBody::Recording(r) => {
            let usable = recording_usable(r);
            if r.voicemail && usable {
                conn.prepare_cached(
                    "UPDATE calls SET voicemail = 1, voicemail_url = ?2, voicemail_duration_s = coalesce(?3, voicemail_duration_s)
                     WHERE id = ?1",
                )?
                .execute(params![call, r.url, r.duration_s])?;
                refresh_outcome(conn, call)?;
            } else if usable {
                conn.prepare_cached(
                    "UPDATE calls SET recording_url = ?2, recording_duration_s = coalesce(?3, recording_duration_s) WHERE id = ?1",
                )?
                .execute(params![call, r.url, r.duration_s])?;
            }
        }
        EventBody::CallStatus(s) => {
            let ended = ends_call(&s.status);
            let was_open: bool = conn
                .prepare_cached("SELECT ended_at IS NULL FROM calls WHERE id = ?1")?
                .query_row([call], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            conn.prepare_cached(
                "UPDATE calls SET status = ?2, duration_s = coalesce(?3, duration_s),
                    ended_at = CASE WHEN ?4 THEN coalesce(ended_at, ?5) ELSE ended_at END
                 WHERE id = ?1",
            )?
            .execute(params![call, s.status, s.duration_s, ended, at])?;
            let outcome = refresh_outcome(conn, call)?;
            // Counted once, when the call ends (a voicemail arriving later does not recount it).
            if let (true, true, Some(o)) = (was_open, ended, outcome) {
                metrics::counter!("dialtone_calls_total", "outcome" => o.as_str()).increment(1);
            }
        }
        EventBody::CallModified(m) => {
            for change in &m.changes {
                let (column, value) = change_column(change);
                let value = match change {
                    // SQLite keeps booleans as integers.
                    CallChange::Spam => Some("1".to_owned()),
                    _ => value,
                };
                conn.prepare_cached(&format!("UPDATE calls SET {column} = ?2 WHERE id = ?1"))?
                    .execute(params![call, value])?;
            }
        }
    }
    Ok(())
}

/// Outcome is derived in one place (`Outcome::at_end`) from what the call row knows so far, so
/// callbacks may arrive in any order (a voicemail's recording often comes after the call ended).
fn refresh_outcome(conn: &Connection, call: i64) -> Result<Option<Outcome>, rusqlite::Error> {
    let row: Option<(Option<String>, Option<String>, bool, bool)> = conn
        .prepare_cached("SELECT status, ended_at, answered, voicemail FROM calls WHERE id = ?1")?
        .query_row([call], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((status, ended_at, answered, voicemail)) = row else {
        return Ok(None);
    };
    let outcome = match (ended_at, status) {
        (Some(_), Some(status)) => Outcome::at_end(&status, answered, voicemail),
        _ if answered => Outcome::Answered,
        _ => Outcome::InProgress,
    };
    conn.prepare_cached("UPDATE calls SET outcome = ?2 WHERE id = ?1")?
        .execute(params![call, outcome.as_str()])?;
    Ok(Some(outcome))
}

//! The call log's reads: listings by offset and by keyset, one call with its timeline, and the
//! counts that first-caller state and configuration checks need.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dialtone_core::event::{LeadStatus, Outcome};
use rusqlite::{Connection, OptionalExtension, params};

use super::sid_index::find_call;
use super::{SqliteReads, json_at, time_at, time_or_null_at};
use crate::model::keyset_page;
use crate::{
    Call, CallCursor, CallLog, CallPage, CallQuery, CallsAfter, Leg, StoreError, StoredEvent,
    Traffic, timestamp,
};

/// The `WHERE` clause and its arguments for a listing's filters.
fn call_filter(q: &CallQuery) -> (String, Vec<String>) {
    // Calls marked as spam are kept, never listed.
    let mut filter = String::from("account = ?1 AND spam = 0");
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
    if let Some(from) = q.from {
        add("started_at >=", timestamp(from));
    }
    if let Some(until) = q.until {
        add("started_at <", timestamp(until));
    }
    if !q.outcomes.is_empty() {
        let first = args.len() + 1;
        args.extend(q.outcomes.iter().map(|o| o.as_str().to_owned()));
        let places: Vec<String> = (first..=args.len()).map(|i| format!("?{i}")).collect();
        filter.push_str(&format!(" AND outcome IN ({})", places.join(", ")));
    }
    (filter, args)
}

const CALL_COLUMNS: &str = "sid, answered, duration_s, started_at, ended_at, tracking_number, answered_by, caller,
    caller_name, forwarded_from, company, tracker, tracker_kind, voicemail, voicemail_url, recording_url,
    recording_duration_s, notice_played, outcome, status, routing, routing_reason, flow, path, id, dial_shape,
    attribution, first_call, tags, note, value, lead_status, spam";

/// A call and its row id, by which its legs and events find it.
fn call_from_row(r: &rusqlite::Row) -> rusqlite::Result<(i64, Call)> {
    let outcome: String = r.get(18)?;
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            18,
            rusqlite::types::Type::Text,
            format!("unknown outcome `{outcome}`").into(),
        )
    })?;
    // Leniently: a visit stored by an older version reads as no attribution, not as a failure.
    let attribution: Option<String> = r.get(26)?;
    let attribution = attribution.and_then(|a| serde_json::from_str(&a).ok());
    Ok((
        r.get(24)?,
        Call {
            sid: r.get(0)?,
            answered: r.get(1)?,
            duration_s: r.get(2)?,
            started_at: time_at(r, 3)?,
            ended_at: time_or_null_at(r, 4)?,
            tracking_number: r.get(5)?,
            answered_by: r.get(6)?,
            caller: r.get(7)?,
            caller_name: r.get(8)?,
            forwarded_from: r.get(9)?,
            company: r.get(10)?,
            tracker: r.get(11)?,
            tracker_kind: r.get(12)?,
            attribution,
            first_call: r.get(27)?,
            tags: json_at(r, 28)?,
            note: r.get(29)?,
            value: r.get(30)?,
            lead_status: r
                .get::<_, Option<String>>(31)?
                .and_then(|l| LeadStatus::parse(&l)),
            spam: r.get(32)?,
            voicemail: r.get(13)?,
            voicemail_url: r.get(14)?,
            recording_url: r.get(15)?,
            recording_duration_s: r.get(16)?,
            notice_played: r.get(17)?,
            outcome,
            status: r.get(19)?,
            routing: r.get(20)?,
            routing_reason: r.get(21)?,
            dial_shape: r.get(25)?,
            flow: r.get(22)?,
            path: json_at(r, 23)?,
            legs: Vec::new(),
            events: None,
        },
    ))
}

fn legs_of(conn: &Connection, call: i64) -> Result<Vec<Leg>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT sid, to_number, status, initiated_at, ringing_at, answered_at, completed_at, duration_s
         FROM legs WHERE call_id = ?1 ORDER BY coalesce(initiated_at, ringing_at, answered_at, completed_at), sid",
    )?;
    let rows = stmt.query_map([call], |r| {
        Ok(Leg {
            sid: r.get(0)?,
            to: r.get(1)?,
            status: r.get(2)?,
            initiated_at: time_or_null_at(r, 3)?,
            ringing_at: time_or_null_at(r, 4)?,
            answered_at: time_or_null_at(r, 5)?,
            completed_at: time_or_null_at(r, 6)?,
            duration_s: r.get(7)?,
        })
    })?;
    rows.collect()
}

fn events_of(conn: &Connection, call: i64) -> Result<Vec<StoredEvent>, rusqlite::Error> {
    let mut stmt =
        conn.prepare_cached("SELECT at, kind, body FROM events WHERE call_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map([call], |r| {
        let mut detail: serde_json::Value = json_at(r, 2)?;
        if let Some(o) = detail.as_object_mut() {
            o.remove("type");
        }
        Ok(StoredEvent {
            at: time_at(r, 0)?,
            kind: r.get(1)?,
            detail,
        })
    })?;
    rows.collect()
}

/// The calls of `rows` with their legs.
fn with_legs(conn: &Connection, rows: Vec<(i64, Call)>) -> Result<Vec<Call>, StoreError> {
    let mut calls = Vec::with_capacity(rows.len());
    for (id, mut c) in rows {
        c.legs = legs_of(conn, id)?;
        calls.push(c);
    }
    Ok(calls)
}

#[async_trait::async_trait]
impl CallLog for SqliteReads {
    async fn calls(&self, q: CallQuery) -> Result<CallPage, StoreError> {
        self.read(move |conn| {
            let (filter, args) = call_filter(&q);
            let total: u64 = conn
                .prepare(&format!("SELECT count(*) FROM calls WHERE {filter}"))?
                .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))?;
            let per_page = q.page_size();
            let page = q.page.max(1);
            let offset = u64::from(page - 1) * u64::from(per_page);
            let mut stmt = conn.prepare(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC, sid DESC LIMIT {per_page} OFFSET {offset}"
            ))?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(&args), call_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CallPage {
                page,
                per_page,
                total_pages: total.div_ceil(u64::from(per_page)) as u32,
                total_records: total,
                calls: with_legs(conn, rows)?,
            })
        })
        .await
    }

    async fn calls_after(
        &self,
        q: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError> {
        self.read(move |conn| {
            let (mut filter, mut args) = call_filter(&q);
            if let Some(c) = after {
                // The first conjunct bounds the index range; the second breaks ties by sid.
                // Stored times are fixed-width text, so text order is time order.
                args.push(timestamp(c.started_at));
                args.push(c.sid);
                let (at, sid) = (args.len() - 1, args.len());
                filter.push_str(&format!(
                    " AND started_at <= ?{at} AND (started_at < ?{at} OR sid < ?{sid})"
                ));
            }
            let per_page = q.page_size() as usize;
            let mut stmt = conn.prepare(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE {filter} ORDER BY started_at DESC, sid DESC LIMIT {}",
                per_page + 1
            ))?;
            let mut rows = stmt
                .query_map(rusqlite::params_from_iter(&args), call_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let next = keyset_page(&mut rows, per_page);
            Ok(CallsAfter {
                calls: with_legs(conn, rows)?,
                next,
            })
        })
        .await
    }

    async fn call(&self, account: &str, sid: &str) -> Result<Option<Call>, StoreError> {
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
            call.events = Some(events_of(conn, id)?);
            Ok(Some(call))
        })
        .await
    }

    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError> {
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
}

//! The call log's reads on PostgreSQL: listings by offset and by keyset, one call with its
//! timeline, and the counts that first-caller state and configuration checks need.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dialtone_core::event::{LeadStatus, Outcome};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgReads;
use crate::model::keyset_page;
use crate::{
    Call, CallCursor, CallLog, CallPage, CallQuery, CallsAfter, Leg, StoreError, StoredEvent,
    Traffic,
};

const CALL_COLUMNS: &str = "id, sid, answered, duration_s, started_at, ended_at, tracking_number,
    answered_by, caller, caller_name, forwarded_from, company, tracker, tracker_kind, voicemail,
    voicemail_url, recording_url, recording_duration_s, notice_played, outcome, status, routing,
    routing_reason, flow, path, dial_shape, attribution, first_call, tags, note, value, lead_status,
    spam";

/// A listing's `WHERE` clause and its parameters.
struct Filter {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    fn add(&mut self, clause: &str, value: Box<dyn ToSql + Sync + Send>) {
        self.params.push(value);
        self.sql
            .push_str(&format!(" AND {clause} ${}", self.params.len()));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn call_filter(q: &CallQuery) -> Filter {
    let mut f = Filter {
        // Calls marked as spam are kept, never listed.
        sql: "account = $1 AND NOT spam".to_owned(),
        params: vec![Box::new(q.account.clone())],
    };
    if let Some(c) = &q.company {
        f.add("company =", Box::new(c.clone()));
    }
    if let Some(t) = &q.tracker {
        f.add("tracker =", Box::new(t.clone()));
    }
    if !q.outcomes.is_empty() {
        let outcomes: Vec<String> = q.outcomes.iter().map(|o| o.as_str().to_owned()).collect();
        f.params.push(Box::new(outcomes));
        f.sql
            .push_str(&format!(" AND outcome = ANY(${})", f.params.len()));
    }
    if let Some(from) = q.from {
        f.add("started_at >=", Box::new(from));
    }
    if let Some(until) = q.until {
        f.add("started_at <", Box::new(until));
    }
    f
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn unsigned(n: Option<i32>) -> Option<u32> {
    n.map(|n| u32::try_from(n).unwrap_or(0))
}

/// A call and its row id, by which its legs and events find it.
fn call_from_row(r: &Row) -> Result<(i64, Call), StoreError> {
    let outcome: String = r.try_get(19)?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| corrupt("call outcome", format!("unknown `{outcome}`")))?;
    let path: serde_json::Value = r.try_get(24)?;
    let path = serde_json::from_value(path).map_err(|e| corrupt("call path", e))?;
    // Leniently: a visit stored by an older version reads as no attribution, not as a failure.
    let attribution: Option<serde_json::Value> = r.try_get(26)?;
    let attribution = attribution.and_then(|a| serde_json::from_value(a).ok());
    Ok((
        r.try_get(0)?,
        Call {
            sid: r.try_get(1)?,
            answered: r.try_get(2)?,
            duration_s: unsigned(r.try_get(3)?),
            started_at: r.try_get(4)?,
            ended_at: r.try_get(5)?,
            tracking_number: r.try_get(6)?,
            answered_by: r.try_get(7)?,
            caller: r.try_get(8)?,
            caller_name: r.try_get(9)?,
            forwarded_from: r.try_get(10)?,
            company: r.try_get(11)?,
            tracker: r.try_get(12)?,
            tracker_kind: r.try_get(13)?,
            attribution,
            first_call: r.try_get(27)?,
            tags: serde_json::from_value(r.try_get(28)?).map_err(|e| corrupt("call tags", e))?,
            note: r.try_get(29)?,
            value: r.try_get(30)?,
            lead_status: r
                .try_get::<_, Option<String>>(31)?
                .and_then(|l| LeadStatus::parse(&l)),
            spam: r.try_get(32)?,
            voicemail: r.try_get(14)?,
            voicemail_url: r.try_get(15)?,
            recording_url: r.try_get(16)?,
            recording_duration_s: unsigned(r.try_get(17)?),
            notice_played: r.try_get(18)?,
            outcome,
            status: r.try_get(20)?,
            routing: r.try_get(21)?,
            routing_reason: r.try_get(22)?,
            dial_shape: r.try_get(25)?,
            flow: r.try_get(23)?,
            path,
            legs: Vec::new(),
            events: None,
        },
    ))
}

impl PgReads {
    /// The calls of `rows` with their legs, read in one query.
    async fn with_legs(
        &self,
        client: &deadpool_postgres::Object,
        rows: Vec<(i64, Call)>,
    ) -> Result<Vec<Call>, StoreError> {
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let statement = client
            .prepare_cached(
                "SELECT call_id, sid, to_number, status, initiated_at, ringing_at, answered_at,
                    completed_at, duration_s
                 FROM legs WHERE call_id = ANY($1)
                 ORDER BY call_id, coalesce(initiated_at, ringing_at, answered_at, completed_at) NULLS FIRST, sid",
            )
            .await?;
        let mut legs: HashMap<i64, Vec<Leg>> = HashMap::new();
        for r in client.query(&statement, &[&ids]).await? {
            legs.entry(r.try_get(0)?).or_default().push(Leg {
                sid: r.try_get(1)?,
                to: r.try_get(2)?,
                status: r.try_get(3)?,
                initiated_at: r.try_get(4)?,
                ringing_at: r.try_get(5)?,
                answered_at: r.try_get(6)?,
                completed_at: r.try_get(7)?,
                duration_s: unsigned(r.try_get(8)?),
            });
        }
        Ok(rows
            .into_iter()
            .map(|(id, mut c)| {
                c.legs = legs.remove(&id).unwrap_or_default();
                c
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl CallLog for PgReads {
    async fn calls(&self, q: CallQuery) -> Result<CallPage, StoreError> {
        let client = self.client().await?;
        let filter = call_filter(&q);
        let total: i64 = client
            .query_one(
                format!("SELECT count(*) FROM calls WHERE {}", filter.sql).as_str(),
                &filter.params(),
            )
            .await?
            .try_get(0)?;
        let total = u64::try_from(total).unwrap_or(0);
        let per_page = q.page_size();
        let page = q.page.max(1);
        let offset = u64::from(page - 1) * u64::from(per_page);
        let rows = client
            .query(
                format!(
                    "SELECT {CALL_COLUMNS} FROM calls WHERE {} ORDER BY started_at DESC, sid DESC
                     LIMIT {per_page} OFFSET {offset}",
                    filter.sql
                )
                .as_str(),
                &filter.params(),
            )
            .await?
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CallPage {
            page,
            per_page,
            total_pages: total.div_ceil(u64::from(per_page)) as u32,
            total_records: total,
            calls: self.with_legs(&client, rows).await?,
        })
    }

    async fn calls_after(
        &self,
        q: CallQuery,
        after: Option<CallCursor>,
    ) -> Result<CallsAfter, StoreError> {
        let client = self.client().await?;
        let mut filter = call_filter(&q);
        if let Some(c) = after {
            // A row comparison: the index on (account, started_at DESC, sid DESC) reads from the
            // cursor on.
            filter.params.push(Box::new(c.started_at));
            filter.params.push(Box::new(c.sid));
            let (at, sid) = (filter.params.len() - 1, filter.params.len());
            filter
                .sql
                .push_str(&format!(" AND (started_at, sid) < (${at}, ${sid})"));
        }
        let per_page = q.page_size() as usize;
        let mut rows = client
            .query(
                format!(
                    "SELECT {CALL_COLUMNS} FROM calls WHERE {} ORDER BY started_at DESC, sid DESC LIMIT {}",
                    filter.sql,
                    per_page + 1
                )
                .as_str(),
                &filter.params(),
            )
            .await?
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = keyset_page(&mut rows, per_page);
        Ok(CallsAfter {
            calls: self.with_legs(&client, rows).await?,
            next,
        })
    }

    async fn call(&self, account: &str, sid: &str) -> Result<Option<Call>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE sid = $1 AND account = $2"
            ))
            .await?;
        let Some(row) = client.query_opt(&statement, &[&sid, &account]).await? else {
            return Ok(None);
        };
        let (id, call) = call_from_row(&row)?;
        let Some(mut call) = self.with_legs(&client, vec![(id, call)]).await?.pop() else {
            return Ok(None);
        };
        let statement = client
            .prepare_cached("SELECT at, kind, body FROM events WHERE call_id = $1 ORDER BY id")
            .await?;
        let mut events = Vec::new();
        for r in client.query(&statement, &[&id]).await? {
            let mut detail: serde_json::Value = r.try_get(2)?;
            if let Some(o) = detail.as_object_mut() {
                o.remove("type");
            }
            events.push(StoredEvent {
                at: r.try_get(0)?,
                kind: r.try_get(1)?,
                detail,
            });
        }
        call.events = Some(events);
        Ok(Some(call))
    }

    async fn traffic(
        &self,
        accounts: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Traffic>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT carrier_account_sid, tracking_number, count(*) FROM calls
                 WHERE account = ANY($1) AND started_at >= $2 GROUP BY 1, 2",
                &[&accounts, &since],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Traffic {
                    carrier_account_sid: r.try_get(0)?,
                    tracking_number: r.try_get(1)?,
                    calls: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError> {
        let client = self.client().await?;
        client
            .query("SELECT key, turns FROM round_robin", &[])
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
                ))
            })
            .collect()
    }
}

//! `dialtone migrate --from sqlite://PATH --to postgres://…`: a single-node installation's
//! SQLite database copied into PostgreSQL while it keeps running.
//!
//! The events are the record: they are read in order and written through the same planner as
//! live appends, so the copy's calls and legs are what PostgreSQL would have projected itself.
//! Each chunk commits with how far the copy has come (`dialtone_copy`), so an interrupted copy
//! resumes where it stopped and writes nothing twice. Keys, backup rules, DNI leases and
//! round-robin turns, which change while the installation runs, are copied last (as upserts, so
//! a second run brings them up to date). Then both sides are counted and the events checksummed.

use std::path::Path;

use chrono::{DateTime, Utc};
use dialtone_core::event::{Event, EventBody};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::{error, migrate, plan, pool};
use crate::{Batch, StoreError, timestamp};

/// Events written per transaction.
const CHUNK: usize = 2_000;

/// How far a copy has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    pub events_copied: u64,
    pub events_total: u64,
}

/// What a finished copy holds, checked on both sides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Events copied by earlier, interrupted runs.
    pub resumed_after: u64,
    pub events: u64,
    pub calls: u64,
    pub api_keys: u64,
    pub backup_rules: u64,
    pub dni_sessions: u64,
    pub round_robin: u64,
    /// SHA-256 of the events in order (sid, time, body), the same on both sides.
    pub events_sha256: String,
}

/// The source: a read-only connection to a SQLite database at dialtone's latest schema.
struct Source(Connection);

impl Source {
    fn open(path: &str) -> Result<Self, StoreError> {
        if !Path::new(path).exists() {
            return Err(StoreError::Invalid(format!("no database at {path}")));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let latest = crate::sqlite::schema_version();
        if version != latest {
            return Err(StoreError::Invalid(format!(
                "{path} is at schema version {version}, not {latest}: run `dialtone migrate --database sqlite://{path}` with this dialtone first"
            )));
        }
        Ok(Self(conn))
    }

    fn count<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<u64, StoreError> {
        let n: i64 = self.0.query_row(sql, params, |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `CHUNK` events after event `after`, with their ids.
    fn events_after(&self, after: i64) -> Result<Vec<(i64, Event)>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, call_sid, at, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![after, CHUNK as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (id, call_sid, at, body) = row?;
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| StoreError::Corrupt(format!("event {id}: time `{at}`: {e}")))?
                .with_timezone(&Utc);
            let body: EventBody = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?;
            events.push((id, Event { call_sid, at, body }));
        }
        Ok(events)
    }
}

/// Copies the SQLite database at `path` into the PostgreSQL database `url` (created tables
/// included), telling `progress` after each chunk.
pub async fn copy_from_sqlite(
    path: &str,
    url: &str,
    progress: &(dyn Fn(CopyProgress) + Send + Sync),
) -> Result<CopyReport, StoreError> {
    let source = Source::open(path)?;
    let pool = pool(url, 1)?;
    migrate::migrate(&pool).await?;
    let mut client = pool.get().await.map_err(error::pool)?;
    let key = format!(
        "sqlite:{}",
        std::fs::canonicalize(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string())
    );
    let resumed: Option<i64> = client
        .query_opt(
            "SELECT events_through FROM dialtone_copy WHERE source = $1",
            &[&key],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let mut through = resumed.unwrap_or(0);
    if resumed.is_none() {
        let held: i64 = client
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .try_get(0)?;
        if held > 0 {
            return Err(StoreError::Invalid(format!(
                "the target database already holds {held} events that are not from {path}: copy into an empty database"
            )));
        }
    }
    let resumed_after = source.count("SELECT count(*) FROM events WHERE id <= ?1", [through])?;
    let mut copied = resumed_after;
    loop {
        let total = source.count("SELECT count(*) FROM events", [])?;
        progress(CopyProgress {
            events_copied: copied,
            events_total: total,
        });
        let chunk = source.events_after(through)?;
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        let n = chunk.len() as u64;
        // dialtone's own write, unsigned: a call said again is logged, not refused.
        let batch = Batch {
            events: chunk.into_iter().map(|(_, e)| e).collect(),
            ..Batch::default()
        };
        let tx = client.transaction().await?;
        let plan = plan::plan(&tx, &[&batch]).await?;
        plan::run(&tx, &plan.ops).await?;
        plan::refresh_outcomes(&tx, &plan.touched).await?;
        tx.execute(
            "INSERT INTO dialtone_copy (source, events_through) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET events_through = excluded.events_through",
            &[&key, &last],
        )
        .await?;
        tx.commit().await?;
        through = last;
        copied += n;
    }
    copy_settings(&source, &mut client).await?;
    verify(&source, &client, through, resumed_after).await
}

/// Keys, backup rules, DNI leases and round-robin turns, as upserts in one transaction.
async fn copy_settings(
    source: &Source,
    client: &mut deadpool_postgres::Object,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let time = |t: String| -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("time `{t}`: {e}")))
    };
    let json = |t: String| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("`{t}`: {e}")))
    };

    let keys = {
        let mut stmt = source
            .0
            .prepare("SELECT hash, account, admin, operator, label, created_at FROM api_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (hash, account, admin, operator, label, created_at) in keys {
        tx.execute(
            "INSERT INTO api_keys (hash, account, admin, operator, label, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
            &[
                &hash,
                &account,
                &admin,
                &operator,
                &label,
                &time(created_at)?,
            ],
        )
        .await?;
    }

    let rules = {
        let mut stmt = source.0.prepare(
            "SELECT id, scope, percent, reason, created_at, expires_at, created_by, ended_at
             FROM backup_rules",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (id, scope, percent, reason, created_at, expires_at, created_by, ended_at) in rules {
        let percent = i32::try_from(percent).unwrap_or(100);
        let ended_at = ended_at.map(time).transpose()?;
        tx.execute(
            "INSERT INTO backup_rules (id, scope, percent, reason, created_at, expires_at, created_by, ended_at)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at",
            &[
                &id,
                &json(scope)?,
                &percent,
                &reason,
                &time(created_at)?,
                &time(expires_at)?,
                &created_by,
                &ended_at,
            ],
        )
        .await?;
    }
    // New rules continue after the copied ones.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('backup_rules', 'id'),
            greatest((SELECT max(id) FROM backup_rules), 1))",
        &[],
    )
    .await?;

    let sessions = {
        let mut stmt = source.0.prepare(
            "SELECT id, secret, account, company, tracker, number, visitor, visit, sharing,
                created_at, seen_at, expires_at, released FROM dni_sessions",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                [
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ],
                r.get::<_, String>(7)?,
                r.get::<_, i64>(8)?,
                [
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ],
                r.get::<_, bool>(12)?,
            ))
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (
        id,
        [secret, account, company, tracker, number, visitor],
        visit,
        sharing,
        times,
        released,
    ) in sessions
    {
        let [created_at, seen_at, expires_at] = times;
        tx.execute(
            "INSERT INTO dni_sessions (id, secret, account, company, tracker, number, visitor, visit,
                sharing, created_at, seen_at, expires_at, released)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,
                expires_at = excluded.expires_at, released = excluded.released",
            &[
                &id,
                &secret,
                &account,
                &company,
                &tracker,
                &number,
                &visitor,
                &json(visit)?,
                &i32::try_from(sharing).unwrap_or(i32::MAX),
                &time(created_at)?,
                &time(seen_at)?,
                &time(expires_at)?,
                &released,
            ],
        )
        .await?;
    }
    // Session ids the nodes reserve continue after the copied ones.
    tx.execute(
        "SELECT setval('dni_session_ids', greatest(
            (SELECT coalesce(max(id), 0) + 1 FROM dni_sessions),
            (SELECT last_value FROM dni_session_ids)))",
        &[],
    )
    .await?;

    let turns = {
        let mut stmt = source.0.prepare("SELECT key, turns FROM round_robin")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for (key, turns) in turns {
        tx.execute(
            "INSERT INTO round_robin (key, turns) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET turns = greatest(round_robin.turns, excluded.turns)",
            &[&key, &turns],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An event as a line both sides write the same: sid, time, and the body with its keys sorted.
fn event_line(call_sid: &str, at: DateTime<Utc>, body: &serde_json::Value) -> String {
    format!("{call_sid}\t{}\t{}\n", timestamp(at), canonical(body))
}

/// JSON with object keys in sorted order, whatever order they were stored in.
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Counts both sides and checksums the events; an error names every difference.
async fn verify(
    source: &Source,
    client: &deadpool_postgres::Object,
    through: i64,
    resumed_after: u64,
) -> Result<CopyReport, StoreError> {
    let mut problems = Vec::new();
    let target = |sql: &'static str| async move {
        let n: i64 = client.query_one(sql, &[]).await?.try_get(0)?;
        Ok::<u64, StoreError>(u64::try_from(n).unwrap_or(0))
    };
    let mut compare = |what: &str, source: u64, target: u64| {
        if source != target {
            problems.push(format!(
                "{what}: {source} in SQLite, {target} in PostgreSQL"
            ));
        }
        target
    };
    let events = compare(
        "events",
        source.count("SELECT count(*) FROM events WHERE id <= ?1", [through])?,
        target("SELECT count(*) FROM events").await?,
    );
    let calls = compare(
        "calls",
        source.count(
            "SELECT count(*) FROM calls c WHERE EXISTS (SELECT 1 FROM events e
                WHERE e.call_id = c.id AND e.kind = 'call_received' AND e.id <= ?1)",
            [through],
        )?,
        target("SELECT count(*) FROM calls").await?,
    );
    let api_keys = compare(
        "API keys",
        source.count("SELECT count(*) FROM api_keys", [])?,
        target("SELECT count(*) FROM api_keys").await?,
    );
    let backup_rules = compare(
        "backup rules",
        source.count("SELECT count(*) FROM backup_rules", [])?,
        target("SELECT count(*) FROM backup_rules").await?,
    );
    let dni_sessions = compare(
        "DNI sessions",
        source.count("SELECT count(*) FROM dni_sessions", [])?,
        target("SELECT count(*) FROM dni_sessions").await?,
    );
    let round_robin = compare(
        "round-robin counters",
        source.count("SELECT count(*) FROM round_robin", [])?,
        target("SELECT count(*) FROM round_robin").await?,
    );

    let mut lite = Sha256::new();
    {
        let mut stmt = source
            .0
            .prepare("SELECT call_sid, at, body FROM events WHERE id <= ?1 ORDER BY id")?;
        let rows = stmt.query_map([through], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (sid, at, body) = row?;
            let at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| StoreError::Corrupt(format!("time `{at}`: {e}")))?
                .with_timezone(&Utc);
            let body: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
            lite.update(event_line(&sid, at, &body).as_bytes());
        }
    }
    let mut pg = Sha256::new();
    for r in client
        .query("SELECT call_sid, at, body FROM events ORDER BY id", &[])
        .await?
    {
        let body: serde_json::Value = r.try_get(2)?;
        pg.update(event_line(&r.try_get::<_, String>(0)?, r.try_get(1)?, &body).as_bytes());
    }
    let (lite, pg) = (lite.finalize(), pg.finalize());
    if lite != pg {
        problems.push("the events differ (their SHA-256 checksums do not match)".to_owned());
    }
    if !problems.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the copy does not match its source: {}",
            problems.join("; ")
        )));
    }
    Ok(CopyReport {
        resumed_after,
        events,
        calls,
        api_keys,
        backup_rules,
        dni_sessions,
        round_robin,
        events_sha256: hex::encode(pg),
    })
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":"s"}],"c":null}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"c":null,"d":[1,{"x":"s","y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":null,"d":[1,{"x":"s","y":2}]},"b":1}"#
        );
    }
}

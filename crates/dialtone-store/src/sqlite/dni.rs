//! DNI sessions and their leases, as the event log wrote them (`project.rs`).

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{SqliteReads, json_at, time_at};
use crate::{DniLeases, StoreError, StoredSession, timestamp};

const SESSION_COLUMNS: &str =
    "id, secret, account, company, tracker, number, visitor, visit, sharing,
    created_at, seen_at, expires_at, released";

fn session_from_row(r: &rusqlite::Row) -> rusqlite::Result<StoredSession> {
    Ok(StoredSession {
        id: r.get::<_, i64>(0)? as u64,
        secret: r.get(1)?,
        account: r.get(2)?,
        company: r.get(3)?,
        tracker: r.get(4)?,
        number: r.get(5)?,
        visitor: r.get(6)?,
        visit: json_at(r, 7)?,
        sharing: r.get(8)?,
        created_at: time_at(r, 9)?,
        seen_at: time_at(r, 10)?,
        expires_at: time_at(r, 11)?,
        released: r.get(12)?,
    })
}

#[async_trait::async_trait]
impl DniLeases for SqliteReads {
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError> {
        self.read(move |conn| {
            let sessions = conn
                .prepare(&format!(
                    "SELECT {SESSION_COLUMNS} FROM dni_sessions WHERE expires_at >= ?1 ORDER BY id"
                ))?
                .query_map([timestamp(since)], session_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let last: Option<i64> =
                conn.query_row("SELECT max(id) FROM dni_sessions", [], |r| r.get(0))?;
            Ok((sessions, last.unwrap_or(0) as u64 + 1))
        })
        .await
    }

    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let number = number.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM dni_sessions
                     WHERE number = ?1 AND created_at <= ?3 AND expires_at >= ?2 ORDER BY id"
                ))?
                .query_map(
                    params![number, timestamp(from), timestamp(to)],
                    session_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

//! DNI sessions and their leases, as the event log wrote them.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::PgReads;
use crate::{DniLeases, StoreError, StoredSession};

const SESSION_COLUMNS: &str = "id, secret, account, company, tracker, number, visitor, visit,
    sharing, created_at, seen_at, expires_at, released";

fn session_from_row(r: &Row) -> Result<StoredSession, StoreError> {
    let id: i64 = r.try_get(0)?;
    let visit: serde_json::Value = r.try_get(7)?;
    Ok(StoredSession {
        id: u64::try_from(id).unwrap_or(0),
        secret: r.try_get(1)?,
        account: r.try_get(2)?,
        company: r.try_get(3)?,
        tracker: r.try_get(4)?,
        number: r.try_get(5)?,
        visitor: r.try_get(6)?,
        visit: serde_json::from_value(visit)
            .map_err(|e| StoreError::Corrupt(format!("DNI session {id}: {e}")))?,
        sharing: u32::try_from(r.try_get::<_, i32>(8)?).unwrap_or(0),
        created_at: r.try_get(9)?,
        seen_at: r.try_get(10)?,
        expires_at: r.try_get(11)?,
        released: r.try_get(12)?,
    })
}

/// Ids per block a node reserves (the sequence's increment, migration 0003).
const SESSION_ID_BLOCK: u64 = 100;

#[async_trait::async_trait]
impl DniLeases for PgReads {
    async fn dni_sessions(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(Vec<StoredSession>, u64), StoreError> {
        let client = self.client().await?;
        let sessions = client
            .query(
                format!(
                    "SELECT {SESSION_COLUMNS} FROM dni_sessions WHERE expires_at >= $1 ORDER BY id"
                )
                .as_str(),
                &[&since],
            )
            .await?
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let last: i64 = client
            .query_one("SELECT coalesce(max(id), 0) FROM dni_sessions", &[])
            .await?
            .try_get(0)?;
        Ok((sessions, u64::try_from(last).unwrap_or(0) + 1))
    }

    async fn reserve_session_ids(&self) -> Result<Option<std::ops::Range<u64>>, StoreError> {
        let client = self.client().await?;
        let first: i64 = client
            .query_one("SELECT nextval('dni_session_ids')", &[])
            .await?
            .try_get(0)?;
        let first = u64::try_from(first).unwrap_or(1);
        Ok(Some(first..first + SESSION_ID_BLOCK))
    }

    async fn dni_leases(
        &self,
        number: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM dni_sessions
                 WHERE number = $1 AND created_at <= $3 AND expires_at >= $2 ORDER BY id"
            ))
            .await?;
        client
            .query(&statement, &[&number, &from, &to])
            .await?
            .iter()
            .map(session_from_row)
            .collect()
    }
}

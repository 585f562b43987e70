//! Backup routing rules.

use chrono::{DateTime, Utc};
use dialtone_core::backup::BackupRule;
use rusqlite::params;

use super::{SqliteReads, json_at, time_at};
use crate::{BackupRules, StoreError, timestamp};

#[async_trait::async_trait]
impl BackupRules for SqliteReads {
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError> {
        let now = timestamp(now);
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, scope, percent, reason, created_at, expires_at, created_by FROM backup_rules
                 WHERE ended_at IS NULL AND expires_at > ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([now], |r| {
                Ok(BackupRule {
                    id: r.get(0)?,
                    scope: json_at(r, 1)?,
                    percent: u8::try_from(r.get::<_, i64>(2)?).unwrap_or(100),
                    reason: r.get(3)?,
                    created_at: time_at(r, 4)?,
                    expires_at: time_at(r, 5)?,
                    created_by: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError> {
        let rule = rule.clone();
        let scope =
            serde_json::to_string(&rule.scope).map_err(|e| StoreError::Invalid(e.to_string()))?;
        // Rare and not on the call path: a reader connection may write (WAL serialises writers).
        self.read(move |conn| {
            conn.execute(
                "INSERT INTO backup_rules (scope, percent, reason, created_at, expires_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    scope,
                    rule.percent,
                    rule.reason,
                    timestamp(rule.created_at),
                    timestamp(rule.expires_at),
                    rule.created_by
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.read(move |conn| {
            let n = conn.execute(
                "UPDATE backup_rules SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                params![id, timestamp(at)],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

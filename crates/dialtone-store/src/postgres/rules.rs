//! Backup routing rules.

use chrono::{DateTime, Utc};
use dialtone_core::backup::BackupRule;

use super::PgReads;
use crate::{BackupRules, StoreError};

#[async_trait::async_trait]
impl BackupRules for PgReads {
    async fn backup_rules(&self, now: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, scope, percent, reason, created_at, expires_at, created_by FROM backup_rules
                 WHERE ended_at IS NULL AND expires_at > $1 ORDER BY id",
                &[&now],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0)?;
                let scope: serde_json::Value = r.try_get(1)?;
                Ok(BackupRule {
                    id,
                    scope: serde_json::from_value(scope)
                        .map_err(|e| StoreError::Corrupt(format!("backup rule {id}: {e}")))?,
                    percent: u8::try_from(r.try_get::<_, i32>(2)?).unwrap_or(100),
                    reason: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    created_by: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn add_backup_rule(&self, rule: &BackupRule) -> Result<i64, StoreError> {
        let scope =
            serde_json::to_value(&rule.scope).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let client = self.client().await?;
        Ok(client
            .query_one(
                "INSERT INTO backup_rules (scope, percent, reason, created_at, expires_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &scope,
                    &i32::from(rule.percent),
                    &rule.reason,
                    &rule.created_at,
                    &rule.expires_at,
                    &rule.created_by,
                ],
            )
            .await?
            .try_get(0)?)
    }

    async fn end_backup_rule(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE backup_rules SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
                &[&id, &at],
            )
            .await?;
        Ok(n > 0)
    }
}

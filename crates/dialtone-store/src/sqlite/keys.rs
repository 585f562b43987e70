//! API keys, kept as hashes.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::SqliteReads;
use crate::{ApiKey, ApiKeys, StoreError, hash_key, timestamp};

#[async_trait::async_trait]
impl ApiKeys for SqliteReads {
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash_key(key);
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT account, admin, operator FROM api_keys WHERE hash = ?1")?
                .query_row([hash], |r| {
                    Ok(ApiKey {
                        account: r.get(0)?,
                        admin: r.get(1)?,
                        operator: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (hash, scope, label) = (hash_key(key), scope.clone(), label.to_owned());
        // Rare and not on the call path: a reader connection may write (WAL serialises writers).
        self.read(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (hash, account, admin, operator, label, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (hash) DO NOTHING",
                params![
                    hash,
                    scope.account,
                    scope.admin,
                    scope.operator,
                    label,
                    timestamp(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn has_accounts(&self) -> Result<bool, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
        })
        .await
    }
}

//! API keys, kept as hashes.

use chrono::{DateTime, Utc};

use super::PgReads;
use crate::{ApiKey, ApiKeys, StoreError, hash_key};

#[async_trait::async_trait]
impl ApiKeys for PgReads {
    async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT account, admin, operator FROM api_keys WHERE hash = $1")
            .await?;
        let Some(r) = client.query_opt(&statement, &[&hash_key(key)]).await? else {
            return Ok(None);
        };
        Ok(Some(ApiKey {
            account: r.try_get(0)?,
            admin: r.try_get(1)?,
            operator: r.try_get(2)?,
        }))
    }

    async fn create_api_key(
        &self,
        key: &str,
        scope: &ApiKey,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO api_keys (hash, account, admin, operator, label, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
                &[
                    &hash_key(key),
                    &scope.account,
                    &scope.admin,
                    &scope.operator,
                    &label,
                    &now,
                ],
            )
            .await?;
        Ok(())
    }

    async fn has_accounts(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT EXISTS (SELECT 1 FROM api_keys)", &[])
            .await?
            .try_get(0)?)
    }
}

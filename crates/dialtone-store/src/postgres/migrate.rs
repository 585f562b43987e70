//! dialtone's schema on PostgreSQL: numbered migrations, applied once each, in order, by
//! whichever node starts first (the others wait on an advisory lock).

use deadpool_postgres::Pool;

use super::error;
use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_call_log.sql"),
    include_str!("../../migrations/postgres/0002_copy.sql"),
    include_str!("../../migrations/postgres/0003_claims.sql"),
    include_str!("../../migrations/postgres/0004_spools.sql"),
    include_str!("../../migrations/postgres/0005_first_calls.sql"),
    include_str!("../../migrations/postgres/0006_call_changes.sql"),
];

/// The advisory lock migrations hold (any fixed number; "dialtone" in ASCII).
const LOCK: i64 = 0x6469_616c_746f_6e65;

pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(error::pool)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dialtone_schema (
            version     integer PRIMARY KEY,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM dialtone_schema", &[])
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(StoreError::Invalid(format!(
            "the database is at schema version {applied}, newer than this dialtone knows ({known}): \
             run the dialtone that upgraded it, or a newer one"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO dialtone_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(migration = version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}

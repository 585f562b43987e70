//! What PostgreSQL's errors mean for dialtone, by SQLSTATE class: unavailable (retry later), the
//! data refused, the database unreadable, or a bug in a query.

use crate::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No answer from the server: the connection is gone, or a value did not convert.
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            return if e.is_closed() || io {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Query(e.to_string())
            };
        };
        let code = db.code().code();
        let text = format!("{code}: {}", db.message());
        match code.get(..2).unwrap_or_default() {
            // Connection, insufficient resources, operator intervention, system error, rollback
            // (serialization failure, deadlock): nothing wrong with the data.
            "08" | "53" | "57" | "58" | "40" => StoreError::Unavailable(text),
            // Integrity constraint, data exception.
            "23" | "22" => StoreError::Rejected(text),
            _ if code == "XX001" || code == "XX002" => StoreError::Corrupt(text),
            _ => StoreError::Query(text),
        }
    }
}

/// The database said no to the data itself: the writer retries such an append alone, so it
/// cannot fail its neighbours.
pub(super) fn refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code().get(..2), Some("23" | "22")))
}

/// No connection could be had from the pool.
pub(super) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
        e => StoreError::Unavailable(e.to_string()),
    }
}

//! The PostgreSQL backend, for several `dialtone serve` nodes sharing one database: a
//! group-commit event log ([`writer`]) in front of a pool of reader connections, one module per
//! concern as in the SQLite backend.
//!
//! A commit is durable when PostgreSQL acknowledges it (`synchronous_commit` as the server is
//! configured; its default, `on`, waits for the WAL flush). One writer task per node takes every
//! append waiting and sends the commit's statements pipelined: a commit costs a few round trips
//! however many calls it holds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub(crate) mod bus;
mod calls;
mod copy;
mod dni;
mod error;
mod keys;
mod migrate;
mod plan;
mod rules;
mod spool;
mod writer;

pub use copy::{CopyProgress, CopyReport, copy_from_sqlite};

use crate::{Layered, StoreError, WriterStats};

/// Reader connections in the pool (the writer has its own).
const READERS: usize = 8;

/// Connects to the database `url` names, applies dialtone's migrations, and starts the writer.
/// With a `spool_dir`, events the database cannot take are also kept on this node's disk there
/// ([`spool`]), and what earlier runs left there is written back first.
pub async fn open(url: &str, spool_dir: Option<&Path>) -> Result<Layered, StoreError> {
    let readers = pool(url, READERS)?;
    migrate::migrate(&readers).await?;
    let counters = Arc::new(Counters::default());
    let spool = match spool_dir {
        Some(dir) => Some(spool::Spool::adopt(dir).map_err(|e| {
            StoreError::Invalid(format!("the spool directory {}: {e}", dir.display()))
        })?),
        None => None,
    };
    let log = writer::GroupCommit::start(pool(url, 1)?, counters.clone(), spool);
    Ok(Layered::new(
        Arc::new(log),
        Arc::new(PgReads { pool: readers }),
    ))
}

/// A pool of up to `size` connections to `url`.
fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = Manager::from_config(config, NoTls, manager_config);
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| StoreError::Invalid(format!("database pool: {e}")))
}

/// The writer's gauges.
#[derive(Default)]
struct Counters {
    events: AtomicU64,
    commits: AtomicU64,
    failed_commits: AtomicU64,
    spooled: AtomicU64,
    spilled_bytes: AtomicU64,
}

impl Counters {
    fn stats(&self) -> WriterStats {
        WriterStats {
            events: self.events.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            ..WriterStats::default()
        }
    }
}

/// The pool the reads use.
pub(crate) struct PgReads {
    pool: Pool,
}

impl PgReads {
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(error::pool)
    }
}

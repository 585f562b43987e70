//! What an append waiting for a group-commit writer is, the same for every backend: its batch,
//! and where to tell its caller how the commit went.

use tokio::sync::oneshot;

use crate::{Batch, StoreError};

/// Appends a writer may hold in its queue before callers wait to queue theirs.
pub(crate) const QUEUE_BOUND: usize = 65_536;

pub(crate) struct Append {
    pub(crate) batch: Batch,
    pub(crate) done: oneshot::Sender<Result<(), StoreError>>,
}

/// Queues `batch` for the writer behind `queue` and waits for the commit it lands in.
pub(crate) async fn append_and_wait(
    queue: &flume::Sender<Append>,
    batch: Batch,
) -> Result<(), StoreError> {
    let (done, wait) = oneshot::channel();
    queue
        .send_async(Append { batch, done })
        .await
        .map_err(|_| StoreError::WriterGone)?;
    wait.await.map_err(|_| StoreError::WriterGone)?
}

//! Group commit on tokio: appends from many producers coalesced into one
//! write and one fdatasync, each acknowledged once that sync returns.

use std::future::Future;
use std::sync::Arc;

use raft_proto::eraftpb::Entry;
use tokio::sync::{mpsc, oneshot};

use crate::error::WalError;
use crate::storage::WalStorage;

struct Request {
    entries: Vec<Entry>,
    done: oneshot::Sender<Result<(), Arc<WalError>>>,
}

/// A handle producers append through; clones share one committer.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<Request>,
}

impl GroupCommit {
    /// Starts the committer task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(storage: WalStorage) -> GroupCommit {
        let (requests, mut queue) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = queue.try_recv() {
                    batch.push(more);
                }
                let storage = storage.clone();
                let (batch, outcomes) = tokio::task::spawn_blocking(move || {
                    let outcomes = commit(&storage, &batch);
                    (batch, outcomes)
                })
                .await
                .expect("the commit task does not panic");
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.done.send(outcome);
                }
            }
        });
        GroupCommit { requests }
    }

    /// Queues `entries` for appending at once (so producers that take turns
    /// keep their order); the returned future resolves once they are
    /// durable.
    ///
    /// # Errors
    ///
    /// The append's rejection, or the write's or sync's I/O error (shared by
    /// every request of that group).
    pub fn append(&self, entries: Vec<Entry>) -> impl Future<Output = Result<(), Arc<WalError>>> {
        let (done, outcome) = oneshot::channel();
        let queued = self.requests.send(Request { entries, done });
        async move {
            let stopped = || Arc::new(WalError::Stopped("the committer stopped".into()));
            queued.map_err(|_| stopped())?;
            outcome.await.map_err(|_| stopped())?
        }
    }
}

/// One write and one fdatasync for every request of the group.
fn commit(storage: &WalStorage, batch: &[Request]) -> Vec<Result<(), Arc<WalError>>> {
    let slices: Vec<&[Entry]> = batch.iter().map(|r| r.entries.as_slice()).collect();
    let written = storage.append_batches(&slices).and_then(|outcomes| {
        storage.sync()?;
        Ok(outcomes)
    });
    match written {
        Ok(outcomes) => outcomes.into_iter().map(|o| o.map_err(Arc::new)).collect(),
        Err(e) => {
            let e = Arc::new(e);
            batch.iter().map(|_| Err(Arc::clone(&e))).collect()
        }
    }
}

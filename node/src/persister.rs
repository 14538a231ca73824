//! Asynchronous persistence (`--persist async`): the Ready loop writes a
//! Ready's entries and hard state to the WAL, hands raft the Ready with
//! `advance_append_async`, and goes on to the next one while this task
//! waits for the fdatasync; `on_persist_ready` and the Ready's persisted
//! messages follow once it returns.
//!
//! Jobs finish in order, and all the jobs queued while one fdatasync ran
//! share the next one: each [`DetachedSync`] covers every write before it,
//! so waiting on the last covers them all (group commit).

use std::sync::Arc;

use raft_proto::eraftpb::Message;
use raft_wal_storage::{DetachedSync, WalError};
use tokio::sync::mpsc;

use crate::handle::Input;
use crate::metrics::Metrics;

/// One Ready handed to raft with `advance_append_async`.
pub struct PersistJob {
    /// The Ready's number.
    pub number: u64,
    /// The sync covering its writes; `None` if it wrote nothing, in which
    /// case it only waits for the jobs before it.
    pub sync: Option<DetachedSync>,
    /// Messages to send once durable.
    pub messages: Vec<Message>,
    /// Raft entries it wrote.
    pub entries: u64,
}

/// What the loop hears back: every Ready up to `number` is durable (or the
/// WAL failed, which stops the node).
pub struct Persisted {
    /// The highest Ready number now durable.
    pub number: u64,
    /// Their persisted messages, in Ready order.
    pub messages: Vec<Message>,
    /// The fdatasync's outcome.
    pub result: Result<(), Arc<WalError>>,
}

/// Runs until the loop drops its sender.
pub async fn run(
    mut jobs: mpsc::Receiver<PersistJob>,
    inbox: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while let Ok(more) = jobs.try_recv() {
            group.push(more);
        }
        let number = group.last().map_or(0, |j| j.number);
        let entries: u64 = group.iter().map(|j| j.entries).sum();
        let mut messages = Vec::new();
        let mut last_sync = None;
        for job in group {
            messages.extend(job.messages);
            if job.sync.is_some() {
                last_sync = job.sync;
            }
        }
        let result = match last_sync {
            Some(sync) => {
                let synced = tokio::task::spawn_blocking(move || sync.wait())
                    .await
                    .expect("an fdatasync returns errors, it does not panic");
                metrics.fsyncs.inc();
                metrics.entries_per_fsync.observe(entries as f64);
                synced.map_err(Arc::new)
            }
            None => Ok(()),
        };
        let persisted = Persisted {
            number,
            messages,
            result,
        };
        if inbox
            .send(Input::Persisted(Box::new(persisted)))
            .await
            .is_err()
        {
            return;
        }
    }
}

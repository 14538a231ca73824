//! Group commit: many producers' appends share writes and fdatasyncs, and
//! each is acknowledged only once durable.

mod common;

use std::sync::Arc;

use raft::Storage;
use raft_wal_storage::{GroupCommit, WalError, WalOptions, WalStorage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fdatasyncs_and_are_durable_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    let group = GroupCommit::spawn(store.clone());
    // 64 producers append 16 entries each, one at a time: each takes the
    // next index and queues its append under a lock, so the log stays
    // consecutive, and waits for durability outside it.
    let next = Arc::new(tokio::sync::Mutex::new(1u64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (group, next) = (group.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..16 {
                let ack = {
                    let mut next = next.lock().await;
                    let index = *next;
                    *next += 1;
                    group.append(common::entries(index, index, 1))
                };
                ack.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.last_index().unwrap(), 1024);
    let syncs = store.syncs();
    assert!(syncs < 1024, "{syncs} fdatasyncs for 1024 appends");
    drop((group, store));
    let reopened = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(reopened.last_index().unwrap(), 1024);
}

#[tokio::test]
async fn a_bad_append_is_rejected_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    let group = GroupCommit::spawn(store.clone());
    group.append(common::entries(1, 5, 1)).await.unwrap();
    let gap = group.append(common::entries(9, 9, 1)).await;
    assert!(
        matches!(gap.as_ref().map_err(|e| &**e), Err(WalError::Rejected(_))),
        "{gap:?}"
    );
    group.append(common::entries(6, 6, 1)).await.unwrap();
    assert_eq!(store.last_index().unwrap(), 6);
}

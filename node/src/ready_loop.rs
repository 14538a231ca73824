//! The Ready loop: the one task that owns the `RawNode`.
//!
//! Users come here to see how raft-rs 0.7 is driven, so the steps of
//! [`ReadyLoop::handle_ready`] follow the order raft-rs documents for
//! `RawNode::ready`, each with the reason it sits where it does.
//!
//! Batching: the loop takes every request already queued before it asks
//! for a Ready, so one Ready (one WAL write, one fdatasync) carries all the
//! proposals that arrived while the previous one was being persisted.
//!
//! Blocking: WAL calls (writes, fdatasync) run on tokio's blocking pool,
//! never on a runtime thread; the loop awaits them, so the `RawNode` is
//! untouched while the disk works.
//!
//! This file is the loop itself: inputs, the Ready's steps, persistence
//! and applying entries. Appends waiting for their entry are in
//! [`appends`], reads waiting on ReadIndex in [`reads`], membership changes and leader transfers in [`changes`], snapshots in
//! [`snapshots`].

mod appends;
mod changes;
mod reads;
mod snapshots;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use raft::{RawNode, Ready, StateRole, Storage};
use raft_proto::eraftpb::{ConfState, Entry, HardState, Message, MessageType};
use raft_wal_storage::{WalError, WalStorage};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::entry::{self, Decoded, Undecodable};
use crate::error::NodeError;
use crate::handle::{Appended, Input, Membership, Origin, RequestError, Status};
use crate::metrics::Metrics;
use crate::persister::PersistJob;
use crate::request_id::RequestIds;
use crate::state_machine::{Proposal, RecordLog, Retention};
use crate::transport::Peers;
use appends::PendingAppends;
use reads::PendingReads;

/// Requests taken into one Ready at most, so a flood of clients cannot
/// starve ticks and peer messages.
const INPUTS_PER_READY: usize = 4096;

/// Where the answer to a request goes.
type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// Whether a message answers one of ours.
fn is_response(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::MsgAppendResponse
            | MessageType::MsgHeartbeatResponse
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVoteResponse
            | MessageType::MsgReadIndexResp
    )
}

/// A Ready's entries and hard state, written (not yet synced).
fn write_ready(
    store: &WalStorage,
    entries: &[Entry],
    hard_state: Option<HardState>,
) -> Result<(), WalError> {
    if !entries.is_empty() {
        store.append(entries)?;
    }
    if let Some(hs) = hard_state {
        store.set_hard_state(hs)?;
    }
    Ok(())
}

/// The loop's state besides the `RawNode`.
pub struct ReadyLoop {
    raw: RawNode<WalStorage>,
    store: WalStorage,
    log: Arc<RwLock<RecordLog>>,
    peers: Peers,
    metrics: Arc<Metrics>,
    inbox: mpsc::Receiver<Input>,
    /// A sender into `inbox`, for work the loop hands off.
    own_inbox: mpsc::Sender<Input>,
    tick: Duration,
    snapshot_entries: u64,
    retention: Retention,
    log_tail_entries: u64,
    /// The configuration as of the applied index.
    conf_state: ConfState,
    /// `Some` with `--persist async`: where Readies go to be synced.
    persist_jobs: Option<mpsc::Sender<PersistJob>>,
    /// Invariant: `last_snapshot <= applied`.
    last_snapshot: u64,
    /// A member was added since the last snapshot: the kept snapshot does
    /// not name it, and a new node ignores a snapshot whose configuration
    /// leaves it out, so the next one is taken at once.
    member_added: bool,
    /// A snapshot is being written off the loop.
    snapshot_in_flight: bool,
    leader: u64,
    request_ids: RequestIds,
    appends: PendingAppends,
    changes: HashMap<u64, Reply<Membership>>,
    reads: PendingReads,
    /// Committed entries to apply as empty although they do not decode
    /// (`--skip-undecodable-entry`).
    skip_undecodable: Vec<u64>,
}

impl ReadyLoop {
    /// The loop of a node whose records were restored up to the WAL's
    /// snapshot (`log.applied()`).
    ///
    /// # Errors
    ///
    /// The WAL's stored state cannot be read.
    pub fn new(
        raw: RawNode<WalStorage>,
        log: Arc<RwLock<RecordLog>>,
        peers: Peers,
        metrics: Arc<Metrics>,
        inbox: (mpsc::Sender<Input>, mpsc::Receiver<Input>),
        config: &NodeConfig,
        persist_jobs: Option<mpsc::Sender<PersistJob>>,
    ) -> Result<ReadyLoop, NodeError> {
        let store = raw.store().clone();
        // The records are restored to the snapshot, and the entries after
        // it are applied again: its configuration is the applied one.
        let conf_state = store
            .snapshot(0, raw.raft.id)?
            .get_metadata()
            .get_conf_state()
            .clone();
        let applied = log.read().unwrap_or_else(|e| e.into_inner()).applied();
        let request_ids = RequestIds::new(raw.raft.id);
        Ok(ReadyLoop {
            raw,
            store,
            log,
            peers,
            metrics,
            own_inbox: inbox.0,
            inbox: inbox.1,
            tick: Duration::from_millis(config.tick_ms),
            snapshot_entries: config.snapshot_entries,
            retention: config.retention(),
            log_tail_entries: config.log_tail_entries,
            conf_state,
            persist_jobs,
            last_snapshot: applied,
            member_added: false,
            snapshot_in_flight: false,
            leader: 0,
            request_ids,
            appends: PendingAppends::default(),
            changes: HashMap::new(),
            reads: PendingReads::default(),
            skip_undecodable: config.skip_undecodable_entries.clone(),
        })
    }

    /// Runs until `stop` is cancelled or a fatal error.
    ///
    /// # Errors
    ///
    /// WAL failures and undecodable committed data: the node must not go on
    /// after either.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = ticker.tick() => self.on_tick(),
                // Never closed: the loop holds a sender of its own.
                Some(input) = self.inbox.recv() => self.on_input(input)?,
            }
            for _ in 0..INPUTS_PER_READY {
                match self.inbox.try_recv() {
                    Ok(input) => self.on_input(input)?,
                    Err(_) => break,
                }
            }
            if self.raw.has_ready() {
                self.handle_ready().await?;
            }
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        // Callers that gave up (timed out) no longer need an answer.
        self.appends.forget_abandoned();
        self.changes.retain(|_, r| !r.is_closed());
        self.reads.forget_abandoned();
    }

    fn on_input(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Raft(msg) => {
                // A response proves that our messages reach the peer.
                if is_response(msg.get_msg_type()) {
                    self.peers.heard_from(msg.from);
                }
                // A proposal forwarded by a follower is checked before raft
                // takes it: what does not decode must never be committed.
                if msg.get_msg_type() == MessageType::MsgPropose {
                    if let Some((at, reason)) = entry::first_undecodable(msg.get_entries()) {
                        warn!(
                            "refusing a proposal forwarded by node {}: entry {at} of {} does not decode ({reason})",
                            msg.from,
                            msg.get_entries().len()
                        );
                        self.metrics.undecodable_proposals_refused.inc();
                        return Ok(());
                    }
                }
                if let Err(e) = self.raw.step(*msg) {
                    // Messages from removed or unknown peers, stale
                    // responses: raft ignores them, and so do we.
                    tracing::debug!("step: {e}");
                }
            }
            Input::Append {
                records,
                origin,
                reply,
            } => self.propose_append(records, origin, reply),
            Input::ReadBarrier { reply } => {
                let ctx = self.request_ids.next_read_ctx();
                self.reads.ask(&mut self.raw, ctx, reply);
            }
            Input::ChangeMembership { change, reply } => self.propose_change(change, reply),
            Input::TransferLeader { to, reply } => self.transfer_leader(to, reply),
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotSent(id, status) => self.raw.report_snapshot(id, status),
            Input::SnapshotWritten { index, result } => self.on_snapshot_written(index, result)?,
            Input::Persisted(persisted) => {
                persisted.result.map_err(NodeError::Persist)?;
                self.raw.on_persist_ready(persisted.number);
                self.advance_apply_async();
                self.send(persisted.messages);
            }
        }
        Ok(())
    }

    fn propose_append(
        &mut self,
        records: Vec<bytes::Bytes>,
        origin: Origin,
        reply: Reply<Appended>,
    ) {
        if self.leader == 0 {
            let _ = reply.send(Err(RequestError::NoLeader));
            return;
        }
        if origin.at_leader_only && self.leader != self.raw.raft.id {
            let _ = reply.send(Err(RequestError::NotLeader(self.leader)));
            return;
        }
        let seq = self.request_ids.next_key();
        let data = Proposal {
            proposer: self.raw.raft.id,
            seq,
            records,
        }
        .encode();
        // A follower forwards the proposal to the leader; either way the
        // answer comes when this node applies the entry.
        self.appends
            .propose(&mut self.raw, seq, (data, origin.producer), reply);
    }

    /// One pass over a Ready, in raft-rs's documented order.
    async fn handle_ready(&mut self) -> Result<(), NodeError> {
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        // 1. A leader's messages (appends, heartbeats) go out before it
        //    persists: followers write in parallel with the leader's own
        //    fsync, which raft allows because the leader counts itself only
        //    once its entries are durable.
        self.send(ready.take_messages());
        // 2. A snapshot from the leader replaces the log and the records.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot().clone()).await?;
        }
        // 3. Committed entries: raft 0.7 hands out only entries that are
        //    already durable here, so applying before this Ready's fsync is
        //    safe.
        self.apply(ready.take_committed_entries()).await?;
        // 4. Reads whose index the leader confirmed wait until applied;
        //    those raft dropped with a former leader fail now.
        let (leader, term) = (self.raw.raft.leader_id, self.raw.raft.term);
        self.reads.on_ready(ready.take_read_states(), leader, term);
        // 5.-7. New entries and the hard state: one write, then
        //    durability, then what had to wait for it.
        match self.persist_jobs.clone() {
            None => self.persist_and_advance(ready).await?,
            Some(jobs) => self.persist_async(ready, jobs).await?,
        }
        self.reads.serve(self.applied());
        self.appends.retry_lost(&mut self.raw, &self.metrics);
        self.maybe_snapshot()?;
        self.update_gauges();
        Ok(())
    }

    /// Steps 5-7 with `--persist sync`: the loop waits for the fdatasync.
    async fn persist_and_advance(&mut self, mut ready: Ready) -> Result<(), NodeError> {
        // 5. One write and, unless the Ready only moves the commit index
        //    (`must_sync` is false), one fdatasync.
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        if !entries.is_empty() || hard_state.is_some() {
            self.persist(entries, hard_state, ready.must_sync()).await?;
        }
        // 6. Messages that must follow durability: votes and append
        //    responses promise what is now on disk.
        self.send(ready.take_persisted_messages());
        // 7. Advance; the light ready carries what the persisted entries
        //    made committable.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            // The commit index is a hint that recovery can rebuild; it
            // rides along with the next fsync rather than forcing one.
            let mut hs: HardState = self.raw.raft.hard_state();
            hs.commit = commit;
            self.on_disk(move |s| s.set_hard_state(hs)).await?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries()).await?;
        self.raw.advance_apply();
        Ok(())
    }

    /// Steps 5-7 with `--persist async`: the write happens now (raft
    /// reads the entries back from the WAL before they are durable), the
    /// fdatasync on the persister, and the persisted messages when it
    /// reports back ([`Input::Persisted`]).
    async fn persist_async(
        &mut self,
        mut ready: Ready,
        jobs: mpsc::Sender<PersistJob>,
    ) -> Result<(), NodeError> {
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        let count = entries.len() as u64;
        // A Ready that only moves the commit index needs no fdatasync; its
        // job then waits for the jobs before it, and the next sync covers
        // its write.
        let must_sync = ready.must_sync();
        let sync = self
            .on_disk(move |s| {
                write_ready(s, &entries, hard_state)?;
                if must_sync {
                    s.sync_detached()
                } else {
                    Ok(None)
                }
            })
            .await?;
        self.metrics.entries_persisted.inc_by(count);
        let job = PersistJob {
            number: ready.number(),
            sync,
            messages: ready.take_persisted_messages(),
            entries: count,
        };
        self.raw.advance_append_async(ready);
        self.advance_apply_async();
        // The persister only stops when the loop does.
        let _ = jobs.send(job).await;
        Ok(())
    }

    /// With `--persist async`, a snapshot is applied to the records when
    /// its Ready is handled but is durable only once the persister says
    /// so, and raft refuses an applied index past what is persisted
    /// (`applied_to` is fatal there: seen in nemesis seed 30). So the
    /// applied index raft hears is the records' one, capped at the
    /// persisted index, and raised again when a persist completes.
    fn advance_apply_async(&mut self) {
        let log = &self.raw.raft.raft_log;
        let applied = self.log.read().unwrap_or_else(|e| e.into_inner()).applied();
        let to = applied.min(log.persisted).max(log.applied);
        self.raw.advance_apply_to(to);
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        if leader != self.leader {
            if leader != 0 {
                self.metrics.leader_changes.inc();
                info!("leader is now node {leader} (this node is {role:?})");
            }
            self.leader = leader;
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let undelivered = self.peers.send(msgs);
        for id in undelivered.unreachable {
            self.raw.report_unreachable(id);
        }
        // A dropped snapshot left unreported would keep the follower in
        // Snapshot state, waiting for a report that never comes.
        for id in undelivered.snapshots {
            self.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
        }
    }

    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WalStorage) -> Result<T, WalError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let store = self.store.clone();
        let done = tokio::task::spawn_blocking(move || f(&store))
            .await
            .expect("WAL calls return errors, they do not panic");
        Ok(done?)
    }

    async fn persist(
        &mut self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        must_sync: bool,
    ) -> Result<(), NodeError> {
        let count = entries.len() as u64;
        self.on_disk(move |s| {
            write_ready(s, &entries, hard_state)?;
            if must_sync {
                s.sync()?;
            }
            Ok(())
        })
        .await?;
        if !must_sync {
            return Ok(());
        }
        self.metrics.fsyncs.inc();
        self.metrics.entries_persisted.inc_by(count);
        self.metrics.entries_per_fsync.observe(count as f64);
        Ok(())
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        for entry in entries {
            self.appends.on_applied_term(entry.term);
            let decoded = match entry::decode(&entry) {
                Ok(decoded) => decoded,
                Err(reason) if self.skip_undecodable.contains(&entry.index) => {
                    warn!(
                        "committed entry {} (term {}) does not decode ({reason}); applied as empty, as --skip-undecodable-entry says",
                        entry.index, entry.term
                    );
                    Decoded::Empty
                }
                Err(reason) => {
                    return Err(Undecodable {
                        index: entry.index,
                        term: entry.term,
                        reason,
                    }
                    .into())
                }
            };
            match decoded {
                Decoded::Empty => self.write_log().skip(entry.index),
                Decoded::Records(proposal) => self.apply_records(&entry, proposal),
                Decoded::Change(cc) => self.apply_change(entry.index, cc).await?,
            }
        }
        Ok(())
    }

    /// The records' applied index.
    fn applied(&self) -> u64 {
        self.log.read().unwrap_or_else(|e| e.into_inner()).applied()
    }

    fn write_log(&self) -> std::sync::RwLockWriteGuard<'_, RecordLog> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_records(&mut self, entry: &Entry, proposal: Proposal) {
        if !Proposal::in_stamped_term(&entry.context, entry.term) {
            // A proposal carried into another term (by a deposed leader
            // forwarding it on): its proposer proposes it again once it is
            // lost, so it must not be stored here too.
            self.metrics.stale_proposals_skipped.inc();
            self.write_log().skip(entry.index);
            return;
        }
        let stored = match Proposal::producer(&entry.context) {
            Some(producer) => self
                .write_log()
                .apply_batch(entry.index, &producer, &proposal.records)
                .map_err(RequestError::from),
            None => Ok(self.write_log().apply(entry.index, &proposal.records)),
        };
        if proposal.proposer == self.raw.raft.id {
            let appended = stored.map(|offset| Appended {
                offset,
                count: proposal.records.len() as u64,
                index: entry.index,
            });
            self.appends
                .on_applied(proposal.seq, appended, &self.metrics);
        }
    }

    fn status(&self) -> Status {
        let log = self.log.read().unwrap_or_else(|e| e.into_inner());
        Status {
            id: self.raw.raft.id,
            leader: self.leader,
            role: format!("{:?}", self.raw.raft.state),
            term: self.raw.raft.term,
            commit: self.raw.raft.raft_log.committed,
            applied: log.applied(),
            last_index: self.raw.raft.raft_log.last_index(),
            records: log.end(),
            membership: self.membership(),
        }
    }

    fn update_gauges(&self) {
        let log = self.log.read().unwrap_or_else(|e| e.into_inner());
        self.metrics.applied_index.set(log.applied() as i64);
        self.metrics.records.set(log.end() as i64);
        self.metrics
            .commit_index
            .set(self.raw.raft.raft_log.committed as i64);
        self.metrics.term.set(self.raw.raft.term as i64);
        self.metrics.wal_syncs.set(self.store.syncs() as i64);
    }
}

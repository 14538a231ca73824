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

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::{RawNode, Ready, StateRole, Storage};
use raft_proto::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    HardState, Message, Snapshot,
};
use raft_proto::ConfChangeI;
use raft_wal_storage::{WalError, WalStorage};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::membership::{self, Verdict};
use crate::request_id::RequestIds;

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::handle::{Appended, Input, Membership, MembershipChange, RequestError, Status};
use crate::metrics::Metrics;
use crate::persister::PersistJob;
use crate::state_machine::{Proposal, RecordLog};
use crate::transport::Peers;

/// Requests taken into one Ready at most, so a flood of clients cannot
/// starve ticks and peer messages.
const INPUTS_PER_READY: usize = 4096;

/// What a membership change carries in its `context`, so the node that
/// proposed it can answer its caller, and every node learns a new
/// member's address.
#[derive(Serialize, Deserialize)]
struct ChangeContext {
    proposer: u64,
    seq: u64,
    addr: Option<std::net::SocketAddr>,
}

struct PendingAppend {
    reply: oneshot::Sender<Result<Appended, RequestError>>,
    proposed_at: Instant,
}

type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// A read handed to raft, waiting for its read index.
struct UnconfirmedRead {
    reply: Reply<u64>,
    /// The leader and term it was asked under: raft drops it once that
    /// leader stops leading that term.
    leader: u64,
    term: u64,
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
    tick: Duration,
    snapshot_entries: u64,
    retention_records: usize,
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
    leader: u64,
    request_ids: RequestIds,
    appends: HashMap<u64, PendingAppend>,
    changes: HashMap<u64, Reply<Membership>>,
    /// Reads waiting for the leader to confirm their index, by context.
    unconfirmed_reads: HashMap<Vec<u8>, UnconfirmedRead>,
    /// Reads with a confirmed index, waiting for it to be applied here.
    confirmed_reads: Vec<(u64, Reply<u64>)>,
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
        inbox: mpsc::Receiver<Input>,
        config: &NodeConfig,
        persist_jobs: Option<mpsc::Sender<PersistJob>>,
    ) -> Result<ReadyLoop, NodeError> {
        let store = raw.store().clone();
        let conf_state = store.initial_state()?.conf_state;
        let applied = log.read().unwrap_or_else(|e| e.into_inner()).applied();
        let request_ids = RequestIds::new(raw.raft.id);
        Ok(ReadyLoop {
            raw,
            store,
            log,
            peers,
            metrics,
            inbox,
            tick: Duration::from_millis(config.tick_ms),
            snapshot_entries: config.snapshot_entries,
            retention_records: config.retention_records,
            log_tail_entries: config.log_tail_entries,
            conf_state,
            persist_jobs,
            last_snapshot: applied,
            member_added: false,
            leader: 0,
            request_ids,
            appends: HashMap::new(),
            changes: HashMap::new(),
            unconfirmed_reads: HashMap::new(),
            confirmed_reads: Vec::new(),
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
                input = self.inbox.recv() => match input {
                    Some(input) => self.on_input(input)?,
                    None => return Ok(()),
                },
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
        self.appends.retain(|_, p| !p.reply.is_closed());
        self.changes.retain(|_, r| !r.is_closed());
        self.unconfirmed_reads.retain(|_, r| !r.reply.is_closed());
        self.confirmed_reads.retain(|(_, r)| !r.is_closed());
    }

    fn on_input(&mut self, input: Input) -> Result<(), NodeError> {
        match input {
            Input::Raft(msg) => {
                if let Err(e) = self.raw.step(*msg) {
                    // Messages from removed or unknown peers, stale
                    // responses: raft ignores them, and so do we.
                    tracing::debug!("step: {e}");
                }
            }
            Input::Append { records, reply } => self.propose_append(records, reply),
            Input::ReadBarrier { reply } => {
                if self.leader == 0 {
                    let _ = reply.send(Err(RequestError::NoLeader));
                    return Ok(());
                }
                if !self.raw.raft.commit_to_current_term() {
                    // raft drops a read at a leader that has not committed
                    // in its term yet, and this node knows of no such
                    // commit: say so now rather than time out.
                    let _ = reply.send(Err(RequestError::NoLeader));
                    return Ok(());
                }
                let ctx = self.request_ids.next_read_ctx();
                self.raw.read_index(ctx.clone());
                let asked = UnconfirmedRead {
                    reply,
                    leader: self.raw.raft.leader_id,
                    term: self.raw.raft.term,
                };
                self.unconfirmed_reads.insert(ctx, asked);
            }
            Input::ChangeMembership { change, reply } => self.propose_change(change, reply),
            Input::TransferLeader { to, reply } => {
                let answer = match membership::check_transfer(&self.raw.raft, to) {
                    Verdict::Propose => {
                        self.raw.transfer_leader(to);
                        Ok(())
                    }
                    Verdict::Refuse(why) => Err(RequestError::Refused(why)),
                    Verdict::NoLeader | Verdict::TransferFirst { .. } => {
                        Err(RequestError::NoLeader)
                    }
                };
                let _ = reply.send(answer);
            }
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotSent(id, status) => self.raw.report_snapshot(id, status),
            Input::Persisted(persisted) => {
                persisted.result.map_err(NodeError::Persist)?;
                self.raw.on_persist_ready(persisted.number);
                self.advance_apply_async();
                self.send(persisted.messages);
            }
        }
        Ok(())
    }

    fn propose_append(&mut self, records: Vec<bytes::Bytes>, reply: Reply<Appended>) {
        if self.leader == 0 {
            let _ = reply.send(Err(RequestError::NoLeader));
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
        match self.raw.propose(vec![], data) {
            Ok(()) => {
                self.appends.insert(
                    seq,
                    PendingAppend {
                        reply,
                        proposed_at: Instant::now(),
                    },
                );
            }
            Err(_) => {
                let _ = reply.send(Err(RequestError::NoLeader));
            }
        }
    }

    fn propose_change(&mut self, change: MembershipChange, reply: Reply<Membership>) {
        let is_voter = |id| self.conf_state.voters.contains(&id);
        let is_learner = |id| self.conf_state.learners.contains(&id);
        let (change_type, id, addr) = match change {
            MembershipChange::AddLearner { id, addr } if !is_voter(id) && !is_learner(id) => {
                (ConfChangeType::AddLearnerNode, id, Some(addr))
            }
            MembershipChange::Promote { id } if is_learner(id) => {
                (ConfChangeType::AddNode, id, None)
            }
            MembershipChange::Remove { id } if is_voter(id) || is_learner(id) => {
                (ConfChangeType::RemoveNode, id, None)
            }
            other => {
                let _ = reply.send(Err(RequestError::Refused(format!(
                    "{other:?} does not fit voters {:?} learners {:?}",
                    self.conf_state.voters, self.conf_state.learners
                ))));
                return;
            }
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = id;
        match membership::check(&self.raw.raft, &single) {
            Verdict::Propose => {}
            Verdict::Refuse(why) => {
                let _ = reply.send(Err(RequestError::Refused(why)));
                return;
            }
            Verdict::NoLeader => {
                let _ = reply.send(Err(RequestError::NoLeader));
                return;
            }
            Verdict::TransferFirst { to } => {
                self.raw.transfer_leader(to);
                let _ = reply.send(Err(RequestError::LeaderMoving(to)));
                return;
            }
        }
        let seq = self.request_ids.next_key();
        let context = ChangeContext {
            proposer: self.raw.raft.id,
            seq,
            addr,
        };
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        cc.context = serde_json::to_vec(&context).expect("plain struct").into();
        match self.raw.propose_conf_change(vec![], cc) {
            Ok(()) => {
                self.changes.insert(seq, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(RequestError::Refused(format!(
                    "{e} (no leader, or another change is still pending)"
                ))));
            }
        }
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
        // 4. Reads whose index the leader confirmed wait until applied.
        for rs in ready.take_read_states() {
            if let Some(read) = self.unconfirmed_reads.remove(&rs.request_ctx) {
                self.confirmed_reads.push((rs.index, read.reply));
            }
        }
        self.fail_reads_of_former_leaders();
        // 5.-7. New entries and the hard state: one write, then
        //    durability, then what had to wait for it.
        match self.persist_jobs.clone() {
            None => self.persist_and_advance(ready).await?,
            Some(jobs) => self.persist_async(ready, jobs).await?,
        }
        self.serve_reads();
        self.maybe_snapshot().await?;
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

    /// raft drops, without a word, the reads a leader had not confirmed
    /// when it stopped leading its term, and those forwarded to it: fail
    /// them with a retryable 503 rather than a timeout, once the Ready's
    /// read states are taken. A read changes nothing, so a retry cannot
    /// duplicate anything. Appends wait on: one may still commit, and only
    /// its application can say.
    fn fail_reads_of_former_leaders(&mut self) {
        let now = (self.raw.raft.leader_id, self.raw.raft.term);
        let former: Vec<Vec<u8>> = self
            .unconfirmed_reads
            .iter()
            .filter(|(_, read)| (read.leader, read.term) != now)
            .map(|(ctx, _)| ctx.clone())
            .collect();
        for ctx in former {
            if let Some(read) = self.unconfirmed_reads.remove(&ctx) {
                let _ = read.reply.send(Err(RequestError::NoLeader));
            }
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for id in self.peers.send(msgs) {
            self.raw.report_unreachable(id);
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

    async fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), NodeError> {
        let meta = snap.get_metadata().clone();
        info!(
            "installing a snapshot at index {} term {}",
            meta.index, meta.term
        );
        let mut restored = RecordLog::new(self.retention_records);
        restored.restore(meta.index, snap.get_data())?;
        self.on_disk(move |s| s.apply_snapshot(snap)).await?;
        *self.log.write().unwrap_or_else(|e| e.into_inner()) = restored;
        self.conf_state = meta.get_conf_state().clone();
        self.last_snapshot = meta.index;
        Ok(())
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {
                    self.write_log().skip(entry.index)
                }
                EntryType::EntryNormal => self.apply_records(&entry)?,
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&entry.data)?;
                    self.apply_change(entry.index, cc.into_v2()).await?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&entry.data)?;
                    self.apply_change(entry.index, cc).await?;
                }
            }
        }
        Ok(())
    }

    fn write_log(&self) -> std::sync::RwLockWriteGuard<'_, RecordLog> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_records(&mut self, entry: &Entry) -> Result<(), NodeError> {
        let proposal = Proposal::decode(&entry.data)?;
        let offset = self.write_log().apply(entry.index, &proposal.records);
        if proposal.proposer == self.raw.raft.id {
            if let Some(pending) = self.appends.remove(&proposal.seq) {
                self.metrics
                    .commit_latency_seconds
                    .observe(pending.proposed_at.elapsed().as_secs_f64());
                let _ = pending.reply.send(Ok(Appended {
                    offset,
                    count: proposal.records.len() as u64,
                }));
            }
        }
        Ok(())
    }

    async fn apply_change(&mut self, index: u64, cc: ConfChangeV2) -> Result<(), NodeError> {
        let context: Option<ChangeContext> = serde_json::from_slice(&cc.context).ok();
        // A committed change raft refuses (one the proposal-time check did
        // not see, such as a change written by an older node) is applied as
        // a no-op: the entry stays in the log, and every restart replays
        // it, so failing here would stop the node for good.
        let conf_state = match self.raw.apply_conf_change(&cc) {
            Ok(conf_state) => conf_state,
            Err(e) => {
                warn!(
                    "membership change at index {index} refused by raft, applied as a no-op: {e}"
                );
                self.write_log().skip(index);
                if let Some(ctx) = context.filter(|c| c.proposer == self.raw.raft.id) {
                    if let Some(reply) = self.changes.remove(&ctx.seq) {
                        let _ = reply.send(Err(RequestError::Refused(e.to_string())));
                    }
                }
                return Ok(());
            }
        };
        let stored = conf_state.clone();
        self.on_disk(move |s| s.set_conf_state(stored)).await?;
        self.conf_state = conf_state;
        self.write_log().skip(index);
        for change in cc.get_changes() {
            match change.get_change_type() {
                ConfChangeType::AddLearnerNode | ConfChangeType::AddNode => {
                    if let Some(addr) = context.as_ref().and_then(|c| c.addr) {
                        self.peers.connect(change.node_id, addr);
                    }
                    self.member_added = true;
                }
                ConfChangeType::RemoveNode => self.peers.disconnect(change.node_id),
            }
        }
        info!(
            "membership at index {index}: voters {:?} learners {:?}",
            self.conf_state.voters, self.conf_state.learners
        );
        if let Some(ctx) = context.filter(|c| c.proposer == self.raw.raft.id) {
            if let Some(reply) = self.changes.remove(&ctx.seq) {
                let _ = reply.send(Ok(self.membership()));
            }
        }
        Ok(())
    }

    fn serve_reads(&mut self) {
        let applied = self.log.read().unwrap_or_else(|e| e.into_inner()).applied();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed_reads = waiting;
        for (_, reply) in ready {
            let _ = reply.send(Ok(applied));
        }
    }

    /// Every `snapshot_entries` applied entries, and after a member is
    /// added, the records become a snapshot and the WAL drops all but the
    /// last `log_tail_entries` entries before it, so the log on disk stays
    /// bounded.
    async fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let (applied, data) = {
            let log = self.log.read().unwrap_or_else(|e| e.into_inner());
            let due = log.applied() >= self.last_snapshot + self.snapshot_entries
                || (self.member_added && log.applied() > self.last_snapshot);
            if !due {
                return Ok(());
            }
            (log.applied(), log.snapshot())
        };
        let term = self.raw.store().term(applied)?;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        let first = self.raw.store().first_index()?;
        let compact_to = (applied + 1).saturating_sub(self.log_tail_entries);
        self.on_disk(move |s| {
            s.set_snapshot(snap)?;
            if compact_to > first {
                s.compact(compact_to)?;
            }
            Ok(())
        })
        .await?;
        info!(
            "snapshot at index {applied}; WAL compacted to {}",
            compact_to.max(first)
        );
        self.last_snapshot = applied;
        self.member_added = false;
        Ok(())
    }

    /// The members, in id order.
    fn membership(&self) -> Membership {
        let sorted = |ids: &[u64]| {
            let mut ids = ids.to_vec();
            ids.sort_unstable();
            ids
        };
        Membership {
            voters: sorted(&self.conf_state.voters),
            learners: sorted(&self.conf_state.learners),
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
    }
}

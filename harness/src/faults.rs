//! Fault injection: each tick, decides from the fault generator which
//! faults happen, and applies them through the world's public surface
//! (network links, crashes and restarts, disk writes behind raft's back,
//! injected messages). Nothing here edits raft.
//!
//! Every fault event gets an ordinal. With a `keep_faults` set only the
//! listed events happen, but every event is still drawn, so the rest of the
//! schedule keeps its draws: that is how `shrink` removes faults.

use std::collections::{BTreeMap, BTreeSet};

use raft_proto::eraftpb::{
    ConfChangeTransition, ConfChangeType, ConfChangeV2, Entry, Message, MessageType,
};
use raft_proto::new_conf_change_single;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, Role};
use crate::scenario::{FaultRates, Options};
use crate::world::network::links_across;
use crate::world::World;

/// Fault state of a run.
pub struct Faults {
    rates: FaultRates,
    keep: Option<BTreeSet<u64>>,
    rng: ChaCha8Rng,
    ordinal: u64,
    /// Ordinals of the fault events that happened.
    pub applied: Vec<u64>,
    partition: Option<(BTreeSet<(u64, u64)>, u64)>,
    restart_at: BTreeMap<u64, u64>,
    /// Nodes whose storage is still recovering its tail, cut off from the
    /// network until the given tick.
    recovering: BTreeMap<u64, u64>,
    side_channel_entries: u64,
}

impl Faults {
    /// The faults of a run.
    pub fn new(opts: &Options, rng: ChaCha8Rng) -> Faults {
        Faults {
            rates: opts.faults.clone(),
            keep: opts.keep_faults.clone(),
            rng,
            ordinal: 0,
            applied: Vec::new(),
            partition: None,
            restart_at: BTreeMap::new(),
            recovering: BTreeMap::new(),
            side_channel_entries: 0,
        }
    }

    fn roll(&mut self, permille: u32) -> bool {
        permille > 0 && self.rng.gen_range(0..1000) < permille
    }

    /// Numbers a fault event; whether it happens.
    fn fire(&mut self) -> bool {
        self.ordinal += 1;
        let happens = self.keep.as_ref().is_none_or(|k| k.contains(&self.ordinal));
        if happens {
            self.applied.push(self.ordinal);
        }
        happens
    }

    fn pick(&mut self, ids: &[u64]) -> Option<u64> {
        ids.choose(&mut self.rng).copied()
    }

    /// Draws and applies this tick's faults.
    pub fn tick<E: Engine>(&mut self, world: &mut World<E>) {
        self.restarts(world);
        self.partitions(world);
        self.crashes(world);
        self.leader_transfers(world);
        self.compactions(world);
        self.membership_changes(world);
        self.out_of_band_writes(world);
        self.bad_appends(world);
    }

    fn up(&self, world: &World<impl Engine>) -> Vec<u64> {
        world
            .ids()
            .iter()
            .copied()
            .filter(|&id| world.is_up(id) && !self.recovering.contains_key(&id))
            .collect()
    }

    fn restarts<E: Engine>(&mut self, world: &mut World<E>) {
        let now = world.now;
        let recovered: Vec<u64> = self
            .recovering
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in recovered {
            self.recovering.remove(&id);
            let entries = world.storage(id).recover_tail();
            world.trace(format_args!(
                "n{id} storage recovered {entries} entries late"
            ));
        }
        let due: Vec<u64> = self
            .restart_at
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.restart_at.remove(&id);
            let late = self.rates.late_recovery_pct > 0
                && self.rng.gen_range(0..100) < self.rates.late_recovery_pct;
            let recover_in = self.rng.gen_range(1..=5);
            if late && self.fire() {
                let (commit, snapshot) = {
                    let disk = world.disk(id);
                    (disk.hard_state().commit, disk.snapshot_index())
                };
                world.storage(id).hide_tail_after(commit.max(snapshot));
                self.recovering.insert(id, now + recover_in);
                world.trace(format_args!(
                    "n{id} storage recovers late, after tick {}",
                    now + recover_in
                ));
            }
            world
                .restart(id)
                .expect("a node restarts from its own disk");
        }
        self.apply_cuts(world);
    }

    fn partitions<E: Engine>(&mut self, world: &mut World<E>) {
        let now = world.now;
        if self
            .partition
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.partition = None;
            world.trace(format_args!("partition healed"));
            self.apply_cuts(world);
        }
        if self.partition.is_some() || !self.roll(self.rates.partition_permille) {
            return;
        }
        let ids = world.ids().to_vec();
        let mut shuffled = ids.clone();
        shuffled.shuffle(&mut self.rng);
        let kind = self.rng.gen_range(0..3);
        let until = now
            + self
                .rng
                .gen_range(1..=self.rates.partition_ticks_max.max(1));
        if let Some(links) = self.mute_leader(world) {
            if self.fire() {
                world.trace(format_args!("leader muted: {links:?} cut until {until}"));
                world.count("leaders muted");
                self.partition = Some((links, until));
                self.apply_cuts(world);
            }
            return;
        }
        let links = match kind {
            0 => {
                let side = self.rng.gen_range(1..=ids.len().max(2) / 2);
                links_across(&shuffled[..side.min(ids.len())], &ids)
            }
            1 if ids.len() > 1 => [(shuffled[0], shuffled[1])].into(),
            _ => links_across(&shuffled[..1], &ids),
        };
        if self.fire() {
            world.trace(format_args!("partition {links:?} until {until}"));
            self.partition = Some((links, until));
            self.apply_cuts(world);
        }
    }

    /// Sometimes, instead of a partition: the leader is muted. Everything it
    /// sends is cut, and so is everything sent to it but from one follower,
    /// which only ever answers it. Without check_quorum it leads on, unaware
    /// of the leader the others elect, while late messages from that one
    /// follower still reach it.
    fn mute_leader<E: Engine>(&mut self, world: &World<E>) -> Option<BTreeSet<(u64, u64)>> {
        if !self.roll(self.rates.mute_leader_pct * 10) {
            return None;
        }
        let leader = world.leader()?;
        let ids = world.ids().to_vec();
        let others: Vec<u64> = ids.iter().copied().filter(|&id| id != leader).collect();
        let heard = self.pick(&others)?;
        let mut links = links_across(&[leader], &ids);
        links.remove(&(heard, leader));
        Some(links)
    }

    /// The network cuts: the partition, if any, and the nodes recovering.
    fn apply_cuts<E: Engine>(&self, world: &mut World<E>) {
        let ids = world.ids().to_vec();
        let mut cut = self
            .partition
            .as_ref()
            .map(|(links, _)| links.clone())
            .unwrap_or_default();
        for &id in self.recovering.keys() {
            cut.extend(links_across(&[id], &ids));
        }
        world.network().set_cut(cut);
    }

    fn crashes<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.crash_permille) {
            return;
        }
        let up = self.up(world);
        let Some(id) = self.pick(&up) else { return };
        let unsynced = world.storage(id).unsynced_entries();
        let torn = if self.rates.torn_writes && self.rng.gen_bool(0.5) {
            self.rng.gen_range(0..=unsynced)
        } else {
            0
        };
        let down_ticks = self.rng.gen_range(1..=self.rates.down_ticks_max.max(1));
        if self.fire() {
            world.crash(id, torn);
            self.restart_at.insert(id, world.now + down_ticks);
        }
    }

    fn leader_transfers<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.transfer_permille) {
            return;
        }
        let Some(leader) = world.leader() else { return };
        let others: Vec<u64> = self
            .up(world)
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        let Some(to) = self.pick(&others) else { return };
        let transferred = self.fire();
        if transferred {
            world.transfer_leader(leader, to);
        }
        let deafen = self.rates.deafen_after_transfer_pct > 0
            && self.rng.gen_range(0..100) < self.rates.deafen_after_transfer_pct;
        if deafen {
            self.deafen(world, leader, &others, transferred);
        }
    }

    /// Cuts everything sent to `leader`, which was just asked to transfer
    /// leadership, in place of a partition, unless one is on. Its
    /// `MsgTimeoutNow` left already if the transferee was caught up; if
    /// not, the leader never hears the append response it waits for, and
    /// this is a plain partition.
    fn deafen<E: Engine>(
        &mut self,
        world: &mut World<E>,
        leader: u64,
        others: &[u64],
        transferred: bool,
    ) {
        let until = world.now
            + self
                .rng
                .gen_range(1..=self.rates.partition_ticks_max.max(1));
        if transferred && self.partition.is_none() && self.fire() {
            let links: BTreeSet<(u64, u64)> = others.iter().map(|&id| (id, leader)).collect();
            world.trace(format_args!(
                "n{leader} deafened after its transfer: {links:?} cut until {until}"
            ));
            self.partition = Some((links, until));
            self.apply_cuts(world);
        }
    }

    fn compactions<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.compact_permille) {
            return;
        }
        let up = self.up(world);
        let Some(id) = self.pick(&up) else { return };
        let keep = self.rng.gen_range(0..=20);
        if self.fire() {
            let index = world.state_machine(id).applied.saturating_sub(keep);
            world.compact(id, index);
        }
    }

    /// The leader proposes moving nodes between voters and learners: a
    /// promotion, a demotion (leaving at least two voters), or both at once,
    /// which takes joint consensus; half the time with the `Implicit`
    /// transition, which goes through joint consensus and leaves it
    /// automatically even for one change. Every node stays a member, so the
    /// healed cluster can still converge.
    fn membership_changes<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.membership_permille) {
            return;
        }
        let Some(leader) = world.leader() else { return };
        let conf = world.disk(leader).conf_state().clone();
        let demote = self.pick(&conf.voters);
        let promote = self.pick(&conf.learners);
        let both = self.rng.gen_bool(0.5);
        let implicit = self.rng.gen_bool(0.5);
        if !self.fire() || !conf.voters_outgoing.is_empty() {
            return;
        }
        let mut changes = Vec::new();
        if let Some(id) = promote {
            changes.push(new_conf_change_single(id, ConfChangeType::AddNode));
        }
        let voters_after_demotion = conf.voters.len() - 1 + usize::from(both && promote.is_some());
        if let Some(id) =
            demote.filter(|_| (both || promote.is_none()) && voters_after_demotion >= 2)
        {
            changes.push(new_conf_change_single(id, ConfChangeType::AddLearnerNode));
        }
        if changes.is_empty() {
            return;
        }
        // Auto enters joint consensus only for several changes; Implicit
        // always does, and leaves it automatically: the leader appends the
        // leaving entry itself once the joint configuration is applied.
        let mut change = ConfChangeV2 {
            changes: changes.into(),
            ..Default::default()
        };
        if implicit {
            change.set_transition(ConfChangeTransition::Implicit);
        }
        world.propose_conf_change(leader, change);
    }

    /// Entries matching the leader's log reach a node's storage outside
    /// the Ready loop, as from a WAL replicated by a side channel. On the
    /// leader itself they are new entries of its term.
    fn out_of_band_writes<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.out_of_band_permille) {
            return;
        }
        let up = self.up(world);
        let (Some(id), Some(leader)) = (self.pick(&up), world.leader()) else {
            return;
        };
        let count = self.rng.gen_range(1..=8u64);
        if !self.fire() {
            return;
        }
        let entries = if id == leader {
            let term = world.status(leader).unwrap().term;
            let last = world.disk(leader).last_index();
            (1..=count.min(4))
                .map(|k| {
                    self.side_channel_entries += 1;
                    Entry {
                        index: last + k,
                        term,
                        data: format!("side channel {}", self.side_channel_entries)
                            .into_bytes()
                            .into(),
                        ..Default::default()
                    }
                })
                .collect()
        } else {
            let (from, to) = (world.disk(leader), world.disk(id));
            let last = to.last_index();
            let matches = last >= from.snapshot_index()
                && last <= from.last_index()
                && from.chain_at(last) == to.chain_at(last);
            let end = from.last_index().min(last + count);
            if !matches || end <= last {
                return;
            }
            from.entries(last + 1, end + 1, None)
                .expect("the leader holds them")
        };
        let (first, last) = (entries[0].index, entries[entries.len() - 1].index);
        world.storage(id).write_out_of_band(entries);
        world.trace(format_args!(
            "n{id} out-of-band {first}..={last} from n{leader}"
        ));
    }

    /// A follower receives, in the leader's name, an append whose prev
    /// index lies past its log, with log_term 0.
    fn bad_appends<E: Engine>(&mut self, world: &mut World<E>) {
        if !self.roll(self.rates.bad_append_permille) {
            return;
        }
        let Some(leader) = world.leader() else { return };
        let followers: Vec<u64> = self
            .up(world)
            .into_iter()
            .filter(|&id| id != leader)
            .collect();
        let Some(id) = self.pick(&followers) else {
            return;
        };
        let past = self.rng.gen_range(1..=4u64);
        if !self.fire() {
            return;
        }
        let (lead, follower) = (world.status(leader).unwrap(), world.status(id).unwrap());
        debug_assert_eq!(lead.role, Role::Leader);
        let index = follower.last_index + past;
        let mut msg = Message {
            from: leader,
            to: id,
            term: lead.term,
            index,
            log_term: 0,
            commit: follower.commit,
            entries: vec![Entry {
                index: index + 1,
                term: lead.term,
                data: b"bad append".to_vec().into(),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        };
        msg.set_msg_type(MessageType::MsgAppend);
        world.trace(format_args!(
            "n{id} gets a bad append {index}/0 from n{leader}"
        ));
        world.send(vec![msg]);
    }

    /// Ends every fault for the liveness phase: heals the network, brings
    /// back late tails and restarts every node that is down.
    pub fn heal<E: Engine>(&mut self, world: &mut World<E>) {
        self.partition = None;
        for (id, _) in std::mem::take(&mut self.recovering) {
            world.storage(id).recover_tail();
        }
        self.restart_at.clear();
        world.network().heal_all();
        for id in world.ids().to_vec() {
            world
                .restart(id)
                .expect("a node restarts from its own disk");
        }
        world.trace(format_args!("all faults healed"));
    }
}

//! The named scenarios, and the option block each derives from a seed.
//!
//! One seed drives a whole run: the options below (cluster shape,
//! durability, per-link faults, fault rates) are drawn from it first, then
//! each subsystem gets its own generator derived from it, so a change in
//! how often one subsystem draws never shifts another's draws.

use std::collections::{BTreeMap, BTreeSet};

use raft_proto::eraftpb::{Entry, HardState};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::{Engine, ReadMode};
use crate::world::disk::WriteMode;
use crate::world::network::LinkFaults;
use crate::world::storage::{NodeStorage, StorageKind};
use crate::world::{Durability, World, WorldConfig};

/// A named family of runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The crash report's numbers, scripted on 3 nodes.
    #[value(name = "seed-620")]
    #[serde(rename = "seed-620")]
    Seed620,
    /// Network and crash faults, no storage faults.
    Chaos,
    /// Chaos, plus entries written into storage outside the Ready loop.
    StorageAhead,
    /// Chaos, plus restarted nodes whose storage recovers its tail late.
    LateRecovery,
    /// Chaos, plus appends whose prev index lies past the receiver's log,
    /// with log_term 0.
    BadAppend,
    /// Chaos on a storage that overwrites without truncating its tail: the
    /// negative control no engine can make safe.
    StaleTail,
    /// Chaos with many `ReadOnlyOption::Safe` reads and no check_quorum,
    /// leaders muted while late copies of their followers' messages still
    /// reach them, and clients that retry with the same context.
    ReadIndex,
    /// Chaos with `ReadOnlyOption::LeaseBased` reads and check_quorum.
    LeaseRead,
    /// Lease reads while the leader is asked to transfer leadership ten
    /// times as often, and half the time hears nothing once asked: each
    /// transferee's campaign skips the followers' lease check.
    LeaseTransfer,
    /// Chaos with pre-vote and a different `Config::priority` per node.
    Priority,
    /// Chaos on a transport that calls `report_unreachable` for every
    /// message it could not deliver.
    Unreachable,
    /// Chaos while the cluster restarts its nodes one at a time onto the
    /// other engine, from the same storage; the engine named is the one it
    /// ends on.
    RollingUpgrade,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 12] = [
        Scenario::Seed620,
        Scenario::Chaos,
        Scenario::StorageAhead,
        Scenario::LateRecovery,
        Scenario::BadAppend,
        Scenario::StaleTail,
        Scenario::ReadIndex,
        Scenario::LeaseRead,
        Scenario::LeaseTransfer,
        Scenario::Priority,
        Scenario::Unreachable,
        Scenario::RollingUpgrade,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Seed620 => "seed-620",
            Scenario::Chaos => "chaos",
            Scenario::StorageAhead => "storage-ahead",
            Scenario::LateRecovery => "late-recovery",
            Scenario::BadAppend => "bad-append",
            Scenario::StaleTail => "stale-tail",
            Scenario::ReadIndex => "read-index",
            Scenario::LeaseRead => "lease-read",
            Scenario::LeaseTransfer => "lease-transfer",
            Scenario::Priority => "priority",
            Scenario::Unreachable => "unreachable",
            Scenario::RollingUpgrade => "rolling-upgrade",
        }
    }

    /// Whether the scenario runs on `--storage wal`: late-recovery and
    /// stale-tail fault the disk model itself.
    pub fn runs_on_wal(self) -> bool {
        !matches!(self, Scenario::LateRecovery | Scenario::StaleTail)
    }

    /// Why the fork may fail this scenario, if it may: failures are
    /// reported, and do not fail `compare`.
    pub fn fork_may_fail(self) -> Option<&'static str> {
        match self {
            Scenario::StaleTail => {
                Some("negative control: no engine survives a storage that keeps a stale tail")
            }
            _ => None,
        }
    }

    /// Whether this is the negative control, where the fork may fail in
    /// any way, stuck or panicking: its stale tails can leave logs that
    /// never converge. Everywhere else, even where a safety failure is
    /// expected, the cluster must recover.
    pub fn is_negative_control(self) -> bool {
        self == Scenario::StaleTail
    }

    /// Whether each run mixes both engines, so there is no pair of
    /// single-engine runs to compare.
    pub fn mixes_engines(self) -> bool {
        self == Scenario::RollingUpgrade
    }

    /// Seeds `compare` runs when not told otherwise.
    pub fn default_seeds(self) -> u64 {
        match self {
            Scenario::Seed620 => 20,
            _ => 200,
        }
    }
}

/// Per-tick fault rates, in per mille, and fault shapes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FaultRates {
    /// A partition (symmetric split, one-way cut or isolated node) starts.
    pub partition_permille: u32,
    /// A partition lasts 1 to this many ticks.
    pub partition_ticks_max: u64,
    /// A node that is up crashes.
    pub crash_permille: u32,
    /// A crashed node restarts after 1 to this many ticks.
    pub down_ticks_max: u64,
    /// A crash keeps a torn prefix of the unsynced entries half the time.
    pub torn_writes: bool,
    /// The leader is asked to transfer leadership.
    pub transfer_permille: u32,
    /// Of those transfers, the percentage after which the old leader hears
    /// nothing for 1 to `partition_ticks_max` ticks. If its `MsgTimeoutNow`
    /// went out (the transferee was caught up), it leads on, unaware of the
    /// transferee's term, until its quorum check.
    pub deafen_after_transfer_pct: u32,
    /// A node snapshots and compacts its log.
    pub compact_permille: u32,
    /// The leader proposes a membership change: a voter demoted to
    /// learner, a learner promoted, or both at once (joint consensus).
    pub membership_permille: u32,
    /// Entries reach a node's storage outside the Ready loop.
    pub out_of_band_permille: u32,
    /// A restart finds part of its log only after `RawNode::new`, in percent
    /// of restarts.
    pub late_recovery_pct: u32,
    /// A follower receives an append past its log with log_term 0.
    pub bad_append_permille: u32,
    /// Of the partitions that start, the percentage that mute the leader
    /// instead (see `Faults::mute_leader`).
    pub mute_leader_pct: u32,
}

/// Client proposals.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkloadOptions {
    /// Chance per tick, in percent, that the client proposes.
    pub propose_pct: u32,
    /// Entries per proposal batch, at least this many.
    pub batch_min: u64,
    /// Entries per proposal batch, at most this many.
    pub batch_max: u64,
    /// Bytes per entry.
    pub entry_bytes: usize,
    /// Chance per tick, in percent, that a client starts a read.
    pub read_pct: u32,
    /// A client sends its read again, with the same context, after this
    /// many ticks without an answer.
    pub read_timeout_ticks: u64,
}

/// One directed link's faults, for the option block.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Link {
    /// Sender.
    pub from: u64,
    /// Receiver.
    pub to: u64,
    /// Its faults.
    #[serde(flatten)]
    pub faults: LinkFaults,
}

/// Everything a run does, derived from its scenario and seed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Ticks with faults before the liveness phase.
    pub steps: u64,
    /// Ticks the healed cluster has to converge.
    pub liveness_ticks_max: u64,
    /// The cluster.
    pub world: WorldConfig,
    /// Per-link faults.
    pub links: Vec<Link>,
    /// Fault rates.
    pub faults: FaultRates,
    /// Client proposals.
    pub workload: WorkloadOptions,
    /// For rolling-upgrade: at each tick, the node restarted onto the other
    /// engine, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upgrades: Vec<(u64, u64)>,
    /// With `Some`, only the fault events with these ordinals happen
    /// (`shrink` and `replay --keep-faults`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_faults: Option<BTreeSet<u64>>,
}

/// What may change from the derived options on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    /// Cluster size.
    pub nodes: Option<usize>,
    /// Ticks before the liveness phase.
    pub steps: Option<u64>,
    /// What nodes store their log on (default: memory).
    pub storage: Option<StorageKind>,
}

/// Generator streams derived from one seed.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The option block.
    Options = 1,
    /// Message loss, duplication and delay.
    Network,
    /// Fault events.
    Faults,
    /// Client proposals.
    Workload,
    /// Election timeouts.
    Timeouts,
    /// Sync delays.
    Syncs,
}

/// The generator for `stream` of `seed`.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

impl Options {
    /// Derives a run's options from its scenario and seed.
    pub fn derive(scenario: Scenario, seed: u64, overrides: Overrides) -> Options {
        let mut r = rng(seed, Stream::Options);
        let nodes = overrides.nodes.unwrap_or(3).clamp(1, 7) as u64;
        let ids: Vec<u64> = (1..=nodes).collect();
        let scripted = scenario == Scenario::Seed620;
        let reads = scenario == Scenario::ReadIndex;
        let durability = if scripted || r.gen_bool(0.5) {
            Durability::Sync
        } else {
            Durability::Async {
                delay_ticks_max: r.gen_range(0..=3),
            }
        };
        let mut links = Vec::new();
        if !scripted {
            let drop_pct_max = r.gen_range(0..=5);
            let duplicate_pct_max = r.gen_range(0..=3);
            let delay_ticks_max = r.gen_range(0..=2);
            for &from in &ids {
                for &to in ids.iter().filter(|&&to| to != from) {
                    let faults = LinkFaults {
                        drop_pct: r.gen_range(0..=drop_pct_max),
                        duplicate_pct: r.gen_range(0..=duplicate_pct_max),
                        delay_ticks_max: r.gen_range(0..=delay_ticks_max),
                        // Late copies of what followers send the leader
                        // (heartbeat responses echoing a read's context,
                        // forwarded reads): what the stale ReadIndex needs.
                        late_copy_pct: if reads { 30 } else { 0 },
                        late_copy_ticks_max: if reads { 40 } else { 0 },
                    };
                    links.push(Link { from, to, faults });
                }
            }
        }
        let chaos = FaultRates {
            partition_permille: 10,
            partition_ticks_max: 40,
            crash_permille: 6,
            down_ticks_max: 30,
            torn_writes: r.gen_bool(0.5),
            transfer_permille: 4,
            compact_permille: 15,
            membership_permille: 6,
            ..FaultRates::default()
        };
        let faults = match scenario {
            Scenario::Seed620 => FaultRates::default(),
            Scenario::StorageAhead => FaultRates {
                out_of_band_permille: 40,
                ..chaos
            },
            Scenario::LateRecovery => FaultRates {
                crash_permille: 15,
                late_recovery_pct: 80,
                ..chaos
            },
            Scenario::BadAppend => FaultRates {
                bad_append_permille: 20,
                ..chaos
            },
            Scenario::ReadIndex => FaultRates {
                partition_permille: 20,
                mute_leader_pct: 60,
                crash_permille: 2,
                ..chaos
            },
            Scenario::LeaseTransfer => FaultRates {
                transfer_permille: 40,
                deafen_after_transfer_pct: 50,
                ..chaos
            },
            _ => chaos,
        };
        let pre_vote = !scripted && r.gen_bool(0.5);
        let mut world = WorldConfig {
            ids,
            durability,
            write_mode: if scenario == Scenario::StaleTail {
                WriteMode::StaleTail
            } else {
                WriteMode::Truncate
            },
            storage: overrides.storage.unwrap_or(StorageKind::Memory),
            election_ticks_min: 10,
            heartbeat_ticks: 2,
            pre_vote,
            check_quorum: pre_vote,
            read_mode: ReadMode::Safe,
            priorities: Vec::new(),
            report_unreachable: scenario == Scenario::Unreachable,
            upgrade_to: None,
        };
        let mut workload = WorkloadOptions {
            propose_pct: 50,
            batch_min: 1,
            batch_max: 4,
            entry_bytes: 256,
            read_pct: if scripted { 0 } else { 20 },
            read_timeout_ticks: 8,
        };
        let mut upgrades = Vec::new();
        match scenario {
            Scenario::ReadIndex => {
                // No check_quorum: a muted leader leads on. Reads often,
                // and short client timeouts, so contexts are reused often.
                world.pre_vote = false;
                world.check_quorum = false;
                workload.read_pct = 80;
                workload.read_timeout_ticks = r.gen_range(2..=6);
            }
            Scenario::LeaseRead | Scenario::LeaseTransfer => {
                world.read_mode = ReadMode::LeaseBased;
                world.check_quorum = true;
                workload.read_pct = 50;
            }
            Scenario::Priority => {
                world.pre_vote = true;
                world.priorities = world.ids.iter().map(|_| r.gen_range(0..=3)).collect();
            }
            Scenario::RollingUpgrade => {
                // Each node in turn, in an order and at ticks drawn from the
                // seed, spread over the faulty steps.
                let mut order = world.ids.clone();
                order.shuffle(&mut r);
                let steps = overrides.steps.unwrap_or(400);
                let gap = steps / (order.len() as u64 + 1);
                upgrades = order
                    .into_iter()
                    .enumerate()
                    .map(|(i, id)| (gap * (i as u64 + 1) + r.gen_range(0..=gap / 2), id))
                    .collect();
                // Half the upgrades serve lease reads, with both engines
                // leading in turn.
                if r.gen_bool(0.5) {
                    world.read_mode = ReadMode::LeaseBased;
                    world.check_quorum = true;
                }
            }
            _ => {}
        }
        Options {
            scenario,
            seed,
            steps: overrides.steps.unwrap_or(if scripted { 40 } else { 400 }),
            // Without pre-vote, a node that missed a committed membership
            // change can keep disrupting elections by its stale
            // configuration until timeouts happen to favour another
            // candidate: seen taking 1,425 ticks (late-recovery seed 746).
            liveness_ticks_max: 2000,
            world,
            links,
            faults,
            workload,
            upgrades,
            keep_faults: None,
        }
    }

    /// Per-link faults as the network takes them.
    pub fn link_map(&self) -> BTreeMap<(u64, u64), LinkFaults> {
        self.links
            .iter()
            .map(|l| ((l.from, l.to), l.faults))
            .collect()
    }

    /// The storage the cluster starts from.
    pub fn initial_storage(&self) -> Vec<NodeStorage> {
        let disks: Vec<NodeStorage> = self
            .world
            .ids
            .iter()
            .map(|_| {
                NodeStorage::new(
                    self.world.storage,
                    self.world.ids.clone(),
                    self.world.write_mode,
                )
            })
            .collect();
        if self.scenario == Scenario::Seed620 {
            seed_620_disks(&disks);
        }
        disks
    }

    /// Scripted actions at the current tick, before faults and workload.
    pub fn script<E: Engine>(&self, world: &mut World<E>) {
        let now = world.now;
        for &(_, id) in self.upgrades.iter().filter(|(at, _)| *at == now) {
            world.switch_engine(id);
        }
        if self.scenario == Scenario::Seed620 && world.now == 1 && world.ids().len() >= 3 {
            world.storage(3).write_out_of_band(run(620, 622, 1));
            world.trace(format_args!("n3 out-of-band 620..=622 at term 1"));
            world.campaign(2);
        }
    }
}

fn run(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|index| Entry {
            index,
            term,
            ..Default::default()
        })
        .collect()
}

/// The crash report's state: every node holds `1..=619` at term 1, all
/// committed; nodes 1 and 2 also hold 620 and 621 of that term, and node 2
/// has seen term 3, so its campaign makes it the leader of term 4. Node 3's
/// storage gains `620..=622` at term 1 outside the Ready loop once it is up
/// (see [`Options::script`]), so node 2's first append to it is prev
/// (621, 1) with entries `[622@4]`.
fn seed_620_disks(disks: &[NodeStorage]) {
    for (i, d) in disks.iter().enumerate() {
        let id = i as u64 + 1;
        d.append(run(1, if id == 3 { 619 } else { 621 }, 1));
        d.set_hard_state(HardState {
            term: if id == 2 { 3 } else { 1 },
            commit: 619,
            ..Default::default()
        });
        d.sync();
    }
}

//! Upstream's criterion benches (`raft/benches`) as fixed loops, once per
//! engine, for counting instructions: `instructions ENGINE BENCH N` sets
//! the bench up and runs its measured part `N` times, each time inside
//! [`measured`]. `scripts/bench-instructions` runs it under callgrind with
//! collection on only inside that function, and divides by `N`.
//!
//! Each bench keeps its criterion name and measures what criterion times:
//! `iter` benches drop their output inside the measurement, `iter_batched`
//! ones outside. The logger discards, so the counts are raft's work, not
//! terminal output; upstream's benches log to the terminal.

use std::hint::black_box;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    /// crates.io raft 0.7.0.
    Upstream,
    /// This repository's raft.
    Fork,
}

#[derive(Parser)]
#[command(about = "Runs one of upstream's benches as a fixed loop, for callgrind")]
struct Args {
    /// Lists the benches, one per line, and exits.
    #[arg(long)]
    list: bool,
    #[arg(value_enum, required_unless_present = "list")]
    engine: Option<Engine>,
    /// A bench's criterion name, as `--list` prints it.
    #[arg(required_unless_present = "list")]
    bench: Option<String>,
    /// How many times to run its measured part.
    #[arg(default_value_t = 100)]
    iterations: u64,
}

/// Runs one iteration's measured part. Callgrind collects only while this
/// function runs, so it must never be inlined.
#[inline(never)]
fn measured<R>(routine: impl FnOnce() -> R) -> R {
    black_box(routine())
}

/// criterion's `Bencher::iter`: the output is dropped inside the
/// measurement.
fn iter<R>(iterations: u64, mut routine: impl FnMut() -> R) {
    for _ in 0..iterations {
        measured(|| drop(black_box(routine())));
    }
}

/// criterion's `Bencher::iter_batched`: inputs are made, and outputs
/// dropped, outside the measurement.
fn iter_batched<I, R>(
    iterations: u64,
    mut setup: impl FnMut() -> I,
    mut routine: impl FnMut(I) -> R,
) {
    for _ in 0..iterations {
        let input = setup();
        let output = measured(|| routine(input));
        drop(output);
    }
}

/// `Raft::new` and `Raft::campaign` run on these (voters, learners).
const RAFT_SETS: [(usize, usize); 4] = [(0, 0), (3, 1), (5, 2), (7, 3)];
const CAMPAIGNS: [&str; 3] = [
    "CampaignPreElection",
    "CampaignElection",
    "CampaignTransfer",
];
const PROPOSAL_SIZES: [usize; 10] = [
    0,
    32,
    128,
    512,
    1024,
    4 * 1024,
    16 * 1024,
    128 * 1024,
    512 * 1024,
    1024 * 1024,
];

/// Every bench's criterion name, in upstream's order.
fn benches() -> Vec<String> {
    let mut names: Vec<String> = RAFT_SETS
        .iter()
        .map(|(v, l)| format!("Raft::new ({v}, {l})"))
        .collect();
    for (v, l) in &RAFT_SETS[1..] {
        names.extend(CAMPAIGNS.map(|c| format!("Raft::campaign ({v}, {l}, {c})")));
    }
    names.push("RawNode::new".into());
    names.extend(PROPOSAL_SIZES.map(|size| format!("RawNode::leader_propose/{size}")));
    names.push("RawNode::ready/Default".into());
    names.push("Progress::default".into());
    names
}

macro_rules! benches {
    ($raft:ident) => {
        use $raft::eraftpb::{ConfState, Entry, Message};
        use $raft::storage::MemStorage;
        use $raft::{Config, Progress, Raft, RawNode};

        use super::{iter, iter_batched, CAMPAIGNS, PROPOSAL_SIZES, RAFT_SETS};

        fn logger() -> slog::Logger {
            slog::Logger::root(slog::Discard, slog::o!())
        }

        fn new_storage(voters: usize, learners: usize) -> MemStorage {
            let mut cs = ConfState::default();
            cs.voters = (1..=voters as u64).collect();
            cs.learners = (1..=learners as u64).map(|i| voters as u64 + i).collect();
            MemStorage::new_with_conf_state(cs)
        }

        fn quick_raft(storage: MemStorage, logger: &slog::Logger) -> Raft<MemStorage> {
            Raft::new(&Config::new(1), storage, logger).unwrap()
        }

        fn quick_raw_node(logger: &slog::Logger) -> RawNode<MemStorage> {
            let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1], vec![])));
            RawNode::new(&Config::new(1), storage, logger).unwrap()
        }

        /// Upstream's `test_ready_raft_node`: a leader whose next Ready
        /// carries 100 committed entries of 32 KiB and 100 messages.
        fn ready_raft_node(logger: &slog::Logger) -> RawNode<MemStorage> {
            let mut node = quick_raw_node(logger);
            node.raft.become_candidate();
            node.raft.become_leader();
            let unstable = node.raft.raft_log.unstable_entries().to_vec();
            node.raft.raft_log.stable_entries(1, 1);
            node.raft.raft_log.store.wl().append(&unstable).unwrap();
            node.raft.on_persist_entries(1, 1);
            node.raft.commit_apply(1);
            let mut entries: Vec<Entry> = (1..101)
                .map(|index| Entry {
                    data: vec![0; 32 * 1024].into(),
                    index,
                    term: 1,
                    ..Default::default()
                })
                .collect();
            let _ = node.raft.append_entry(&mut entries);
            let unstable = node.raft.raft_log.unstable_entries().to_vec();
            node.raft.raft_log.stable_entries(101, 1);
            node.raft.raft_log.store.wl().append(&unstable).unwrap();
            node.raft.on_persist_entries(101, 1);
            // Upstream also builds an 8 MiB snapshot here that nothing
            // uses; setup is not counted, so it is left out.
            node.raft.msgs.extend((0..100).map(|_| Message::default()));
            node.raft.raft_log.committed = 1;
            node
        }

        /// Runs `bench` `iterations` times; false if there is no such bench.
        pub fn run(bench: &str, iterations: u64) -> bool {
            let logger = logger();
            for (v, l) in RAFT_SETS {
                if bench == format!("Raft::new ({v}, {l})") {
                    let storage = new_storage(v, l);
                    iter(iterations, || quick_raft(storage.clone(), &logger));
                    return true;
                }
                for campaign in CAMPAIGNS {
                    if bench == format!("Raft::campaign ({v}, {l}, {campaign})") {
                        let storage = new_storage(v, l);
                        iter(iterations, || {
                            let mut raft = quick_raft(storage.clone(), &logger);
                            raft.campaign(campaign.as_bytes());
                        });
                        return true;
                    }
                }
            }
            for size in PROPOSAL_SIZES {
                if bench == format!("RawNode::leader_propose/{size}") {
                    let mut node = quick_raw_node(&logger);
                    node.raft.become_candidate();
                    node.raft.become_leader();
                    iter_batched(
                        iterations,
                        || (vec![0; 8], vec![0; size]),
                        |(context, value)| node.propose(context, value).unwrap(),
                    );
                    return true;
                }
            }
            match bench {
                "RawNode::new" => iter(iterations, || quick_raw_node(&logger)),
                "RawNode::ready/Default" => iter_batched(
                    iterations,
                    || ready_raft_node(&logger),
                    |mut node| {
                        let _ = node.ready();
                    },
                ),
                "Progress::default" => iter(iterations, || Progress::new(9, 10)),
                _ => return false,
            }
            true
        }
    };
}

mod upstream_benches {
    benches!(upstream);
}

mod fork_benches {
    benches!(raft);
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.list {
        for name in benches() {
            println!("{name}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    let (Some(engine), Some(bench)) = (args.engine, args.bench) else {
        unreachable!("clap requires both without --list");
    };
    let found = match engine {
        Engine::Upstream => upstream_benches::run(&bench, args.iterations),
        Engine::Fork => fork_benches::run(&bench, args.iterations),
    };
    if found {
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("instructions: no bench named {bench:?}; --list names them");
        std::process::ExitCode::from(2)
    }
}

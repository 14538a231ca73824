//! The `harness` command line: `compare`, `replay`, `shrink` and `bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use harness::bench::{bench, BenchWorkload};
use harness::compare::{aggregate, compare, fork_failed, merge, render, to_json, Sweep};
use harness::divergence::{classify, Divergence};
use harness::engine::EngineKind;
use harness::html;
use harness::lease_cost::{lease_cost, render as render_lease_cost};
use harness::run::{run, Ending};
use harness::scenario::{Options, Overrides, Scenario};
use harness::shrink::shrink;
use harness::world::storage::StorageKind;
use harness::world::trace::TraceLevel;

/// Runs seeded raft cluster simulations on crates.io raft 0.7.0 and on the
/// fork, side by side.
#[derive(Parser)]
#[command(name = "harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every seed of each scenario on both engines: one row per scenario and
    /// engine, and how each seed's fork run relates to upstream's
    /// (identical, explained by a fork patch, or unexplained). Exits 1 on an
    /// unexplained seed, or if the fork panics or fails a check outside the
    /// negative controls.
    Compare {
        /// Scenarios to run (repeatable); all by default.
        #[arg(long = "scenario", value_enum)]
        scenarios: Vec<Scenario>,
        /// Seeds 0..N per scenario (default: each scenario's own count).
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<u64>,
        /// One seed only.
        #[arg(long)]
        seed: Option<u64>,
        /// Only every N-th seed, starting at the K-th (K/N, K from 0): one
        /// shard of a sweep split across machines.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Merge the `--json` outputs of shards into one table instead of
        /// running anything.
        #[arg(long, num_args = 1.., conflicts_with_all = ["scenarios", "seeds", "seed", "shard"])]
        merge: Vec<PathBuf>,
        #[command(flatten)]
        shape: Shape,
        /// Print one JSON object (the table's rows and every seed's result)
        /// instead of the table.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// One run, step by step.
    Replay {
        #[command(flatten)]
        run: RunArgs,
        /// Print one line per event.
        #[arg(long)]
        trace: bool,
        /// Only these fault events happen (ordinals, comma-separated), as
        /// `shrink` prints.
        #[arg(long, value_delimiter = ',')]
        keep_faults: Option<Vec<u64>>,
        /// Also write the run as a space-time diagram, one self-contained
        /// HTML page (with `--engine both`, the two runs side by side).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// A smaller schedule that fails the same way, with its replay command.
    Shrink {
        #[command(flatten)]
        run: RunArgs,
    },
    /// What safe lease reads cost: on both engines, with no faults and in
    /// the lease scenarios, the share of lease reads a leader sent through a
    /// ReadIndex round, and read latencies in ticks.
    LeaseCost {
        /// Seeds 0..N per schedule and engine.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// The same fault-free workload on both engines, in ABBA order; committed
    /// entries per second per round, and the fork/upstream ratio's median
    /// and range.
    Bench {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Entries proposed per tick.
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        /// Bytes per entry.
        #[arg(long, default_value_t = 256)]
        entry_bytes: usize,
        /// Entries committed per run.
        #[arg(long, default_value_t = 500_000)]
        entries: u64,
        /// Rounds; each runs both engines once.
        #[arg(long, default_value_t = 4)]
        rounds: u32,
        /// What nodes store their log on.
        #[arg(long, value_enum, default_value = "memory")]
        storage: StorageKind,
    },
}

/// Cluster shape overrides.
#[derive(Args, Clone, Copy)]
struct Shape {
    /// Nodes in the cluster (1 to 7; default 3).
    #[arg(long)]
    nodes: Option<usize>,
    /// Ticks with faults before the liveness phase.
    #[arg(long)]
    steps: Option<u64>,
    /// What nodes store their log on: the disk model in memory, or
    /// raft-wal-storage on real files beside it.
    #[arg(long, value_enum)]
    storage: Option<StorageKind>,
}

impl From<Shape> for Overrides {
    fn from(s: Shape) -> Overrides {
        Overrides {
            nodes: s.nodes,
            steps: s.steps,
            storage: s.storage,
        }
    }
}

/// An engine, or both side by side.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EngineArg {
    /// crates.io raft 0.7.0.
    Upstream,
    /// This repository's raft.
    Fork,
    /// Upstream, then the fork, on the same schedule.
    Both,
}

impl EngineArg {
    fn engines(self) -> Vec<EngineKind> {
        match self {
            EngineArg::Upstream => vec![EngineKind::Upstream],
            EngineArg::Fork => vec![EngineKind::Fork],
            EngineArg::Both => EngineKind::ALL.to_vec(),
        }
    }
}

/// How a failed run ended, as replay prints it.
fn ending_line(ending: &Ending) -> Option<String> {
    match ending {
        Ending::Passed => None,
        Ending::Panicked(msg) => Some(format!("panicked: {msg}")),
        Ending::Violated(v) => Some(format!("violation: {v}")),
    }
}

#[derive(Args)]
struct RunArgs {
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// The seed.
    #[arg(long)]
    seed: u64,
    /// The engine (`both` only for replay).
    #[arg(long, value_enum)]
    engine: EngineArg,
    #[command(flatten)]
    shape: Shape,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Raft's panics are caught and reported per run; outside `replay` the
    // default hook would print each one too. `replay` keeps it, for the
    // panic's location (and backtrace with RUST_BACKTRACE=1).
    if !matches!(cli.command, Command::Replay { .. }) {
        std::panic::set_hook(Box::new(|_| {}));
    }
    match cli.command {
        Command::Compare {
            scenarios,
            seeds,
            seed,
            shard,
            merge: shards,
            shape,
            json,
            threads,
        } => {
            let sweep = if shards.is_empty() {
                let wal = shape.storage == Some(StorageKind::Wal);
                let scenarios = match (scenarios.is_empty(), wal) {
                    (true, false) => Scenario::ALL.to_vec(),
                    (true, true) => Scenario::ALL
                        .into_iter()
                        .filter(|s| s.runs_on_wal())
                        .collect(),
                    (false, _) => scenarios,
                };
                if let Some(s) = scenarios.iter().find(|s| wal && !s.runs_on_wal()) {
                    eprintln!(
                        "{} models the disk itself; run it with --storage memory",
                        s.name()
                    );
                    return ExitCode::from(2);
                }
                let (shard, shards) = shard.unwrap_or((0, 1));
                let jobs: Vec<(Scenario, u64)> = scenarios
                    .iter()
                    .flat_map(|&s| {
                        let all = match (seed, seeds) {
                            (Some(seed), _) => seed..seed + 1,
                            (None, n) => 0..n.unwrap_or_else(|| s.default_seeds()),
                        };
                        all.filter(move |seed| seed % shards == shard)
                            .map(move |seed| (s, seed))
                    })
                    .collect();
                let threads = threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                compare(&jobs, shape.into(), threads)
            } else {
                match read_shards(&shards).and_then(merge) {
                    Ok(sweep) => sweep,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                }
            };
            let reports = aggregate(&sweep);
            if json {
                println!("{}", to_json(&sweep));
            } else {
                print!("{}", render(&reports));
            }
            if fork_failed(&reports) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Replay {
            run: args,
            trace,
            keep_faults,
            html,
        } => {
            let mut opts = Options::derive(args.scenario, args.seed, args.shape.into());
            opts.keep_faults = keep_faults.map(|k| k.into_iter().collect());
            println!(
                "{}",
                serde_json::to_string_pretty(&opts).expect("options serialize")
            );
            let level = if trace || html.is_some() {
                TraceLevel::Lines
            } else {
                TraceLevel::Hash
            };
            let mut outcomes = Vec::new();
            let mut code = ExitCode::SUCCESS;
            for engine in args.engine.engines() {
                let outcome = run(engine, &opts, level);
                if trace {
                    for line in &outcome.lines {
                        println!("{line}");
                    }
                }
                println!(
                    "{} {} seed {}: tick {}, {} committed, {} fault events, trace {:016x}",
                    args.scenario.name(),
                    engine.name(),
                    args.seed,
                    outcome.tick,
                    outcome.committed,
                    outcome.faults.len(),
                    outcome.trace_hash
                );
                match ending_line(&outcome.ending) {
                    None => println!("passed"),
                    Some(line) => {
                        println!("{line}");
                        code = ExitCode::FAILURE;
                    }
                }
                if let Some(after) = outcome.after_violation() {
                    println!("and then {after}");
                }
                outcomes.push((engine, outcome));
            }
            if let Some(path) = html {
                let title = |engine: EngineKind| {
                    format!(
                        "{} {} seed {}",
                        args.scenario.name(),
                        engine.name(),
                        args.seed
                    )
                };
                let divergence = match outcomes.as_slice() {
                    [(_, upstream), (_, fork)] => match classify(upstream, fork) {
                        Divergence::Identical => None,
                        Divergence::Explained { event, patch } => Some((
                            event,
                            format!("first divergence: explained by fork patch {patch}"),
                        )),
                        Divergence::Unexplained { event } => {
                            Some((event, "first divergence: unexplained".to_string()))
                        }
                    },
                    _ => None,
                };
                let panels = outcomes
                    .into_iter()
                    .map(|(engine, outcome)| html::Panel {
                        title: title(engine),
                        failure: ending_line(&outcome.ending)
                            .zip(outcome.failed_at)
                            .map(|(line, (_, event))| (event, line)),
                        lines: outcome.lines,
                        divergence: divergence.clone(),
                    })
                    .collect();
                let (page, summary) = html::render(panels);
                if let Err(e) = std::fs::write(&path, page) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!(
                    "wrote {}: {} lanes, {} arrows, {} failures",
                    path.display(),
                    summary.lanes,
                    summary.arrows,
                    summary.failures
                );
            }
            code
        }
        Command::Shrink { run: args } => {
            let [engine] = args.engine.engines()[..] else {
                eprintln!("shrink takes one engine, not both");
                return ExitCode::FAILURE;
            };
            match shrink(args.scenario, args.seed, engine, args.shape.into()) {
                Ok(s) => {
                    println!("fails with: {}", s.failure);
                    println!(
                        "shrunk from {} steps and {} fault events to {} steps and {} fault events",
                        s.original.0,
                        s.original.1,
                        s.steps,
                        s.faults.len()
                    );
                    println!("replay: {}", s.replay);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::LeaseCost {
            seeds,
            json,
            threads,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let rows = lease_cost(seeds, threads);
            if json {
                println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
            } else {
                print!("{}", render_lease_cost(&rows, seeds));
            }
            ExitCode::SUCCESS
        }
        Command::Bench {
            json,
            nodes,
            batch,
            entry_bytes,
            entries,
            rounds,
            storage,
        } => {
            let report = bench(BenchWorkload {
                nodes,
                batch,
                entry_bytes,
                entries_per_run: entries,
                rounds,
                storage,
            });
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                println!(
                    "{} nodes on {:?} storage, {} entries of {} bytes per tick, {} entries per run, {} rounds (ABBA order)",
                    nodes, storage, batch, entry_bytes, entries, rounds
                );
                println!(
                    "{:<6} {:<9} {:>14} {:>14} {:>14}",
                    "round", "first", "upstream/s", "fork/s", "fork/upstream"
                );
                for (i, r) in report.rounds.iter().enumerate() {
                    println!(
                        "{:<6} {:<9} {:>14.0} {:>14.0} {:>14.3}",
                        i + 1,
                        r.first.name(),
                        r.upstream.entries_per_sec,
                        r.fork.entries_per_sec,
                        r.ratio
                    );
                }
                for (engine, rate) in &report.engines {
                    println!(
                        "{:<9} {:>12.0} committed entries/s over all rounds",
                        engine.name(),
                        rate.entries_per_sec
                    );
                }
                println!(
                    "fork/upstream median {:.3}, range {:.3} to {:.3}",
                    report.ratio, report.ratio_range.0, report.ratio_range.1
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// `K/N` with `K < N`.
fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not K/N"))?;
    let (k, n): (u64, u64) = (
        k.parse().map_err(|_| format!("'{k}' is not a number"))?,
        n.parse().map_err(|_| format!("'{n}' is not a number"))?,
    );
    if k >= n {
        return Err(format!("shard {k} of {n}: K runs from 0 to N-1"));
    }
    Ok((k, n))
}

/// The sweeps in `compare --json` files.
fn read_shards(paths: &[PathBuf]) -> Result<Vec<Sweep>, String> {
    paths
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("{}: not the output of compare --json: {e}", path.display()))
        })
        .collect()
}

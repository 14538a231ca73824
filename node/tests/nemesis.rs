//! Short nemesis runs: kills, power loss (one node, two, all), pauses,
//! partitions, leader transfers and membership changes under client load,
//! with the history checked; and the proof that the power-loss fault can
//! lose data. Long mode: set RAFT_NODE_NEMESIS_SCHEDULES (and optionally
//! RAFT_NODE_NEMESIS_SECONDS, RAFT_NODE_NEMESIS_SEED).
//!
//! Power loss needs LazyFS: RAFT_NODE_LAZYFS names its binary
//! (`../shared/lazyfs/build DIR` prints it; it needs root and /dev/fuse).
//! `.ci/run` builds it and sets the variable; under CI a missing LazyFS
//! fails the tests rather than skipping power loss.

use std::path::PathBuf;

use raft_node::nemesis::{run_schedules, Fault, NemesisOptions};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lazyfs() -> Option<PathBuf> {
    let found = std::env::var_os("RAFT_NODE_LAZYFS").map(PathBuf::from);
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("RAFT_NODE_LAZYFS must name the LazyFS binary under CI (.ci/run builds it)");
    }
    if found.is_none() {
        eprintln!("RAFT_NODE_LAZYFS is not set: no power loss in this run");
    }
    found
}

fn options(dir: &tempfile::TempDir, lazyfs: Option<PathBuf>) -> NemesisOptions {
    NemesisOptions {
        seed: env_or("RAFT_NODE_NEMESIS_SEED", 1),
        seconds: env_or("RAFT_NODE_NEMESIS_SECONDS", 8.0),
        clients: 8,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_raft-node")),
        dir: dir.path().to_owned(),
        lazyfs,
        unsafe_no_fsync: false,
        faults: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_and_reads_survive_every_fault() {
    let dir = tempfile::tempdir().unwrap();
    let lazyfs = lazyfs();
    let power = lazyfs.is_some();
    let opts = options(&dir, lazyfs);
    let schedules = env_or("RAFT_NODE_NEMESIS_SCHEDULES", 3);
    let totals = run_schedules(&opts, schedules, |line| println!("{line}")).await;
    println!("{}", totals.render());
    if !totals.failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "{}\nnode logs kept under {}",
            totals.failures.join("\n"),
            kept.display()
        );
    }
    assert!(
        totals.faults.values().sum::<u64>() > 0,
        "no fault was injected"
    );
    assert!(
        totals.appends[0] > 0 && totals.reads[0] > 0,
        "no operation was acknowledged"
    );
    if power {
        let power_losses: u64 = [Fault::PowerLoss, Fault::PowerLossTwo, Fault::PowerLossAll]
            .iter()
            .filter_map(|f| totals.faults.get(f))
            .sum();
        assert!(power_losses > 0, "no power loss was injected");
    }
}

/// The test of the test: with fdatasync off, a power loss of the whole
/// cluster must cost acknowledged records, and the checker must see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_power_loss_loses_acknowledged_records() {
    let Some(lazyfs) = lazyfs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = NemesisOptions {
        seconds: 4.0,
        unsafe_no_fsync: true,
        faults: vec![Fault::PowerLossAll],
        ..options(&dir, Some(lazyfs))
    };
    let totals = run_schedules(&opts, 1, |line| println!("{line}")).await;
    println!("{}", totals.render());
    assert!(
        totals.lost_acknowledged > 0,
        "power loss without fsync lost nothing: the fault cannot see a missing fsync\n{}",
        totals.failures.join("\n")
    );
}

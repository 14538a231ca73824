//! A short nemesis run: kills, pauses and partitions under client load,
//! with the history checked. Long mode: set RAFT_NODE_NEMESIS_SCHEDULES
//! (and optionally RAFT_NODE_NEMESIS_SECONDS, RAFT_NODE_NEMESIS_SEED).

use std::path::PathBuf;

use raft_node::nemesis::{run_schedules, NemesisOptions};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_and_reads_survive_kills_pauses_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = NemesisOptions {
        seed: env_or("RAFT_NODE_NEMESIS_SEED", 1),
        seconds: env_or("RAFT_NODE_NEMESIS_SECONDS", 8.0),
        clients: 8,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_raft-node")),
        dir: dir.path().to_owned(),
    };
    let schedules = env_or("RAFT_NODE_NEMESIS_SCHEDULES", 2);
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
}

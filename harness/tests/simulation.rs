//! Whole runs of the simulator: determinism, the crash report on both
//! engines, identical behaviour outside the bug class, and the negative
//! control.

use harness::divergence::{classify, Divergence};
use harness::engine::{EngineKind, Fork, ReadMode};
use harness::run::{run, Ending, Liveness, Simulation};
use harness::scenario::{Options, Overrides, Scenario};
use harness::shrink::shrink;
use harness::world::storage::StorageKind;
use harness::world::trace::TraceLevel;

fn opts(scenario: Scenario, seed: u64) -> Options {
    Options::derive(scenario, seed, Overrides::default())
}

#[test]
fn same_seed_twice_gives_the_same_trace_hash() {
    for scenario in [
        Scenario::Chaos,
        Scenario::StorageAhead,
        Scenario::LateRecovery,
    ] {
        for seed in 0..4 {
            let o = opts(scenario, seed);
            let (a, b) = (
                run(EngineKind::Fork, &o, TraceLevel::Hash),
                run(EngineKind::Fork, &o, TraceLevel::Hash),
            );
            assert_eq!(
                a.trace_hash,
                b.trace_hash,
                "{} seed {seed}",
                scenario.name()
            );
            assert_eq!(
                (a.tick, a.committed, &a.faults),
                (b.tick, b.committed, &b.faults)
            );
        }
    }
    let hashes: std::collections::BTreeSet<u64> = (0..4)
        .map(|seed| {
            run(
                EngineKind::Fork,
                &opts(Scenario::Chaos, seed),
                TraceLevel::Hash,
            )
            .trace_hash
        })
        .collect();
    assert_eq!(hashes.len(), 4, "different seeds, different runs");
}

#[test]
fn trace_lines_hash_to_the_trace_hash() {
    let o = opts(Scenario::Chaos, 3);
    let with_lines = run(EngineKind::Fork, &o, TraceLevel::Lines);
    let hashed = run(EngineKind::Fork, &o, TraceLevel::Hash);
    assert!(with_lines.lines.len() > 100);
    assert_eq!(with_lines.trace_hash, hashed.trace_hash);
}

#[test]
fn seed_620_panics_upstream_exactly_as_reported() {
    let outcome = run(
        EngineKind::Upstream,
        &opts(Scenario::Seed620, 0),
        TraceLevel::Hash,
    );
    assert_eq!(
        outcome.ending,
        Ending::Panicked("unstable.slice[620, 622] out of bound[620, 620], raft_id: 3".into())
    );
}

#[test]
fn seed_620_converges_on_the_fork_with_equal_logs() {
    let mut sim = Simulation::<Fork>::new(&opts(Scenario::Seed620, 0), TraceLevel::Off).unwrap();
    sim.run().unwrap();
    let world = sim.world();
    let (d1, d2, d3) = (world.disk(1), world.disk(2), world.disk(3));
    assert_eq!((d3.term(621), d3.term(622)), (Ok(1), Ok(4)));
    assert_eq!(d1.last_index(), d3.last_index());
    assert_eq!(d2.last_index(), d3.last_index());
    let last = d3.last_index();
    assert!(last > 622);
    assert_eq!(d1.chain_at(last), d3.chain_at(last));
    assert_eq!(d2.chain_at(last), d3.chain_at(last));
}

#[test]
fn chaos_has_no_unexplained_divergence() {
    for seed in 0..20 {
        let o = opts(Scenario::Chaos, seed);
        let up = run(EngineKind::Upstream, &o, TraceLevel::Hash);
        let fork = run(EngineKind::Fork, &o, TraceLevel::Hash);
        assert_eq!(up.ending, Ending::Passed, "seed {seed}");
        assert_eq!(fork.ending, Ending::Passed, "seed {seed}");
        assert!(
            !matches!(classify(&up, &fork), Divergence::Unexplained { .. }),
            "seed {seed}"
        );
        assert!(fork.committed > 0);
    }
}

#[test]
fn seed_620_divergence_is_explained_by_patch_0005() {
    let o = opts(Scenario::Seed620, 0);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Lines);
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    let Divergence::Explained { event, patch } = classify(&up, &fork) else {
        panic!("seed-620 must be explained");
    };
    assert_eq!(patch, "0005");
    assert_eq!(event, up.lines.len(), "upstream's trace ends at its panic");
    assert!(
        fork.lines[event].contains("n3 fork patch 0005: "),
        "{}",
        fork.lines[event]
    );
}

#[test]
fn a_run_made_to_differ_without_a_patch_record_is_unexplained() {
    // Without reads no fork patch acts on this seed (0018 would at the
    // first read, 0020 does on seed 3), so the only difference is the one
    // made here.
    let mut o = opts(Scenario::Chaos, 2);
    o.workload.read_pct = 0;
    assert_eq!(
        classify(
            &run(EngineKind::Upstream, &o, TraceLevel::Hash),
            &run(EngineKind::Fork, &o, TraceLevel::Hash)
        ),
        Divergence::Identical
    );
    let up = run(EngineKind::Upstream, &o, TraceLevel::Hash);
    let mut changed = o.clone();
    changed.world.heartbeat_ticks += 1;
    let fork = run(EngineKind::Fork, &changed, TraceLevel::Hash);
    assert_eq!(fork.ending, Ending::Passed);
    assert!(fork.patch_events.is_empty());
    assert!(matches!(
        classify(&up, &fork),
        Divergence::Unexplained { .. }
    ));
}

#[test]
fn storage_faults_crash_upstream_and_not_the_fork() {
    for scenario in [
        Scenario::StorageAhead,
        Scenario::LateRecovery,
        Scenario::BadAppend,
    ] {
        let mut upstream_panics = 0;
        for seed in 0..10 {
            let o = opts(scenario, seed);
            let fork = run(EngineKind::Fork, &o, TraceLevel::Off);
            assert_eq!(
                fork.ending,
                Ending::Passed,
                "{} seed {seed}",
                scenario.name()
            );
            let up = run(EngineKind::Upstream, &o, TraceLevel::Off);
            if up.panic().is_some_and(|m| m.contains("out of bound")) {
                upstream_panics += 1;
            }
        }
        assert!(
            upstream_panics >= 3,
            "{}: {upstream_panics} upstream panics",
            scenario.name()
        );
    }
}

#[test]
fn stale_tail_is_caught_on_both_engines() {
    let caught = |engine| {
        (0..20)
            .filter(|&seed| {
                let outcome = run(engine, &opts(Scenario::StaleTail, seed), TraceLevel::Off);
                outcome.violation().is_some()
            })
            .count()
    };
    let (up, fork) = (caught(EngineKind::Upstream), caught(EngineKind::Fork));
    assert!(
        up > 0 && fork > 0,
        "the negative control must fail on both engines: upstream {up}, fork {fork}"
    );
}

#[test]
fn shrink_keeps_the_failure_with_fewer_faults() {
    // Upstream panics on this seed after 7 fault events; one of them is enough.
    const SEED: u64 = 2;
    let shrunk = shrink(
        Scenario::StorageAhead,
        SEED,
        EngineKind::Upstream,
        Overrides::default(),
    )
    .unwrap();
    assert!(
        shrunk.failure.starts_with("panic: unstable.slice["),
        "{}",
        shrunk.failure
    );
    assert!(shrunk.faults.len() < shrunk.original.1);
    assert!(shrunk.steps <= shrunk.original.0);
    let mut o = opts(Scenario::StorageAhead, SEED);
    o.steps = shrunk.steps;
    o.keep_faults = Some(shrunk.faults.clone());
    let replayed = run(EngineKind::Upstream, &o, TraceLevel::Off);
    assert!(replayed
        .panic()
        .is_some_and(|m| m.starts_with("unstable.slice[")));
    assert!(shrink(Scenario::Chaos, 0, EngineKind::Fork, Overrides::default()).is_err());
}

#[test]
fn chaos_changes_membership_through_joint_consensus_without_unexplained_divergence() {
    let o = opts(Scenario::Chaos, 0);
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    let joint = fork
        .lines
        .iter()
        .filter(|l| l.contains("outgoing [") && !l.contains("outgoing []"))
        .count();
    let learners = fork
        .lines
        .iter()
        .filter(|l| l.contains(" conf ") && !l.contains("learners []"))
        .count();
    assert!(
        joint > 0 && learners > 0,
        "joint {joint}, learners {learners}"
    );
    assert_eq!(fork.ending, Ending::Passed);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Hash);
    assert!(!matches!(
        classify(&up, &fork),
        Divergence::Unexplained { .. }
    ));
}

fn wal_opts(scenario: Scenario, seed: u64) -> Options {
    let overrides = Overrides {
        storage: Some(StorageKind::Wal),
        ..Overrides::default()
    };
    Options::derive(scenario, seed, overrides)
}

#[test]
fn chaos_on_the_wal_recovers_every_crash_without_unexplained_divergence() {
    for seed in 0..3 {
        let o = wal_opts(Scenario::Chaos, seed);
        let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
        assert_eq!(fork.ending, Ending::Passed, "seed {seed}");
        assert!(
            fork.lines.iter().any(|l| l.contains(" crash")),
            "seed {seed} crashes a node"
        );
        let up = run(EngineKind::Upstream, &o, TraceLevel::Hash);
        assert!(
            !matches!(classify(&up, &fork), Divergence::Unexplained { .. }),
            "seed {seed}"
        );
    }
}

#[test]
fn the_wal_window_does_not_stop_upstreams_panic_but_the_fork_survives() {
    let mut upstream_panics = 0;
    for seed in 0..4 {
        let o = wal_opts(Scenario::StorageAhead, seed);
        assert_eq!(
            run(EngineKind::Fork, &o, TraceLevel::Off).ending,
            Ending::Passed,
            "seed {seed}"
        );
        let up = run(EngineKind::Upstream, &o, TraceLevel::Off);
        upstream_panics +=
            usize::from(up.panic().is_some_and(|m| m.starts_with("unstable.slice[")));
    }
    assert!(upstream_panics >= 3, "{upstream_panics} of 4");
}

#[test]
fn compare_fails_only_on_a_fork_failure_outside_the_negative_control() {
    use harness::compare::{aggregate, compare, fork_failed};
    let jobs = |scenario, seeds: std::ops::Range<u64>| -> Vec<(Scenario, u64)> {
        seeds.map(|seed| (scenario, seed)).collect()
    };
    let upstream_crashes = aggregate(&compare(
        &jobs(Scenario::BadAppend, 0..2),
        Overrides::default(),
        2,
    ));
    assert!(upstream_crashes[0].engines[&EngineKind::Upstream].panics > 0);
    assert!(
        !fork_failed(&upstream_crashes),
        "upstream's failures do not fail compare"
    );
    let negative_control = aggregate(&compare(
        &jobs(Scenario::StaleTail, 0..20),
        Overrides::default(),
        2,
    ));
    assert!(negative_control[0].engines[&EngineKind::Fork].violations > 0);
    assert!(
        !fork_failed(&negative_control),
        "stale-tail is expected to fail"
    );
}

#[test]
fn reads_are_served_in_chaos_and_checked_on_both_engines() {
    let o = opts(Scenario::Chaos, 1);
    for engine in EngineKind::ALL {
        let outcome = run(engine, &o, TraceLevel::Off);
        assert_eq!(outcome.ending, Ending::Passed);
        assert!(outcome.reads > 50, "{} reads", outcome.reads);
    }
}

#[test]
fn read_index_seed_24_serves_a_stale_read_on_upstream_and_not_on_the_fork() {
    // A muted leader n1 gets a late copy of an old forwarded read and late
    // heartbeat responses echoing that read's context: they confirm it and
    // release the reads queued before it, at n1's stale commit index.
    let o = opts(Scenario::ReadIndex, 24);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Lines);
    let v = up.violation().expect("upstream serves a stale read");
    assert_eq!(v.checker, "linearizable reads");
    assert!(v.message.starts_with("stale read: n1 served read"), "{v}");
    assert_eq!(
        up.liveness,
        Liveness::Converged,
        "judged after the stale read"
    );
    assert!(up
        .lines
        .iter()
        .any(|l| l.contains("3->1 MsgReadIndex") && l.contains("read 38")));
    let fork = run(EngineKind::Fork, &o, TraceLevel::Hash);
    assert_eq!(fork.ending, Ending::Passed);
    assert!(matches!(
        classify(&up, &fork),
        Divergence::Explained { patch, .. } if patch == "0018"
    ));
}

#[test]
fn priority_scenario_panics_upstream_with_511_and_the_fork_passes() {
    let o = opts(Scenario::Priority, 0);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Hash);
    assert!(
        up.panic().is_some_and(
            |m| m.starts_with("term should be set when sending MsgRequestPreVoteResponse")
        ),
        "{:?}",
        up.ending
    );
    let fork = run(EngineKind::Fork, &o, TraceLevel::Hash);
    assert_eq!(fork.ending, Ending::Passed);
    assert_eq!(
        classify(&up, &fork),
        Divergence::Explained {
            event: up.event_hashes.len(),
            patch: "0015".into()
        }
    );
}

#[test]
fn priority_seed_811_elects_a_leader_on_the_fork() {
    // In a joint configuration the voter with the longest, stale log had
    // the highest priority and refused every more up-to-date candidate.
    let o = opts(Scenario::Priority, 811);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Off);
    assert_eq!(up.violation().map(|v| v.checker), Some("liveness"));
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    assert_eq!(fork.ending, Ending::Passed);
    assert!(fork.lines.iter().any(|l| l.contains("fork patch 0016: ")));
}

#[test]
fn lease_read_seed_48_is_stale_on_upstream_and_goes_through_a_round_on_the_fork() {
    // A cut-off leader answers from a lease upstream never lets expire;
    // patch 0021's leader lets it lapse before the others can elect.
    let o = opts(Scenario::LeaseRead, 48);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Off);
    let v = up
        .violation()
        .expect("a cut-off leader serves from its lease");
    assert!(v.message.starts_with("stale read"), "{v}");
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    assert_eq!(fork.ending, Ending::Passed);
    assert!(fork
        .lines
        .iter()
        .any(|l| l.contains("fork patch 0021: no valid lease")));
}

#[test]
fn lease_transfer_seed_2_is_stale_on_upstream_only() {
    // The old leader, deafened once its MsgTimeoutNow left, answers from
    // its lease while the transferee leads; the fork's leader revoked it.
    let o = opts(Scenario::LeaseTransfer, 2);
    let up = run(EngineKind::Upstream, &o, TraceLevel::Off);
    let v = up
        .violation()
        .expect("the old leader serves from its lease");
    assert!(v.message.starts_with("stale read"), "{v}");
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    assert_eq!(fork.ending, Ending::Passed);
    // The deafened old leader sends its reads through rounds.
    let deafened = fork
        .lines
        .iter()
        .position(|l| l.contains("deafened after its transfer"))
        .expect("a leader deafened after its transfer");
    let node = fork.lines[deafened]
        .split_whitespace()
        .nth(1)
        .expect("a node");
    let fell_back = format!("{node} fork patch 0021: no valid lease");
    assert!(fork.lines[deafened..]
        .iter()
        .any(|l| l.contains(&fell_back)));
}

#[test]
fn a_transport_reporting_unreachable_peers_is_exercised() {
    let o = opts(Scenario::Unreachable, 2);
    let fork = run(EngineKind::Fork, &o, TraceLevel::Lines);
    assert_eq!(fork.ending, Ending::Passed);
    assert!(fork.lines.iter().any(|l| l.contains(" unreachable")));
    assert!(fork.counts["unreachable reports"] > 0);
}

#[test]
fn implicit_conf_changes_enter_and_leave_joint_consensus_by_themselves() {
    let joint_after_implicit = (0..10).any(|seed| {
        let fork = run(
            EngineKind::Fork,
            &opts(Scenario::Chaos, seed),
            TraceLevel::Lines,
        );
        let proposed = fork
            .lines
            .iter()
            .position(|l| l.contains("propose conf change Implicit") && l.ends_with("true"));
        proposed.is_some_and(|at| {
            let rest = &fork.lines[at..];
            let joint = rest
                .iter()
                .position(|l| l.contains(" conf ") && !l.contains("outgoing []"));
            joint.is_some_and(|j| {
                rest[j..]
                    .iter()
                    .any(|l| l.contains(" conf ") && l.contains("outgoing []"))
            })
        })
    });
    assert!(joint_after_implicit);
}

#[test]
fn rolling_upgrade_and_downgrade_keep_the_cluster_safe() {
    for seed in 0..4 {
        let o = opts(Scenario::RollingUpgrade, seed);
        assert_eq!(o.upgrades.len(), 3);
        for engine in EngineKind::ALL {
            let outcome = run(engine, &o, TraceLevel::Lines);
            assert_eq!(
                outcome.ending,
                Ending::Passed,
                "seed {seed} to {}",
                engine.name()
            );
            let switched = outcome
                .lines
                .iter()
                .filter(|l| l.ends_with(&format!("switches to {}", engine.name())))
                .count();
            assert_eq!(switched, 3, "seed {seed}");
        }
    }
}

#[test]
fn rolling_upgrades_serve_lease_reads_in_mixed_clusters() {
    let o = (0..)
        .map(|seed| opts(Scenario::RollingUpgrade, seed))
        .find(|o| o.world.read_mode == ReadMode::LeaseBased)
        .expect("a seed with lease reads");
    for engine in EngineKind::ALL {
        let outcome = run(engine, &o, TraceLevel::Off);
        assert_eq!(outcome.ending, Ending::Passed, "to {}", engine.name());
        assert!(outcome.counts["lease reads at a leader"] > 0);
    }
}

#[test]
fn late_recovery_seed_661_applies_the_recovered_committed_entries() {
    // n1's storage recovers 206..=207 after RawNode::new; a heartbeat
    // commits them. Without patch 0009 they were never applied, the
    // configuration change among them stayed pending, n1 refused to
    // campaign and no leader was elected after healing.
    let fork = run(
        EngineKind::Fork,
        &opts(Scenario::LateRecovery, 661),
        TraceLevel::Lines,
    );
    assert_eq!(fork.ending, Ending::Passed);
    assert!(fork
        .lines
        .iter()
        .any(|l| l.contains("n1 fork patch 0009: commit")));
}

#[test]
fn read_index_seed_2886_elects_a_leader_everyone_follows_on_the_fork() {
    // n3 restarts in an old configuration and runs its term up while cut
    // off; n2 leads a newer one at term 3. After healing n3 ignored n2's
    // heartbeats and asked only learner n1 for votes, on both engines,
    // until patch 0020 made it answer them.
    let fork = run(
        EngineKind::Fork,
        &opts(Scenario::ReadIndex, 2886),
        TraceLevel::Hash,
    );
    assert_eq!(fork.ending, Ending::Passed);
    assert_eq!(fork.liveness, Liveness::Converged);
    assert!(fork.patch_events.iter().any(|e| e.patch == "0020"));
}

//! One run: a scenario, a seed and an engine, from the first tick to the
//! end of the liveness phase, or to the first panic.
//!
//! The first safety violation decides how the run ended, but does not end
//! it: the checkers stop there, and the run goes on to heal and judge
//! liveness, so a safety failure cannot hide a cluster that also stays
//! stuck.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::checkers::{converged, Checkers, ClusterView, Convergence, Violation};
use crate::engine::{Engine, EngineKind, Fork, Mixed, NodeStatus, Upstream};
use crate::faults::Faults;
use crate::scenario::{rng, Options, Stream};
use crate::workload::{ReadLatency, Workload};
use crate::world::disk::Disk;
use crate::world::network::Network;
use crate::world::node::StateMachine;
use crate::world::trace::{PatchEvent, Trace, TraceLevel};
use crate::world::World;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every check passed and the cluster converged.
    Passed,
    /// Raft (or the simulation) panicked.
    Panicked(String),
    /// A checker caught a violation.
    Violated(Violation),
}

/// Whether the cluster recovered once the faults healed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// One leader followed by all, every node holding and having applied
    /// the same log, and a new proposal committed.
    Converged,
    /// Not converged when the liveness phase ended, and why.
    Stuck(String),
    /// A panic ended the run before the liveness phase did.
    Panicked(String),
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended.
    pub ending: Ending,
    /// The tick and the trace event at which the ending's failure happened:
    /// where the first safety violation was caught, or the end of the run.
    pub failed_at: Option<(u64, usize)>,
    /// Whether the cluster recovered, judged even after a safety violation.
    pub liveness: Liveness,
    /// The tick it ended at.
    pub tick: u64,
    /// Proposals acknowledged to clients.
    pub committed: u64,
    /// Reads served to clients.
    pub reads: u64,
    /// Each served read's latency.
    pub read_latencies: Vec<ReadLatency>,
    /// What the world counted (see `World::count`).
    pub counts: BTreeMap<String, u64>,
    /// Ticks from healing to the first new proposal committed, if the run
    /// got there.
    pub heal_to_commit_ticks: Option<u64>,
    /// Hash of the trace.
    pub trace_hash: u64,
    /// Each trace event's hash, in order.
    pub event_hashes: Vec<u64>,
    /// The fork-patch records among the trace's events.
    pub patch_events: Vec<PatchEvent>,
    /// The trace lines, when asked for.
    pub lines: Vec<String>,
    /// Ordinals of the fault events that happened.
    pub faults: Vec<u64>,
}

impl RunOutcome {
    /// The panic message, if it panicked.
    pub fn panic(&self) -> Option<&str> {
        match &self.ending {
            Ending::Panicked(msg) => Some(msg),
            _ => None,
        }
    }

    /// The violation, if a checker caught one.
    pub fn violation(&self) -> Option<&Violation> {
        match &self.ending {
            Ending::Violated(v) => Some(v),
            _ => None,
        }
    }

    /// What went wrong after a safety violation had decided the ending:
    /// the cluster stayed stuck, or a panic cut the run short.
    pub fn after_violation(&self) -> Option<String> {
        match (&self.ending, &self.liveness) {
            (Ending::Violated(v), _) if v.checker == LIVENESS => None,
            (Ending::Violated(_), Liveness::Stuck(why)) => Some(format!("liveness: {why}")),
            (Ending::Violated(_), Liveness::Panicked(msg)) => Some(format!("panic: {msg}")),
            _ => None,
        }
    }

    /// A short, stable description of how the run failed, if it did: the
    /// panic message or the violated checker.
    pub fn failure_kind(&self) -> Option<String> {
        match &self.ending {
            Ending::Passed => None,
            Ending::Panicked(msg) => Some(format!("panic: {msg}")),
            Ending::Violated(v) => Some(format!("violation: {}", v.checker)),
        }
    }
}

/// A run in progress.
pub struct Simulation<E: Engine> {
    opts: Options,
    world: World<E>,
    faults: Faults,
    workload: Workload,
    checkers: Checkers,
    /// The first safety violation, with its tick and trace event; once
    /// set, the checkers rest.
    safety: Option<(Violation, (u64, usize))>,
    liveness: Option<Liveness>,
    heal_to_commit_ticks: Option<u64>,
}

/// The checker name of a liveness failure.
const LIVENESS: &str = "liveness";

impl<E: Engine> Simulation<E> {
    /// Builds the world of a run.
    ///
    /// # Errors
    ///
    /// If a node cannot start from its initial disk.
    pub fn new(opts: &Options, level: TraceLevel) -> Result<Simulation<E>, String> {
        let seed = opts.seed;
        let network = Network::new(opts.link_map(), rng(seed, Stream::Network));
        let world = World::new(
            opts.world.clone(),
            opts.initial_storage(),
            network,
            Trace::new(level),
            rng(seed, Stream::Timeouts),
            rng(seed, Stream::Syncs),
        )?;
        Ok(Simulation {
            faults: Faults::new(opts, rng(seed, Stream::Faults)),
            workload: Workload::new(opts.workload.clone(), rng(seed, Stream::Workload)),
            checkers: Checkers::default(),
            safety: None,
            liveness: None,
            heal_to_commit_ticks: None,
            opts: opts.clone(),
            world,
        })
    }

    /// The world, for inspection.
    pub fn world(&self) -> &World<E> {
        &self.world
    }

    /// Proposals acknowledged so far.
    pub fn committed(&self) -> u64 {
        self.workload.committed
    }

    /// Every node that is up snapshots and compacts up to what it applied.
    pub fn compact_all(&mut self) {
        for id in self.world.ids().to_vec() {
            if self.world.is_up(id) {
                let applied = self.world.state_machine(id).applied;
                self.world.compact(id, applied);
            }
        }
    }

    /// One tick: script, faults (unless healing), workload, raft, checks.
    /// Fails on a safety violation; the run can go on after it, unchecked.
    pub fn step(&mut self, faults: bool) -> Result<(), Violation> {
        self.world.tick();
        self.opts.script(&mut self.world);
        if faults {
            self.faults.tick(&mut self.world);
        }
        self.workload.tick(&mut self.world);
        self.world.settle();
        self.check()
    }

    /// Ticks the world with no workload or faults, checking as usual.
    pub fn idle_step(&mut self) -> Result<(), Violation> {
        self.world.tick();
        self.world.settle();
        self.check()
    }

    fn check(&mut self) -> Result<(), Violation> {
        let events = self.world.drain_events();
        let observed = self.workload.observe(self.world.now, &events);
        for _ in observed
            .reads
            .iter()
            .filter(|r| r.answered_by_upstream && r.is_stale())
        {
            self.world.count("stale reads answered by 0.7.0 nodes");
        }
        if self.safety.is_some() {
            return Ok(());
        }
        let checked = self.checkers.check(&self.world, &events, &observed);
        if let Err(violation) = &checked {
            let at = (self.world.now, self.world.trace_events());
            self.safety = Some((violation.clone(), at));
        }
        checked
    }

    /// The whole run: the scenario's steps, then healing and the liveness
    /// phase. Fails with the first safety violation if there was one, else
    /// with the liveness failure; the outcome tells whether the cluster
    /// recovered either way.
    pub fn run(&mut self) -> Result<(), Violation> {
        for _ in 0..self.opts.steps {
            let _ = self.step(true);
        }
        self.faults.heal(&mut self.world);
        let liveness = self.liveness();
        self.liveness = Some(match &liveness {
            Err(v) if v.checker == LIVENESS => Liveness::Stuck(v.message.clone()),
            _ => Liveness::Converged,
        });
        match &self.safety {
            Some((violation, _)) => Err(violation.clone()),
            None => liveness,
        }
    }

    /// Heals, then waits for one leader and a converged log; a new proposal
    /// must commit everywhere. A probe is proposed to each new leader (or term) until
    /// one commits. A safety violation in this phase is kept for the ending
    /// and the wait goes on.
    fn liveness(&mut self) -> Result<(), Violation> {
        let mut probed: Option<(u64, u64)> = None;
        let mut waiting = String::from("no tick yet");
        let healed_at = self.world.now;
        for _ in 0..self.opts.liveness_ticks_max {
            let _ = self.idle_step();
            if let Some(leader) = self.world.leader() {
                let term = self.world.status(leader).map(|s| s.term);
                let fresh = probed != term.map(|t| (leader, t));
                if !self.workload.probe_committed
                    && fresh
                    && self.workload.propose_probe(&mut self.world, leader)
                {
                    probed = term.map(|t| (leader, t));
                    self.world.settle();
                    let _ = self.check();
                }
            }
            if self.workload.probe_committed && self.heal_to_commit_ticks.is_none() {
                self.heal_to_commit_ticks = Some(self.world.now - healed_at);
            }
            waiting = match converged(&self.world) {
                Convergence::Converged { .. } if self.workload.probe_committed => {
                    if self.safety.is_some() {
                        return Ok(());
                    }
                    return self.checkers.check_acked_applied(&self.world);
                }
                Convergence::Converged { .. } => "the new proposal has not committed".into(),
                Convergence::Waiting(why) => why,
            };
        }
        Err(Violation {
            checker: LIVENESS,
            message: format!(
                "not converged {} ticks after healing: {waiting}",
                self.opts.liveness_ticks_max
            ),
        })
    }

    /// Ends the run: `ending` is what `run` returned, or its panic.
    fn finish(mut self, ending: Ending) -> RunOutcome {
        let end = (self.world.now, self.world.trace_events());
        let liveness = match &ending {
            Ending::Panicked(msg) => Liveness::Panicked(msg.clone()),
            _ => self.liveness.clone().expect("run judged liveness"),
        };
        // The first safety violation stays the ending, even when a panic cut
        // the run short after it.
        let (ending, failed_at) = match (ending, self.safety.clone()) {
            (Ending::Passed, _) => (Ending::Passed, None),
            (_, Some((violation, at))) => (Ending::Violated(violation), Some(at)),
            (ending, None) => (ending, Some(end)),
        };
        let tick = self.world.now;
        let committed = self.workload.committed;
        let reads = self.workload.reads_served;
        let read_latencies = std::mem::take(&mut self.workload.read_latencies);
        let heal_to_commit_ticks = self.heal_to_commit_ticks;
        let faults = self.faults.applied.clone();
        let counts = self
            .world
            .counts()
            .iter()
            .map(|(&what, &n)| (what.to_string(), n))
            .collect();
        let trace = self.world.into_trace();
        RunOutcome {
            ending,
            failed_at,
            liveness,
            tick,
            committed,
            reads,
            read_latencies,
            counts,
            heal_to_commit_ticks,
            trace_hash: trace.hash(),
            event_hashes: trace.event_hashes().to_vec(),
            patch_events: trace.patch_events().to_vec(),
            lines: trace.into_lines(),
            faults,
        }
    }
}

impl<E: Engine> ClusterView for World<E> {
    fn ids(&self) -> &[u64] {
        World::ids(self)
    }
    fn status(&self, id: u64) -> Option<NodeStatus> {
        World::status(self, id)
    }
    fn disk(&self, id: u64) -> std::cell::Ref<'_, Disk> {
        World::disk(self, id)
    }
    fn state_machine(&self, id: u64) -> StateMachine {
        World::state_machine(self, id)
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&str>() {
            Ok(s) => s.to_string(),
            Err(_) => "panic with a non-string payload".to_string(),
        },
    }
}

/// Runs `opts` on engine `E`, catching a panic.
pub fn run_on<E: Engine>(opts: &Options, level: TraceLevel) -> RunOutcome {
    let mut sim: Option<Simulation<E>> = None;
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), Ending> {
        let s = sim.insert(Simulation::new(opts, level).map_err(Ending::Panicked)?);
        s.run().map_err(Ending::Violated)
    }));
    let ending = match result {
        Ok(Ok(())) => Ending::Passed,
        Ok(Err(ending)) => ending,
        Err(payload) => Ending::Panicked(panic_message(payload)),
    };
    match sim {
        Some(sim) => sim.finish(ending),
        // Only a cluster that could not start leaves no simulation.
        None => RunOutcome {
            failed_at: Some((0, 0)),
            liveness: Liveness::Panicked(match &ending {
                Ending::Panicked(msg) => msg.clone(),
                _ => "the cluster did not start".into(),
            }),
            ending,
            tick: 0,
            committed: 0,
            reads: 0,
            read_latencies: Vec::new(),
            counts: BTreeMap::new(),
            heal_to_commit_ticks: None,
            trace_hash: 0,
            event_hashes: Vec::new(),
            patch_events: Vec::new(),
            lines: Vec::new(),
            faults: Vec::new(),
        },
    }
}

/// Runs `opts` on the given engine; a scenario that mixes engines starts
/// on the other one and ends on this one.
pub fn run(engine: EngineKind, opts: &Options, level: TraceLevel) -> RunOutcome {
    if opts.scenario.mixes_engines() {
        let mut opts = opts.clone();
        opts.world.upgrade_to = Some(engine);
        return run_on::<Mixed>(&opts, level);
    }
    match engine {
        EngineKind::Upstream => run_on::<Upstream>(opts, level),
        EngineKind::Fork => run_on::<Fork>(opts, level),
    }
}

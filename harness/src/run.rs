//! One run: a scenario, a seed and an engine, from the first tick to the
//! end of the liveness phase, or to the first panic or violation.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::checkers::{converged, Checkers, ClusterView, Convergence, Violation};
use crate::engine::{Engine, EngineKind, Fork, Mixed, NodeStatus, Upstream};
use crate::faults::Faults;
use crate::scenario::{rng, Options, Stream};
use crate::workload::Workload;
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

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended.
    pub ending: Ending,
    /// The tick it ended at.
    pub tick: u64,
    /// Proposals acknowledged to clients.
    pub committed: u64,
    /// Reads served to clients.
    pub reads: u64,
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
    heal_to_commit_ticks: Option<u64>,
}

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
        let observed = self.workload.observe(&events);
        self.checkers.check(&self.world, &events, &observed)
    }

    /// The whole run: the scenario's steps, then healing and the liveness
    /// phase.
    pub fn run(&mut self) -> Result<(), Violation> {
        for _ in 0..self.opts.steps {
            self.step(true)?;
        }
        self.faults.heal(&mut self.world);
        self.liveness()
    }

    /// Heals, then waits for one leader and a converged log; a new proposal
    /// must commit everywhere. A probe is proposed to each new leader (or term) until
    /// one commits.
    fn liveness(&mut self) -> Result<(), Violation> {
        let mut probed: Option<(u64, u64)> = None;
        let mut waiting = String::from("no tick yet");
        let healed_at = self.world.now;
        for _ in 0..self.opts.liveness_ticks_max {
            self.idle_step()?;
            if let Some(leader) = self.world.leader() {
                let term = self.world.status(leader).map(|s| s.term);
                let fresh = probed != term.map(|t| (leader, t));
                if !self.workload.probe_committed
                    && fresh
                    && self.workload.propose_probe(&mut self.world, leader)
                {
                    probed = term.map(|t| (leader, t));
                    self.world.settle();
                    self.check()?;
                }
            }
            if self.workload.probe_committed && self.heal_to_commit_ticks.is_none() {
                self.heal_to_commit_ticks = Some(self.world.now - healed_at);
            }
            waiting = match converged(&self.world) {
                Convergence::Converged { .. } if self.workload.probe_committed => {
                    return self.checkers.check_acked_applied(&self.world);
                }
                Convergence::Converged { .. } => "the new proposal has not committed".into(),
                Convergence::Waiting(why) => why,
            };
        }
        Err(Violation {
            checker: "liveness",
            message: format!(
                "not converged {} ticks after healing: {waiting}",
                self.opts.liveness_ticks_max
            ),
        })
    }

    /// Ends the run.
    pub fn finish(self, ending: Ending) -> RunOutcome {
        let tick = self.world.now;
        let committed = self.workload.committed;
        let reads = self.workload.reads_served;
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
            tick,
            committed,
            reads,
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
        None => RunOutcome {
            ending,
            tick: 0,
            committed: 0,
            reads: 0,
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

//! `harness compare`: every seed of every scenario on both engines, one row
//! per scenario and engine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::EngineKind;
use crate::run::{run, RunOutcome};
use crate::scenario::{Options, Overrides, Scenario};
use crate::world::storage::StorageKind;
use crate::world::trace::TraceLevel;

/// One engine's totals over a scenario's seeds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineStats {
    /// Runs.
    pub runs: u64,
    /// Runs that panicked.
    pub panics: u64,
    /// Runs a checker failed.
    pub violations: u64,
    /// Proposals acknowledged to clients, over all runs.
    pub committed: u64,
    /// The message of the first panic, by seed order.
    pub first_panic: Option<String>,
    /// The first seed that panicked or failed a check.
    pub first_failing_seed: Option<u64>,
}

/// A failed run, with how to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The engine.
    pub engine: EngineKind,
    /// The seed.
    pub seed: u64,
    /// The panic message or the violation.
    pub what: String,
    /// The command that replays it.
    pub replay: String,
}

/// A scenario's row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: &'static str,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds whose two runs produced the same trace.
    pub identical_traces: u64,
    /// Totals per engine.
    pub engines: BTreeMap<EngineKind, EngineStats>,
    /// Every failed run.
    #[serde(skip)]
    pub failures: Vec<Failure>,
}

/// A panic message on one line (assertion messages span three).
fn one_line(msg: &str) -> String {
    msg.split('\n').map(str::trim).collect::<Vec<_>>().join(" ")
}

/// The command that replays a run.
pub fn replay_command(
    scenario: Scenario,
    seed: u64,
    engine: EngineKind,
    overrides: Overrides,
) -> String {
    let mut cmd = format!(
        "cargo run --release -p harness -- replay --scenario {} --seed {seed} --engine {}",
        scenario.name(),
        engine.name()
    );
    if let Some(nodes) = overrides.nodes {
        cmd += &format!(" --nodes {nodes}");
    }
    if let Some(steps) = overrides.steps {
        cmd += &format!(" --steps {steps}");
    }
    if overrides.storage == Some(StorageKind::Wal) {
        cmd += " --storage wal";
    }
    cmd
}

/// Runs `seeds` of each scenario on both engines, on `threads` threads.
pub fn compare(
    scenarios: &[Scenario],
    seeds: &dyn Fn(Scenario) -> Vec<u64>,
    overrides: Overrides,
    threads: usize,
) -> Vec<ScenarioReport> {
    let jobs: Vec<(usize, Scenario, u64)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, &s)| seeds(s).into_iter().map(move |seed| (i, s, seed)))
        .collect();
    let results: Mutex<Vec<Option<[RunOutcome; 2]>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let progress = Progress::new(jobs.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(_, scenario, seed)) = jobs.get(i) else {
                    break;
                };
                let opts = Options::derive(scenario, seed, overrides);
                let both = EngineKind::ALL.map(|engine| run(engine, &opts, TraceLevel::Hash));
                results.lock().unwrap()[i] = Some(both);
                progress.inc();
            });
        }
    });
    progress.finish();

    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|s| ScenarioReport {
            name: s.name(),
            seeds: 0,
            identical_traces: 0,
            engines: EngineKind::ALL
                .iter()
                .map(|&e| (e, EngineStats::default()))
                .collect(),
            failures: Vec::new(),
        })
        .collect();
    for ((i, scenario, seed), outcome) in jobs.into_iter().zip(results.into_inner().unwrap()) {
        let outcomes = outcome.expect("every job ran");
        let report = &mut reports[i];
        report.seeds += 1;
        if outcomes[0].trace_hash == outcomes[1].trace_hash {
            report.identical_traces += 1;
        }
        for (engine, outcome) in EngineKind::ALL.into_iter().zip(outcomes) {
            let stats = report.engines.get_mut(&engine).unwrap();
            stats.runs += 1;
            stats.committed += outcome.committed;
            if let Some(msg) = outcome.panic() {
                stats.panics += 1;
                stats.first_panic.get_or_insert_with(|| one_line(msg));
            }
            if outcome.violation().is_some() {
                stats.violations += 1;
            }
            if let Some(what) = outcome.failure_kind() {
                stats.first_failing_seed.get_or_insert(seed);
                let what = match outcome.violation() {
                    Some(v) => format!("violation: {v}"),
                    None => one_line(&what),
                };
                report.failures.push(Failure {
                    engine,
                    seed,
                    what,
                    replay: replay_command(scenario, seed, engine, overrides),
                });
            }
        }
    }
    reports
}

/// A progress bar that appears only once a run has taken a second.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {elapsed} (eta {eta})")
                .unwrap(),
        );
        Progress {
            bar,
            started: Instant::now(),
            shown: Default::default(),
        }
    }

    fn inc(&self) {
        if self.started.elapsed() > Duration::from_secs(1)
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Whether the fork failed a run of any scenario but the negative control
/// (stale-tail, which no engine can pass): what makes `compare` exit 1.
pub fn fork_failed(reports: &[ScenarioReport]) -> bool {
    reports
        .iter()
        .filter(|r| r.name != Scenario::StaleTail.name())
        .any(|r| r.engines[&EngineKind::Fork].first_failing_seed.is_some())
}

/// The reports as a text table, failures first.
pub fn render(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in &r.failures {
            out += &format!(
                "{} {} seed {}: {}\n  replay: {}\n",
                r.name,
                f.engine.name(),
                f.seed,
                f.what,
                f.replay
            );
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out += &format!(
        "{:<14} {:>6} {:>10}  {:<9} {:>6} {:>7} {:>10} {:>10}  {:>12}  {}\n",
        "scenario",
        "seeds",
        "identical",
        "engine",
        "runs",
        "panics",
        "violations",
        "committed",
        "first failed",
        "first panic"
    );
    for r in reports {
        for (i, (engine, s)) in r.engines.iter().enumerate() {
            let (name, seeds, same) = if i == 0 {
                (
                    r.name.to_string(),
                    r.seeds.to_string(),
                    r.identical_traces.to_string(),
                )
            } else {
                Default::default()
            };
            out += &format!(
                "{:<14} {:>6} {:>10}  {:<9} {:>6} {:>7} {:>10} {:>10}  {:>12}  {}\n",
                name,
                seeds,
                same,
                engine.name(),
                s.runs,
                s.panics,
                s.violations,
                s.committed,
                s.first_failing_seed
                    .map_or("-".to_string(), |s| s.to_string()),
                s.first_panic.as_deref().unwrap_or("-"),
            );
        }
    }
    out
}

/// The reports as the JSON object `compare --json` prints.
pub fn to_json(reports: &[ScenarioReport]) -> serde_json::Value {
    serde_json::json!({ "scenarios": reports })
}

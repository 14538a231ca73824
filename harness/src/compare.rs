//! `harness compare`: every seed of every scenario on both engines, one row
//! per scenario and engine.
//!
//! Each seed gives a [`SeedResult`]; the table is aggregated from those, so
//! shards of one sweep (`--shard K/N`, run anywhere) merge into the same
//! table as one run (`--merge`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::divergence::{classify, Divergence};
use crate::engine::EngineKind;
use crate::run::{run, Liveness, RunOutcome};
use crate::scenario::{Options, Overrides, Scenario};
use crate::world::storage::StorageKind;
use crate::world::trace::TraceLevel;

/// One engine's run of one seed, as `compare` keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EngineResult {
    /// The panic message, on one line.
    pub panic: Option<String>,
    /// The violation.
    pub violation: Option<String>,
    /// Whether the cluster recovered once faults healed, judged even after
    /// a safety violation.
    pub liveness: Liveness,
    /// What went wrong after a safety violation: stuck, or a panic.
    pub after_violation: Option<String>,
    /// Proposals acknowledged to clients.
    pub committed: u64,
    /// Reads served to clients.
    pub reads: u64,
    /// What the world counted.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Ticks from healing to the first new proposal committed.
    pub heal_to_commit_ticks: Option<u64>,
}

impl EngineResult {
    fn of(outcome: &RunOutcome) -> EngineResult {
        EngineResult {
            panic: outcome.panic().map(one_line),
            violation: outcome.violation().map(|v| v.to_string()),
            liveness: match &outcome.liveness {
                Liveness::Panicked(msg) => Liveness::Panicked(one_line(msg)),
                liveness => liveness.clone(),
            },
            after_violation: outcome.after_violation().map(|after| one_line(&after)),
            committed: outcome.committed,
            reads: outcome.reads,
            counts: outcome.counts.clone(),
            heal_to_commit_ticks: outcome.heal_to_commit_ticks,
        }
    }

    fn failure(&self) -> Option<String> {
        match (&self.panic, &self.violation) {
            (Some(panic), _) => Some(format!("panic: {panic}")),
            (None, Some(v)) => Some(format!("violation: {v}")),
            (None, None) => None,
        }
    }
}

/// How the fork's run of a seed relates to upstream's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedDivergence {
    /// Same trace.
    Identical,
    /// Explained by this fork patch.
    Explained(String),
    /// Different before any fork-patch record, from this event on.
    Unexplained(usize),
    /// The scenario mixes engines in each run (rolling-upgrade): there is
    /// no single-engine pair to compare.
    Mixed,
}

/// One seed of one scenario on both engines.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedResult {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Upstream's run, then the fork's.
    pub engines: [EngineResult; 2],
    /// How the two runs relate.
    pub divergence: SeedDivergence,
}

/// A sweep: its shape and every seed's result, what `--json` prints and
/// `--merge` reads.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sweep {
    /// The overrides every seed ran with.
    pub overrides: Overrides,
    /// Every seed's result.
    pub seeds: Vec<SeedResult>,
}

/// One engine's totals over a scenario's seeds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineStats {
    /// Runs.
    pub runs: u64,
    /// Runs that panicked, before or after a safety violation.
    pub panics: u64,
    /// Runs a checker failed.
    pub violations: u64,
    /// Runs whose cluster stayed stuck after healing, whether or not a
    /// safety checker failed first.
    pub stuck: u64,
    /// Proposals acknowledged to clients, over all runs.
    pub committed: u64,
    /// Reads served to clients, over all runs.
    pub reads: u64,
    /// What the worlds counted, over all runs.
    pub counts: BTreeMap<String, u64>,
    /// The message of the first panic, by seed order.
    pub first_panic: Option<String>,
    /// The first seed that panicked or failed a check.
    pub first_failing_seed: Option<u64>,
    /// Ticks from healing to a new committed proposal, per run that got
    /// there, sorted.
    pub heal_to_commit_ticks: Vec<u64>,
}

impl EngineStats {
    /// Median and maximum of the heal-to-commit ticks.
    pub fn heal_to_commit(&self) -> Option<(u64, u64)> {
        let t = &self.heal_to_commit_ticks;
        Some((*t.get(t.len() / 2)?, *t.last()?))
    }
}

/// A failed or unexplained run, with how to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The engine.
    pub engine: EngineKind,
    /// The seed.
    pub seed: u64,
    /// The panic message, the violation, or the unexplained divergence.
    pub what: String,
    /// The command that replays it.
    pub replay: String,
}

/// A scenario's row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds whose two runs produced the same trace.
    pub identical: u64,
    /// Seeds whose difference a fork patch explains, per patch.
    pub explained: BTreeMap<String, u64>,
    /// Seeds that differ before any fork-patch record.
    pub unexplained: u64,
    /// Totals per engine.
    pub engines: BTreeMap<EngineKind, EngineStats>,
    /// Every failed run, and every unexplained seed.
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

/// Runs one seed on both engines.
pub fn run_seed(scenario: Scenario, seed: u64, overrides: Overrides) -> SeedResult {
    let opts = Options::derive(scenario, seed, overrides);
    let [up, fork] = EngineKind::ALL.map(|engine| run(engine, &opts, TraceLevel::Hash));
    let divergence = if scenario.mixes_engines() {
        SeedDivergence::Mixed
    } else {
        match classify(&up, &fork) {
            Divergence::Identical => SeedDivergence::Identical,
            Divergence::Explained { patch, .. } => SeedDivergence::Explained(patch),
            Divergence::Unexplained { event } => SeedDivergence::Unexplained(event),
        }
    };
    SeedResult {
        scenario,
        seed,
        engines: [EngineResult::of(&up), EngineResult::of(&fork)],
        divergence,
    }
}

/// Runs `jobs` (scenario and seed) on both engines, on `threads` threads.
pub fn compare(jobs: &[(Scenario, u64)], overrides: Overrides, threads: usize) -> Sweep {
    let results: Mutex<Vec<Option<SeedResult>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let progress = Progress::new(jobs.len() as u64);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(scenario, seed)) = jobs.get(i) else {
                    break;
                };
                let result = run_seed(scenario, seed, overrides);
                results.lock().unwrap()[i] = Some(result);
                progress.inc();
            });
        }
    });
    progress.finish();
    let seeds = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect();
    Sweep { overrides, seeds }
}

/// Combines shards of one sweep.
///
/// # Errors
///
/// If the shards ran with different overrides.
pub fn merge(shards: Vec<Sweep>) -> Result<Sweep, String> {
    let mut shards = shards.into_iter();
    let mut merged = shards.next().ok_or("nothing to merge")?;
    for shard in shards {
        if shard.overrides != merged.overrides {
            return Err(format!(
                "shards ran with different options: {:?} and {:?}",
                merged.overrides, shard.overrides
            ));
        }
        merged.seeds.extend(shard.seeds);
    }
    merged.seeds.sort_by_key(|s| (s.scenario, s.seed));
    merged.seeds.dedup_by_key(|s| (s.scenario, s.seed));
    Ok(merged)
}

/// The table's rows: one per scenario, in scenario order.
pub fn aggregate(sweep: &Sweep) -> Vec<ScenarioReport> {
    let mut reports: BTreeMap<Scenario, ScenarioReport> = BTreeMap::new();
    let mut seeds = sweep.seeds.clone();
    seeds.sort_by_key(|s| (s.scenario, s.seed));
    for result in &seeds {
        let report = reports
            .entry(result.scenario)
            .or_insert_with(|| ScenarioReport {
                scenario: result.scenario,
                seeds: 0,
                identical: 0,
                explained: BTreeMap::new(),
                unexplained: 0,
                engines: EngineKind::ALL
                    .iter()
                    .map(|&e| (e, EngineStats::default()))
                    .collect(),
                failures: Vec::new(),
            });
        report.seeds += 1;
        let replay = |engine| replay_command(result.scenario, result.seed, engine, sweep.overrides);
        match &result.divergence {
            SeedDivergence::Identical => report.identical += 1,
            SeedDivergence::Explained(patch) => {
                *report.explained.entry(patch.clone()).or_default() += 1
            }
            SeedDivergence::Unexplained(event) => {
                report.unexplained += 1;
                report.failures.push(Failure {
                    engine: EngineKind::Fork,
                    seed: result.seed,
                    what: format!(
                        "unexplained: the fork's trace differs from upstream's at event {event}, before any fork-patch record (compare both with --trace)"
                    ),
                    replay: replay(EngineKind::Fork),
                });
            }
            SeedDivergence::Mixed => {}
        }
        for (engine, run) in EngineKind::ALL.into_iter().zip(&result.engines) {
            let stats = report.engines.get_mut(&engine).unwrap();
            stats.runs += 1;
            stats.committed += run.committed;
            stats.reads += run.reads;
            for (what, n) in &run.counts {
                *stats.counts.entry(what.clone()).or_default() += n;
            }
            stats.heal_to_commit_ticks.extend(run.heal_to_commit_ticks);
            if let Liveness::Panicked(panic) = &run.liveness {
                stats.panics += 1;
                stats.first_panic.get_or_insert_with(|| panic.clone());
            }
            if run.violation.is_some() {
                stats.violations += 1;
            }
            if matches!(run.liveness, Liveness::Stuck(_)) {
                stats.stuck += 1;
            }
            if let Some(what) = run.failure() {
                stats.first_failing_seed.get_or_insert(result.seed);
                report.failures.push(Failure {
                    engine,
                    seed: result.seed,
                    what,
                    replay: replay(engine),
                });
            }
            if let Some(after) = &run.after_violation {
                report.failures.push(Failure {
                    engine,
                    seed: result.seed,
                    what: format!("and then {after}"),
                    replay: replay(engine),
                });
            }
        }
    }
    let mut reports: Vec<ScenarioReport> = reports.into_values().collect();
    for r in &mut reports {
        for stats in r.engines.values_mut() {
            stats.heal_to_commit_ticks.sort_unstable();
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

/// What makes `compare` exit 1: the fork failed a run of a scenario it
/// must pass (see [`Scenario::fork_may_fail`]), stayed stuck or panicked
/// outside the negative control (even where a safety failure is
/// expected, the cluster must recover), or a seed differs from upstream
/// with no fork patch to explain it.
pub fn fork_failed(reports: &[ScenarioReport]) -> bool {
    reports.iter().any(|r| {
        let fork = &r.engines[&EngineKind::Fork];
        r.unexplained > 0
            || (r.scenario.fork_may_fail().is_none() && fork.first_failing_seed.is_some())
            || (!r.scenario.is_negative_control() && (fork.stuck > 0 || fork.panics > 0))
    })
}

/// Per-patch counts as `0005:950 0007:12`.
fn explained_by(explained: &BTreeMap<String, u64>) -> String {
    if explained.is_empty() {
        return "-".into();
    }
    explained
        .iter()
        .map(|(patch, seeds)| format!("{patch}:{seeds}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reports as a text table, failures first.
pub fn render(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in &r.failures {
            out += &format!(
                "{} {} seed {}: {}\n  replay: {}\n",
                r.scenario.name(),
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
    let row = |cells: [&str; 16]| {
        let line = format!(
            "{:<15} {:>5} {:>9} {:>9} {:>11}  {:<36}  {:<8} {:>5} {:>6} {:>10} {:>5} {:>9} {:>8} {:>12}  {:>12}  {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6],
            cells[7], cells[8], cells[9], cells[10], cells[11], cells[12], cells[13], cells[14],
            cells[15],
        );
        format!("{}\n", line.trim_end())
    };
    out += &row([
        "scenario",
        "seeds",
        "identical",
        "explained",
        "unexplained",
        "explained by",
        "engine",
        "runs",
        "panics",
        "violations",
        "stuck",
        "committed",
        "reads",
        "heal->commit",
        "first failed",
        "first panic",
    ]);
    for r in reports {
        for (i, (engine, s)) in r.engines.iter().enumerate() {
            let mixed = r.scenario.mixes_engines();
            let first = |text: String| if i == 0 { text } else { String::new() };
            let count = |n: u64| first(if mixed { "n/a".into() } else { n.to_string() });
            let heal = s
                .heal_to_commit()
                .map_or("-".to_string(), |(median, max)| format!("{median}/{max}"));
            let failed = s
                .first_failing_seed
                .map_or("-".to_string(), |s| s.to_string());
            out += &row([
                &first(r.scenario.name().to_string()),
                &first(r.seeds.to_string()),
                &count(r.identical),
                &count(r.explained.values().sum()),
                &count(r.unexplained),
                &first(if mixed {
                    "n/a".into()
                } else {
                    explained_by(&r.explained)
                }),
                engine.name(),
                &s.runs.to_string(),
                &s.panics.to_string(),
                &s.violations.to_string(),
                &s.stuck.to_string(),
                &s.committed.to_string(),
                &s.reads.to_string(),
                &heal,
                &failed,
                s.first_panic.as_deref().unwrap_or("-"),
            ]);
        }
    }
    let counted: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.engines
                .iter()
                .filter(|(_, s)| !s.counts.is_empty())
                .map(|(engine, s)| {
                    let counts: Vec<String> = s
                        .counts
                        .iter()
                        .map(|(what, n)| format!("{n} {what}"))
                        .collect();
                    format!(
                        "  {} {}: {}\n",
                        r.scenario.name(),
                        engine.name(),
                        counts.join(", ")
                    )
                })
        })
        .collect();
    if !counted.is_empty() {
        out += "\ncounted over all runs:\n";
        out.extend(counted);
    }
    out
}

/// The sweep as the JSON object `compare --json` prints: the table's rows
/// and every seed's result, which `--merge` reads back.
pub fn to_json(sweep: &Sweep) -> serde_json::Value {
    serde_json::json!({
        "scenarios": aggregate(sweep),
        "overrides": sweep.overrides,
        "seeds": sweep.seeds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(scenario: Scenario, seed: u64, divergence: SeedDivergence) -> SeedResult {
        let passed = EngineResult {
            panic: None,
            violation: None,
            liveness: Liveness::Converged,
            after_violation: None,
            committed: 10,
            reads: 3,
            counts: BTreeMap::new(),
            heal_to_commit_ticks: Some(seed + 1),
        };
        SeedResult {
            scenario,
            seed,
            engines: [passed.clone(), passed],
            divergence,
        }
    }

    fn sweep(seeds: Vec<SeedResult>) -> Sweep {
        Sweep {
            overrides: Overrides::default(),
            seeds,
        }
    }

    #[test]
    fn an_unexplained_seed_fails_the_comparison_and_names_its_replay() {
        let reports = aggregate(&sweep(vec![
            seed(Scenario::Chaos, 0, SeedDivergence::Identical),
            seed(Scenario::Chaos, 1, SeedDivergence::Unexplained(40)),
        ]));
        assert_eq!((reports[0].identical, reports[0].unexplained), (1, 1));
        assert!(fork_failed(&reports));
        assert!(render(&reports).contains(
            "chaos fork seed 1: unexplained: the fork's trace differs from upstream's at event 40"
        ));
    }

    #[test]
    fn explained_seeds_are_counted_per_patch_and_pass() {
        let reports = aggregate(&sweep(vec![
            seed(
                Scenario::StorageAhead,
                0,
                SeedDivergence::Explained("0005".into()),
            ),
            seed(
                Scenario::StorageAhead,
                1,
                SeedDivergence::Explained("0005".into()),
            ),
            seed(
                Scenario::StorageAhead,
                2,
                SeedDivergence::Explained("0007".into()),
            ),
        ]));
        assert_eq!(explained_by(&reports[0].explained), "0005:2 0007:1");
        assert!(!fork_failed(&reports));
    }

    #[test]
    fn the_fork_failing_outside_a_negative_control_fails_the_comparison() {
        let mut failed = seed(Scenario::Chaos, 3, SeedDivergence::Identical);
        failed.engines[1].panic = Some("boom".into());
        failed.engines[1].liveness = Liveness::Panicked("boom".into());
        assert!(fork_failed(&aggregate(&sweep(vec![failed.clone()]))));
        failed.scenario = Scenario::StaleTail;
        assert!(!fork_failed(&aggregate(&sweep(vec![failed]))));
    }

    #[test]
    fn a_cluster_stuck_after_a_safety_violation_is_reported_and_fails_the_fork() {
        let mut stuck = seed(Scenario::LeaseRead, 5, SeedDivergence::Identical);
        for engine in &mut stuck.engines {
            engine.violation = Some("linearizable reads: stale read".into());
            engine.liveness = Liveness::Stuck("leaders []".into());
            engine.after_violation = Some("liveness: leaders []".into());
        }
        let reports = aggregate(&sweep(vec![stuck.clone()]));
        assert_eq!(reports[0].engines[&EngineKind::Upstream].stuck, 1);
        assert!(render(&reports).contains("lease-read fork seed 5: and then liveness: leaders []"));
        assert!(
            fork_failed(&reports),
            "lease reads may be stale, never stuck"
        );
        stuck.scenario = Scenario::StaleTail;
        assert!(!fork_failed(&aggregate(&sweep(vec![stuck]))));
    }

    #[test]
    fn merged_shards_give_the_table_of_one_run() {
        let all: Vec<SeedResult> = (0..6)
            .map(|s| seed(Scenario::Chaos, s, SeedDivergence::Identical))
            .collect();
        let (even, odd): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|s| s.seed % 2 == 0);
        let merged = merge(vec![sweep(odd), sweep(even)]).unwrap();
        assert_eq!(render(&aggregate(&merged)), render(&aggregate(&sweep(all))));
        let fork = &aggregate(&merged)[0].engines[&EngineKind::Fork];
        assert_eq!(fork.heal_to_commit(), Some((4, 6)));
        let other = Sweep {
            overrides: Overrides {
                nodes: Some(5),
                ..Overrides::default()
            },
            seeds: Vec::new(),
        };
        assert!(merge(vec![sweep(Vec::new()), other]).is_err());
    }
}

//! `harness shrink`: a smaller schedule that fails the same way.
//!
//! First the run is cut at the tick where it failed, then fault events are
//! removed, halves first, then smaller chunks (delta debugging), keeping
//! every removal after which the run still fails the same way. A failure is
//! "the same" when its kind matches with numbers blanked out, since a
//! shorter schedule moves indexes and terms.

use std::collections::BTreeSet;

use crate::engine::EngineKind;
use crate::run::{run, RunOutcome};
use crate::scenario::{Options, Overrides, Scenario};
use crate::world::storage::StorageKind;
use crate::world::trace::TraceLevel;

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// How the run fails, before and after.
    pub failure: String,
    /// Steps and fault events of the original run.
    pub original: (u64, usize),
    /// Steps and fault events kept.
    pub steps: u64,
    /// Ordinals of the fault events kept.
    pub faults: BTreeSet<u64>,
    /// The command that replays the shrunk run.
    pub replay: String,
}

fn signature(outcome: &RunOutcome) -> Option<String> {
    let kind = outcome.failure_kind()?;
    let mut blanked = String::with_capacity(kind.len());
    for c in kind.chars() {
        if !c.is_ascii_digit() {
            blanked.push(c);
        } else if !blanked.ends_with('#') {
            blanked.push('#');
        }
    }
    Some(blanked)
}

/// Shrinks a failing run.
///
/// # Errors
///
/// If the run does not fail.
pub fn shrink(
    scenario: Scenario,
    seed: u64,
    engine: EngineKind,
    overrides: Overrides,
) -> Result<Shrunk, String> {
    let mut opts = Options::derive(scenario, seed, overrides);
    let base = run(engine, &opts, TraceLevel::Off);
    let Some(target) = signature(&base) else {
        return Err(format!(
            "{} seed {seed} passes on {}: nothing to shrink",
            scenario.name(),
            engine.name()
        ));
    };
    let original = (opts.steps, base.faults.len());
    let fails =
        |opts: &Options| signature(&run(engine, opts, TraceLevel::Off)).as_ref() == Some(&target);

    if let Some((tick, _)) = base.failed_at.filter(|&(tick, _)| tick < opts.steps) {
        opts.steps = tick;
    }
    let mut kept: Vec<u64> = base.faults.clone();
    opts.keep_faults = Some(kept.iter().copied().collect());
    if !fails(&opts) {
        opts.steps = original.0;
    }
    let mut chunk = kept.len().div_ceil(2);
    while chunk > 0 {
        let mut start = 0;
        while start < kept.len() {
            let end = (start + chunk).min(kept.len());
            let candidate: Vec<u64> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            let mut trial = opts.clone();
            trial.keep_faults = Some(candidate.iter().copied().collect());
            if fails(&trial) {
                kept = candidate;
                opts = trial;
            } else {
                start = end;
            }
        }
        chunk /= 2;
    }
    let faults: BTreeSet<u64> = kept.into_iter().collect();
    let mut replay = format!(
        "cargo run --release -p harness -- replay --scenario {} --seed {seed} --engine {} --steps {}",
        scenario.name(),
        engine.name(),
        opts.steps
    );
    if let Some(nodes) = overrides.nodes {
        replay += &format!(" --nodes {nodes}");
    }
    if overrides.storage == Some(StorageKind::Wal) {
        replay += " --storage wal";
    }
    replay += &format!(
        " --keep-faults '{}'",
        faults
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(Shrunk {
        failure: target,
        original,
        steps: opts.steps,
        faults,
        replay,
    })
}

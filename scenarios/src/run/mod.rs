//! Run orchestration, one direction, one file per stage:
//!
//! ```text
//! plan ─▶ provision (stack, seed) ─▶ attack (Goose + history + chaos, observe) ─▶ judge ─▶ report
//! ```
//!
//! - [`plan`]: the command line resolved once into a typed [`plan::Plan`].
//! - [`provision`]: the runner's live metrics, the stack, the seeded world.
//! - [`attack`]: Goose with the descriptor's personas, the history, the chaos schedule.
//! - [`observe`]: the pollers a chaos run watches readiness and alerts with.
//! - [`judge`]: final state, checker, statistics, thresholds, failover, verdict.
//! - [`report`]: the report, its artifacts, the console summary.
//! - [`matrix`] and [`bench`] run [`child`] processes (Goose allows one attack per process).
//!
//! [`run`] dispatches on the scenario's descriptor ([`crate::catalog`]); it never exits the
//! process and never reads the process arguments, so tests call it too. Nothing in here
//! imports from this file: the stages import each other, forward only.

pub mod attack;
pub mod bench;
pub mod child;
pub mod judge;
pub mod matrix;
pub mod observe;
pub mod plan;
pub mod provision;
pub mod report;

use crate::api::Api;
use crate::catalog::Kind;
use crate::cli::Cli;
use crate::error::{Error, Result};

pub use plan::default_out_dir;
pub use report::{summary_text, Outcome, FINAL_STATE_FILE};

/// Runs the scenario the command line names (not `list`).
pub async fn run(cli: Cli) -> Result<Outcome> {
    let Some(scenario) = cli.scenario.scenario() else {
        return Err(Error::Usage("`list` is not a run".into()));
    };
    let outcome = match &scenario.kind {
        Kind::Attack(attack) => run_attack(plan::Plan::resolve(cli, scenario, attack)?).await,
        Kind::Matrix(m) => matrix::run(&cli, scenario, m).await,
        Kind::Bench => bench::run(&cli).await,
    }?;
    if let Some(runs) = index_dir(&outcome.dir) {
        if let Err(e) = reports::write_index(runs) {
            eprintln!("warning: writing the runs index in {}: {e}", runs.display());
        }
    }
    // In a GitHub Actions job the verdict shows on the run's page too.
    if let Some(summary) = std::env::var_os(report::STEP_SUMMARY_ENV) {
        if let Err(e) = report::append_step_summary(&outcome, std::path::Path::new(&summary)) {
            eprintln!(
                "warning: appending the report to ${}: {e}",
                report::STEP_SUMMARY_ENV
            );
        }
    }
    Ok(outcome)
}

/// Where the runs index of a run in `dir` goes: its parent, when that is a `runs` directory
/// (the default `reports/runs/`) or already holds an index; never a random parent such as
/// `/tmp` of `--out /tmp/x`.
pub fn index_dir(dir: &std::path::Path) -> Option<&std::path::Path> {
    let parent = dir.parent()?;
    let is_runs = parent.file_name().is_some_and(|n| n == "runs");
    (is_runs || parent.join(reports::index::INDEX_FILE).is_file()).then_some(parent)
}

/// One attack: provision, run the pipeline, always stop the stack.
async fn run_attack(plan: plan::Plan) -> Result<Outcome> {
    std::fs::create_dir_all(&plan.dir)
        .map_err(|e| Error::io(format!("creating {}", plan.dir.display()), e))?;
    let provisioned = provision::provision(&plan).await?;
    let result = pipeline(&plan, &provisioned).await;
    provisioned.stop().await;
    result
}

async fn pipeline(plan: &plan::Plan, p: &provision::Provisioned) -> Result<Outcome> {
    let api = Api::new(&p.stack.base_url)?;
    let world = provision::seed_world(plan, &api, &p.stack).await?;
    let keys = judge::StateKeys::of(&world);
    let idle = crate::counters::idle(&p.stack, plan.cli.db_idle_secs).await;
    let before = crate::counters::Counters::read(&p.stack).await;
    let attacked = attack::attack(plan, &p.stack, world, &p.live).await?;
    // Read before the stack stops: its counters die with it.
    let mut counters = crate::counters::Counters::read(&p.stack)
        .await
        .since(&before);
    counters.extend(idle);
    if let Some(url) = &plan.cli.pushgateway_url {
        match p.live.push(url, plan.scenario.name.as_str()).await {
            Ok(()) => plan.say(format!("pushed the runner's metrics to {url}")),
            Err(e) => eprintln!("warning: pushing the runner's metrics: {e}"),
        }
    }
    let judged = judge::judge(plan, &api, &keys, &attacked).await?;
    report::write(plan, &p.stack, &keys, attacked, judged, counters)
}

//! Stage 3: the attack. Goose runs the descriptor's personas while every operation goes into
//! the history; beside it the chaos schedule applies its faults to the stack's targets, and
//! the [`observe`](super::observe) pollers watch readiness and alerts. Faults still in force
//! when the load ends are reverted before this stage returns, so the final state is read
//! from a healed system.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos::schedule::{FaultRecord, FaultTarget, Schedule};
use goose::prelude::*;

use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::failover::Readiness;
use crate::history::{self, HistoryOutput, Recorder};
use crate::live::{Gauged, LiveMetrics};
use crate::progress::{self, Progress};
use crate::seed::World;
use crate::stack::Stack;

use super::observe;
use super::plan::Plan;

/// What the attack left: the history's aggregates and what the chaos run saw.
#[derive(Debug)]
pub struct Attacked {
    /// The history's output.
    pub out: HistoryOutput,
    /// When the load began and ended (wall clock).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// See `started_at`.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// How long the load ran, s.
    pub duration_s: f64,
    /// Requests counted on the request path (also without history).
    pub requests_counted: u64,
    /// The faults, when the run had a schedule.
    pub faults: Option<FaultsSeen>,
    /// The most descriptors the runner held at once during the load.
    pub peak_open_files: u64,
    /// Requests in flight at once were limited to this many (descriptors), if they were.
    pub connection_limit: Option<usize>,
    /// The most TCP connections the runner held to the target at once, where readable.
    pub peak_connections: Option<u64>,
    /// The soft open-files limit during the load.
    pub open_files_limit: Option<u64>,
    /// Virtual users that sent at least one request.
    pub users_active: u64,
    /// When the open model's schedule started, s on the history's clock (every user runs
    /// by then).
    pub schedule_start_s: Option<f64>,
    /// The open model's arrivals: due, begun, late, dropped.
    pub arrivals: Option<crate::context::Arrivals>,
    /// The box office's resources over the run, when the scenario samples them.
    pub resources: Option<Vec<reports::ResourceSeries>>,
    /// Why `--abort-on-fail` stopped the load early, if it did.
    pub aborted: Option<String>,
}

/// What a chaos run saw besides the history.
#[derive(Debug, Default)]
pub struct FaultsSeen {
    /// The schedule's records.
    pub records: Vec<FaultRecord>,
    /// When the schedule started, ms on the history's clock.
    pub offset_ms: f64,
    /// Readiness changes.
    pub readiness: Vec<Readiness>,
    /// Alerts that fired, with when.
    pub alerts: Vec<(f64, String)>,
}

/// The schedule's targets on this stack, each raising `lab_fault_active` while its fault is
/// in force; a usage error when the schedule names one the stack lacks.
fn chaos_targets(
    plan: &Plan,
    schedule: &Schedule,
    stack: &Stack,
    live: &Arc<LiveMetrics>,
) -> Result<HashMap<String, Arc<dyn FaultTarget>>> {
    let targets: HashMap<String, Arc<dyn FaultTarget>> = stack
        .targets()
        .into_iter()
        .map(|(name, t)| {
            let gauged: Arc<dyn FaultTarget> = Arc::new(Gauged::new(&name, t, Arc::clone(live)));
            (name, gauged)
        })
        .collect();
    for f in &schedule.faults {
        live.declare_fault(&f.target, &f.action);
    }
    if targets.is_empty() {
        return Err(Error::Usage(format!(
            "--chaos needs a stack with fault targets: --stack local, --stack docker, or --stack url=… with --chaos-api (the {} stack has none)",
            plan.cli.stack.name()
        )));
    }
    if let Some(f) = schedule
        .faults
        .iter()
        .find(|f| !targets.contains_key(&f.target))
    {
        let mut names: Vec<&str> = targets.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(Error::Usage(format!(
            "--chaos: no target {:?} on this stack (targets: {})",
            f.target,
            names.join(", ")
        )));
    }
    Ok(targets)
}

/// The descriptor's personas registered on a Goose attack.
fn goose_attack(
    plan: &Plan,
    config: goose::config::GooseConfiguration,
    ctx: &Arc<RunContext>,
) -> Result<GooseAttack> {
    let mut attack =
        GooseAttack::initialize_with_config(config).map_err(|e| Error::Goose(e.to_string()))?;
    if plan.connections() == crate::cli::Connections::Shared {
        // One HTTP client for every virtual user (the personas send bearer tokens, no
        // cookies): one pool instead of a reqwest client per user, each with its own pool
        // and TLS configuration, built before the rush can start.
        attack = attack
            .set_client_builder_without_cookies(
                goose::client::GooseClientBuilder::new().without_cookies(),
            )
            .map_err(|e| Error::Goose(e.to_string()))?;
    }
    for (persona, weight) in plan.attack.personas {
        let scenario = persona
            .goose_scenario(ctx, *weight)
            .map_err(|e| Error::Goose(e.to_string()))?;
        attack = attack.register_scenario(scenario);
    }
    Ok(attack)
}

/// The chaos schedule and its watchers, running beside the load.
struct ChaosRun {
    offset_ms: f64,
    task: tokio::task::JoinHandle<
        std::result::Result<Vec<FaultRecord>, chaos::schedule::ScheduleError>,
    >,
    readiness: observe::Poller<observe::ReadinessSeen>,
    alerts: Option<observe::Poller<observe::AlertsSeen>>,
}

impl ChaosRun {
    fn start(
        plan: &Plan,
        schedule: &Schedule,
        targets: HashMap<String, Arc<dyn FaultTarget>>,
        stack: &Stack,
        recorder: &Recorder,
    ) -> Self {
        plan.say(format!(
            "chaos: {} fault(s) over {:.0}s ({})",
            schedule.faults.len(),
            schedule.span().as_secs_f64(),
            schedule.name.as_deref().unwrap_or("inline schedule")
        ));
        let offset_ms = recorder.now_ms();
        let sched = schedule.clone();
        let task = tokio::spawn(async move { chaos::schedule::run(&sched, &targets).await });
        ChaosRun {
            offset_ms,
            task,
            readiness: observe::readiness(stack.instance_urls(), recorder.clone()),
            alerts: plan
                .cli
                .prometheus_url
                .clone()
                .or_else(|| stack.lab().and_then(|l| l.prometheus()).map(|p| p.url()))
                .map(|url| observe::alerts(url, recorder.clone())),
        }
    }

    /// Waits for the schedule (reverting what is still in force) and stops the watchers.
    async fn finish(self, plan: &Plan) -> FaultsSeen {
        let records = match self.task.await {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => {
                plan.say(format!("warning: the chaos schedule failed: {e}"));
                Vec::new()
            }
            Err(e) => {
                plan.say(format!("warning: the chaos schedule panicked: {e}"));
                Vec::new()
            }
        };
        let alerts = match self.alerts {
            Some(w) => w.finish().await.fired,
            None => Vec::new(),
        };
        FaultsSeen {
            records,
            offset_ms: self.offset_ms,
            readiness: self.readiness.finish().await.changes,
            alerts,
        }
    }
}

/// Runs the load (and the chaos schedule) against `stack`.
pub async fn attack(
    plan: &Plan,
    stack: &Stack,
    world: World,
    live: &Arc<LiveMetrics>,
) -> Result<Attacked> {
    let history_path = plan.dir.join(history::HISTORY_FILE);
    let record = !plan.cli.no_history;
    let (recorder, writer) = history::start(
        record.then_some(history_path.as_path()),
        record,
        plan.timeline_interval_s(),
    )
    .map_err(|e| Error::io("starting the history", e))?;
    let connection_limit = super::provision::connection_budget(&plan.cli.stack, plan.users);
    let recorder = match connection_limit {
        Some(n) => {
            plan.say(format!(
                "{} users share at most {n} connections (the open-files limit)",
                plan.users
            ));
            recorder.with_connection_limit(n)
        }
        None => recorder,
    };
    live.attach(Arc::clone(recorder.counters()));
    let recorder = recorder.with_observer(Arc::clone(live) as Arc<dyn history::Observer>);
    let targets = match &plan.schedule {
        Some(s) => Some(chaos_targets(plan, s, stack, live)?),
        None => None,
    };
    // `--abort-on-fail` watches the database's audit of the seeded rounds.
    let watched_rounds: Vec<i64> = world.rounds.iter().map(|r| r.id).collect();
    let watch = (plan.cli.abort_on_fail && plan.attack.scope.seats && !watched_rounds.is_empty())
        .then(|| (world.admin_token.clone(), watched_rounds));
    let config = plan.goose(&stack.base_url);
    // Goose's run time (`-t 8s`, or what the plan chose): also when the open model's
    // schedule ends.
    let planned = config
        .run_time
        .as_deref()
        .and_then(goose::util::parse_timespan)
        .map(|s| Duration::from_secs(s as u64));
    let every_user_waits = plan.attack.personas.iter().all(|(p, _)| p.waits_its_turn());
    let ctx = Arc::new(RunContext {
        recorder: recorder.clone(),
        world,
        seed: plan.cli.seed,
        // A gate must count every user: an open-model run with personas that loop without
        // waiting their turn (browsers) starts its schedule at the first arrival instead.
        gate: if every_user_waits {
            plan.pacing.gate(plan.users)
        } else {
            None
        },
        lobby: if every_user_waits { plan.lobby() } else { None },
        pacer: plan
            .pacing
            .pacer(plan.users)
            .map(|p| p.ending_after(planned)),
        knobs: plan.knobs.clone(),
    });
    let attack = goose_attack(plan, config, &ctx)?;

    let progress = (!plan.cli.quiet()).then(|| {
        Progress::start(
            progress::Plan {
                scenario: plan.name().to_owned(),
                users: plan.users,
                duration: planned,
            },
            recorder.counters().clone(),
        )
    });
    let started_at = chrono::Utc::now();
    let t0 = Instant::now();
    let chaos_run = plan
        .schedule
        .as_ref()
        .zip(targets)
        .map(|(s, targets)| ChaosRun::start(plan, s, targets, stack, &recorder));
    let open_files = observe::open_files();
    let connections = observe::connections(&stack.base_url);
    let resources = plan
        .attack
        .samples_resources
        .then(|| observe::resources(stack.instance_urls(), recorder.clone()));
    let invariants = watch.map(|(token, rounds)| {
        observe::invariant_watch(stack.base_url.clone(), token, rounds, recorder.clone())
    });
    let attack_result = attack.execute().await;
    let resources = match resources {
        Some(r) => Some(r.finish().await),
        None => None,
    };
    let aborted = match invariants {
        Some(w) => w.finish().await,
        None => None,
    };
    if let Some(reason) = &aborted {
        plan.say(format!("abort-on-fail: stopped the load: {reason}"));
    }
    let arrivals = ctx.pacer.as_ref().map(crate::context::Pacer::arrivals);
    let schedule_start_s = ctx
        .pacer
        .as_ref()
        .and_then(crate::context::Pacer::started_at)
        .map(|t| t.saturating_duration_since(recorder.epoch()).as_secs_f64());
    let peak_open_files = open_files.finish().await;
    let peak_connections = match connections {
        Some(p) => Some(p.finish().await),
        None => None,
    };
    let duration_s = t0.elapsed().as_secs_f64();
    let faults = match chaos_run {
        Some(c) => Some(c.finish(plan).await),
        None => None,
    };
    let finished_at = chrono::Utc::now();
    if let Some(p) = progress {
        p.finish().await;
    }
    drop(ctx);
    let out = writer.finish(duration_s);
    attack_result.map_err(|e| Error::Goose(e.to_string()))?;
    if let Some(e) = &out.io_error {
        plan.say(format!("warning: writing the history failed: {e}"));
    }
    Ok(Attacked {
        out,
        started_at,
        finished_at,
        duration_s,
        requests_counted: recorder.counters().requests.load(Ordering::Relaxed),
        faults,
        peak_open_files,
        connection_limit,
        peak_connections,
        open_files_limit: nix::sys::resource::getrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
        )
        .ok()
        .map(|(soft, _)| soft),
        users_active: recorder.counters().users_active.load(Ordering::Relaxed),
        schedule_start_s,
        arrivals,
        resources,
        aborted,
    })
}

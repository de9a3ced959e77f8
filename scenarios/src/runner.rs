//! Run orchestration, one direction: provision the stack → seed → attack (Goose, recording
//! history) → collect the final state → check → report → verdict. [`run`] is what the
//! binary calls; it never exits the process and never reads the process arguments, so tests
//! call it too (one attack per process: Goose keeps global state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde_json::json;

use crate::api::Api;
use crate::catalog::ScenarioName;
use crate::checker::{self, FinalState, Scope};
use crate::cli::Cli;
use crate::context::{Gate, Knobs, Pacer, RunContext};
use crate::error::{Error, Result};
use crate::history::{self, HistoryOutput, OpKind};
use crate::personas;
use crate::progress::{Plan, Progress};
use crate::seed::{self, SeedSpec};
use crate::stack::{AdminCredentials, Stack, StackOptions};
use crate::thresholds::{LatencyLimit, Thresholds};

/// File name of the final state the checker read.
pub const FINAL_STATE_FILE: &str = "final-state.json";

/// What a finished run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: reports::Report,
    /// Its directory.
    pub dir: PathBuf,
    /// The files written.
    pub written: reports::Written,
}

impl Outcome {
    /// The verdict's exit code.
    pub fn exit_code(&self) -> i32 {
        self.report.verdict.exit_code
    }
}

/// The default output directory: `reports/runs/<UTC timestamp>-<scenario>/` under the
/// workspace root when this crate's source tree is present (a `cargo run`), else under the
/// current directory.
pub fn default_out_dir(scenario: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = if workspace.join("Cargo.toml").is_file() && workspace.join("reports").is_dir() {
        std::fs::canonicalize(&workspace).unwrap_or(workspace)
    } else {
        PathBuf::from(".")
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    root.join("reports")
        .join("runs")
        .join(format!("{stamp}-{scenario}"))
}

/// Runs the scenario the command line names (not `list`).
pub async fn run(cli: Cli) -> Result<Outcome> {
    match cli.scenario {
        ScenarioName::List => Err(Error::Usage("`list` is not a run".into())),
        ScenarioName::StrategyMatrix => crate::matrix::run(cli).await,
        ScenarioName::Bench => crate::bench::run(cli).await,
        name => run_attack(cli, name).await,
    }
}

fn say(cli: &Cli, msg: impl AsRef<str>) {
    if !cli.quiet() {
        eprintln!("{}", msg.as_ref());
    }
}

/// Stack options from the command line.
pub fn stack_options(cli: &Cli) -> StackOptions {
    StackOptions {
        strategy: cli.strategy,
        admin: AdminCredentials {
            email: cli.admin_email.clone(),
            password: cli.admin_password.clone(),
        },
        db_max_connections: cli.db_max_connections,
        hold_ttl_secs: None,
        payments_decline_rate: cli.decline_rate,
        instances: cli.instances,
        app_bin: cli.app_bin.clone(),
        postgres_standby: cli.standby
            || cli
                .chaos
                .as_deref()
                .and_then(|c| chaos_schedule(c, cli.seed).ok())
                .is_some_and(|s| {
                    s.faults.iter().any(|f| {
                        f.target == "postgres" && f.action == chaos::schedule::FaultAction::Failover
                    })
                }),
        seed: cli.seed,
        prometheus: None,
        chaos_api: cli.chaos_api.clone(),
    }
}

/// The project's alert rules (alerts/rules/*.yml in the source tree).
pub fn alert_rule_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("alerts")
        .join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Where the ready-made drills live (chaos/schedules/ in the source tree).
pub fn drills_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("chaos")
        .join("schedules")
}

/// Resolves `--chaos`: a drill name, a TOML file or schedule text.
pub fn chaos_schedule(spec: &str, seed: u64) -> Result<chaos::schedule::Schedule> {
    chaos::schedule::Schedule::resolve(spec, &drills_dir(), seed)
        .map_err(|e| Error::Usage(format!("--chaos: {e}")))
}

/// Capacity's rates: `--rate` (default 25/s) doubling each step.
fn capacity_rates(cli: &Cli) -> Vec<f64> {
    let base = cli.rate.unwrap_or(25.0);
    (0..cli.steps.max(1))
        .map(|i| base * f64::from(1u32 << i.min(20)))
        .collect()
}

async fn run_attack(cli: Cli, name: ScenarioName) -> Result<Outcome> {
    let defaults = name.defaults();
    let users = cli.goose.users.unwrap_or(defaults.users).max(1);
    let seats = cli.seats.unwrap_or(defaults.seats);
    let dir = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(name.as_str()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;

    let t = Instant::now();
    let live = Arc::new(crate::live::LiveMetrics::new());
    let is_local = cli.stack == crate::stack::StackSpec::Local;
    let listen = cli
        .metrics_listen
        .or_else(|| is_local.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
    let live_server = match listen {
        Some(addr) => {
            let (bound, task) = live
                .serve(addr)
                .await
                .map_err(|e| Error::io(format!("serving the runner's metrics on {addr}"), e))?;
            say(&cli, format!("runner metrics at http://{bound}/metrics"));
            Some((bound, task))
        }
        None => None,
    };
    let mut options = stack_options(&cli);
    if is_local && !cli.no_prometheus {
        options.prometheus = Some(compose::LabPrometheus {
            rule_files: alert_rule_files(),
            extra_targets: live_server
                .iter()
                .map(|(a, _)| compose::prometheus::ScrapeTarget::new("scenario", a.to_string()))
                .collect(),
        });
    }
    let stack = Stack::start(&cli.stack, &options).await?;
    say(
        &cli,
        format!(
            "stack {} up at {} in {:.1}s",
            cli.stack.name(),
            stack.base_url,
            t.elapsed().as_secs_f64()
        ),
    );
    if let Some(lab) = stack.lab() {
        say(
            &cli,
            format!("fault proxies (Toxiproxy API) at {}", lab.chaos_api()),
        );
        if let Some(p) = lab.prometheus() {
            say(&cli, format!("prometheus at {}", p.url()));
        }
    }
    let result = attack_on(&cli, name, &stack, users, seats, &dir, live).await;
    stack.stop().await;
    if let Some((_, task)) = live_server {
        task.abort();
    }
    result
}

async fn attack_on(
    cli: &Cli,
    name: ScenarioName,
    stack: &Stack,
    users: usize,
    seats: usize,
    dir: &Path,
    live: Arc<crate::live::LiveMetrics>,
) -> Result<Outcome> {
    let defaults = name.defaults();
    let run_id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let api = Api::new(&stack.base_url)?;
    let t = Instant::now();
    let spec = SeedSpec {
        seed: cli.seed,
        users,
        seats,
        events: defaults.events,
        rounds_per_event: defaults.rounds_per_event,
        coupons: if name == ScenarioName::CouponRush {
            vec![(seats as i64, 10)]
        } else {
            Vec::new()
        },
        run_tag: format!("{:X}", chrono::Utc::now().timestamp_millis() % 0xFFFFFF),
    };
    let world = if name == ScenarioName::Probe {
        seed::World::empty()
    } else {
        seed::seed(&api, &stack.admin, &spec).await?
    };
    say(
        cli,
        format!(
            "seeded {} users, {} round(s) of {} seats in {:.1}s",
            world.users.len(),
            world.rounds.len(),
            seats,
            t.elapsed().as_secs_f64()
        ),
    );

    let history_path = dir.join(history::HISTORY_FILE);
    let (recorder, writer) = history::start(
        (!cli.no_history).then_some(history_path.as_path()),
        !cli.no_history,
    )
    .map_err(|e| Error::io("starting the history", e))?;
    let recorder = recorder.with_live(Arc::clone(&live));

    let open_model = cli.rate.is_some() || name == ScenarioName::Capacity;
    let pacer = match (name, cli.rate) {
        (ScenarioName::Capacity, _) => Some(Pacer::stepped(
            capacity_rates(cli),
            Duration::from_secs(cli.step_secs.max(1)),
            users,
        )),
        (_, Some(rate)) => Some(Pacer::new(rate, users)),
        _ => None,
    };
    let gate = (!open_model && matches!(name, ScenarioName::FlashSale | ScenarioName::CouponRush))
        .then(|| Gate::new(users, Duration::from_secs(10)));
    let knobs = Knobs {
        think_ms: cli
            .think_ms
            .unwrap_or(if name == ScenarioName::BrowseAndBuy {
                500
            } else {
                0
            }),
        ..Knobs::default()
    };
    let round_ids: Vec<i64> = world.rounds.iter().map(|r| r.id).collect();
    let coupons = world.coupons.clone();
    let admin_token = world.admin_token.clone();
    let ctx = Arc::new(RunContext {
        recorder: recorder.clone(),
        world,
        seed: cli.seed,
        gate,
        pacer,
        knobs: knobs.clone(),
    });

    let schedule = match &cli.chaos {
        Some(spec) => Some(chaos_schedule(spec, cli.seed)?),
        None => None,
    };
    // Each target raises `lab_fault_active` while its fault is in force.
    let targets: std::collections::HashMap<String, Arc<dyn chaos::schedule::FaultTarget>> = stack
        .targets()
        .into_iter()
        .map(|(name, t)| {
            let gauged: Arc<dyn chaos::schedule::FaultTarget> =
                Arc::new(crate::live::Gauged::new(&name, t, Arc::clone(&live)));
            (name, gauged)
        })
        .collect();
    if let Some(sched) = &schedule {
        for f in &sched.faults {
            live.declare_fault(&f.target, &f.action);
        }
        if targets.is_empty() {
            return Err(Error::Usage(format!(
                "--chaos needs a stack with fault targets: --stack local, --stack docker, or --stack url=… with --chaos-api (the {} stack has none)",
                cli.stack.name()
            )));
        }
        for f in &sched.faults {
            if !targets.contains_key(&f.target) {
                let mut names: Vec<&String> = targets.keys().collect();
                names.sort();
                return Err(Error::Usage(format!(
                    "--chaos: no target {:?} on this stack (targets: {})",
                    f.target,
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    let run_time_s = match (name, &schedule) {
        (ScenarioName::Capacity, _) => {
            Some(cli.step_secs.max(1) as usize * cli.steps.max(1) as usize)
        }
        // A chaos run lasts the schedule, plus time to see the recovery.
        (_, Some(sched)) => Some(sched.span().as_secs() as usize + 15),
        _ => defaults.run_time_s,
    };
    let goose = goose_config(cli, &stack.base_url, users, run_time_s);
    let planned = goose
        .run_time
        .as_deref()
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut attack =
        GooseAttack::initialize_with_config(goose).map_err(|e| Error::Goose(e.to_string()))?;
    attack = match name {
        ScenarioName::FlashSale | ScenarioName::Capacity => {
            attack.register_scenario(personas::flash_buyer::scenario(&ctx))
        }
        ScenarioName::CouponRush => {
            attack.register_scenario(personas::coupon_hunter::scenario(&ctx))
        }
        ScenarioName::Probe => attack.register_scenario(personas::prober::scenario(&ctx)),
        ScenarioName::BrowseAndBuy => attack
            .register_scenario(
                personas::browser::scenario(&ctx, 7).map_err(|e| Error::Goose(e.to_string()))?,
            )
            .register_scenario(
                personas::shopper::scenario(&ctx, 3).map_err(|e| Error::Goose(e.to_string()))?,
            ),
        _ => return Err(Error::Usage(format!("{} is not an attack", name.as_str()))),
    };

    let progress = (!cli.quiet()).then(|| {
        Progress::start(
            Plan {
                scenario: name.as_str().to_owned(),
                users,
                duration: planned,
            },
            recorder.counters().clone(),
        )
    });
    let started_at = chrono::Utc::now();
    let t0 = Instant::now();
    let chaos_run = schedule.clone().map(|sched| {
        let offset_ms = recorder.now_ms();
        let targets = targets.clone();
        say(
            cli,
            format!(
                "chaos: {} fault(s) over {:.0}s ({})",
                sched.faults.len(),
                sched.span().as_secs_f64(),
                sched.name.as_deref().unwrap_or("inline schedule")
            ),
        );
        let task = tokio::spawn(async move { chaos::schedule::run(&sched, &targets).await });
        (offset_ms, task)
    });
    let probes = schedule
        .is_some()
        .then(|| ReadinessProbes::start(stack.instance_urls(), recorder.clone()));
    let alert_watch = match (&schedule, stack.lab().and_then(|l| l.prometheus())) {
        (Some(_), Some(p)) => Some(AlertWatch::start(p.url(), recorder.clone())),
        _ => None,
    };
    let attack_result = attack.execute().await;
    let attack_s = t0.elapsed().as_secs_f64();
    // Faults still running are reverted before the final state is read.
    let mut fault_records = Vec::new();
    let mut chaos_offset_ms = 0.0;
    if let Some((offset_ms, task)) = chaos_run {
        chaos_offset_ms = offset_ms;
        match task.await {
            Ok(Ok(records)) => fault_records = records,
            Ok(Err(e)) => say(cli, format!("warning: the chaos schedule failed: {e}")),
            Err(e) => say(cli, format!("warning: the chaos schedule panicked: {e}")),
        }
    }
    let readiness = match probes {
        Some(p) => p.finish().await,
        None => Vec::new(),
    };
    let alerts = match alert_watch {
        Some(w) => w.finish().await,
        None => Vec::new(),
    };
    let duration_s = attack_s;
    let finished_at = chrono::Utc::now();
    if let Some(p) = progress {
        p.finish().await;
    }
    drop(ctx);
    let out = writer.finish(duration_s);
    attack_result.map_err(|e| Error::Goose(e.to_string()))?;

    let state = if name == ScenarioName::Probe {
        FinalState::default()
    } else {
        api.final_state(&admin_token, &round_ids, &coupons).await?
    };
    let scope = Scope {
        seats: !matches!(name, ScenarioName::CouponRush | ScenarioName::Probe),
        coupons: name == ScenarioName::CouponRush,
    };
    let correctness = checker::check(&out.writes, &state, scope);

    let mut run = reports::RunInfo {
        id: run_id.clone(),
        scenario: name.as_str().to_owned(),
        description: name.description().to_owned(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        duration_s,
        stack: cli.stack.name().to_owned(),
        strategy: stack
            .strategy
            .map_or_else(|| "as deployed".to_owned(), |s| s.as_str().to_owned()),
        seed: cli.seed,
        users: users as u64,
        target_url: stack.base_url.clone(),
        parameters: BTreeMap::new(),
        host: reports::HostInfo::current(),
    };
    run.parameters.insert("seats".into(), json!(seats));
    run.parameters
        .insert("rounds".into(), json!(round_ids.len()));
    run.parameters
        .insert("open_model".into(), json!(open_model));
    if name == ScenarioName::Capacity {
        run.parameters
            .insert("rates_per_s".into(), json!(capacity_rates(cli)));
        run.parameters
            .insert("step_secs".into(), json!(cli.step_secs));
    } else if let Some(rate) = cli.rate {
        run.parameters.insert("rate_per_s".into(), json!(rate));
    }
    run.parameters
        .insert("think_ms".into(), json!(knobs.think_ms));
    run.parameters
        .insert("history".into(), json!(!cli.no_history));
    // Counted on the request path whether or not history is recorded (the bench's
    // "history off" leg has no aggregates otherwise).
    let counted = recorder
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    run.parameters
        .insert("requests_counted".into(), json!(counted));

    let thresholds = thresholds_for(cli, name);
    let mut report = build_report(run, &out, correctness, &thresholds);
    if name == ScenarioName::Capacity {
        report.comparison = Some(capacity_table(&out, cli, defaults.p99_all_ms));
    }
    if schedule.is_some() {
        let p99_ms = thresholds
            .latency
            .get("p99")
            .and_then(|l| l.iter().find(|l| l.transaction == "all"))
            .map_or(defaults.p99_all_ms, |l| l.limit_ms);
        let slo = crate::failover::Slo {
            max_error_rate: cli.slo_error_rate,
            p99_ms,
        };
        let observed = ChaosObserved {
            records: &fault_records,
            offset_ms: chaos_offset_ms,
            readiness: &readiness,
            alerts: &alerts,
        };
        report.failover = failover_section(&observed, &out, &state, slo, duration_s * 1000.0);
        let outcomes = recovery_outcomes(&report.failover, cli.max_recovery);
        let mut all = report.verdict.outcomes.clone();
        all.extend(outcomes);
        report.verdict = reports::Verdict::from_outcomes(all);
    }
    if let Some(lab) = stack.lab() {
        let components = serde_json::to_string_pretty(&lab.components()).unwrap_or_default();
        if std::fs::write(dir.join("stack.json"), components).is_ok() {
            report.artifacts.push(reports::Artifact {
                name: "the local stack's components (pids, addresses, proxies)".into(),
                path: "stack.json".into(),
            });
        }
        for log in lab.keep_logs(dir) {
            if let Some(file) = log.file_name() {
                report.artifacts.push(reports::Artifact {
                    name: format!("log of {}", file.to_string_lossy().trim_end_matches(".log")),
                    path: file.to_string_lossy().into_owned(),
                });
            }
        }
    }
    write_state(dir, &state)?;
    report.artifacts.push(reports::Artifact {
        name: "final state read by the checker".into(),
        path: FINAL_STATE_FILE.into(),
    });
    if out.path.is_some() {
        report.artifacts.push(reports::Artifact {
            name: "client history (one operation per line)".into(),
            path: history::HISTORY_FILE.into(),
        });
    }
    if let Some(e) = &out.io_error {
        say(cli, format!("warning: writing the history failed: {e}"));
    }
    let written = reports::write_all(&report, dir)
        .map_err(|e| Error::io(format!("writing the report to {}", dir.display()), e))?;
    Ok(Outcome {
        report,
        dir: dir.to_path_buf(),
        written,
    })
}

/// What a chaos run saw besides the history.
#[derive(Clone, Copy)]
struct ChaosObserved<'a> {
    /// The schedule's records.
    records: &'a [chaos::schedule::FaultRecord],
    /// When the schedule started, ms on the history's clock.
    offset_ms: f64,
    /// Readiness changes.
    readiness: &'a [crate::failover::Readiness],
    /// Alerts that fired, with when.
    alerts: &'a [(f64, String)],
}

/// The failover section of a chaos run.
fn failover_section(
    observed: &ChaosObserved<'_>,
    out: &HistoryOutput,
    state: &FinalState,
    slo: crate::failover::Slo,
    run_end_ms: f64,
) -> reports::Failover {
    let ChaosObserved {
        records,
        offset_ms,
        readiness,
        alerts,
    } = *observed;
    let windows: Vec<crate::failover::Window> = records
        .iter()
        .filter_map(|r| crate::failover::Window::from_record(r.clone(), offset_ms, run_end_ms))
        .collect();
    let lost = checker::bookings::lost_bookings(&out.writes, state).unwrap_or_default();
    let faults = crate::failover::analyze(
        &windows,
        &out.samples,
        readiness,
        alerts,
        &lost,
        slo,
        run_end_ms,
    );
    let problems: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("{}:{}: {e}", r.fault.target, r.fault.action))
        })
        .collect();
    let note = if records.is_empty() {
        Some("the chaos schedule did not run (see the warnings of the run)".to_owned())
    } else if problems.is_empty() {
        None
    } else {
        Some(format!("faults that failed: {}", problems.join("; ")))
    };
    reports::Failover { note, faults }
}

/// One recovery outcome per fault against `--max-recovery` (ms), when given.
fn recovery_outcomes(
    failover: &reports::Failover,
    max_recovery_ms: Option<f64>,
) -> Vec<reports::ThresholdOutcome> {
    let Some(max_ms) = max_recovery_ms else {
        return Vec::new();
    };
    failover
        .faults
        .iter()
        .map(|f| {
            let observed = f
                .recovered_within_slo_s
                .map_or("never recovered in the run".to_owned(), |s| {
                    format!("{s:.1} s")
                });
            reports::ThresholdOutcome::new(
                format!("recovery after {}", f.spec),
                reports::ThresholdKind::Recovery,
                format!("<= {:.1} s", max_ms / 1000.0),
                observed,
                f.recovered_within_slo_s
                    .is_some_and(|s| s * 1000.0 <= max_ms),
            )
        })
        .collect()
}

/// Polls each instance's `/health/ready` every 250 ms during a chaos run and records every
/// answer that differs from the last one (a timeout or a refused connection is "not ready").
struct ReadinessProbes {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<crate::failover::Readiness>>,
}

impl ReadinessProbes {
    fn start(instances: Vec<(String, String)>, recorder: history::Recorder) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(1000))
                .build()
                .unwrap_or_default();
            let mut last: BTreeMap<String, bool> = BTreeMap::new();
            let mut seen = Vec::new();
            loop {
                let checks = instances.iter().map(|(name, url)| {
                    let client = client.clone();
                    async move {
                        let ok = client
                            .get(format!("{url}/health/ready"))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        (name.clone(), ok)
                    }
                });
                for (name, ready) in futures::future::join_all(checks).await {
                    if last.insert(name.clone(), ready) != Some(ready) {
                        seen.push(crate::failover::Readiness {
                            t_ms: recorder.now_ms(),
                            instance: name,
                            ready,
                        });
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => break,
                }
            }
            seen
        });
        ReadinessProbes { stop, task }
    }

    async fn finish(self) -> Vec<crate::failover::Readiness> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Polls Prometheus's `/api/v1/alerts` every second during a chaos run and records when each
/// alert first reached `firing` (ms on the history's clock).
struct AlertWatch {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<(f64, String)>>,
}

impl AlertWatch {
    fn start(prometheus: String, recorder: history::Recorder) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(1000))
                .build()
                .unwrap_or_default();
            let mut fired: Vec<(f64, String)> = Vec::new();
            loop {
                let url = format!("{prometheus}/api/v1/alerts");
                if let Ok(resp) = client.get(&url).send().await {
                    if let Ok(v) = resp.json::<serde_json::Value>().await {
                        let list = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
                        for a in list {
                            let name = a["labels"]["alertname"].as_str().unwrap_or_default();
                            if a["state"] == "firing" && !fired.iter().any(|(_, n)| n == name) {
                                fired.push((recorder.now_ms(), name.to_owned()));
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => break,
                }
            }
            fired
        });
        AlertWatch { stop, task }
    }

    async fn finish(self) -> Vec<(f64, String)> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

fn write_state(dir: &Path, state: &FinalState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(dir.join(FINAL_STATE_FILE), text)
        .map_err(|e| Error::io("writing the final state", e))
}

/// Goose's configuration for a run: the command line's Goose options, with what the lab
/// must decide (host, users, no controllers) forced and the scenario's shape as defaults.
pub fn goose_config(
    cli: &Cli,
    host: &str,
    users: usize,
    run_time_s: Option<usize>,
) -> GooseConfiguration {
    let mut g = cli.goose.clone();
    g.host = Some(host.to_owned());
    g.users = Some(users);
    g.no_telnet = true;
    g.websocket = false;
    g.no_autostart = false;
    if g.verbose == 0 {
        // Goose logs every user's start and stop at info: keep its console to warnings;
        // `-v` brings it back. The lab's own `-q` is read from the command line, not here.
        g.quiet = g.quiet.max(1);
    }
    if !cli.goose_metrics {
        g.no_print_metrics = true;
        g.no_error_summary = true;
    }
    if g.increase_rate.is_none() && g.increase_time.is_none() && test_plan_unset(&g) {
        // Everybody at once: the gate or the pacer decides when they really start.
        g.increase_rate = Some((users * 4).max(1).to_string());
    }
    match run_time_s {
        Some(t) if g.iterations.is_none() => {
            g.run_time.get_or_insert_with(|| t.to_string());
        }
        _ if g.run_time.is_none() => {
            g.iterations.get_or_insert(1);
        }
        _ => {}
    }
    g
}

/// Whether Goose's `--test-plan` (private in 0.19) is unset, read through its serde form.
fn test_plan_unset(g: &GooseConfiguration) -> bool {
    serde_json::to_value(g)
        .ok()
        .and_then(|v| v.get("test_plan").cloned())
        .is_none_or(|v| v.is_null())
}

/// The thresholds of a run: flags, else the scenario's defaults.
pub fn thresholds_for(cli: &Cli, name: ScenarioName) -> Thresholds {
    let d = name.defaults();
    let mut t = Thresholds::default();
    if !cli.p50.is_empty() {
        t.latency.insert("p50", cli.p50.clone());
    }
    if !cli.p95.is_empty() {
        t.latency.insert("p95", cli.p95.clone());
    }
    let p99 = if cli.p99.is_empty() {
        vec![LatencyLimit {
            transaction: "all".into(),
            limit_ms: d.p99_all_ms,
        }]
    } else {
        cli.p99.clone()
    };
    t.latency.insert("p99", p99);
    t.max_error_rate = cli.max_error_rate;
    // Under chaos, unknown outcomes are what a fault causes; the failover section and
    // `--max-recovery` judge them instead, unless a limit is asked for explicitly.
    t.max_unknown_rate = match (cli.max_unknown_rate, &cli.chaos) {
        (Some(r), _) => Some(r),
        (None, Some(_)) => None,
        (None, None) => Some(d.max_unknown_rate),
    };
    t.min_throughput_rps = cli.min_throughput;
    t
}

/// Assembles the report from the history's aggregates, the checker's findings and the
/// thresholds.
pub fn build_report(
    run: reports::RunInfo,
    out: &HistoryOutput,
    correctness: reports::Correctness,
    thresholds: &Thresholds,
) -> reports::Report {
    let duration_s = run.duration_s;
    let transactions: Vec<reports::TransactionStats> = OpKind::ALL
        .iter()
        .filter_map(|k| out.transactions.get(k).map(|a| (k, a)))
        .map(|(k, a)| reports::TransactionStats {
            name: k.as_str().to_owned(),
            count: a.count(),
            ok: a.ok,
            failed: a.failed,
            unknown: a.unknown,
            throughput_rps: if duration_s > 0.0 {
                a.count() as f64 / duration_s
            } else {
                0.0
            },
            latency: reports::Percentiles::from_histogram(&a.latency_us),
            corrected_latency: a
                .corrected_us
                .as_ref()
                .map(reports::Percentiles::from_histogram),
        })
        .collect();
    let summary = reports::Summary::from_transactions(&transactions, duration_s);
    let mut outcomes = thresholds.evaluate(&transactions, &summary);
    outcomes.extend(correctness.outcomes());
    let mut report = reports::Report::new(run);
    report.summary = summary;
    report.transactions = transactions;
    report.timeline = out.timeline.clone();
    report.correctness = correctness;
    report.failover = reports::Failover::no_faults();
    report.verdict = reports::Verdict::from_outcomes(outcomes);
    report
}

/// Capacity: one row per step of the ramp, from the timeline (hold latency is the first
/// request of each arrival, so it carries the corrected latency).
fn capacity_table(out: &HistoryOutput, cli: &Cli, p99_limit_ms: f64) -> reports::Comparison {
    let rates = capacity_rates(cli);
    let step = cli.step_secs.max(1) as f64;
    let mut rows = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        let (from, to) = (i as f64 * step, (i + 1) as f64 * step);
        let points: Vec<_> = out
            .timeline
            .points
            .iter()
            .filter(|p| p.t_s >= from && p.t_s < to)
            .collect();
        let requests: u64 = points.iter().map(|p| p.requests).sum();
        let errors: u64 = points.iter().map(|p| p.errors).sum();
        let worst_p99 = points
            .iter()
            .flat_map(|p| p.per_transaction.values().map(|s| s.p99_ms))
            .fold(0.0_f64, f64::max);
        let mut values = BTreeMap::new();
        values.insert("arrivals/s".to_owned(), json!(rate));
        values.insert("requests/s".to_owned(), json!(requests as f64 / step));
        values.insert("errors".to_owned(), json!(errors));
        values.insert("worst p99 (ms)".to_owned(), json!(worst_p99));
        rows.push(reports::ComparisonRow {
            label: format!("step {} ({rate}/s)", i + 1),
            values,
            passed: worst_p99 <= p99_limit_ms,
        });
    }
    reports::Comparison {
        title: format!("Capacity ramp: open-model arrivals doubling every {step} s (p99 SLO {p99_limit_ms} ms)"),
        columns: vec!["arrivals/s".into(), "requests/s".into(), "errors".into(), "worst p99 (ms)".into()],
        rows,
    }
}

/// The short summary printed at the end of a run.
pub fn summary_text(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut s = String::new();
    s.push_str(&format!(
        "{} on {} ({} strategy, seed {}, {} users) in {:.1}s\n",
        r.run.scenario, r.run.stack, r.run.strategy, r.run.seed, r.run.users, r.run.duration_s
    ));
    s.push_str(&format!(
        "  requests {}  ok {}  failed {}  unknown {}  {:.0} req/s\n",
        r.summary.requests,
        r.summary.ok,
        r.summary.failed,
        r.summary.unknown,
        r.summary.throughput_rps
    ));
    for t in &r.transactions {
        s.push_str(&format!(
            "  {:<13} {:>7} req  ok {:>6}  fail {:>6}  unk {:>4}  p50 {:>8.1} ms  p99 {:>8.1} ms\n",
            t.name, t.count, t.ok, t.failed, t.unknown, t.latency.p50, t.latency.p99
        ));
    }
    if let Some(c) = &r.comparison {
        s.push_str(&format!("  {}\n", c.title));
        for row in &c.rows {
            let cells: Vec<String> = c
                .columns
                .iter()
                .map(|col| {
                    format!(
                        "{col} {}",
                        row.values.get(col).map_or("—".into(), |v| v.to_string())
                    )
                })
                .collect();
            s.push_str(&format!(
                "    {:<28} {}  {}\n",
                row.label,
                cells.join("  "),
                if row.passed { "ok" } else { "FAIL" }
            ));
        }
    }
    for c in &r.correctness.checks {
        let status = match c.status() {
            reports::CheckStatus::Passed => "pass",
            reports::CheckStatus::Failed => "FAIL",
            reports::CheckStatus::Skipped => "skip",
        };
        let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "  [{status}] {:<24} {}\n",
            c.name,
            counts.join(" ")
        ));
    }
    for o in r
        .verdict
        .outcomes
        .iter()
        .filter(|o| !o.passed && o.kind != reports::ThresholdKind::Invariant)
    {
        s.push_str(&format!(
            "  [FAIL] {}: {} (limit {})\n",
            o.name, o.observed, o.limit
        ));
    }
    s.push_str(&format!(
        "verdict: {} (exit {})\n",
        reports::exit_code::describe(r.verdict.exit_code),
        r.verdict.exit_code
    ));
    s.push_str(&format!(
        "report: {}\n        {}\n        {}\n        {}\n",
        outcome.written.html.display(),
        outcome.written.markdown.display(),
        outcome.written.json.display(),
        outcome.written.junit.display()
    ));
    s
}

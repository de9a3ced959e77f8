//! Stage 1: the command line resolved once into a typed [`Plan`] — the scenario's
//! descriptor, users and seats, where the run writes, the stack's options, the chaos schedule
//! (parsed here, once, its errors reported as usage errors), thresholds, pacing and Goose's
//! configuration. Later stages read the plan, never the command line's defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use goose::config::GooseConfiguration;

use crate::catalog::{Arrival, Attack, Scenario, ScenarioName};
use crate::cli::{Cli, WiringChoice};
use crate::context::{Gate, Knobs, Pacer};
use crate::error::{Error, Result};
use crate::seed::SeedSpec;
use crate::stack::{AdminCredentials, StackOptions, StackSpec};
use crate::thresholds::{LatencyLimit, Thresholds};

/// How users arrive in this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Pacing {
    /// Released together by a gate.
    Together,
    /// As Goose starts them, looping until the run time ends.
    AsStarted,
    /// Open-model arrivals per second, stepping up every `step` (one rate: steady).
    Open {
        /// Rate of each step.
        rates: Vec<f64>,
        /// How long each step lasts (`Duration::MAX`: one steady rate).
        step: Duration,
    },
}

impl Pacing {
    /// Whether arrivals follow a schedule fixed in advance (the open model).
    pub fn is_open(&self) -> bool {
        matches!(self, Pacing::Open { .. })
    }

    /// The gate a closed-model rush waits at.
    pub fn gate(&self, users: usize) -> Option<Gate> {
        // The open model waits for every user too: its schedule starts once all run.
        matches!(self, Pacing::Together | Pacing::Open { .. })
            .then(|| Gate::new(users, Duration::from_secs(10)))
    }

    /// The pacer of an open-model run.
    pub fn pacer(&self, users: usize) -> Option<Pacer> {
        match self {
            Pacing::Open { rates, step } => Some(Pacer::stepped(rates.clone(), *step, users)),
            _ => None,
        }
    }
}

/// The most users the local stack gives a client (and connections) each by default.
pub const PER_USER_CONNECTIONS_MAX: usize = 1_000;

/// A run, resolved.
#[derive(Debug)]
pub struct Plan {
    /// The command line (Goose's options and the lab's flags that need no resolving).
    pub cli: Cli,
    /// The scenario.
    pub scenario: &'static Scenario,
    /// Its attack.
    pub attack: &'static Attack,
    /// Virtual users.
    pub users: usize,
    /// Seats per round.
    pub seats: usize,
    /// Output directory.
    pub dir: PathBuf,
    /// The stack's options.
    pub stack: StackOptions,
    /// The fault schedule.
    pub schedule: Option<chaos::schedule::Schedule>,
    /// The limits the run is judged by.
    pub thresholds: Thresholds,
    /// How users arrive.
    pub pacing: Pacing,
    /// Planned run time (None: every user runs once).
    pub run_time_s: Option<usize>,
    /// Persona knobs.
    pub knobs: Knobs,
    /// The run to compare with (`--baseline`), read before anything starts.
    pub baseline: Option<crate::compare::LoadedRun>,
}

impl Plan {
    /// Resolves the command line for an attack.
    pub fn resolve(cli: Cli, scenario: &'static Scenario, attack: &'static Attack) -> Result<Plan> {
        let d = scenario.defaults;
        if attack.samples_resources && cli.stack == crate::stack::StackSpec::Embedded {
            return Err(Error::Usage(format!(
                "{} watches the box office's own process for leaks: run it with --stack local \
                 (on the embedded stack the box office shares the runner's process, whose \
                 history grows by design)",
                scenario.name.as_str()
            )));
        }
        let schedule = match &cli.chaos {
            Some(spec) => Some(chaos_schedule(spec, cli.seed)?),
            None => None,
        };
        if cli.wiring == WiringChoice::Direct && schedule.is_some() {
            return Err(Error::Usage(
                "--wiring direct starts no fault proxy, and --chaos needs them (its network \
                 faults and failovers act on the proxies): drop one of the two"
                    .into(),
            ));
        }
        if attack.arrival == Arrival::Ramp
            && !(cli.growth.is_finite() && (1.0..=MAX_GROWTH).contains(&cli.growth))
        {
            return Err(Error::Usage(format!(
                "--growth {} is not a rate factor: give 1 (the same rate every step) up to \
                 {MAX_GROWTH} (2 doubles the rate each step)",
                cli.growth
            )));
        }
        let pacing = match (attack.arrival, cli.rate) {
            (Arrival::Ramp, _) => Pacing::Open {
                rates: ramp_rates(&cli),
                step: Duration::from_secs(cli.step_secs.max(1)),
            },
            (_, Some(rate)) => Pacing::Open {
                rates: vec![rate],
                step: Duration::MAX,
            },
            (Arrival::Together, None) => Pacing::Together,
            (Arrival::AsStarted, None) => Pacing::AsStarted,
        };
        let run_time_s = match (attack.arrival, &schedule) {
            (Arrival::Ramp, _) => Some(cli.step_secs.max(1) as usize * cli.steps.max(1) as usize),
            // A chaos run lasts the schedule, plus time to see the recovery.
            (_, Some(sched)) => Some(sched.span().as_secs() as usize + 15),
            _ => d.run_time_s,
        };
        let baseline = match &cli.baseline {
            Some(path) => Some(
                crate::compare::LoadedRun::load(path)
                    .map_err(|e| Error::Usage(format!("--baseline: {e}")))?,
            ),
            None => None,
        };
        Ok(Plan {
            baseline,
            users: cli.goose.users.unwrap_or(d.users).max(1),
            seats: cli.seats.unwrap_or(d.seats),
            dir: cli
                .out
                .clone()
                .unwrap_or_else(|| default_out_dir(scenario.name.as_str())),
            stack: stack_options(&cli, schedule.as_ref()),
            thresholds: thresholds_for(&cli, scenario.name),
            knobs: Knobs {
                think_ms: cli.think_ms.unwrap_or(d.think_ms),
                chosen_seats_share: cli
                    .chosen_seats
                    .unwrap_or(Knobs::default().chosen_seats_share),
                ..Knobs::default()
            },
            schedule,
            pacing,
            run_time_s,
            scenario,
            attack,
            cli,
        })
    }

    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        self.scenario.name.as_str()
    }

    /// The run's id: its directory's name.
    pub fn run_id(&self) -> String {
        self.dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// What to seed.
    pub fn seed_spec(&self) -> SeedSpec {
        let d = self.scenario.defaults;
        SeedSpec {
            seed: self.cli.seed,
            users: self.users,
            seats: self.seats,
            events: d.events,
            rounds_per_event: d.rounds_per_event,
            coupons: self
                .attack
                .coupon_discount
                .map(|pct| vec![(self.seats as i64, pct)])
                .unwrap_or_default(),
            run_tag: format!("{:X}", chrono::Utc::now().timestamp_millis() % 0xFFFFFF),
        }
    }

    /// The p99 limit on every transaction (the SLO a failover recovers to).
    pub fn p99_all_ms(&self) -> f64 {
        self.thresholds
            .latency
            .get("p99")
            .and_then(|l| l.iter().find(|l| l.transaction == "all"))
            .map_or(self.scenario.defaults.p99_all_ms, |l| l.limit_ms)
    }

    /// Width of the timeline's intervals: a one-shot rush is over in seconds, so it gets
    /// quarter-second intervals (its charts show lines, not a dot or two); timed runs, whose
    /// per-second figures the capacity table and the failover section read, get 1 s.
    pub fn timeline_interval_s(&self) -> f64 {
        if self.run_time_s.is_none() && self.cli.goose.run_time.is_none() {
            0.25
        } else {
            1.0
        }
    }

    /// How the virtual users connect: as asked, else per user on the local stack up to
    /// [`PER_USER_CONNECTIONS_MAX`] users (its balancer routes whole connections, so a paused
    /// instance must catch the users bound to it) and shared elsewhere, and beyond that
    /// number (a client per user costs about 100 KB: 10,000 of them would take a gigabyte;
    /// so many users keep enough requests in flight that a shared pool opens connections to
    /// every instance anyway).
    pub fn connections(&self) -> crate::cli::Connections {
        self.cli.connections.unwrap_or(match self.cli.stack {
            crate::stack::StackSpec::Local if self.users <= PER_USER_CONNECTIONS_MAX => {
                crate::cli::Connections::PerUser
            }
            _ => crate::cli::Connections::Shared,
        })
    }

    /// The lobby a closed-model crowd gathers in to load the sale's page before its gate
    /// (see [`crate::context::RunContext::arrive`]); none with `--cold-open`, and none in
    /// the open model, whose arrivals each connect when they come.
    pub fn lobby(&self) -> Option<Gate> {
        (self.pacing == Pacing::Together && !self.cli.cold_open)
            .then(|| Gate::new(self.users, Duration::from_secs(10)))
    }

    /// Prints a line unless `-q`.
    pub fn say(&self, msg: impl AsRef<str>) {
        if !self.cli.quiet() {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Goose's configuration against `host`.
    pub fn goose(&self, host: &str) -> GooseConfiguration {
        goose_config(&self.cli, host, self.users, self.run_time_s)
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

/// Stack options from the command line; a PostgreSQL standby when asked for or when the
/// schedule fails `postgres` over; the local stack wired direct when `--wiring` says so, or
/// (`auto`) when it runs the scenario itself with no fault scheduled.
pub fn stack_options(cli: &Cli, schedule: Option<&chaos::schedule::Schedule>) -> StackOptions {
    let fails_postgres_over = schedule.is_some_and(|s| {
        s.faults
            .iter()
            .any(|f| f.target == "postgres" && f.action == chaos::schedule::FaultAction::Failover)
    });
    StackOptions {
        strategy: cli.strategy,
        admin: AdminCredentials {
            email: cli.admin_email.clone(),
            password: cli.admin_password.clone(),
        },
        db_max_connections: cli.db_max_connections,
        hold_ttl_secs: None,
        payments_decline_rate: cli.decline_rate,
        payments_latency_ms: cli.payments_latency.round() as u64,
        instances: cli.instances,
        app_bin: cli.app_bin.clone(),
        postgres_standby: cli.standby || fails_postgres_over,
        seed: cli.seed,
        prometheus: None,
        chaos_api: cli.chaos_api.clone(),
        wiring: wiring(cli),
        cache: cli.cache,
        app_env: cli.app_env.clone(),
        while_locked: cli.while_locked,
    }
}

/// `--wiring`, resolved. `auto` is direct only for a local stack this run starts and faults
/// nothing on (no `--chaos`, which is where every schedule comes from): a stack started by
/// other code (a test's, a game day's) keeps its proxies.
fn wiring(cli: &Cli) -> compose::Wiring {
    match cli.wiring {
        WiringChoice::Proxied => compose::Wiring::Proxied,
        WiringChoice::Direct => compose::Wiring::Direct,
        WiringChoice::Auto if cli.stack == StackSpec::Local && cli.chaos.is_none() => {
            compose::Wiring::Direct
        }
        WiringChoice::Auto => compose::Wiring::Proxied,
    }
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

/// Capacity's rates: `--rate` (default 25/s), multiplied by `--growth` (default 2) each step,
/// to the hundredth of an arrival per second.
pub fn ramp_rates(cli: &Cli) -> Vec<f64> {
    let base = cli.rate.unwrap_or(25.0);
    let mut rate = base;
    (0..cli.steps.max(1))
        .map(|_| {
            let this = (rate * 100.0).round() / 100.0;
            rate *= cli.growth;
            this
        })
        .collect()
}

/// The largest `--growth`: more would pass any real rate within a few steps.
const MAX_GROWTH: f64 = 16.0;

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
    let quiet_embedded =
        cli.stack == StackSpec::Embedded && cli.chaos.is_none() && cli.chaos_api.is_none();
    let p99 = if cli.p99.is_empty() {
        vec![LatencyLimit {
            transaction: "all".into(),
            limit_ms: d.p99_all_ms_for(quiet_embedded),
        }]
    } else {
        cli.p99.clone()
    };
    t.latency.insert("p99", p99);
    // Under chaos, errors are what a fault causes; the failover section and
    // `--max-recovery` judge them instead, unless a limit is asked for explicitly.
    t.max_error_rate = match (cli.max_error_rate, &cli.chaos) {
        (Some(r), _) => Some(r),
        (None, Some(_)) => None,
        (None, None) => Some(d.max_error_rate),
    };
    t.max_unknown_rate = cli.max_unknown_rate;
    t.min_throughput_rps = cli.min_throughput;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan> {
        let cli = Cli::parse_from_args(std::iter::once("scenario").chain(args.iter().copied()))
            .expect("a command line");
        let scenario = cli.scenario.scenario().expect("a scenario");
        let crate::catalog::Kind::Attack(attack) = &scenario.kind else {
            panic!("not an attack");
        };
        Plan::resolve(cli, scenario, attack)
    }

    #[test]
    fn a_rush_waits_at_a_gate_unless_a_rate_is_given() {
        let p = plan(&["flash-sale", "-u", "10"]).unwrap();
        assert_eq!(p.pacing, Pacing::Together);
        assert_eq!(p.run_time_s, None);
        let p = plan(&["flash-sale", "--rate", "20"]).unwrap();
        assert!(p.pacing.is_open());
        assert!(
            p.pacing.gate(10).is_some(),
            "the open model's schedule starts once every user runs"
        );
        assert!(plan(&["browse-and-buy"]).unwrap().pacing.gate(10).is_none());
    }

    #[test]
    fn capacity_ramps_and_runs_every_step() {
        let p = plan(&[
            "capacity",
            "--rate",
            "10",
            "--steps",
            "3",
            "--step-secs",
            "4",
        ])
        .unwrap();
        assert_eq!(
            p.pacing,
            Pacing::Open {
                rates: vec![10.0, 20.0, 40.0],
                step: Duration::from_secs(4)
            }
        );
        assert_eq!(p.run_time_s, Some(12));
        assert_eq!(p.p99_all_ms(), 250.0);
    }

    #[test]
    fn a_quiet_embedded_flash_sale_is_held_to_a_tighter_p99_than_other_stacks() {
        assert_eq!(plan(&["flash-sale"]).unwrap().p99_all_ms(), 1000.0);
        assert_eq!(
            plan(&["flash-sale", "--stack", "local"])
                .unwrap()
                .p99_all_ms(),
            1500.0
        );
        assert_eq!(
            plan(&["flash-sale", "--chaos", "payments:down@1s+1s"])
                .unwrap()
                .p99_all_ms(),
            1500.0,
            "a chaos run is judged by the stack-wide default"
        );
        assert_eq!(
            plan(&["flash-sale", "--p99", "all=2s"])
                .unwrap()
                .p99_all_ms(),
            2000.0,
            "a flag wins"
        );
        assert_eq!(
            plan(&["browse-and-buy"]).unwrap().p99_all_ms(),
            1000.0,
            "scenarios without an embedded limit keep theirs"
        );
    }

    #[test]
    fn the_ramp_grows_by_its_factor_and_refuses_one_that_does_not_grow() {
        let rates = |args: &[&str]| match plan(args).unwrap().pacing {
            Pacing::Open { rates, .. } => rates,
            other => panic!("capacity is open-model: {other:?}"),
        };
        assert_eq!(
            rates(&["capacity", "--rate", "10", "--steps", "3"]),
            vec![10.0, 20.0, 40.0]
        );
        assert_eq!(
            rates(&["capacity", "--rate", "300", "--steps", "4", "--growth", "1.1"]),
            vec![300.0, 330.0, 363.0, 399.3]
        );
        assert_eq!(
            rates(&["capacity", "--rate", "25", "--steps", "3", "--growth", "1.15"]),
            vec![25.0, 28.75, 33.06],
            "to the hundredth"
        );
        assert_eq!(
            rates(&["capacity", "--rate", "400", "--steps", "2", "--growth", "1"]),
            vec![400.0, 400.0]
        );
        for bad in ["0.5", "0", "-2", "NaN", "inf", "17"] {
            let e = plan(&["capacity", &format!("--growth={bad}")]).unwrap_err();
            assert!(
                matches!(e, Error::Usage(ref m) if m.starts_with("--growth")),
                "{bad}: {e}"
            );
        }
        assert!(
            plan(&["flash-sale", "--growth", "0.5"]).is_ok(),
            "only a ramp reads it"
        );
    }

    #[test]
    fn the_schedule_is_parsed_once_and_its_errors_are_usage_errors() {
        let p = plan(&["flash-sale", "--chaos", "postgres:failover@2s+3s"]).unwrap();
        assert!(
            p.stack.postgres_standby,
            "a postgres failover needs a standby"
        );
        assert_eq!(p.run_time_s, Some(5 + 15));
        assert_eq!(p.thresholds.max_error_rate, None);
        assert_eq!(
            plan(&["flash-sale"]).unwrap().thresholds.max_error_rate,
            Some(0.0)
        );
        let e = plan(&["flash-sale", "--chaos", "postgres:explode@2s"]).unwrap_err();
        assert!(
            matches!(e, Error::Usage(ref m) if m.starts_with("--chaos")),
            "{e}"
        );
    }

    #[test]
    fn the_local_stack_is_wired_direct_only_when_nothing_will_fault_it() {
        use compose::Wiring;
        let wiring = |args: &[&str]| plan(args).unwrap().stack.wiring;
        assert_eq!(wiring(&["capacity", "--stack", "local"]), Wiring::Direct);
        assert_eq!(
            wiring(&[
                "flash-sale",
                "--stack",
                "local",
                "--chaos",
                "redis:kill@1s+1s"
            ]),
            Wiring::Proxied,
            "a scheduled fault needs the proxies"
        );
        assert_eq!(
            wiring(&["capacity", "--stack", "local", "--wiring", "proxied"]),
            Wiring::Proxied,
            "faults injected by hand need them too"
        );
        // A stack started by other code from these options (a test's, a game day's) may be
        // faulted through its API later: `auto` keeps its proxies.
        let cli = Cli::parse_from_args(["scenario"]).unwrap();
        assert_eq!(stack_options(&cli, None).wiring, Wiring::Proxied);
        let e = plan(&[
            "flash-sale",
            "--stack",
            "local",
            "--wiring",
            "direct",
            "--chaos",
            "payments:down@1s+1s",
        ])
        .unwrap_err();
        assert!(
            matches!(e, Error::Usage(ref m) if m.starts_with("--wiring direct")),
            "{e}"
        );
    }

    #[test]
    fn users_share_one_client_unless_a_balancer_routes_their_connections() {
        use crate::cli::Connections;
        assert_eq!(
            plan(&["flash-sale"]).unwrap().connections(),
            Connections::Shared
        );
        let local = plan(&["flash-sale", "--stack", "local", "-u", "1000"]).unwrap();
        assert_eq!(local.connections(), Connections::PerUser);
        // Beyond 1,000 users a client each would cost a gigabyte at 10,000.
        let many = plan(&["flash-sale", "--stack", "local", "-u", "1001"]).unwrap();
        assert_eq!(many.connections(), Connections::Shared);
        let asked = plan(&["flash-sale", "--stack", "local", "--connections", "shared"]);
        assert_eq!(asked.unwrap().connections(), Connections::Shared);
    }

    #[test]
    fn descriptors_give_think_time_and_coupons() {
        let p = plan(&["browse-and-buy"]).unwrap();
        assert_eq!(p.knobs.think_ms, 500);
        assert_eq!(p.pacing, Pacing::AsStarted);
        let p = plan(&["coupon-rush", "--seats", "7"]).unwrap();
        assert_eq!(p.seed_spec().coupons, vec![(7, 10)]);
        assert_eq!(plan(&["flash-sale"]).unwrap().seed_spec().coupons, vec![]);
    }
}

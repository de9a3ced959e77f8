//! The `scenario` command line. Goose's own options are flattened in (its
//! `GooseConfiguration` is a clap `Args` in 0.19), so `-u/--users`, `-q`, `-t/--run-time`,
//! `--timeout`, `--report-file`, `--threshold` … work as in any Goose load test; the lab's
//! options use long names only so they never collide with Goose's short ones.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use goose::config::GooseConfiguration;

use crate::stack::StackSpec;
use crate::thresholds::{parse_rate, LatencyLimit};

/// A duration (`10s`, `1500ms`, `2m`) in milliseconds.
fn parse_duration_ms(s: &str) -> Result<f64, String> {
    chaos::schedule::parse_duration(s).map(|d| d.as_secs_f64() * 1000.0)
}

/// An http(s) base URL, without a trailing slash.
fn parse_http_url(s: &str) -> Result<String, String> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(format!("{s:?} is not an http:// or https:// URL"));
    }
    reqwest::Url::parse(s).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(s.trim_end_matches('/').to_owned())
}

/// `KEY=VALUE` of `--app-env`.
fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: empty variable name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// A scenario name on the command line (`list` prints them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// Describe every scenario.
    List,
    /// N users arrive together for one round of C seats: hold, book, pay.
    FlashSale,
    /// A realistic mix over a duration: browse, search, hold, abandon, book, pay, cancel.
    BrowseAndBuy,
    /// browse-and-buy for a long time, watching the box office's resources for leaks.
    Soak,
    /// First-come coupon claims against a quota.
    CouponRush,
    /// flash-sale once per concurrency strategy, compared in one table.
    StrategyMatrix,
    /// flash-sale once per (component, fault) on the local stack, compared in one table.
    FaultMatrix,
    /// coupon-rush once per concurrency strategy, compared in one table.
    CouponMatrix,
    /// browse-and-buy with the cache off and on, PostgreSQL's own load compared.
    CacheCompare,
    /// flash-sale with redis-lock, fenced and atomic under a lock holder's pause and a Redis failover.
    LockVsFencing,
    /// A stepped ramp of open-model arrival rates, to find the latency knee.
    Capacity,
    /// The runner's own cost: GET /health/live with history on, off, and under wrk.
    Bench,
    /// One leg of `bench`: GET /health/live as fast as possible (run by `bench` as a child).
    #[value(hide = true)]
    Probe,
}

impl ScenarioName {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::List => "list",
            ScenarioName::FlashSale => "flash-sale",
            ScenarioName::BrowseAndBuy => "browse-and-buy",
            ScenarioName::Soak => "soak",
            ScenarioName::CouponRush => "coupon-rush",
            ScenarioName::StrategyMatrix => "strategy-matrix",
            ScenarioName::FaultMatrix => "fault-matrix",
            ScenarioName::CouponMatrix => "coupon-matrix",
            ScenarioName::CacheCompare => "cache-compare",
            ScenarioName::LockVsFencing => "lock-vs-fencing",
            ScenarioName::Capacity => "capacity",
            ScenarioName::Bench => "bench",
            ScenarioName::Probe => "probe",
        }
    }
}

/// How virtual users connect to the box office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Connections {
    /// Each user its own HTTP client and connections.
    PerUser,
    /// One HTTP client and connection pool shared by every user.
    Shared,
}

impl Connections {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Connections::PerUser => "per-user",
            Connections::Shared => "shared",
        }
    }
}

/// How the local stack's instances reach their dependencies (`--wiring`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WiringChoice {
    /// Direct when the run schedules no fault (no `--chaos`), through the fault proxies
    /// otherwise.
    Auto,
    /// Through the fault proxies, also with no fault scheduled (to inject faults by hand
    /// through the lab's Toxiproxy API).
    Proxied,
    /// Straight to every server, no proxy started (refused with `--chaos`).
    Direct,
}

/// A component `fault-matrix` can fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Component {
    /// PostgreSQL (primary, and a synchronous standby for `failover`).
    Postgres,
    /// Redis (primary + replica under Sentinel).
    Redis,
    /// The Kafka-protocol broker (tansu).
    Kafka,
    /// The payment provider.
    Payments,
    /// The first box-office instance behind the balancer (`app-1`).
    App,
}

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL, then a restart when the fault ends.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// 200 ms added to every response through the component's proxy.
    Latency,
    /// Packets to and from the component dropped (a black hole: connections hang).
    Partition,
    /// Connections reset by the peer.
    Reset,
    /// The primary lost, the replica promoted.
    Failover,
}

/// A cell on the command line: `COMPONENT:FAULT`.
pub fn parse_cell(s: &str) -> Result<(Component, FaultKind), String> {
    let (c, f) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected COMPONENT:FAULT, e.g. postgres:kill"))?;
    Ok((
        Component::from_str(c.trim(), true)?,
        FaultKind::from_str(f.trim(), true)?,
    ))
}

/// Box Office Lab: load, check and judge the box office.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "scenario",
    args_override_self = true,
    about = "Run a load scenario against the box office and write a latency, correctness and failover report.",
    after_help = "Exit codes: 0 pass, 1 run error, 2 usage error, 3 latency/error-rate/throughput threshold missed, \
                  4 correctness invariant broken (wins over 5 and 3), 5 failover budget exceeded.\n\n\
                  Also: `scenario compare A B` (two runs side by side, regressions flagged) and \
                  `scenario check RUN_DIR` (re-run the checker and verdict on a saved run); see their --help."
)]
pub struct Cli {
    /// Scenario to run (`list` describes them all).
    #[arg(value_enum, default_value = "flash-sale")]
    pub scenario: ScenarioName,

    /// Where the box office runs: embedded (in-process, SQLite), local (PostgreSQL, Redis +
    /// Sentinel, tansu and N instances as child processes behind fault proxies), docker (the
    /// same in containers) or url=http://HOST:PORT (already running).
    #[arg(
        long,
        default_value = "embedded",
        value_name = "STACK",
        help_heading = "Lab"
    )]
    pub stack: StackSpec,

    /// Concurrency strategy of the box office (embedded and local stacks).
    #[arg(long, value_enum, default_value_t = boxoffice::Strategy::Atomic, help_heading = "Lab")]
    pub strategy: boxoffice::Strategy,

    /// Seed for names, seat choices and arrivals; the same seed replays the same run.
    #[arg(long, default_value_t = 42, help_heading = "Lab")]
    pub seed: u64,

    /// Seats per round [default: the scenario's].
    #[arg(long, help_heading = "Lab")]
    pub seats: Option<usize>,

    /// Open-model arrivals per second (paced inside the scenario, independent of response
    /// times); capacity starts here and grows by --growth every step. Absent: users arrive
    /// together (flash-sale, coupon-rush) or loop (browse-and-buy).
    #[arg(long, value_name = "PER_SECOND", help_heading = "Lab")]
    pub rate: Option<f64>,

    /// Capacity: seconds per step of the ramp.
    #[arg(long, default_value_t = 8, help_heading = "Lab")]
    pub step_secs: u64,

    /// Capacity: number of steps (the rate is multiplied by --growth at each).
    #[arg(long, default_value_t = 5, help_heading = "Lab")]
    pub steps: u32,

    /// Capacity: each step's rate over the previous one's: 2 doubles it; 1.1 walks up to the
    /// knee in 10 % steps to find it closely; 1 holds one rate for every step.
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 2.0,
        help_heading = "Lab"
    )]
    pub growth: f64,

    /// Bench: history on/off pairs, the order alternating (on first, then off first…); the
    /// overhead is the median of the pairs'.
    #[arg(long, default_value_t = 3, help_heading = "Lab")]
    pub pairs: u32,

    /// A crowd that rushes together (flash-sale, coupon-rush…) makes its first request at the
    /// open, on a new connection each. By default every user first loads the sale's page
    /// (`GET /v1/events/{id}`, recorded as `event`) while waiting for the open, as a buyer's
    /// browser does, so the rush meets connections already open.
    #[arg(long, help_heading = "Lab")]
    pub cold_open: bool,

    /// Mean think time between a user's steps, ms [default: 0, browse-and-buy 500].
    #[arg(long, help_heading = "Lab")]
    pub think_ms: Option<u64>,

    /// The box office's catalog cache: `on` (cache-aside) or `off` (every read from the
    /// database) [default: on].
    #[arg(long, value_enum, help_heading = "Lab")]
    pub cache: Option<boxoffice::config::CacheMode>,

    /// Share of flash buyers who choose their seats; the others ask for a quantity and get
    /// the best available (lowest ids), so 0 makes every buyer want the same seats
    /// [default: 0.5].
    #[arg(long, value_name = "SHARE", help_heading = "Lab")]
    pub chosen_seats: Option<f64>,

    /// Seconds the local stack sits idle before the attack while PostgreSQL's statistics
    /// measure its background load (report counters `idle_pg_xact`…; cache-compare uses it
    /// to tell the load's transactions from the outbox relay's and health checks').
    #[arg(long, value_name = "SECS", default_value_t = 0, help_heading = "Lab")]
    pub db_idle_secs: u64,

    /// Extra environment of the local stack's box-office instances (repeatable), e.g.
    /// BOXOFFICE_LOCK_TTL_MS=1000.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair, help_heading = "Lab")]
    pub app_env: Vec<(String, String)>,

    /// Chaos on `app-N:pause` and `redis:failover` waits until a box-office instance holds a
    /// `redis-lock`/`fenced` lock (read from its /metrics), and the Redis failover loses that
    /// lock (the replica never got it, as with asynchronous replication): a lock-vs-fencing
    /// drill that does not depend on luck.
    #[arg(long, help_heading = "Chaos")]
    pub while_locked: bool,

    /// Strategies for strategy-matrix (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',', value_enum, help_heading = "Lab")]
    pub strategies: Vec<boxoffice::Strategy>,

    /// fault-matrix: components to fault (comma-separated: postgres, redis, kafka, payments,
    /// app) [default: all].
    #[arg(long, value_delimiter = ',', value_enum, help_heading = "Chaos")]
    pub targets: Vec<Component>,

    /// fault-matrix: faults to inject (comma-separated: kill, pause, latency, partition,
    /// reset, failover) [default: all].
    #[arg(long, value_delimiter = ',', value_enum, help_heading = "Chaos")]
    pub faults: Vec<FaultKind>,

    /// fault-matrix: only these cells, as COMPONENT:FAULT (e.g. postgres:kill,app:pause).
    #[arg(long, value_delimiter = ',', value_name = "COMPONENT:FAULT", value_parser = parse_cell, help_heading = "Chaos")]
    pub cells: Vec<(Component, FaultKind)>,

    /// Run again what the run in RUN_DIR ran (its recorded command line: scenario, seed,
    /// faults, every parameter); arguments given beside it override the recorded ones.
    #[arg(long, value_name = "RUN_DIR", help_heading = "Lab")]
    pub replay: Option<PathBuf>,

    /// The command line as given (without `--out` and `--replay`), recorded in the report
    /// for `--replay`; set by the binary.
    #[arg(skip)]
    pub command: Vec<String>,

    /// Output directory [default: reports/runs/<UTC timestamp>-<scenario>/ under the
    /// workspace root when run from the source tree, else under the current directory].
    #[arg(long, value_name = "DIR", help_heading = "Lab")]
    pub out: Option<PathBuf>,

    /// Do not record history.jsonl (the benchmark's "history off"; the checker then has
    /// nothing to compare and only checks the final state).
    #[arg(long, help_heading = "Lab")]
    pub no_history: bool,

    /// Print Goose's own metric tables and error summary at the end.
    #[arg(long, help_heading = "Lab")]
    pub goose_metrics: bool,

    /// Admin e-mail (created on embedded/local stacks; must exist on a url stack).
    #[arg(
        long,
        env = "BOXOFFICE_ADMIN_EMAIL",
        default_value = "lab-admin@boxoffice.test",
        help_heading = "Lab"
    )]
    pub admin_email: String,

    /// Admin password.
    #[arg(
        long,
        env = "BOXOFFICE_ADMIN_PASSWORD",
        default_value = "lab-admin-password",
        hide_env_values = true,
        help_heading = "Lab"
    )]
    pub admin_password: String,

    /// Database pool size of in-process stacks.
    #[arg(long, help_heading = "Lab")]
    pub db_max_connections: Option<u32>,

    /// Fault schedule: a drill name (`redis-failover`, see chaos/schedules/), a TOML file, or
    /// text such as `redis:kill@20s+10s,postgres:latency=200ms~50ms@40s+15s`. Needs a stack
    /// the lab controls (`--stack local`). Without `-t`, the run lasts the schedule plus 15 s.
    #[arg(long, value_name = "SCHEDULE", help_heading = "Chaos")]
    pub chaos: Option<String>,

    /// `--stack url=…`: the deployed stack's Toxiproxy API (e.g. http://localhost:8474); its
    /// proxies become the chaos targets (network faults only).
    #[arg(long, value_name = "URL", help_heading = "Chaos")]
    pub chaos_api: Option<String>,

    /// Longest acceptable recovery per fault (from the fault's start until the SLO holds
    /// again for 3 s), e.g. 10s; a fault over budget gives exit code 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms, help_heading = "Chaos")]
    pub max_recovery: Option<f64>,

    /// Error rate per second that counts as "within SLO" while recovering (0.01 = 1%).
    #[arg(long, default_value = "0.01", value_parser = parse_rate, help_heading = "Chaos")]
    pub slo_error_rate: f64,

    /// Serve the runner's live metrics (`lab_*`, job `scenario`) at this address during the
    /// run [default: a free loopback port on the local stack, none elsewhere].
    #[arg(long, value_name = "ADDR", help_heading = "Lab")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Do not start the local stack's Prometheus (alerts then go unrecorded).
    #[arg(long, help_heading = "Lab")]
    pub no_prometheus: bool,

    /// A Prometheus that evaluates the project's alert rules against the stack under test
    /// (e.g. the compose stack's http://localhost:9090): a chaos run polls its alerts, so the
    /// failover report says which fired and when [default: the local stack's own Prometheus;
    /// none on other stacks].
    #[arg(long, value_name = "URL", value_parser = parse_http_url, help_heading = "Lab")]
    pub prometheus_url: Option<String>,

    /// Push the runner's final `lab_*` metrics to this Prometheus Pushgateway when the run
    /// ends (job `scenario`, instance = the scenario's name), for runs shorter than a scrape
    /// interval or with no address Prometheus can reach (e.g. http://localhost:9091).
    #[arg(long, value_name = "URL", value_parser = parse_http_url, help_heading = "Lab")]
    pub pushgateway_url: Option<String>,

    /// Box-office instances behind the local stack's balancer.
    #[arg(long, default_value_t = 2, help_heading = "Lab")]
    pub instances: usize,

    /// How virtual users connect: `per-user` (each its own HTTP client and keep-alive
    /// connections, like browsers: what a connection-level balancer spreads) or `shared`
    /// (one client and pool for all: far less memory and start-up time) [default:
    /// per-user on the local stack up to 1,000 users, whose balancer routes connections;
    /// shared elsewhere and beyond].
    #[arg(long, value_enum, help_heading = "Lab")]
    pub connections: Option<Connections>,

    /// How the local stack's instances reach PostgreSQL, Redis, the broker and the payment
    /// provider: `auto` wires them straight to each server when the run schedules no fault,
    /// and through a fault proxy each when it does; `proxied` keeps the proxies (faults
    /// injected by hand through the lab's Toxiproxy API need them); `direct` never starts one.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Lab")]
    pub wiring: WiringChoice,

    /// Start a synchronous PostgreSQL standby on the local stack [default: when the chaos
    /// schedule fails `postgres` over].
    #[arg(long, help_heading = "Lab")]
    pub standby: bool,

    /// The `scenario` executable the local stack runs its instances with
    /// [default: $BOXOFFICE_LAB_APP, else this executable].
    #[arg(long, value_name = "PATH", help_heading = "Lab")]
    pub app_bin: Option<PathBuf>,

    /// Share of payments the in-process payment provider declines (0..=1).
    #[arg(long, default_value_t = 0.0, help_heading = "Lab")]
    pub decline_rate: f64,

    /// Latency the in-process payment provider adds to every charge (e.g. 50ms): an injected
    /// slowdown of `pay`, to see a regression (`--baseline`, `scenario compare`).
    #[arg(long, value_name = "DURATION", default_value = "0ms", value_parser = parse_duration_ms, help_heading = "Lab")]
    pub payments_latency: f64,

    /// p50 limit, TRANSACTION=DURATION (e.g. hold=200ms, all=1s); repeatable.
    #[arg(long, value_name = "TX=DURATION", help_heading = "Verdict")]
    pub p50: Vec<LatencyLimit>,

    /// p95 limit, TRANSACTION=DURATION; repeatable.
    #[arg(long, value_name = "TX=DURATION", help_heading = "Verdict")]
    pub p95: Vec<LatencyLimit>,

    /// p99 limit, TRANSACTION=DURATION; repeatable [default: all=<scenario's limit>].
    #[arg(long, value_name = "TX=DURATION", help_heading = "Verdict")]
    pub p99: Vec<LatencyLimit>,

    /// Most (errors + unknown outcomes) / requests, as 0.05 or 5% [default: the scenario's,
    /// 0 for most; off under --chaos]. Business refusals (sold out, seat taken) are answers,
    /// not errors, so a flash sale that sells out passes it.
    #[arg(long, value_parser = parse_rate, help_heading = "Verdict")]
    pub max_error_rate: Option<f64>,

    /// Most unknown outcomes (a write's timeout, connection error or 5xx) / requests
    /// [default: none; --max-error-rate covers them].
    #[arg(long, value_parser = parse_rate, help_heading = "Verdict")]
    pub max_unknown_rate: Option<f64>,

    /// Least requests per second over the run.
    #[arg(long, help_heading = "Verdict")]
    pub min_throughput: Option<f64>,

    /// soak: most growth of an instance's resident memory from the first quarter of the
    /// run to the last, as 0.1 or 10%.
    #[arg(long, default_value = "10%", value_parser = parse_rate, help_heading = "Verdict")]
    pub max_rss_growth: f64,
    /// Compare this run with a baseline run (its directory or report.json): the comparison
    /// becomes a section of the report; see --max-regression.
    #[arg(long, value_name = "RUN_DIR|REPORT", help_heading = "Verdict")]
    pub baseline: Option<PathBuf>,

    /// With --baseline: how much worse than the baseline the run may be before the verdict
    /// fails (exit 3), e.g. `p99=+20%,throughput=-10%` (also p50, p95, `hold.p99=…`,
    /// `error_rate=+1%` in points). A change within noise never breaks a rule.
    #[arg(
        long,
        value_name = "RULES",
        requires = "baseline",
        help_heading = "Verdict"
    )]
    pub max_regression: Option<reports::RegressionRules>,

    /// Stop the load as soon as an invariant breaks (oversold seats in the live database
    /// audit, polled every 500 ms); the report is still written and the run exits 4.
    #[arg(long, help_heading = "Verdict")]
    pub abort_on_fail: bool,

    /// Goose's options.
    #[command(flatten)]
    pub goose: GooseConfiguration,
}

/// `scenario compare A B`: two runs side by side.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "scenario compare",
    about = "Compare two runs (run directories or report.json files): per transaction and check, with deltas and noise-aware regression flags.",
    after_help = "Exit codes: 0 no regression, 1 a run could not be read, 2 usage error, 3 a regression \
                  (with --max-regression: a broken rule)."
)]
pub struct CompareCli {
    /// The baseline run (A).
    #[arg(value_name = "A")]
    pub baseline: PathBuf,
    /// The run compared with it (B).
    #[arg(value_name = "B")]
    pub current: PathBuf,
    /// Write compare.json, compare.md and compare.html into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the comparison as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Print nothing (the exit code and --out files only).
    #[arg(short, long)]
    pub quiet: bool,
    /// Judge by these rules instead of every flagged regression, e.g. `p99=+20%,throughput=-10%`.
    #[arg(long, value_name = "RULES")]
    pub max_regression: Option<reports::RegressionRules>,
}

/// `scenario check RUN_DIR`: the checker and the verdict re-run on a saved run.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "scenario check",
    about = "Re-run the checker and the verdict offline on a run directory's history.jsonl and final-state.json.",
    after_help = "Exits with the re-derived verdict's code (0 pass, 3 threshold missed, 4 invariant broken, 5 failover budget exceeded; 2 when the directory cannot be read)."
)]
pub struct CheckCli {
    /// The run directory.
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Write the re-derived report (JSON, Markdown, HTML, JUnit) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print nothing.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Cli {
    /// Whether output other than the final summary is silenced (`-q`).
    pub fn quiet(&self) -> bool {
        self.goose.quiet > 0
    }

    /// Parses a command line (for tests and child runs); never exits.
    pub fn parse_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_options_and_lab_options_share_one_command_line() {
        let cli = Cli::parse_from_args([
            "scenario",
            "coupon-rush",
            "-u",
            "10",
            "-q",
            "--seats",
            "5",
            "--p99",
            "claim=300ms",
            "--timeout",
            "3",
            "--stack",
            "url=http://x:1",
        ])
        .unwrap();
        assert_eq!(cli.scenario, ScenarioName::CouponRush);
        assert_eq!(cli.goose.users, Some(10));
        assert!(cli.quiet());
        assert_eq!(cli.seats, Some(5));
        assert_eq!(cli.p99[0].limit_ms, 300.0);
        assert_eq!(cli.goose.timeout.as_deref(), Some("3"));
        assert_eq!(cli.stack, StackSpec::Url("http://x:1".into()));
    }

    #[test]
    fn no_arguments_mean_a_flash_sale_on_the_embedded_stack() {
        let cli = Cli::parse_from_args(["scenario"]).unwrap();
        assert_eq!(cli.scenario, ScenarioName::FlashSale);
        assert_eq!(cli.stack, StackSpec::Embedded);
        assert_eq!(cli.strategy, boxoffice::Strategy::Atomic);
    }

    #[test]
    fn the_command_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
        <CompareCli as clap::CommandFactory>::command().debug_assert();
        <CheckCli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn max_regression_needs_a_baseline_and_parses_its_rules() {
        assert!(Cli::parse_from_args(["scenario", "--max-regression", "p99=+20%"]).is_err());
        let cli = Cli::parse_from_args([
            "scenario",
            "--baseline",
            "runs/a",
            "--max-regression",
            "p99=+20%,throughput=-10%",
        ])
        .unwrap();
        assert_eq!(cli.max_regression.unwrap().0.len(), 2);
        assert!(Cli::parse_from_args([
            "scenario",
            "--baseline",
            "a",
            "--max-regression",
            "p97=1%"
        ])
        .is_err());
    }
}

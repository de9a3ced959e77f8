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

/// A scenario name on the command line (`list` prints them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// Describe every scenario.
    List,
    /// N users arrive together for one round of C seats: hold, book, pay.
    FlashSale,
    /// A realistic mix over a duration: browse, search, hold, abandon, book, pay, cancel.
    BrowseAndBuy,
    /// First-come coupon claims against a quota.
    CouponRush,
    /// flash-sale once per concurrency strategy, compared in one table.
    StrategyMatrix,
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
            ScenarioName::CouponRush => "coupon-rush",
            ScenarioName::StrategyMatrix => "strategy-matrix",
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

/// Box Office Lab: load, check and judge the box office.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "scenario",
    args_override_self = true,
    about = "Run a load scenario against the box office and write a latency, correctness and failover report.",
    after_help = "Exit codes: 0 pass, 1 run error, 2 usage error, 3 latency/error-rate/throughput threshold missed, \
                  4 correctness invariant broken (wins over 5 and 3), 5 failover budget exceeded."
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
    /// times); capacity starts here and doubles every step. Absent: users arrive together
    /// (flash-sale, coupon-rush) or loop (browse-and-buy).
    #[arg(long, value_name = "PER_SECOND", help_heading = "Lab")]
    pub rate: Option<f64>,

    /// Capacity: seconds per step of the ramp.
    #[arg(long, default_value_t = 8, help_heading = "Lab")]
    pub step_secs: u64,

    /// Capacity: number of steps (the rate doubles at each).
    #[arg(long, default_value_t = 5, help_heading = "Lab")]
    pub steps: u32,

    /// Mean think time between a user's steps, ms [default: 0, browse-and-buy 500].
    #[arg(long, help_heading = "Lab")]
    pub think_ms: Option<u64>,

    /// Strategies for strategy-matrix (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',', value_enum, help_heading = "Lab")]
    pub strategies: Vec<boxoffice::Strategy>,

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

    /// Box-office instances behind the local stack's balancer.
    #[arg(long, default_value_t = 2, help_heading = "Lab")]
    pub instances: usize,

    /// How virtual users connect: `per-user` (each its own HTTP client and keep-alive
    /// connections, like browsers: what a connection-level balancer spreads) or `shared`
    /// (one client and pool for all: far less memory and start-up time) [default:
    /// per-user on the local stack, whose balancer routes connections; shared elsewhere].
    #[arg(long, value_enum, help_heading = "Lab")]
    pub connections: Option<Connections>,

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

    /// Goose's options.
    #[command(flatten)]
    pub goose: GooseConfiguration,
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
    }
}

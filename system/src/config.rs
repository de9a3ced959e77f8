//! Configuration: every option is a command-line flag and an environment variable
//! (`BOXOFFICE_…`, plus `DATABASE_URL`). [`Config::default`] gives the same values as running
//! `boxoffice` with no flags, so tests and the lab can build a config in code.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

pub use crate::cache::CacheMode;
use crate::domain::Strategy;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON on a pipe or file, human-readable on a terminal.
    Auto,
    /// One JSON object per line (Elastic Common Schema field names).
    Json,
    /// Human-readable.
    Pretty,
}

/// Which parts of the box office a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API and the background work (outbox relay, `ledger` and `notifier`
    /// consumers, reaper): one process is the whole service.
    All,
    /// Only the HTTP API; a `worker` process elsewhere does the background work.
    Api,
    /// Only the background work, with `/health/*` and `/metrics` on the listen address.
    Worker,
}

impl Role {
    /// Whether this process serves the `/v1` API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Whether this process runs the relay, the consumers and the reaper.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

/// The box office's configuration.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "The box office: a ticket-booking HTTP service."
)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BOXOFFICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// What this process runs: `all` (API and background work), `api` (HTTP only) or
    /// `worker` (outbox relay, Kafka consumers and reaper; health and metrics only over HTTP).
    #[arg(long, env = "BOXOFFICE_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,

    /// PostgreSQL URL (postgres://…) or SQLite URL (sqlite://…). Absent: an embedded SQLite
    /// database in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory of the embedded SQLite database (used when no --database-url is given).
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "boxoffice-data")]
    pub data_dir: PathBuf,

    /// Maximum database connections in the pool. On PostgreSQL the two group-commit writers
    /// of `atomic` holds keep one connection each beyond it.
    #[arg(long, env = "BOXOFFICE_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Concurrency strategy for holds and coupon claims.
    #[arg(long, env = "BOXOFFICE_STRATEGY", value_enum, default_value_t = Strategy::Atomic)]
    pub strategy: Strategy,

    /// Compare-and-set attempts of the `optimistic` strategy before it gives up with 409.
    #[arg(long, env = "BOXOFFICE_OPTIMISTIC_RETRIES", default_value_t = 16)]
    pub optimistic_retries: u32,

    /// How long a hold keeps its seats, in seconds.
    #[arg(long, env = "BOXOFFICE_HOLD_TTL_SECS", default_value_t = 300)]
    pub hold_ttl_secs: u64,

    /// How long a booking may stay unpaid, in seconds, before the reaper expires it.
    #[arg(long, env = "BOXOFFICE_PAYMENT_TTL_SECS", default_value_t = 600)]
    pub payment_ttl_secs: u64,

    /// How often the reaper looks for expired holds and bookings, in milliseconds (0 = never).
    #[arg(long, env = "BOXOFFICE_REAPER_INTERVAL_MS", default_value_t = 1000)]
    pub reaper_interval_ms: u64,

    /// Most seats one hold may take.
    #[arg(long, env = "BOXOFFICE_MAX_SEATS_PER_HOLD", default_value_t = 10)]
    pub max_seats_per_hold: u32,

    /// Most buyer requests that run at once (see `api::admission`); the others queue. 0: as
    /// many as `--db-max-connections`.
    #[arg(long, env = "BOXOFFICE_MAX_IN_FLIGHT", default_value_t = 0)]
    pub max_in_flight: usize,

    /// How long new work (a hold, a claim, a login, a catalog read) may wait for an admission
    /// slot before 503 `overloaded`, in milliseconds; refused at once when the queue cannot
    /// drain in this time. 0: no admission limit at all.
    #[arg(long, env = "BOXOFFICE_ADMISSION_WAIT_MS", default_value_t = 250)]
    pub admission_wait_ms: u64,

    /// Most requests waiting for an admission slot; past it, new work is refused on arrival.
    #[arg(long, env = "BOXOFFICE_ADMISSION_QUEUE", default_value_t = 4096)]
    pub admission_queue: usize,

    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "BOXOFFICE_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Base URL of the payment provider. Absent: a simulated provider is started in-process
    /// on a loopback port (still reached over HTTP).
    #[arg(long, env = "BOXOFFICE_PAYMENTS_URL")]
    pub payments_url: Option<String>,

    /// Timeout of one call to the payment provider, in milliseconds.
    #[arg(long, env = "BOXOFFICE_PAYMENTS_TIMEOUT_MS", default_value_t = 5000)]
    pub payments_timeout_ms: u64,

    /// Latency of the in-process simulated payment provider, in milliseconds.
    #[arg(long, env = "BOXOFFICE_PAYMENTS_LATENCY_MS", default_value_t = 0)]
    pub payments_latency_ms: u64,

    /// Share of charges the in-process simulated provider declines (0.0–1.0).
    #[arg(long, env = "BOXOFFICE_PAYMENTS_DECLINE_RATE", default_value_t = 0.0)]
    pub payments_decline_rate: f64,

    /// Secret for signing access tokens (HS256). Absent: a random secret per process, so
    /// tokens do not survive a restart and instances do not accept each other's tokens.
    #[arg(long, env = "BOXOFFICE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "BOXOFFICE_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub token_ttl_secs: u64,

    /// E-mail of the admin account created (or updated) at start.
    #[arg(long, env = "BOXOFFICE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of the admin account created at start.
    #[arg(long, env = "BOXOFFICE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Argon2id memory cost in KiB (OWASP: 19456). Load labs may lower it to spend CPU on
    /// bookings rather than on logins.
    #[arg(long, env = "BOXOFFICE_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "BOXOFFICE_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Redis URL (redis://…) for the catalog cache, the `redis-lock` and `fenced` locks and
    /// notification fan-out. Absent: in-process equivalents (a moka cache, an in-process lock
    /// table with the same fencing semantics, a broadcast channel), fine for one instance.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so that several stacks (or tests) share a server.
    #[arg(long, env = "BOXOFFICE_REDIS_PREFIX", default_value = "boxoffice")]
    pub redis_prefix: String,

    /// How long a cached catalog or availability answer may be served, in milliseconds. Every
    /// seat change invalidates the round's entry; the TTL bounds what a lost invalidation
    /// (a reader that filled the cache with a value read just before a write) can leave stale.
    #[arg(long, env = "BOXOFFICE_CACHE_TTL_MS", default_value_t = 2000)]
    pub cache_ttl_ms: u64,

    /// Whether catalog and availability reads go through the cache: `on` (cache-aside) or
    /// `off` (every read from the database; the baseline of `scenario cache-compare`).
    #[arg(long, env = "BOXOFFICE_CACHE", value_enum, default_value_t = CacheMode::On)]
    pub cache: CacheMode,

    /// Random extra lifetime of each cached entry, uniform in 0..=this, in milliseconds:
    /// entries filled together do not expire together (no stampede on the database). A stale
    /// entry is served at most `--cache-ttl-ms` + this.
    #[arg(long, env = "BOXOFFICE_CACHE_TTL_JITTER_MS", default_value_t = 400)]
    pub cache_ttl_jitter_ms: u64,

    /// Lifetime of a `redis-lock` / `fenced` lock, in milliseconds: a holder that stalls
    /// longer loses it without knowing.
    #[arg(long, env = "BOXOFFICE_LOCK_TTL_MS", default_value_t = 5000)]
    pub lock_ttl_ms: u64,

    /// How long a request waits for a `redis-lock` / `fenced` lock before 409 `contention`.
    #[arg(long, env = "BOXOFFICE_LOCK_WAIT_MS", default_value_t = 10000)]
    pub lock_wait_ms: u64,

    /// Fault injection: a lock holder sleeps this long between its checks and its writes (a GC
    /// pause, a stalled VM), in milliseconds. 0 in production.
    #[arg(long, env = "BOXOFFICE_FAULT_LOCK_PAUSE_MS", default_value_t = 0)]
    pub fault_lock_pause_ms: u64,

    /// Kafka bootstrap servers (`host:port,…`) for the outbox relay and the `ledger` and
    /// `notifier` consumers. Absent: librdkafka's in-process mock cluster, so the same Kafka
    /// code runs with no broker process (events then live as long as this process).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Prefix of topic and consumer-group names (`<prefix>booking.events`, `<prefix>ledger`),
    /// so that several stacks or tests share a broker.
    #[arg(long, env = "BOXOFFICE_KAFKA_PREFIX", default_value = "")]
    pub kafka_prefix: String,

    /// Partitions of the topics created at start.
    #[arg(long, env = "BOXOFFICE_KAFKA_PARTITIONS", default_value_t = 6)]
    pub kafka_partitions: i32,

    /// How long the `ledger` waits for Kafka to deliver a booking event the broker has
    /// acknowledged, in milliseconds, before it applies the event from its outbox row instead
    /// (at most once in effect either way; see `reconcile`). 0 = never: the ledger then trusts
    /// the broker alone.
    #[arg(
        long,
        env = "BOXOFFICE_LEDGER_RECONCILE_AFTER_MS",
        default_value_t = 5000
    )]
    pub ledger_reconcile_after_ms: u64,

    /// Seed the demo catalog at start (venues, events and rounds of 48, 320 and 2,000 seats)
    /// unless it is there already; see `boxoffice::demo`.
    #[arg(long, env = "BOXOFFICE_DEMO")]
    pub demo: bool,

    /// Log format.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

impl Default for Config {
    /// The values `boxoffice` uses with no flags and no environment.
    fn default() -> Self {
        Config::try_parse_from_defaults()
    }
}

impl Config {
    fn try_parse_from_defaults() -> Self {
        // Parse an empty command line while ignoring the environment, so the defaults are
        // written down once (in the attributes above).
        let mut cmd = <Config as clap::CommandFactory>::command();
        let args: Vec<clap::Arg> = cmd.get_arguments().cloned().collect();
        for arg in args {
            let id = arg.get_id().clone();
            cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
        }
        let matches = cmd
            .try_get_matches_from(["boxoffice"])
            .expect("defaults parse");
        <Config as clap::FromArgMatches>::from_arg_matches(&matches).expect("defaults parse")
    }

    /// A configuration for tests and in-process lab runs: a free port, cheap password
    /// hashing, the given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Config {
            listen: ([127, 0, 0, 1], 0).into(),
            database_url: Some(database_url.into()),
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            reaper_interval_ms: 0,
            lock_wait_ms: 30_000,
            jwt_secret: Some("test-secret-test-secret-test-secret".into()),
            ..Config::default()
        }
    }
}

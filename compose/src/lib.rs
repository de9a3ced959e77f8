//! Compose: provides the lab's stacks, the running box office and its dependencies.
//!
//! This crate starts the `local` stack: real servers run as child processes from the binaries
//! installed on this machine, each in its own temp dir on a free port, stopped on drop, with
//! its log kept for reports. Tests use it to own real infrastructure without Docker: a shared
//! PostgreSQL server per test binary, and a fresh database per test.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let url = compose::fresh_postgres_database().await?;
//! // connect with sqlx, run migrations, test against a real server...
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`postgres`] holds [`LocalPostgres`], one PostgreSQL server (initdb, start, ready, stop).
//! - [`redis`] holds [`LocalRedis`] (a `redis-server` child with `kill`/`restart`),
//!   [`RedisFailover`] (primary + replica + Sentinel) and the test-shared [`shared_redis`].
//! - [`prometheus`] holds [`LocalPrometheus`] (scrape targets and rule files given in code,
//!   1 s intervals, its HTTP API) and [`LocalAlertmanager`], for live dashboard and alert tests.
//! - [`kafka`] holds [`LocalKafka`], a `tansu` broker (memory or SQLite storage) with
//!   `kill`/`restart`.
//! - [`balancer`] holds [`Balancer`], a round-robin TCP balancer with health checks.
//! - [`lab`] holds [`LocalLab`]: the whole `local` stack (PostgreSQL + standby, Redis +
//!   Sentinel, tansu, each behind a fault proxy; N box-office instances behind a balancer)
//!   and its chaos targets.
//! - [`docker`] holds [`docker::DockerStack`]: the same topology in containers (testcontainers),
//!   and [`docker::docker_available`], which says clearly when there is no Docker daemon.
//! - [`shared`] holds the server shared by a test binary, and [`fresh_postgres_database`].
//! - [`net`] holds [`free_port`].
//! - `homes` decides where servers keep their files (RAM by default) and sweeps the ones that
//!   killed runs left.
//! - `process` holds the `Supervisor` every local server runs under (home dir, free port,
//!   log, readiness probe, kill / pause / start again, stop on drop), and spawns children that
//!   die with us, as `nobody` when we are root.
//! - `sys` holds the only `unsafe` code (`PR_SET_PDEATHSIG`, `atexit`); signals go through
//!   [`chaos::process::send`].
//!
//! # Environment
//!
//! - `BOXOFFICE_PG_BIN`: directory holding `initdb` and `postgres` (else PATH, else the newest
//!   `/usr/lib/postgresql/*/bin`).
//! - `BOXOFFICE_TANSU`: path of the `tansu` binary (else PATH, else `~/.cargo/bin`).
//! - `BOXOFFICE_STACK_DIR`: the dir the servers' temp dirs go in; by default `/dev/shm` when it
//!   is a tmpfs with 2 GiB available, else the temp dir (`/tmp` as root). See `homes`.
//! - `BOXOFFICE_KEEP_STACK=1`: keep temp dirs (data, logs) when servers stop, and print where.

pub mod balancer;
pub mod docker;
mod homes;
pub mod kafka;
pub mod lab;
pub mod net;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod redis;
pub mod shared;
mod sys;

pub use balancer::Balancer;
pub use homes::STACK_DIR_ENV;
pub use kafka::{find_tansu, KafkaStorage, LocalKafka};
pub use lab::{AppCommand, ComponentInfo, LabOptions, LabPrometheus, LocalLab, Wiring};
pub use net::{free_port, lasting_port};
pub use postgres::{find_postgres_bin_dir, LocalPostgres};
pub use prometheus::{LocalAlertmanager, LocalPrometheus, PrometheusOptions, ScrapeTarget};
pub use redis::{fresh_redis_prefix, shared_redis, LocalRedis, RedisFailover};
pub use shared::{fresh_postgres_database, shared_postgres};

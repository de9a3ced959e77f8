//! The box office: a ticket-booking service that the lab loads, breaks and checks.
//!
//! It is a real service that could ship on its own: it knows nothing of scenarios or chaos.
//! Buyers register, hold seats of a round (chosen seats or a quantity, best available), turn a
//! hold into a booking, pay through a separate payment provider and may cancel with a refund;
//! a reaper expires what was not finished in time. Admins create venues, events, rounds and
//! coupons. Every seat change goes through one of several concurrency strategies
//! ([`Strategy`]) because comparing them is one of the lab's experiments; whatever a strategy
//! claims, the database is the final arbiter and [`store::audit`] reads the truth from it.
//!
//! # Layout
//! - [`config`]: every option, as a CLI flag and an environment variable.
//! - [`domain`]: validated newtypes (`Email`, `Quantity`, `Money`, …) and the strategy enum; no I/O.
//! - [`store`]: the database (PostgreSQL or SQLite through sqlx; the embedded stack's hottest
//!   statements through rusqlite), one file per aggregate;
//!   [`store::holds`] holds the concurrency strategies (its module doc has the guarantees
//!   table), one file per strategy family.
//! - [`api`]: the HTTP API (axum) under `/v1`, its OpenAPI document and error mapping.
//! - [`auth`]: password hashing and JWT access tokens.
//! - [`payments`]: the simulated payment provider (its own binary) and the client that calls it.
//! - [`cache`], [`locks`], [`notify`]: catalog cache-aside, lease locks with fencing tokens and
//!   notification fan-out, each on Redis (`--redis-url`) or an in-process equivalent.
//! - [`kafka`]: the outbox relay and the `ledger` and `notifier` consumers (rdkafka; a mock
//!   cluster without `--kafka-brokers`).
//! - [`reconcile`]: the ledger's safety net: booking events the broker acknowledged but never
//!   delivered are applied from the outbox.
//! - [`reaper`]: expires holds and unpaid bookings.
//! - [`metrics`]: the Prometheus registry (specified in `system/METRICS.md`);
//!   [`telemetry`]: ECS JSON logs and OpenTelemetry traces with W3C context propagation.
//! - [`state`]: [`AppState`], what handlers share, and [`AppState::build`], which connects it.
//! - [`demo`]: the demo catalog `--demo` seeds.
//! - [`web`]: the buyer's page (HTML, CSS and JavaScript embedded in the binary).
//! - [`app`]: [`Application::build`] binds a listener and serves the router, the reaper and
//!   the Kafka pipeline until stopped.

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod kafka;
pub mod locks;
pub mod metrics;
pub mod notify;
pub mod payments;
pub mod reaper;
pub mod reconcile;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

pub use app::Application;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use domain::Strategy;
pub use error::ApiError;
pub use state::AppState;

//! Scenarios: Goose load scenarios, operation history, the correctness checker and run
//! orchestration behind the `scenario` binary.
//!
//! A run goes one way: [`stack`] provisions the box office, [`seed`] creates its data from
//! `--seed`, the [`personas`] attack it through Goose while [`history`] records every
//! operation, [`api`] reads the final state back, [`checker`] judges history against it,
//! and [`run`] turns everything into a [`reports::Report`] and a verdict.
//!
//! # Layout
//! - [`cli`]: the command line (Goose's options flattened in); [`config`]: `--config`
//!   files, `SCENARIO_*` variables and `--print-config`.
//! - [`catalog`]: the scenarios, one descriptor each (defaults, personas, arrival, checker
//!   scope, matrix cells and columns).
//! - [`run`]: orchestration, one file per stage; start reading here.
//! - [`stack`], [`seed`], [`api`]: where the box office runs, what it is seeded with, and the
//!   admin API client.
//! - [`context`], [`call`], [`personas`]: what virtual users share, how one request is sent
//!   and recorded, and one file per persona.
//! - [`history`]: `history.jsonl` and the per-transaction aggregates, written by one thread.
//! - [`checker`]: the invariants, one file per family, unit-tested on crafted histories.
//! - [`compare`] (`scenario compare`, `--baseline`) and [`recheck`] (`scenario check`): runs
//!   read back from their directories.
//! - [`lock_drill`]: `--while-locked`, faults that wait for a lock holder.
//! - [`counters`]: the stack's own counters (its `/metrics`, PostgreSQL's statistics) over
//!   the attack.
//! - [`thresholds`], [`progress`], [`error`].

pub mod api;
pub mod call;
pub mod catalog;
pub mod checker;
pub mod cli;
pub mod compare;
pub mod config;
pub mod context;
pub mod counters;
pub mod error;
pub mod failover;
pub mod history;
pub mod live;
pub mod lock_drill;
pub mod personas;
pub mod progress;
pub mod recheck;
pub mod replay;
pub mod run;
pub mod seed;
pub mod stack;
pub mod thresholds;

pub use catalog::ScenarioName;
pub use cli::Cli;
pub use error::{Error, Result};
pub use run::{run, summary_text, Outcome};

//! The scenarios the `scenario` command knows. Each one is a single [`Scenario`] value in
//! [`SCENARIOS`]: its description, defaults and what running it means — one attack (personas
//! and weights, how users arrive, what the checker looks at, extra tables), a matrix of child
//! runs of another scenario (cells and columns), or the runner's own benchmark. The pipeline
//! in [`crate::run`] reads these values and never asks for a scenario by name.
//!
//! Adding a scenario: a [`ScenarioName`] variant, a descriptor below, and its personas in
//! [`crate::personas`] if it needs new ones. Adding a matrix: a descriptor whose kind is
//! [`Kind::Matrix`] — its cells (the overrides each child run gets) and its columns.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::checker::Scope;
use crate::cli::Cli;
pub use crate::cli::ScenarioName;
use crate::personas::Persona;

mod cache;
mod coupons;
mod faults;
mod locks;

/// Defaults of a scenario; flags override them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Virtual users.
    pub users: usize,
    /// Seats per round.
    pub seats: usize,
    /// Events seeded.
    pub events: usize,
    /// Rounds per event.
    pub rounds_per_event: usize,
    /// Run time, seconds (None: each user runs once).
    pub run_time_s: Option<usize>,
    /// p99 limit on every transaction, ms.
    pub p99_all_ms: f64,
    /// A tighter p99 limit on every transaction for a quiet embedded run (no `--chaos`, no
    /// `--chaos-api`), ms: only the box office and the runner share the machine there, so a
    /// slow box office shows. The other stacks add processes, hops and failovers.
    pub embedded_p99_all_ms: Option<f64>,
    /// Most errors and unknown outcomes (not rejections), as a fraction of requests.
    pub max_error_rate: f64,
    /// Mean think time between a user's steps, ms.
    pub think_ms: u64,
}

const BASE: Defaults = Defaults {
    users: 2000,
    seats: 500,
    events: 1,
    rounds_per_event: 1,
    run_time_s: None,
    p99_all_ms: 5000.0,
    embedded_p99_all_ms: None,
    max_error_rate: 0.0,
    think_ms: 0,
};

impl Defaults {
    /// The default p99 limit on every transaction: [`Defaults::embedded_p99_all_ms`] for a
    /// quiet embedded run, else [`Defaults::p99_all_ms`].
    pub fn p99_all_ms_for(&self, quiet_embedded: bool) -> f64 {
        match self.embedded_p99_all_ms {
            Some(ms) if quiet_embedded => ms,
            _ => self.p99_all_ms,
        }
    }
}

/// One scenario: what the pipeline needs to know to run it.
#[derive(Debug)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: ScenarioName,
    /// One line for reports and `scenario list`.
    pub description: &'static str,
    /// Defaults that flags override.
    pub defaults: Defaults,
    /// What running it means.
    pub kind: Kind,
}

/// What running a scenario means.
#[derive(Debug)]
pub enum Kind {
    /// One Goose attack in this process.
    Attack(Attack),
    /// Another scenario once per cell, each in a child process, tabulated.
    Matrix(Matrix),
    /// The runner's own cost (history on/off, wrk), each leg a child process.
    Bench,
}

/// The shape of an attack.
#[derive(Debug)]
pub struct Attack {
    /// Personas with their Goose weights.
    pub personas: &'static [(Persona, usize)],
    /// How users arrive when `--rate` is not given.
    pub arrival: Arrival,
    /// Whether the run seeds a world (venue, rounds, users) and reads the final state back.
    pub seeds_world: bool,
    /// Coupons seeded: quota = seats, this many percent off (None: no coupon).
    pub coupon_discount: Option<i64>,
    /// What the checker looks at.
    pub scope: Scope,
    /// Extra table of the report, computed from the run.
    pub table: Option<Table>,
    /// Whether the run samples the box office's resources (a soak) and judges their growth.
    pub samples_resources: bool,
}

/// How a closed-model attack's users arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Together, released by a gate (a rush).
    Together,
    /// As Goose starts them, looping until the run time ends.
    AsStarted,
    /// Open-model arrivals at a rate multiplied by `--growth` every `--step-secs` (capacity's ramp).
    Ramp,
}

/// Extra tables an attack adds to its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// One row per step of the capacity ramp.
    CapacityRamp,
}

/// A matrix: the same scenario once per cell, compared in one table.
#[derive(Debug)]
pub struct Matrix {
    /// The scenario every cell runs.
    pub base: ScenarioName,
    /// The cells for this command line.
    pub cells: fn(&Cli) -> Vec<Cell>,
    /// The table's title, given users and seats.
    pub title: fn(usize, usize) -> String,
    /// The table's columns.
    pub columns: &'static [Column],
    /// What the matrix adds once every cell has run: the table's "what this shows" paragraph
    /// and the experiment's expectations, as checks judged with the cells' invariants.
    pub read: fn(&[(&Cell, &reports::Report)]) -> Reading,
}

/// A matrix's reading of its own table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reading {
    /// One paragraph, generated from the numbers.
    pub text: Option<String>,
    /// The experiment's expectations (e.g. "the unsafe baseline over-issues and is caught"):
    /// a broken one fails the matrix like a broken invariant.
    pub checks: Vec<reports::Check>,
}

/// A matrix without a reading of its own.
pub fn no_reading(_: &[(&Cell, &reports::Report)]) -> Reading {
    Reading::default()
}

/// One cell of a matrix: a child run with overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Short name: the child's directory, and the prefix of its transactions and checks.
    pub key: String,
    /// Row label in the table.
    pub label: String,
    /// Arguments appended to the child's command line (they override the forwarded ones).
    pub overrides: Vec<String>,
    /// The cell is a baseline expected to break invariants (its breaks do not fail the
    /// matrix; the table shows how much).
    pub expected_to_break: bool,
    /// Why the cell makes no sense on this stack (it is shown as n/a, not run).
    pub not_applicable: Option<&'static str>,
}

/// A column of a matrix table, read from a cell's report.
#[derive(Debug)]
pub struct Column {
    /// Header.
    pub name: &'static str,
    /// The value of a cell.
    pub read: fn(&reports::Report) -> Value,
}

/// A flash buyer's attack: users rush together into a seeded world, the checker looks at
/// seats; the scenarios below change only what differs.
const RUSH: Attack = Attack {
    personas: &[(Persona::FlashBuyer, 1)],
    arrival: Arrival::Together,
    seeds_world: true,
    coupon_discount: None,
    scope: Scope {
        seats: true,
        coupons: false,
    },
    table: None,
    samples_resources: false,
};

/// Every scenario, in the order `scenario list` shows them.
pub static SCENARIOS: [Scenario; 12] = [
    Scenario {
        name: ScenarioName::FlashSale,
        description: "N users arrive together for one round of C seats: hold (chosen seats or a quantity), book, pay; checks that no seat is sold twice",
        // Embedded (the README's first command): hold p99 is 0.21–0.31 s on a quiet 2-core
        // machine and 0.36–0.49 s beside a build (release, admission on), so a box office
        // slower than 1 s fails with a 2× margin. The local stack's default run is about
        // 0.5 s quiet, and these defaults also judge its chaos drills, whose failovers stall
        // requests for seconds: 1.5 s there.
        defaults: Defaults {
            p99_all_ms: 1500.0,
            embedded_p99_all_ms: Some(1000.0),
            ..BASE
        },
        kind: Kind::Attack(RUSH),
    },
    Scenario {
        name: ScenarioName::BrowseAndBuy,
        description: "a realistic mix over a duration: 70% browsers (list, search, event, availability), 30% shoppers (hold, abandon 25%, book, pay, cancel 10%), with think times",
        defaults: Defaults {
            users: 200,
            events: 6,
            rounds_per_event: 2,
            run_time_s: Some(30),
            p99_all_ms: 1000.0,
            think_ms: 500,
            ..BASE
        },
        kind: Kind::Attack(Attack {
            personas: &[(Persona::Browser, 7), (Persona::Shopper, 3)],
            arrival: Arrival::AsStarted,
            ..RUSH
        }),
    },
    Scenario {
        name: ScenarioName::Soak,
        description: "browse-and-buy at a steady load for a long time, sampling each instance's memory, descriptors, pool and tasks every 5 s; fails on any error or on memory growth (first vs last quarter)",
        defaults: Defaults {
            users: 40,
            events: 6,
            rounds_per_event: 2,
            seats: 2000,
            run_time_s: Some(150),
            p99_all_ms: 1000.0,
            think_ms: 500,
            ..BASE
        },
        kind: Kind::Attack(Attack {
            personas: &[(Persona::Browser, 7), (Persona::Shopper, 3)],
            arrival: Arrival::AsStarted,
            samples_resources: true,
            ..RUSH
        }),
    },
    Scenario {
        name: ScenarioName::CouponRush,
        description: "N users claim a first-come coupon with a quota (10% click twice); checks claims <= quota and one per user",
        defaults: Defaults { seats: 25, ..BASE },
        kind: Kind::Attack(Attack {
            personas: &[(Persona::CouponHunter, 1)],
            coupon_discount: Some(10),
            scope: Scope {
                seats: false,
                coupons: true,
            },
            ..RUSH
        }),
    },
    Scenario {
        name: ScenarioName::StrategyMatrix,
        description: "flash-sale once per concurrency strategy (naive, optimistic, pessimistic, atomic, redis-lock, fenced) in child processes, compared in one table with each strategy's retries",
        defaults: Defaults { users: 1000, seats: 200, ..BASE },
        kind: Kind::Matrix(Matrix {
            base: ScenarioName::FlashSale,
            cells: strategy_cells,
            title: |users, seats| {
                format!("Concurrency strategies under a {users}-user rush for {seats} seats")
            },
            columns: &STRATEGY_COLUMNS,
            read: strategy_reading,
        }),
    },
    Scenario {
        name: ScenarioName::FaultMatrix,
        description: "flash-sale under steady load once per (component, fault) on the local stack: every invariant, the time to notice and to recover, per cell",
        defaults: faults::DEFAULTS,
        kind: Kind::Matrix(Matrix {
            base: ScenarioName::FlashSale,
            cells: faults::cells,
            title: |_, _| faults::TITLE.to_owned(),
            columns: &faults::COLUMNS,
            read: no_reading,
        }),
    },
    Scenario {
        name: ScenarioName::CouponMatrix,
        description: "coupon-rush once per concurrency strategy (naive, optimistic, pessimistic, redis-lock, fenced, atomic): claims vs quota, double claims, lost counter updates, retries, latency; naive must over-issue and be caught",
        defaults: coupons::DEFAULTS,
        kind: Kind::Matrix(Matrix {
            base: ScenarioName::CouponRush,
            cells: coupons::cells,
            title: coupons::title,
            columns: &coupons::COLUMNS,
            read: coupons::reading,
        }),
    },
    Scenario {
        name: ScenarioName::CacheCompare,
        description: "browse-and-buy on the local stack with the catalog cache off, then on: PostgreSQL's transactions/s (pg_stat_database), catalog read latency, hit ratio, req/s; the cut beside the seeds' claims and the cache's stale-read window",
        defaults: cache::DEFAULTS,
        kind: Kind::Matrix(Matrix {
            base: ScenarioName::BrowseAndBuy,
            cells: cache::cells,
            title: cache::title,
            columns: &cache::COLUMNS,
            read: cache::reading,
        }),
    },
    Scenario {
        name: ScenarioName::LockVsFencing,
        description: "flash-sale on the local stack with redis-lock, fenced and atomic, each while a lock holder is paused past its lease and while a Redis failover loses a lock: seats sold twice, stale writes refused, p99",
        defaults: locks::DEFAULTS,
        kind: Kind::Matrix(Matrix {
            base: ScenarioName::FlashSale,
            cells: locks::cells,
            title: |_, _| locks::TITLE.to_owned(),
            columns: &locks::COLUMNS,
            read: locks::reading,
        }),
    },
    Scenario {
        name: ScenarioName::Capacity,
        description: "flash buyers arriving at a stepped, open-model rate (--rate, times --growth every --step-secs: doubling by default) to find where the p99 SLO breaks",
        defaults: Defaults {
            users: 200,
            seats: 100_000,
            run_time_s: Some(40),
            p99_all_ms: 250.0,
            max_error_rate: 0.01,
            ..BASE
        },
        kind: Kind::Attack(Attack {
            arrival: Arrival::Ramp,
            table: Some(Table::CapacityRamp),
            ..RUSH
        }),
    },
    Scenario {
        name: ScenarioName::Bench,
        description: "the runner's own cost: requests/s on GET /health/live with history on, off, and under wrk",
        defaults: Defaults { users: 64, seats: 25, run_time_s: Some(5), ..BASE },
        kind: Kind::Bench,
    },
    Scenario {
        name: ScenarioName::Probe,
        description: "GET /health/live as fast as possible (one leg of bench)",
        defaults: BASE,
        kind: Kind::Attack(Attack {
            personas: &[(Persona::Prober, 1)],
            arrival: Arrival::AsStarted,
            seeds_world: false,
            scope: Scope {
                seats: false,
                coupons: false,
            },
            ..RUSH
        }),
    },
];

impl ScenarioName {
    /// The scenario's descriptor (`None` for `list`).
    pub fn scenario(self) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == self)
    }

    /// One line for reports and `scenario list`.
    pub fn description(self) -> &'static str {
        self.scenario()
            .map_or("describe every scenario", |s| s.description)
    }

    /// Defaults.
    pub fn defaults(self) -> Defaults {
        self.scenario().map_or(BASE, |s| s.defaults)
    }
}

/// strategy-matrix's cells: one per `--strategies` (default: all).
fn strategy_cells(cli: &Cli) -> Vec<Cell> {
    let strategies = if cli.strategies.is_empty() {
        boxoffice::Strategy::ALL.to_vec()
    } else {
        cli.strategies.clone()
    };
    strategies
        .into_iter()
        .map(|s| Cell {
            key: s.as_str().to_owned(),
            label: if s.is_safe() {
                s.as_str().to_owned()
            } else {
                format!("{s} (unsafe baseline)")
            },
            overrides: vec!["--strategy".into(), s.as_str().into()],
            expected_to_break: !s.is_safe(),
            not_applicable: None,
        })
        .collect()
}

pub(crate) fn hold(r: &reports::Report) -> Option<&reports::TransactionStats> {
    r.transactions.iter().find(|t| t.name == "hold")
}

pub(crate) fn check_count(r: &reports::Report, check: &str, key: &str) -> Value {
    json!(r
        .correctness
        .checks
        .iter()
        .find(|k| k.name == check)
        .and_then(|k| k.counts.get(key).copied()))
}

/// A counter of the cell's stack over its attack (see [`crate::counters`]); null when the
/// cell's report has no counters (a stack whose `/metrics` could not be read).
pub(crate) fn counter(r: &reports::Report, name: &str, labels: &[&str]) -> Value {
    if r.counters.is_empty() {
        return Value::Null;
    }
    json!(crate::counters::sum(&r.counters, name, labels).round() as i64)
}

/// strategy-matrix's reading: who oversold and whether the checker caught it, what the safe
/// strategies cost.
fn strategy_reading(cells: &[(&Cell, &reports::Report)]) -> Reading {
    let mut unsafe_parts = Vec::new();
    let mut safe = Vec::new();
    for (cell, r) in cells {
        let oversold = check_count(r, "no-double-sale", "oversold")
            .as_i64()
            .unwrap_or(0);
        let p99 = hold(r).map_or(0.0, |h| h.latency.p99);
        let retries = counter(
            r,
            "boxoffice_strategy_retries_total",
            &["operation=\"hold\""],
        );
        if cell.expected_to_break {
            unsafe_parts.push(format!(
                "{} sold {oversold} seat(s) twice{}",
                cell.key,
                if oversold > 0 {
                    " and the checker's no-double-sale caught it"
                } else {
                    " (no collision this time)"
                }
            ));
        } else {
            safe.push(format!(
                "{} {} oversold, hold p99 {p99:.0} ms, {} retries",
                cell.key,
                if oversold == 0 { "never" } else { "DID" },
                retries
                    .as_i64()
                    .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
            ));
        }
    }
    let mut text = unsafe_parts.join("; ");
    if !safe.is_empty() {
        if !text.is_empty() {
            text.push_str(". ");
        }
        text.push_str(&format!("The safe strategies: {}.", safe.join("; ")));
    }
    Reading {
        text: (!text.is_empty()).then_some(text),
        checks: Vec::new(),
    }
}

static STRATEGY_COLUMNS: [Column; 10] = [
    Column {
        name: "req/s",
        read: |r| json!((r.summary.throughput_rps * 10.0).round() / 10.0),
    },
    Column {
        name: "hold p50 ms",
        read: |r| json!(hold(r).map(|h| h.latency.p50)),
    },
    Column {
        name: "hold p95 ms",
        read: |r| json!(hold(r).map(|h| h.latency.p95)),
    },
    Column {
        name: "hold p99 ms",
        read: |r| json!(hold(r).map(|h| h.latency.p99)),
    },
    Column {
        name: "holds ok",
        read: |r| json!(hold(r).map(|h| h.ok)),
    },
    Column {
        name: "conflicts",
        read: |r| json!(hold(r).map(|h| h.rejected)),
    },
    Column {
        name: "retries",
        read: |r| {
            counter(
                r,
                "boxoffice_strategy_retries_total",
                &["operation=\"hold\""],
            )
        },
    },
    Column {
        name: "confirmed",
        read: |r| check_count(r, "no-unexpected-sales", "final_confirmed"),
    },
    Column {
        name: "oversold",
        read: |r| check_count(r, "no-double-sale", "oversold"),
    },
    Column {
        name: "verdict",
        read: |r| json!(reports::exit_code::describe(r.verdict.exit_code)),
    },
];

/// A matrix row from a cell's report.
pub fn matrix_row(
    columns: &[Column],
    cell: &Cell,
    report: &reports::Report,
) -> reports::ComparisonRow {
    let values: BTreeMap<String, Value> = columns
        .iter()
        .map(|c| (c.name.to_owned(), (c.read)(report)))
        .collect();
    reports::ComparisonRow {
        label: cell.label.clone(),
        values,
        passed: report.verdict.passed,
    }
}

/// The text of `scenario list`.
pub fn listing() -> String {
    let mut s =
        String::from("Scenarios (scenario NAME [OPTIONS]; scenario --help for every option):\n\n");
    for sc in SCENARIOS.iter().filter(|s| s.name != ScenarioName::Probe) {
        let d = sc.defaults;
        s.push_str(&format!("  {:<16} {}\n", sc.name.as_str(), sc.description));
        let time = d
            .run_time_s
            .map_or("each user once".to_owned(), |t| format!("{t}s"));
        s.push_str(&format!(
            "  {:<16} defaults: {} users, {} seats, {}\n\n",
            "", d.users, d.seats, time
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_name_but_list_has_one_descriptor_and_names_round_trip() {
        for v in ScenarioName::value_variants() {
            let found = SCENARIOS.iter().filter(|s| s.name == *v).count();
            assert_eq!(found, usize::from(*v != ScenarioName::List), "{v:?}");
            assert_eq!(ScenarioName::from_str(v.as_str(), false), Ok(*v));
        }
    }

    #[test]
    fn matrices_run_attacks() {
        for s in &SCENARIOS {
            if let Kind::Matrix(m) = &s.kind {
                let base = m.base.scenario().expect("a descriptor");
                assert!(matches!(base.kind, Kind::Attack(_)), "{:?}", s.name);
            }
        }
    }
}

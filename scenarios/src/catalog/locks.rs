//! `lock-vs-fencing`: the fencing argument as a drill on the `local` stack — a flash sale with
//! `redis-lock`, `fenced` and `atomic`, each under two real faults that take a lock away from
//! its holder while it still acts on it:
//!
//! - `pause`: the instance whose request holds the round's lock is SIGSTOPped (`app-1:pause`)
//!   for longer than the lease (1.5 s), between its checks and its writes;
//! - `failover`: the Redis primary dies right after granting a lock its replica never got, and
//!   Sentinel promotes the replica (`redis:failover`), while the holder works (5 s, well
//!   inside its 15 s lease).
//!
//! Both are made to happen, not hoped for (`--while-locked`, see [`crate::lock_drill`]): the
//! fault waits until an instance holds a lock, every buyer asks for the best available seats
//! (`--chosen-seats 0`, so the next holder wants the same seats), and holders stall between
//! their checks and their writes (`BOXOFFICE_FAULT_LOCK_PAUSE_MS`) so the fault lands in that
//! window. One row per (strategy, fault): seats sold twice according to the database's audit,
//! leases that expired under their holder, stale writes the fence refused, hold p99.
//! Expected: `redis-lock` sells seats twice, `fenced` and `atomic` never do.

use serde_json::json;

use super::{check_count, counter, hold, Cell, Column, Defaults, Reading, BASE};
use crate::cli::{Cli, FaultKind};
use crate::stack::StackSpec;

/// A slow, steady flash sale: holders stall on purpose, so a few arrivals a second suffice.
pub const DEFAULTS: Defaults = Defaults {
    users: 30,
    seats: 200,
    run_time_s: Some(RUN_S),
    p99_all_ms: 60_000.0,
    ..BASE
};

const RUN_S: usize = 22;
const RATE: f64 = 8.0;

/// The table's title.
pub const TITLE: &str = "Locks vs fencing tokens: a lock taken from its holder mid-write (pause past the lease, Redis failover losing an unreplicated lock)";

const STRATEGIES: [boxoffice::Strategy; 3] = [
    boxoffice::Strategy::RedisLock,
    boxoffice::Strategy::Fenced,
    boxoffice::Strategy::Atomic,
];

/// How each fault is set up: the chaos schedule and the instances' lock settings.
fn fault_setup(fault: FaultKind) -> Option<(&'static str, [(&'static str, &'static str); 2])> {
    match fault {
        // Holders stall 700 ms inside a 1.5 s lease (time enough for the fault to land in the
        // stall on a busy machine); the pause (4 s) outlives the lease.
        FaultKind::Pause => Some((
            "app-1:pause@4s+4s",
            [
                ("BOXOFFICE_LOCK_TTL_MS", "1500"),
                ("BOXOFFICE_FAULT_LOCK_PAUSE_MS", "700"),
            ],
        )),
        // Holders work 5 s inside a 15 s lease: only the failover can take the lock away.
        FaultKind::Failover => Some((
            "redis:failover@4s+8s",
            [
                ("BOXOFFICE_LOCK_TTL_MS", "15000"),
                ("BOXOFFICE_FAULT_LOCK_PAUSE_MS", "5000"),
            ],
        )),
        _ => None,
    }
}

/// One cell per (strategy, fault): `--strategies` (default redis-lock, fenced, atomic) ×
/// `--faults` (pause, failover; others are shown as n/a).
pub fn cells(cli: &Cli) -> Vec<Cell> {
    let strategies = if cli.strategies.is_empty() {
        STRATEGIES.to_vec()
    } else {
        cli.strategies.clone()
    };
    let faults = if cli.faults.is_empty() {
        vec![FaultKind::Pause, FaultKind::Failover]
    } else {
        cli.faults.clone()
    };
    let mut load = vec![
        "--while-locked".to_owned(),
        "--chosen-seats".to_owned(),
        "0".to_owned(),
    ];
    if cli.stack == StackSpec::Embedded {
        load.extend(["--stack".to_owned(), "local".to_owned()]);
    }
    if cli.rate.is_none() {
        load.extend(["--rate".to_owned(), RATE.to_string()]);
    }
    if cli.goose.run_time.is_none() {
        load.extend(["-t".to_owned(), format!("{RUN_S}s")]);
    }
    if cli.p99.is_empty() {
        // Holders stall on purpose: latency is a column here, not a verdict.
        load.extend(["--p99".to_owned(), "all=60s".to_owned()]);
    }
    let mut out = Vec::new();
    for s in &strategies {
        for &fault in &faults {
            let name = match fault {
                FaultKind::Pause => "pause",
                FaultKind::Failover => "failover",
                _ => "other",
            };
            let key = format!("{s}-{name}");
            let mut label = match fault {
                FaultKind::Pause => format!("{s} × holder paused past its lease"),
                FaultKind::Failover => format!("{s} × Redis failover loses the lock"),
                other => format!("{s} × {other:?}"),
            };
            if !s.is_safe() {
                label.push_str(" (unsafe baseline)");
            }
            let cell = match fault_setup(fault) {
                Some((chaos, env)) => {
                    let mut overrides = load.clone();
                    overrides.extend(["--strategy".to_owned(), s.as_str().to_owned()]);
                    overrides.extend(["--chaos".to_owned(), chaos.to_owned()]);
                    for (k, v) in env {
                        overrides.extend(["--app-env".to_owned(), format!("{k}={v}")]);
                    }
                    Cell {
                        key,
                        label,
                        overrides,
                        expected_to_break: !s.is_safe(),
                        not_applicable: None,
                    }
                }
                None => Cell {
                    key,
                    label,
                    overrides: Vec::new(),
                    expected_to_break: false,
                    not_applicable: Some("lock-vs-fencing drills a pause and a failover only"),
                },
            };
            out.push(cell);
        }
    }
    out
}

fn sold_twice(r: &reports::Report) -> i64 {
    let audit = check_count(r, "no-double-sale", "audit_oversold")
        .as_i64()
        .unwrap_or(0);
    let seen = check_count(r, "no-double-sale", "oversold")
        .as_i64()
        .unwrap_or(0);
    audit.max(seen)
}

fn leases_lost(r: &reports::Report) -> Option<i64> {
    counter(r, "boxoffice_locks_total", &["result=\"lost\""]).as_i64()
}

/// The table's columns.
pub static COLUMNS: [Column; 7] = [
    Column {
        name: "seats sold twice (db audit)",
        read: |r| json!(sold_twice(r)),
    },
    Column {
        name: "leases lost under their holder",
        read: |r| json!(leases_lost(r)),
    },
    Column {
        name: "stale writes refused by the fence",
        read: |r| counter(r, "boxoffice_holds_total", &["result=\"rejected\""]),
    },
    Column {
        name: "holds ok",
        read: |r| json!(hold(r).map(|h| h.ok)),
    },
    Column {
        name: "seats sold",
        read: |r| check_count(r, "inventory-balance", "sold"),
    },
    Column {
        name: "hold p99 ms",
        read: |r| json!(hold(r).map(|h| h.latency.p99.round())),
    },
    Column {
        name: "verdict",
        read: |r| json!(reports::exit_code::describe(r.verdict.exit_code)),
    },
];

/// The reading, and the experiment's expectations: `redis-lock` sells a seat twice under at
/// least one fault, and every lock fault hit a holder (a lease was lost), so the fenced rows'
/// zeros mean something.
pub fn reading(cells: &[(&Cell, &reports::Report)]) -> Reading {
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    let mut redis_lock_twice = None::<i64>;
    let mut missed = Vec::new();
    for (cell, r) in cells {
        let twice = sold_twice(r);
        let lost = leases_lost(r).unwrap_or(0);
        let refused = counter(r, "boxoffice_holds_total", &["result=\"rejected\""])
            .as_i64()
            .unwrap_or(0);
        let locking = cell.key.starts_with("redis-lock") || cell.key.starts_with("fenced");
        if cell.key.starts_with("redis-lock") {
            *redis_lock_twice.get_or_insert(0) += twice;
        }
        if locking && lost == 0 {
            missed.push(cell.key.clone());
        }
        parts.push(if locking {
            format!(
                "{}: {twice} seat(s) sold twice, {lost} lease(s) lost, {refused} stale write(s) refused",
                cell.key
            )
        } else {
            format!("{}: {twice} seat(s) sold twice (no lock to lose)", cell.key)
        });
    }
    if let Some(twice) = redis_lock_twice {
        checks.push(
            reports::Check::new(
                "lock-vs-fencing: redis-lock sells a seat twice under a fault",
                "A lock taken from its holder (paused past its lease, or lost in a Redis failover) lets a second holder sell the same seats: the unsafe baseline must show it, or the drill showed nothing.",
                twice > 0,
            )
            .with_count("seats_sold_twice", twice),
        );
    }
    if cells
        .iter()
        .any(|(c, _)| c.key.starts_with("redis-lock") || c.key.starts_with("fenced"))
    {
        checks.push(
            reports::Check::new(
                "lock-vs-fencing: every lock fault hit a lock holder",
                "In every redis-lock and fenced cell a lease expired or vanished under its holder (boxoffice_locks_total{result=\"lost\"} > 0): the fault was timed on a held lock, not on luck.",
                missed.is_empty(),
            )
            .with_count("cells_missed", missed.len() as i64)
            .with_examples(missed),
        );
    }
    Reading {
        text: (!parts.is_empty()).then(|| {
            format!(
                "{}. A lease lock alone cannot stop a holder that wakes up after losing it: redis-lock's late write lands on seats a newer holder sold. fenced stamps its token on the rows it reads and writes only where the stamp is still its own, so the database refuses the late write; atomic needs no lock at all (one conditional update).",
                parts.join("; ")
            )
        }),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_cells_each_with_its_fault_and_lock_settings() {
        let cli = Cli::parse_from_args(["scenario", "lock-vs-fencing"]).unwrap();
        let cells = cells(&cli);
        let keys: Vec<_> = cells.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "redis-lock-pause",
                "redis-lock-failover",
                "fenced-pause",
                "fenced-failover",
                "atomic-pause",
                "atomic-failover"
            ]
        );
        for c in &cells {
            let args = c.overrides.join(" ");
            assert!(
                args.contains("--while-locked") && args.contains("--stack local"),
                "{args}"
            );
            let at = c.overrides.iter().position(|a| a == "--chaos").unwrap();
            chaos::schedule::Schedule::parse(&c.overrides[at + 1], 1).unwrap();
            assert_eq!(c.expected_to_break, c.key.starts_with("redis-lock"));
            Cli::parse_from_args(
                ["scenario", "flash-sale"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(c.overrides.iter().cloned()),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_redis_lock_that_never_double_sells_fails_the_drill() {
        let cli =
            Cli::parse_from_args(["scenario", "lock-vs-fencing", "--faults", "pause"]).unwrap();
        let cells = cells(&cli);
        let mut r = reports::Report::default();
        r.counters
            .insert("boxoffice_locks_total{result=\"lost\"}".to_owned(), 1.0);
        r.correctness.checks.push(
            reports::Check::new("no-double-sale", "", true)
                .with_count("oversold", 0)
                .with_count("audit_oversold", 0),
        );
        let pairs: Vec<_> = cells.iter().map(|c| (c, &r)).collect();
        let read = reading(&pairs);
        assert!(!read.checks[0].passed && read.checks[1].passed, "{read:?}");
    }
}

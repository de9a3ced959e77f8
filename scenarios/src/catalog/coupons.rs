//! `coupon-matrix`: seed 004's coupon experiment (no lock, optimistic, pessimistic, a Redis
//! lock) as one command — a coupon rush once per concurrency strategy, one row each: claims
//! granted against the quota, users holding two claims, updates of the coupon's counter that
//! were lost, retries, latency and throughput. `naive` is the baseline that must over-issue,
//! and the checker must catch it: if it does not, the experiment showed nothing and fails.

use serde_json::{json, Value};

use super::{check_count, counter, Cell, Column, Defaults, Reading, BASE};
use crate::cli::Cli;

/// 2,000 hunters for 25 coupons (coupon-rush's defaults).
pub const DEFAULTS: Defaults = Defaults { seats: 25, ..BASE };

/// The table's title.
pub fn title(users: usize, quota: usize) -> String {
    format!("Coupon strategies: {users} users rush a first-come coupon with a quota of {quota}")
}

/// The strategies in seed 004's order, then the lab's two.
const ORDER: [boxoffice::Strategy; 6] = [
    boxoffice::Strategy::Naive,
    boxoffice::Strategy::Optimistic,
    boxoffice::Strategy::Pessimistic,
    boxoffice::Strategy::RedisLock,
    boxoffice::Strategy::Fenced,
    boxoffice::Strategy::Atomic,
];

/// One cell per `--strategies` (default: all six).
pub fn cells(cli: &Cli) -> Vec<Cell> {
    // Thousands of claims queue behind one coupon's lock or row: latency is what the table
    // compares, not a verdict (unless `--p99` says otherwise).
    let latency: Vec<String> = if cli.p99.is_empty() {
        vec!["--p99".into(), "all=120s".into()]
    } else {
        Vec::new()
    };
    let strategies: Vec<boxoffice::Strategy> = if cli.strategies.is_empty() {
        ORDER.to_vec()
    } else {
        cli.strategies.clone()
    };
    strategies
        .into_iter()
        .map(|s| {
            let baseline = s == boxoffice::Strategy::Naive;
            Cell {
                key: s.as_str().to_owned(),
                label: if baseline {
                    format!("{s} (unsafe baseline)")
                } else {
                    s.as_str().to_owned()
                },
                overrides: [
                    latency.clone(),
                    vec!["--strategy".into(), s.as_str().into()],
                ]
                .concat(),
                expected_to_break: baseline,
                not_applicable: None,
            }
        })
        .collect()
}

fn claim(r: &reports::Report) -> Option<&reports::TransactionStats> {
    r.transactions.iter().find(|t| t.name == "claim")
}

fn quota_count(r: &reports::Report, key: &str) -> i64 {
    check_count(r, "coupon-quota", key).as_i64().unwrap_or(0)
}

/// Claim rows the coupon's counter does not account for: read-check-write increments that
/// overwrote each other.
fn lost_updates(r: &reports::Report) -> Value {
    let claims = check_count(r, "coupon-quota", "claims").as_i64();
    let counter = check_count(r, "coupon-quota", "counter").as_i64();
    json!(claims.zip(counter).map(|(a, c)| (a - c).max(0)))
}

/// The table's columns.
pub static COLUMNS: [Column; 10] = [
    Column {
        name: "granted / quota",
        read: |r| {
            json!(format!(
                "{} / {}",
                quota_count(r, "claims"),
                quota_count(r, "quota")
            ))
        },
    },
    Column {
        name: "over quota",
        read: |r| check_count(r, "coupon-quota", "over_quota"),
    },
    Column {
        name: "users with 2 claims",
        read: |r| check_count(r, "coupon-quota", "users_with_several_claims"),
    },
    Column {
        name: "lost counter updates",
        read: lost_updates,
    },
    Column {
        name: "retries",
        read: |r| {
            counter(
                r,
                "boxoffice_strategy_retries_total",
                &["operation=\"coupon_claim\""],
            )
        },
    },
    Column {
        name: "claim p50 ms",
        read: |r| json!(claim(r).map(|c| c.latency.p50)),
    },
    Column {
        name: "claim p99 ms",
        read: |r| json!(claim(r).map(|c| c.latency.p99)),
    },
    Column {
        name: "req/s",
        read: |r| json!((r.summary.throughput_rps * 10.0).round() / 10.0),
    },
    Column {
        name: "checker",
        read: |r| {
            json!(r
                .correctness
                .checks
                .iter()
                .find(|c| c.name == "coupon-quota")
                .map(|c| if c.passed { "holds" } else { "caught a break" }))
        },
    },
    Column {
        name: "verdict",
        read: |r| json!(reports::exit_code::describe(r.verdict.exit_code)),
    },
];

/// The reading, and the experiment's expectations: the baseline over-issues (more claims than
/// the quota, or a user with two) and the checker says so; every other strategy keeps the
/// quota.
pub fn reading(cells: &[(&Cell, &reports::Report)]) -> Reading {
    let mut parts = Vec::new();
    let mut checks = Vec::new();
    for (cell, r) in cells {
        let claims = quota_count(r, "claims");
        let quota = quota_count(r, "quota");
        let several = quota_count(r, "users_with_several_claims");
        let caught = r
            .correctness
            .checks
            .iter()
            .any(|c| c.name == "coupon-quota" && !c.passed);
        let p99 = claim(r).map_or(0.0, |c| c.latency.p99);
        if cell.expected_to_break {
            let over = claims > quota || several > 0;
            parts.push(format!(
                "{} granted {claims} claims for a quota of {quota} ({} over{}){}",
                cell.key,
                (claims - quota).max(0),
                if several > 0 {
                    format!(", {several} users twice")
                } else {
                    String::new()
                },
                if caught {
                    ", and the checker caught it"
                } else {
                    ", and the checker did not notice"
                }
            ));
            checks.push(
                reports::Check::new(
                    format!("coupon-matrix: {} over-issues and is caught", cell.key),
                    "The unsafe baseline grants more claims than the quota (or one user two), and the checker's coupon-quota reports it: the experiment shows what the safe strategies prevent.",
                    over && caught,
                )
                .with_count("claims", claims)
                .with_count("quota", quota)
                .with_count("users_with_several_claims", several),
            );
        } else {
            parts.push(format!(
                "{} granted {claims}/{quota} (claim p99 {p99:.0} ms{})",
                cell.key,
                counter(
                    r,
                    "boxoffice_strategy_retries_total",
                    &["operation=\"coupon_claim\""]
                )
                .as_i64()
                .filter(|n| *n > 0)
                .map_or_else(String::new, |n| format!(", {n} retries"))
            ));
        }
    }
    Reading {
        text: (!parts.is_empty()).then(|| {
            format!(
                "{}. Every strategy but the baseline must stay within the quota with one claim per user; the database's claim rows are the truth, the coupon's counter shows the lost updates.",
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
    fn one_cell_per_strategy_in_seed_order_with_naive_as_the_baseline() {
        let cli = Cli::parse_from_args(["scenario", "coupon-matrix"]).unwrap();
        let keys: Vec<_> = cells(&cli).into_iter().map(|c| c.key).collect();
        assert_eq!(
            keys,
            [
                "naive",
                "optimistic",
                "pessimistic",
                "redis-lock",
                "fenced",
                "atomic"
            ]
        );
        let cli =
            Cli::parse_from_args(["scenario", "coupon-matrix", "--strategies", "naive,atomic"])
                .unwrap();
        let c = cells(&cli);
        assert!(c[0].expected_to_break && !c[1].expected_to_break);
    }

    #[test]
    fn a_baseline_that_does_not_over_issue_fails_the_experiment() {
        let cli =
            Cli::parse_from_args(["scenario", "coupon-matrix", "--strategies", "naive"]).unwrap();
        let cell = cells(&cli).remove(0);
        let mut r = reports::Report::default();
        r.correctness.checks.push(
            reports::Check::new("coupon-quota", "", true)
                .with_count("claims", 25)
                .with_count("quota", 25),
        );
        let read = reading(&[(&cell, &r)]);
        assert!(!read.checks[0].passed, "{read:?}");
        r.correctness.checks[0] = reports::Check::new("coupon-quota", "", false)
            .with_count("claims", 31)
            .with_count("quota", 25);
        let read = reading(&[(&cell, &r)]);
        assert!(read.checks[0].passed, "{read:?}");
        assert!(read.text.unwrap().contains("31 claims for a quota of 25"));
    }
}

//! The seeds' three experiments, each one command (issue 18), in CI's small versions through
//! the real binary: coupon-matrix on the embedded stack, cache-compare and lock-vs-fencing on
//! the local stack. Each asserts the experiment's finding, not only that it ran: naive
//! over-issues and is caught, the cache cuts PostgreSQL's own transaction count, redis-lock
//! sells a seat twice when its lock is taken away and fenced never does.

use std::process::Command;

use serde_json::Value;

use crate::common;

fn run(args: &[&str], dir: &std::path::Path) -> (Option<i32>, reports::Report) {
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = Command::new(exe)
        .args(args)
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir)
        .env("SCENARIO_EXE", exe)
        .status()
        .expect("the scenario binary runs");
    (status.code(), common::assert_valid_report(dir))
}

fn row<'a>(report: &'a reports::Report, label_start: &str) -> &'a reports::ComparisonRow {
    let table = report.comparison.as_ref().expect("the matrix table");
    table
        .rows
        .iter()
        .find(|r| r.label.starts_with(label_start))
        .unwrap_or_else(|| panic!("no row {label_start}: {:#?}", table.rows))
}

fn reading(report: &reports::Report) -> &str {
    report
        .comparison
        .as_ref()
        .and_then(|c| c.reading.as_deref())
        .expect("a generated reading")
}

#[test]
fn the_coupon_matrix_shows_naive_over_issuing_and_every_other_strategy_keeping_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run(&["coupon-matrix", "-u", "150", "--seats", "10"], dir.path());
    let table = report.comparison.as_ref().unwrap();
    assert_eq!(table.rows.len(), 6, "{:#?}", table.rows);
    let naive = row(&report, "naive");
    assert!(
        naive.values["over quota"].as_i64().unwrap() > 0
            || naive.values["users with 2 claims"].as_i64().unwrap() > 0,
        "{naive:?}"
    );
    assert_eq!(naive.values["checker"], "caught a break", "{naive:?}");
    for s in [
        "optimistic",
        "pessimistic",
        "redis-lock",
        "fenced",
        "atomic",
    ] {
        let r = row(&report, s);
        assert_eq!(r.values["granted / quota"], "10 / 10", "{r:?}");
        assert_eq!(r.values["users with 2 claims"], 0, "{r:?}");
        assert_eq!(r.values["lost counter updates"], 0, "{r:?}");
        assert!(
            r.values["retries"].is_i64(),
            "read before the stack stopped: {r:?}"
        );
        assert!(r.passed, "{r:?}");
    }
    let expectation = common::check(&report, "coupon-matrix: naive over-issues and is caught");
    assert!(expectation.passed, "{expectation:?}");
    assert!(reading(&report).contains("and the checker caught it"));
    assert_eq!(code, Some(0), "{:#?}", report.verdict);
}

#[test]
fn the_cache_compare_cuts_postgresqls_own_transaction_count_and_states_the_stale_window() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run(
        &["cache-compare", "-u", "12", "-t", "8s", "--think-ms", "100"],
        dir.path(),
    );
    let off = row(&report, "cache off");
    let on = row(&report, "cache on");
    let xact = |r: &reports::ComparisonRow| {
        r.values["db transactions/s from the load"]
            .as_f64()
            .unwrap_or_else(|| panic!("{r:?}"))
    };
    assert!(xact(on) < xact(off), "off {off:?}\non {on:?}");
    assert!(
        on.values["hit ratio"].as_str().unwrap().ends_with('%'),
        "{on:?}"
    );
    assert!(off.values["hit ratio"]
        .as_str()
        .unwrap()
        .contains("not consulted"));
    let cut = common::check(&report, "cache-compare: the cache cuts the database's load");
    assert!(
        cut.passed && cut.counts["reduction_percent"] >= 10,
        "{cut:?}"
    );
    let window = common::check(&report, "cache-stale-read-window");
    assert!(window.passed, "{window:?}");
    assert_eq!(
        window.counts["stale_window_ms"],
        window.counts["ttl_ms"] + window.counts["jitter_ms"]
    );
    let text = reading(&report);
    assert!(
        text.contains("seed 003") && text.contains("seed 002"),
        "{text}"
    );
    // The counters are the database's own, kept in each cell's report.
    let cell = common::assert_valid_report(&dir.path().join("cache-on"));
    assert!(cell.counters["pg_xact"] > 0.0, "{:?}", cell.counters);
    assert_eq!(code, Some(0), "{:#?}", report.verdict);
}

#[test]
fn redis_lock_sells_a_seat_twice_when_its_lock_is_taken_away_and_fenced_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run(
        &[
            "lock-vs-fencing",
            "--strategies",
            "redis-lock,fenced",
            "--faults",
            "pause,failover",
            "-t",
            "16s",
        ],
        dir.path(),
    );
    let twice = |r: &reports::ComparisonRow| r.values["seats sold twice (db audit)"].clone();
    let lost = |r: &reports::ComparisonRow| {
        r.values["leases lost under their holder"]
            .as_i64()
            .unwrap_or(0)
    };
    for key in ["redis-lock × holder paused", "redis-lock × Redis failover"] {
        let r = row(&report, key);
        assert!(twice(r).as_i64().unwrap() > 0, "{r:?}");
        assert!(lost(r) > 0, "{r:?}");
    }
    for key in ["fenced × holder paused", "fenced × Redis failover"] {
        let r = row(&report, key);
        assert_eq!(twice(r), Value::from(0), "{r:?}");
        assert!(lost(r) > 0, "the fault hit a holder: {r:?}");
        assert!(r.passed, "{r:?}");
    }
    let fenced = row(&report, "fenced × holder paused");
    assert!(
        fenced.values["stale writes refused by the fence"]
            .as_i64()
            .unwrap()
            > 0,
        "{fenced:?}"
    );
    assert!(
        common::check(
            &report,
            "lock-vs-fencing: redis-lock sells a seat twice under a fault"
        )
        .passed
    );
    assert_eq!(code, Some(0), "{:#?}", report.verdict);
}

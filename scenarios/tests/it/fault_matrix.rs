//! `scenario fault-matrix` on the `local` stack, CI's subset: one cell per component and one
//! per kind of fault (the whole matrix is `scenario fault-matrix`, see the README), plus a cell
//! that makes no sense, which must be shown as n/a rather than left out.

use std::process::Command;

use serde_json::Value;

use crate::common;

const CELLS: &str =
    "postgres:failover,redis:reset,kafka:kill,payments:partition,app:pause,postgres:latency,app:reset";

#[test]
fn every_component_and_every_fault_keeps_every_invariant_and_recovers_in_budget() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = Command::new(exe)
        .args(["fault-matrix", "--cells", CELLS])
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir.path())
        .env("SCENARIO_EXE", exe)
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    let table = report.comparison.as_ref().expect("the matrix table");
    let rows: Vec<_> = table.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(rows.len(), 7, "{rows:?}");
    let failed: Vec<_> = table
        .rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {:?}", r.label, r.values))
        .collect();
    assert!(failed.is_empty(), "cells failed: {failed:#?}");
    assert_eq!(status.code(), Some(0), "rows: {:#?}", table.rows);
    let na = table
        .rows
        .iter()
        .find(|r| r.label == "app × reset")
        .unwrap();
    assert!(
        na.values["verdict"].as_str().unwrap().starts_with("n/a: "),
        "{na:?}"
    );
    for row in table.rows.iter().filter(|r| r.label != "app × reset") {
        let v = |k: &str| row.values.get(k).cloned().unwrap_or(Value::Null);
        for zero in [
            "oversold",
            "acked lost",
            "ledger − db",
            "payments imbalance",
        ] {
            assert_eq!(
                v(zero),
                Value::from(0),
                "{}: {zero} in {:?}",
                row.label,
                row.values
            );
        }
        assert!(v("seats sold").as_i64().unwrap() > 0, "{row:?}");
        assert!(v("recovered s after end").as_f64().is_some(), "{row:?}");
        assert_eq!(v("verdict"), "pass", "{row:?}");
    }
    // Each cell's own report is kept beside the matrix's, with its fault timed.
    let cell = common::assert_valid_report(&dir.path().join("kafka-kill"));
    let fault = &cell.failover.faults[0];
    assert_eq!(fault.target, "kafka");
    assert!(
        fault.start_s >= 3.5 && fault.end_s > fault.start_s,
        "{fault:?}"
    );
    let ledger = common::check(&cell, "ledger-matches-bookings");
    assert!(
        ledger.passed && ledger.counts["ledger_bookings"] > 0,
        "{ledger:?}"
    );
    // A database failover is noticed: readiness flips on the instances.
    let pg = common::assert_valid_report(&dir.path().join("postgres-failover"));
    assert!(
        pg.failover.faults[0].noticed_s.is_some(),
        "{:?}",
        pg.failover
    );
}

//! A short capacity ramp on the embedded stack: open-model arrivals at a rate that doubles
//! each step, one comparison row per step, coordinated-omission-corrected latency reported.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_ramp_reports_one_row_per_step_with_corrected_latency() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &[
            "capacity",
            "-u",
            "20",
            "--rate",
            "10",
            "--steps",
            "2",
            "--step-secs",
            "2",
        ],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    assert_eq!(report, outcome.report);
    assert_eq!(report.run.scenario, "capacity");
    let table = report.comparison.as_ref().expect("a capacity table");
    assert_eq!(table.rows.len(), 2, "{table:#?}");
    let rates: Vec<f64> = table
        .rows
        .iter()
        .map(|r| r.values["arrivals/s"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, vec![10.0, 20.0], "the rate doubles each step");
    for row in &table.rows {
        assert!(
            row.values["requests/s"].as_f64().unwrap() > 0.0,
            "every step did work: {row:?}"
        );
    }
    let hold = report
        .transactions
        .iter()
        .find(|t| t.name == "hold")
        .expect("holds were made");
    let corrected = hold
        .corrected_latency
        .as_ref()
        .expect("open-model runs report corrected latency");
    assert!(
        corrected.p99 >= hold.latency.p50,
        "corrected latency counts from the intended start: {corrected:?} vs {:?}",
        hold.latency
    );
    assert_eq!(
        common::check(&report, "no-double-sale").counts["oversold"],
        0
    );
}

//! A short capacity ramp on the embedded stack: open-model arrivals at a rate that doubles
//! each step, one comparison row per step, coordinated-omission-corrected latency reported.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_ramp_reports_one_row_per_step_with_corrected_latency() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &[
            "capacity",
            // Many users: the schedule must start only once every one of them runs, so the
            // first step is measured at its full rate (with -u 3000 it once recorded nothing).
            "-u",
            "400",
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
    assert_eq!(report.run.parameters["growth"], 2.0);
    assert!(
        table.title.contains("doubling every 2 s"),
        "{}",
        table.title
    );
    for row in &table.rows {
        // Each arrival makes at least one request (a hold).
        assert!(
            row.values["requests/s"].as_f64().unwrap()
                >= 0.8 * row.values["arrivals/s"].as_f64().unwrap(),
            "every step did its arrivals' work: {table:#?}"
        );
        // Goodput: requests answered with a result, not refused past capacity nor failed.
        let goodput = row.values["goodput/s"].as_f64().unwrap();
        let refused = row.values["refused"].as_u64().unwrap();
        let errors = row.values["errors"].as_u64().unwrap();
        let requests = row.values["requests/s"].as_f64().unwrap();
        assert!(
            (goodput - (requests - (refused + errors) as f64 / 2.0)).abs() < 1e-6,
            "{table:#?}"
        );
    }
    let arrivals = report
        .run
        .load
        .arrivals
        .expect("open-model arrivals are counted");
    assert_eq!(
        arrivals.due,
        arrivals.started + arrivals.dropped,
        "{arrivals:?}"
    );
    assert!(arrivals.started >= 50, "{arrivals:?}");
    // 2 s at 10/s then 2 s at 20/s: arrivals after the end are not due (nor waited for).
    assert!(
        (55..=62).contains(&arrivals.due),
        "60 arrivals due in 4 s: {arrivals:?}"
    );
    assert!(
        report.run.duration_s < 10.0,
        "no user sleeps until a slot after the end: {} s",
        report.run.duration_s
    );
    // Fewer arrivals than users: each began on a user of its own, which then sent requests.
    let active = report.run.load.users_started;
    assert!(
        active <= arrivals.started && active + 3 >= arrivals.started,
        "{active} users sent requests for {arrivals:?}"
    );
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

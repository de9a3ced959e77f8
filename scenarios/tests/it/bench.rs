//! The runner's own cost (`scenario bench`): history on and off in pairs whose order
//! alternates, the overhead the median of the pairs', every pair's figure kept.

use std::process::Command;

use crate::common;

#[test]
fn the_bench_alternates_its_pairs_and_reports_the_median_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = Command::new(exe)
        .args(["bench", "--pairs", "3", "-t", "1", "-u", "8", "-q", "--out"])
        .arg(dir.path())
        .env("SCENARIO_EXE", exe)
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    // The verdict judges the overhead (≤ 10 %), which this test does not: a 1-second leg on a
    // shared machine is noise. It asserts what was run and how it was summed up.
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?} {:#?}",
        report.verdict
    );
    let overheads: Vec<f64> = report.run.parameters["history_overheads"]
        .as_array()
        .expect("every pair's overhead")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(overheads.len(), 3, "{overheads:?}");
    let mut sorted = overheads.clone();
    sorted.sort_by(f64::total_cmp);
    let median = report.run.parameters["history_overhead"].as_f64().unwrap();
    assert_eq!(median, sorted[1], "{overheads:?}");
    for leg in [
        "history-on",
        "history-off",
        "history-off-2",
        "history-on-2",
        "history-on-3",
        "history-off-3",
    ] {
        assert!(
            dir.path().join(leg).join("report.json").is_file(),
            "{leg} ran"
        );
    }
    // Pair 2 ran "off" first: its off leg started before its on leg.
    let started = |leg: &str| {
        common::assert_valid_report(&dir.path().join(leg))
            .run
            .started_at
    };
    assert!(started("history-off-2") <= started("history-on-2"));
    assert!(started("history-on-3") <= started("history-off-3"));
    let reading = report.comparison.unwrap().reading.unwrap();
    assert!(reading.contains("median of 3 pairs"), "{reading}");
}

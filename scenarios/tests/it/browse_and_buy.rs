//! A short browse-and-buy mix on the embedded stack: every persona's operations show up,
//! abandoned holds and cancellations included, and every invariant holds.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_browse_and_buy_mix_holds_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &[
            "browse-and-buy",
            "-u",
            "30",
            "--seats",
            "50",
            "-t",
            "4",
            "--think-ms",
            "40",
        ],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    let names: Vec<&str> = report
        .transactions
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    for expected in [
        "list_events",
        "search",
        "event",
        "availability",
        "hold",
        "book",
        "pay",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for c in &report.correctness.checks {
        assert!(c.passed || c.skipped_reason.is_some(), "{c:?}");
    }
    assert!(report.timeline.points.len() >= 4, "a point per second");
    assert_eq!(
        outcome.exit_code(),
        reports::exit_code::PASS,
        "{:#?}",
        report.verdict
    );
}

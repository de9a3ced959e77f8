//! A small coupon rush on the embedded stack: claims stay within the quota, one per user,
//! even though some hunters click twice.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_rush_never_exceeds_the_quota_and_writes_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &["coupon-rush", "-u", "120", "--seats", "30"],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    let c = common::check(&report, "coupon-quota");
    assert!(c.passed, "{c:?}");
    assert_eq!(c.counts["quota"], 30);
    assert_eq!(c.counts["claims"], 30, "120 hunters use up a quota of 30");
    assert_eq!(c.counts["acknowledged"], 30);
    let claims = report
        .transactions
        .iter()
        .find(|t| t.name == "claim")
        .unwrap();
    assert!(claims.count > 120, "some hunters clicked twice");
    assert_eq!(
        outcome.exit_code(),
        reports::exit_code::PASS,
        "{:#?}",
        report.verdict
    );
}

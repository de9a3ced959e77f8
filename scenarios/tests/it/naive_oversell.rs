//! The `naive` strategy under a rush: the checker must see the oversell the database shows,
//! and the verdict must fail with the invariant exit code.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_flash_sale_oversells_and_the_verdict_says_invariant_broken() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &[
            "flash-sale",
            "--strategy",
            "naive",
            "-u",
            "400",
            "--seats",
            "60",
        ],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    let check = common::check(&report, "no-double-sale");
    // The checker's own count (from the listed holds and bookings) must equal the database
    // audit's, whether or not this run happened to oversell.
    assert_eq!(
        check.counts["oversold"], check.counts["audit_oversold"],
        "{check:?}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("final-state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        check.counts["audit_oversold"],
        state["rounds"][0]["audit"]["oversold"].as_i64().unwrap()
    );
    if check.counts["oversold"] > 0 {
        assert!(!check.passed);
        assert!(!check.examples.is_empty());
        assert!(!report.verdict.passed);
        assert_eq!(outcome.exit_code(), reports::exit_code::INVARIANT_BROKEN);
    } else {
        assert!(
            check.passed,
            "no oversell this time, and the checker agrees with the audit"
        );
    }
}

//! A small flash sale on the `local` stack: the box office on a real PostgreSQL child process,
//! with a venue small enough to have a single price tier.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_on_postgres_with_a_one_tier_venue_sells_every_seat_once() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &[
            "flash-sale",
            "--stack",
            "local",
            "-u",
            "60",
            "--seats",
            "10",
        ],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    assert_eq!(report, outcome.report);
    assert_eq!(report.run.stack, "local");
    let inventory = common::check(&report, "inventory-balance");
    assert!(inventory.passed, "{inventory:?}");
    assert_eq!(inventory.counts["sold"], 10);
    assert_eq!(
        common::check(&report, "no-double-sale").counts["oversold"],
        0
    );
    assert!(common::check(&report, "payments-balance").passed);
    assert!(report.verdict.passed, "{:#?}", report.verdict);
    // No fault scheduled: the instances reached every server directly, with no proxy started
    // (so the sale above went through no proxy: there was none).
    assert_eq!(report.run.parameters["wiring"], "direct");
    let components: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("stack.json")).unwrap()).unwrap();
    for name in ["postgres", "redis-a", "kafka", "payments"] {
        let c = components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in stack.json: {components:?}"));
        assert!(c["proxy"].is_null(), "{c}");
    }
}

//! A small flash sale on the embedded stack, end to end: the report validates, the history
//! is written, the safe default strategy sells every seat once and passes.

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_flash_sale_sells_every_seat_once_and_writes_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = scenarios::run(common::cli(
        &["flash-sale", "-u", "150", "--seats", "40"],
        dir.path(),
    ))
    .await
    .expect("the run completes");
    let report = common::assert_valid_report(dir.path());
    assert_eq!(report, outcome.report);
    assert_eq!(report.run.scenario, "flash-sale");
    assert_eq!(report.run.strategy, "atomic");
    let ops = scenarios::history::read(&dir.path().join("history.jsonl")).unwrap();
    assert_eq!(
        ops.len() as u64,
        report.summary.requests,
        "one history line per request"
    );
    let holds = report
        .transactions
        .iter()
        .find(|t| t.name == "hold")
        .unwrap();
    assert!(
        holds.ok > 0 && holds.rejected > 0,
        "some buyers got seats, some did not: {holds:?}"
    );
    // Refusals (sold out, seat taken) are answers, not errors: a rush that sells out has
    // most holds rejected and still an error rate of 0.
    let s = &report.summary;
    assert_eq!(
        (s.errors, s.unknown, s.error_rate),
        (0, 0, 0.0),
        "no request of a healthy rush is an error: {s:?}"
    );
    assert!(
        s.rejected >= holds.rejected && s.rejected_rate > 0.0,
        "{s:?}"
    );
    assert_eq!(
        common::check(&report, "no-double-sale").counts["oversold"],
        0
    );
    let inventory = common::check(&report, "inventory-balance");
    assert!(inventory.passed);
    assert_eq!(
        inventory.counts["sold"], 40,
        "150 buyers wanting ~2 seats each sell out 40 seats"
    );
    assert!(report.verdict.passed, "{:#?}", report.verdict);
    assert_eq!(outcome.exit_code(), reports::exit_code::PASS);
}

#[test]
fn a_run_records_its_command_and_replay_runs_it_again_with_new_arguments_on_top() {
    let first = tempfile::tempdir().unwrap();
    let again = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = std::process::Command::new(exe)
        .args([
            "flash-sale",
            "-u",
            "40",
            "--seats",
            "30",
            "--seed",
            "7",
            "-q",
        ])
        .arg("--out")
        .arg(first.path())
        .status()
        .unwrap();
    assert!(status.success());
    let a = common::assert_valid_report(first.path());
    assert_eq!(
        a.run.parameters["command"],
        serde_json::json!([
            "flash-sale",
            "-u",
            "40",
            "--seats",
            "30",
            "--seed",
            "7",
            "-q"
        ])
    );
    // Replayed with one parameter changed on top: everything else comes back.
    let status = std::process::Command::new(exe)
        .arg("--replay")
        .arg(first.path())
        .args(["--seats", "31", "--out"])
        .arg(again.path())
        .status()
        .unwrap();
    assert!(status.success());
    let b = common::assert_valid_report(again.path());
    assert_eq!((b.run.seed, b.run.users), (7, 40));
    assert_eq!(b.run.scenario, "flash-sale");
    assert_eq!(b.run.parameters["seats"], 31);
    let missing = std::process::Command::new(exe)
        .args(["--replay", "/nonexistent/run"])
        .status()
        .unwrap();
    assert_eq!(missing.code(), Some(reports::exit_code::USAGE));
}

/// A crowd waits for the open on the sale's page: every user loads it once, the rush begins
/// only when every page is in, so the holds meet connections already open, and the page
/// loads are reported as `event`. With `--cold-open` the first request is the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crowd_loads_the_sales_page_before_the_open_unless_told_to_open_cold() {
    use scenarios::history::OpKind;
    for cold in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["flash-sale", "-u", "60", "--seats", "20"];
        if cold {
            args.push("--cold-open");
        }
        let outcome = scenarios::run(common::cli(&args, dir.path()))
            .await
            .expect("the run completes");
        assert_eq!(
            outcome.report.run.parameters["cold_open"],
            serde_json::json!(cold)
        );
        let ops = scenarios::history::read(&dir.path().join("history.jsonl")).unwrap();
        let pages: Vec<_> = ops.iter().filter(|o| o.op == OpKind::Event).collect();
        let first_hold = ops
            .iter()
            .filter(|o| o.op == OpKind::Hold)
            .map(|o| o.invoke_ms)
            .fold(f64::INFINITY, f64::min);
        assert!(first_hold.is_finite(), "the crowd rushed");
        if cold {
            assert!(pages.is_empty(), "a cold open loads no page: {pages:?}");
            continue;
        }
        let buyers: std::collections::BTreeSet<i64> = pages.iter().map(|o| o.user).collect();
        assert_eq!(
            (pages.len(), buyers.len()),
            (60, 60),
            "every user loads the page once"
        );
        assert!(
            pages.iter().all(|o| o.status == Some(200)),
            "every page loaded: {pages:?}"
        );
        let last_page = pages.iter().map(|o| o.complete_ms).fold(0.0, f64::max);
        assert!(
            last_page <= first_hold,
            "the first hold ({first_hold} ms) went before the last page was in ({last_page} ms)"
        );
        assert!(
            outcome
                .report
                .transactions
                .iter()
                .any(|t| t.name == "event" && t.count == 60),
            "the page loads are reported"
        );
    }
}

//! strategy-matrix through the real binary (it runs one child process per strategy): one
//! comparison row per strategy, the unsafe baseline's oversell shown but not failing the
//! matrix, the safe strategies' invariants judged.

use crate::common;

#[test]
fn the_strategy_matrix_compares_every_strategy_in_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_scenario"))
        .args([
            "strategy-matrix",
            "-u",
            "150",
            "--seats",
            "30",
            "-q",
            "--out",
        ])
        .arg(dir.path())
        .status()
        .unwrap();
    let report = common::assert_valid_report(dir.path());
    let table = report.comparison.as_ref().expect("a comparison table");
    assert_eq!(
        table.rows.len(),
        boxoffice::Strategy::ALL.len(),
        "one row per strategy the stack supports"
    );
    for (row, strategy) in table.rows.iter().zip(boxoffice::Strategy::ALL) {
        assert!(row.label.starts_with(strategy.as_str()), "{row:?}");
        // Read from the child's stack before it stopped.
        assert!(row.values["retries"].is_i64(), "{row:?}");
        if strategy.is_safe() {
            assert_eq!(row.values["oversold"], 0, "{row:?}");
        } else {
            assert!(row.label.ends_with("(unsafe baseline)"), "{row:?}");
        }
    }
    assert!(!report
        .verdict
        .outcomes
        .iter()
        .any(|o| o.name.starts_with("naive: ") && o.kind == reports::ThresholdKind::Invariant));
    assert_eq!(status.code(), Some(report.verdict.exit_code));
}

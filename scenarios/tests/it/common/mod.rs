//! Helpers shared by the attack tests. Each attack test lives in its own file, so its own
//! process: Goose allows one attack per process.

#![allow(dead_code)]

use std::path::Path;

/// Asserts that `dir/report.json` validates against the committed report schema and
/// returns the parsed report.
pub fn assert_valid_report(dir: &Path) -> reports::Report {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/schema/report.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json was written");
    let instance: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report.json breaks the schema: {errors:#?}"
    );
    for f in ["report.md", "report.html", "verdict.xml"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    reports::Report::from_json(&text).unwrap()
}

/// The command line of a quiet run into `dir`.
pub fn cli(args: &[&str], dir: &Path) -> scenarios::Cli {
    let mut all = vec!["scenario".to_owned()];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    all.extend([
        "-q".to_owned(),
        "--out".to_owned(),
        dir.display().to_string(),
        // The local stack's instances are this package's `scenario` binary.
        "--app-bin".to_owned(),
        env!("CARGO_BIN_EXE_scenario").to_owned(),
    ]);
    scenarios::Cli::parse_from_args(all).unwrap()
}

/// A check by name.
pub fn check<'a>(report: &'a reports::Report, name: &str) -> &'a reports::Check {
    report
        .correctness
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

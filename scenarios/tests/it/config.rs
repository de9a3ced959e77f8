//! `scenario --config` and `SCENARIO_*` through the real binary: the command line over the
//! environment over the file over the defaults, as `--print-config` reports it.

use std::process::Command;

fn print_config(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scenario"));
    cmd.args(args).arg("--print-config");
    // Only the variables this test sets.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SCENARIO_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("scenario runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .parse()
        .expect("--print-config writes TOML")
}

#[test]
fn the_environment_sits_between_the_command_line_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab.toml");
    std::fs::write(
        &lab,
        "scenario = \"coupon-rush\"\n[load]\nusers = 40\nseed = 7\n[stack]\nstrategy = \"pessimistic\"\n",
    )
    .unwrap();
    let lab = lab.to_str().unwrap();
    let effective = print_config(
        &["--config", lab, "-u", "5"],
        &[
            ("SCENARIO_USERS", "9"),
            ("SCENARIO_SEED", "11"),
            ("SCENARIO_NO_HISTORY", "true"),
            ("SCENARIO_P99", "hold=250ms"),
        ],
    );
    assert_eq!(effective["scenario"].as_str(), Some("coupon-rush"));
    assert_eq!(
        effective["load-test"]["users"].as_integer(),
        Some(5),
        "the command line wins"
    );
    assert_eq!(
        effective["lab"]["seed"].as_integer(),
        Some(11),
        "the environment beats the file"
    );
    assert_eq!(
        effective["lab"]["strategy"].as_str(),
        Some("pessimistic"),
        "the file beats the default"
    );
    assert_eq!(effective["lab"]["no-history"].as_bool(), Some(true));
    assert_eq!(
        effective["verdict"]["p99"].as_array().unwrap()[0].as_str(),
        Some("hold=250ms")
    );
}

#[test]
fn scenario_config_names_the_file_and_goose_options_read_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab.toml");
    std::fs::write(&lab, "[stack]\ninstances = 3\n").unwrap();
    let effective = print_config(
        &[],
        &[
            ("SCENARIO_CONFIG", lab.to_str().unwrap()),
            ("SCENARIO_RUN_TIME", "12s"),
        ],
    );
    assert_eq!(effective["lab"]["instances"].as_integer(), Some(3));
    assert_eq!(effective["load-test"]["run-time"].as_str(), Some("12s"));
}

#[test]
fn a_config_file_with_an_unknown_option_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab.toml");
    std::fs::write(&lab, "[load]\nuserz = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .args(["--config", lab.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lab.toml") && err.contains("userz"), "{err}");
}

//! The stacks other than embedded, seen from the command line: a deployed stack (`url=`)
//! driven through its Toxiproxy API, and the docker stack's message where there is no Docker.

use crate::common;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_stack_gets_its_faults_through_its_toxiproxy_api() {
    // A "deployed" stack: the local one, started here; the run only knows its URLs.
    let exe = env!("CARGO_BIN_EXE_scenario");
    let cli = scenarios::Cli::parse_from_args(["scenario", "--app-bin", exe]).unwrap();
    let mut options = scenarios::run::plan::stack_options(&cli, None);
    options.instances = 1;
    let stack = scenarios::stack::Stack::start(&scenarios::stack::StackSpec::Local, &options)
        .await
        .expect("the local stack starts");
    let api = stack.lab().expect("a lab").chaos_api();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("url={}", stack.base_url);
    let out = tokio::process::Command::new(exe)
        .args(["flash-sale", "--stack", &url, "--chaos-api", &api])
        .args(["--chaos", "payments:down@2s+3s", "-t", "9s"])
        .args(["--rate", "10", "-u", "20", "--seats", "3000", "-q", "--out"])
        .arg(dir.path())
        .output()
        .await
        .expect("the scenario binary runs");
    stack.stop().await;
    let report = common::assert_valid_report(dir.path());
    assert_ne!(
        out.status.code(),
        Some(reports::exit_code::INVARIANT_BROKEN),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.run.stack, "url");
    let fault = &report.failover.faults[0];
    assert_eq!(fault.target, "payments");
    assert_eq!(fault.kind, "down");
    // With the provider unreachable, payments fail: the window has errors, the baseline none.
    assert!(fault.errors_in_window > 0, "{fault:#?}");
    assert!(fault.first_error_s.is_some_and(|t| t >= fault.start_s));
    assert!(fault.recovered_within_slo_s.is_some(), "{fault:#?}");
    assert_eq!(fault.acknowledged_lost, 0);
    assert!(common::check(&report, "payments-balance").passed);
}

#[test]
fn without_docker_the_docker_stack_says_so_and_how_to_go_on() {
    // A daemon at a socket that does not exist is absent whatever runs on this machine.
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/no-docker.sock", dir.path().display());
    let stderr = refused_with(
        &["--stack", "docker"],
        &[("DOCKER_HOST", host.as_str())],
        reports::exit_code::RUN_ERROR,
    );
    assert!(stderr.contains("Docker is not available"), "{stderr}");
    assert!(stderr.contains(&host), "{stderr}");
    assert!(stderr.contains("--stack local"), "{stderr}");
}

#[test]
fn chaos_on_a_stack_without_targets_is_a_usage_error() {
    let stderr = refused(&["--chaos", "redis:kill@1s+1s"], reports::exit_code::USAGE);
    assert!(stderr.contains("--stack local"), "{stderr}");
}

/// Runs a flash sale with `args` that must stop with exit code `code`; returns its stderr.
fn refused(args: &[&str], code: i32) -> String {
    refused_with(args, &[], code)
}

/// [`refused`] with extra environment variables for the run.
fn refused_with(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .arg("flash-sale")
        .args(args)
        .args(["-q", "--out"])
        .arg(dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("the scenario binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

//! `scenario soak` on the local stack, CI's short version (two minutes; the documented long
//! run is 30): the instances' memory, descriptors, pool and tasks are sampled every 5 s from
//! their own /metrics, charted, and the verdict judges each instance's memory growth.

use std::process::Command;

use crate::common;

#[test]
fn a_short_soak_samples_every_instance_and_judges_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = Command::new(exe)
        .args(["soak", "--stack", "local", "-t", "120s"])
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir.path())
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    let resources = report.resources.as_ref().expect("a resources section");
    for instance in ["app-1", "app-2"] {
        for measure in ["rss_mib", "open_fds", "db_pool_connections", "tasks"] {
            let s = resources
                .series
                .iter()
                .find(|s| s.instance == instance && s.measure == measure)
                .unwrap_or_else(|| panic!("no {measure} of {instance}: {resources:?}"));
            assert!(s.points.len() >= 20, "{instance} {measure}: {:?}", s.points);
            assert!(s.points.iter().all(|p| p.1 > 0.0), "{instance} {measure}");
        }
        let outcome = report
            .verdict
            .outcomes
            .iter()
            .find(|o| o.name == format!("resident memory growth of {instance}"))
            .expect("the memory growth is judged");
        assert!(outcome.passed, "{outcome:?}");
    }
    assert_eq!(report.summary.errors + report.summary.unknown, 0);
    assert_eq!(status.code(), Some(0), "{:#?}", report.verdict);
    let html = std::fs::read_to_string(dir.path().join(reports::HTML_FILE)).unwrap();
    assert!(html.contains("Resources of the box office"));
    // The embedded stack cannot tell the box office's memory from the runner's.
    let refused = Command::new(exe).args(["soak", "-q"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(reports::exit_code::USAGE));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--stack local"));
}

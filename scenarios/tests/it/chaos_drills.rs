//! Flash sales on the full `local` stack (PostgreSQL, Redis + Sentinel, tansu, two box-office
//! instances behind the balancer) while a fault schedule runs: a Redis failover and a
//! PostgreSQL restart, once per safe strategy. Every invariant must hold, and the report's
//! failover section must carry real timings. Each run is a child `scenario` process (Goose
//! allows one attack per process); the strategies run one after the other.

use crate::common;

use std::path::Path;
use std::process::Command;

/// Runs one chaos flash sale and returns its exit code and report.
fn run(strategy: &str, schedule: &str, dir: &Path) -> (i32, reports::Report) {
    let exe = env!("CARGO_BIN_EXE_scenario");
    let status = Command::new(exe)
        .args(["flash-sale", "--stack", "local", "--strategy", strategy])
        .args(["--chaos", schedule, "-t", "16s", "--max-recovery", "12s"])
        .args(["--rate", "15", "-u", "30", "--seats", "5000"])
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir)
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir);
    (status.code().unwrap_or(-1), report)
}

/// What every drill must show, whatever the fault.
fn assert_invariants_and_timings(strategy: &str, code: i32, report: &reports::Report) {
    let broken: Vec<_> = report
        .correctness
        .checks
        .iter()
        .filter(|c| c.status() == reports::CheckStatus::Failed)
        .map(|c| format!("{}: {:?}", c.name, c.counts))
        .collect();
    assert!(
        broken.is_empty(),
        "{strategy}: invariants broken: {broken:#?}"
    );
    assert_ne!(code, reports::exit_code::INVARIANT_BROKEN, "{strategy}");
    assert!(report.correctness.checks.len() >= 6);
    let f = &report.failover;
    assert_eq!(f.note, None, "{strategy}: {:?}", f.note);
    assert_eq!(f.faults.len(), 1, "{strategy}");
    let fault = &f.faults[0];
    assert!(
        fault.start_s >= 2.5,
        "{strategy}: fault applied at {}",
        fault.start_s
    );
    assert!(fault.end_s > fault.start_s, "{strategy}: {fault:?}");
    assert!(
        fault.requests_in_window > 0,
        "{strategy}: no load in the window"
    );
    assert_eq!(
        fault.acknowledged_lost, 0,
        "{strategy}: acknowledged bookings lost"
    );
    assert!(
        fault.recovered_within_slo_s.is_some(),
        "{strategy}: never recovered: {fault:?}"
    );
    assert!(
        fault.noticed_s.is_some(),
        "{strategy}: readiness never flipped: {fault:?}"
    );
    let sold = common::check(report, "inventory-balance").counts["sold"];
    assert!(sold > 0, "{strategy}: nothing sold");
}

#[test]
fn a_flash_sale_keeps_every_invariant_through_a_redis_failover() {
    for strategy in ["atomic", "pessimistic", "fenced"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, report) = run(strategy, "redis:failover@3s+6s", dir.path());
        assert_invariants_and_timings(strategy, code, &report);
        assert_eq!(report.failover.faults[0].target, "redis");
    }
}

#[test]
fn a_flash_sale_keeps_every_invariant_through_a_postgres_restart() {
    for strategy in ["atomic", "pessimistic", "fenced"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, report) = run(strategy, "postgres:stop@3s+4s", dir.path());
        assert_invariants_and_timings(strategy, code, &report);
        let fault = &report.failover.faults[0];
        // Four seconds without a database cannot go unseen by clients.
        let first_error = fault.first_error_s.expect("clients saw errors");
        assert!(first_error >= fault.start_s, "{fault:?}");
        let back = fault
            .first_success_after_s
            .expect("a success after the errors");
        assert!(back > first_error, "{fault:?}");
        assert!(fault.errors_in_window > 0);
        assert!(fault.error_rate_window > fault.error_rate_baseline);
    }
}

#[test]
fn a_database_outage_fires_the_dependency_alert_and_the_report_records_when() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    // The rule waits a minute (`for: 1m`) before it fires: the outage must outlast it.
    let status = Command::new(exe)
        .args([
            "flash-sale",
            "--stack",
            "local",
            "--chaos",
            "postgres:down@3s+70s",
        ])
        .args(["-t", "78s", "--rate", "5", "-u", "10", "--seats", "5000"])
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir.path())
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    assert_ne!(status.code(), Some(reports::exit_code::INVARIANT_BROKEN));
    let fault = &report.failover.faults[0];
    let alert = fault
        .alerts
        .iter()
        .find(|a| a.name == "BoxOfficeDependencyDown")
        .unwrap_or_else(|| panic!("the dependency alert never fired: {fault:#?}"));
    // Pending for a minute after the first failed readiness check, so not before then.
    assert!(
        alert.fired_at_s >= fault.start_s + 60.0 && alert.fired_at_s <= fault.end_s + 5.0,
        "fired at {} for a fault {}..{}",
        alert.fired_at_s,
        fault.start_s,
        fault.end_s
    );
    // Readiness noticed long before the alert did.
    assert!(fault.noticed_s.expect("noticed") < alert.fired_at_s);
    assert_eq!(fault.acknowledged_lost, 0);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("BoxOfficeDependencyDown"));
}

#[test]
fn a_flash_sale_survives_a_crashed_instance_behind_the_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run("atomic", "app-1:kill@3s+4s", dir.path());
    assert_invariants_and_timings("atomic", code, &report);
    let fault = &report.failover.faults[0];
    assert_eq!(fault.target, "app-1");
    assert_eq!(fault.noticed_by.as_deref(), Some("readiness:app-1"));
    // The other instance serves while app-1 is down: successes inside the window.
    assert!(
        fault.requests_in_window > fault.errors_in_window,
        "{fault:#?}"
    );
}

#[test]
fn the_outbox_drains_into_the_ledger_after_a_kafka_outage_longer_than_the_producer_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // 12 s down: longer than the relay's message timeout (10 s), so its idempotent producer's
    // messages time out and the broker fences it; the relay must start a new producer.
    let (code, report) = run("atomic", "kafka:down@3s+12s", dir.path());
    assert_ne!(code, reports::exit_code::INVARIANT_BROKEN);
    let fault = &report.failover.faults[0];
    assert_eq!(fault.target, "kafka");
    assert_eq!(fault.acknowledged_lost, 0);
    // Clients do not wait for Kafka: the outbox decouples them from the broker.
    assert_eq!(fault.errors_in_window, 0, "{fault:#?}");
    let ledger = common::check(&report, "ledger-matches-bookings");
    assert!(ledger.passed, "{ledger:?}");
    assert!(ledger.counts["ledger_bookings"] > 0);
    assert!(common::check(&report, "cache-matches-database").passed);
}

#[test]
fn a_paused_instance_is_noticed_and_routed_around_and_the_sale_stays_correct() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = run("pessimistic", "app-1:pause@3s+4s", dir.path());
    assert_invariants_and_timings("pessimistic", code, &report);
    // Once seen 274 of 275: the pause moved the partition to another member, which resumed at
    // a committed offset inside a record batch, and tansu never delivered the rest of that
    // batch; the ledger now applies such events from the outbox (system/src/reconcile.rs).
    let ledger = common::check(&report, "ledger-matches-bookings");
    assert!(ledger.passed, "{ledger:?}");
    assert!(ledger.counts["ledger_bookings"] > 0, "{ledger:?}");
    assert_eq!(
        ledger.counts["ledger_bookings"], ledger.counts["database_bookings"],
        "{ledger:?}"
    );
    eprintln!(
        "app-pause drill: ledger {} / database {} bookings (waited {} ms)",
        ledger.counts["ledger_bookings"],
        ledger.counts["database_bookings"],
        ledger.counts["waited_ms"]
    );
    let fault = &report.failover.faults[0];
    assert_eq!(fault.noticed_by.as_deref(), Some("readiness:app-1"));
    // Requests caught on the frozen instance wait for it: the window's p99 shows the pause.
    assert!(fault.p99_window_ms > fault.p99_baseline_ms, "{fault:#?}");
}

/// The pause drill twenty times in one sale: each instance in turn frozen for 4 s (its
/// consumer stays in the group) or 7 s (past the 6 s session timeout: its partitions move to
/// the other instance and come back), 2 s apart. Once, a single pause lost a ledger effect;
/// the ledger must still equal the database after all twenty.
#[test]
fn twenty_instance_pauses_in_a_row_lose_no_ledger_effect() {
    let mut schedule = Vec::new();
    let mut at = 3;
    for i in 0..20 {
        let length = if i % 4 < 2 { 4 } else { 7 };
        schedule.push(format!("app-{}:pause@{at}s+{length}s", 1 + i % 2));
        at += length + 2;
    }
    let run_s = at + 8;
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let started = std::time::Instant::now();
    let status = Command::new(exe)
        .args(["flash-sale", "--stack", "local", "--strategy", "atomic"])
        .args(["--chaos", &schedule.join(",")])
        .args(["-t", &format!("{run_s}s"), "--rate", "10", "-u", "30"])
        .args(["--seats", "20000", "--app-bin", exe, "-q", "--out"])
        .arg(dir.path())
        .status()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    let took = started.elapsed();
    assert_ne!(status.code(), Some(reports::exit_code::INVARIANT_BROKEN));
    assert_eq!(report.failover.faults.len(), 20, "every pause ran");
    let broken: Vec<_> = report
        .correctness
        .checks
        .iter()
        .filter(|c| c.status() == reports::CheckStatus::Failed)
        .map(|c| format!("{}: {:?} {:?}", c.name, c.counts, c.examples))
        .collect();
    assert!(broken.is_empty(), "invariants broken: {broken:#?}");
    let ledger = common::check(&report, "ledger-matches-bookings");
    assert!(ledger.passed, "{ledger:?}");
    assert!(ledger.counts["ledger_bookings"] > 100, "{ledger:?}");
    for fault in &report.failover.faults {
        assert_eq!(fault.acknowledged_lost, 0, "{fault:?}");
    }
    eprintln!(
        "twenty pauses: ledger {} / database {} bookings in {:.0} s",
        ledger.counts["ledger_bookings"],
        ledger.counts["database_bookings"],
        took.as_secs_f64()
    );
}

//! Latency you can trust, on the local stack (one box-office instance, so nothing routes
//! around it): a 1 s SIGSTOP under an open-model rate must show in the corrected latency of
//! every arrival that was due during it, and in a steady step the runner's latency must agree
//! with the box office's own server-side histogram, within the network hop.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use scenarios::history::{self, Op, OpKind};

use crate::common;

/// Open-model arrivals per second in both tests.
const RATE: f64 = 20.0;
/// Users of the stall run: fewer than the arrivals due during the stall, so that most of
/// those find every user stuck.
const USERS: usize = 5;

fn ops(dir: &Path) -> Vec<Op> {
    history::read(&dir.join(history::HISTORY_FILE)).expect("the history was written")
}

#[test]
fn a_one_second_stall_shows_in_the_corrected_latency_of_every_arrival_due_during_it() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_scenario");
    let out = Command::new(exe)
        .args(["flash-sale", "--stack", "local", "--instances", "1"])
        .args(["--chaos", "app-1:pause@3s+1s", "-t", "8s"])
        .args(["--rate", &RATE.to_string(), "-u", &USERS.to_string()])
        .args(["--seats", "5000"])
        .args(["--app-bin", exe, "-q", "--out"])
        .arg(dir.path())
        .output()
        .expect("the scenario binary runs");
    let report = common::assert_valid_report(dir.path());
    assert_ne!(
        out.status.code(),
        Some(reports::exit_code::INVARIANT_BROKEN),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fault = &report.failover.faults[0];
    assert_eq!(
        (fault.target.as_str(), fault.kind.as_str()),
        ("app-1", "pause")
    );
    let (start_ms, end_ms) = (fault.start_s * 1000.0, fault.end_s * 1000.0);
    assert!(
        (900.0..1500.0).contains(&(end_ms - start_ms)),
        "a 1 s pause: {fault:#?}"
    );

    // Each arrival's journey begins with a hold whose intended start is when it was due.
    let history = ops(dir.path());
    let due_in_stall: Vec<&Op> = history
        .iter()
        .filter(|o| o.op == OpKind::Hold)
        .filter(|o| o.intended_ms.is_some_and(|t| t >= start_ms && t < end_ms))
        .collect();
    let expected = RATE * (end_ms - start_ms) / 1000.0;
    assert!(
        (due_in_stall.len() as f64 - expected).abs() <= 2.0,
        "one corrected sample per arrival due during the stall: {} samples, {expected:.1} arrivals due",
        due_in_stall.len()
    );
    // None of them could be answered before the box office resumed, and the corrected
    // latency says so, however late its user could begin it.
    for o in &due_in_stall {
        let intended = o.intended_ms.unwrap();
        assert!(
            o.complete_ms >= end_ms - 50.0,
            "answered during the stall? {o:?}"
        );
        let corrected = o.complete_ms - intended;
        assert!(
            corrected >= end_ms - intended - 50.0,
            "the corrected latency covers the stall: {o:?}"
        );
    }
    let hold = report
        .transactions
        .iter()
        .find(|t| t.name == "hold")
        .expect("holds were made");
    let corrected = hold.corrected_latency.expect("an open-model run corrects");
    assert!(
        corrected.p99 >= 900.0,
        "the corrected p99 shows the 1 s stall: {corrected:?}"
    );
    // The whole journey is corrected, not only its first request.
    assert!(history
        .iter()
        .filter(|o| matches!(o.op, OpKind::Book | OpKind::Pay))
        .all(|o| o.intended_ms.is_some_and(|t| t <= o.invoke_ms + 1e-6)));
    // Every arrival due is accounted for: begun (late ones counted) or dropped.
    let arrivals = report
        .run
        .load
        .arrivals
        .expect("an open-model run counts arrivals");
    assert_eq!(
        arrivals.due,
        arrivals.started + arrivals.dropped,
        "{arrivals:?}"
    );
    // A user idle when the stall began takes its next arrival on time and is stuck with it;
    // every other arrival due during the stall found no free user and began late, except
    // those due within `LATE` of its end. (With 10 users, half of the 20 arrivals due began
    // on time, which sat exactly on the old bound, `expected / 2`: the test failed whenever
    // the measured stall was a hair over 1 s.)
    assert!(
        arrivals.late as f64
            >= expected - USERS as f64 - RATE * scenarios::context::LATE.as_secs_f64() - 1.0,
        "arrivals due during the stall began late: {arrivals:?}"
    );
    assert_eq!(report.run.load.users_started, USERS as u64);
    assert_eq!(report.run.load.connections, "per-user");
}

/// Cumulative counts of the box office's `POST /v1/rounds/{id}/holds` latency histogram, by
/// upper bound in seconds.
async fn hold_buckets(instance: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{instance}/metrics"))
        .await
        .expect("the instance answers /metrics")
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("boxoffice_http_request_duration_seconds_bucket{"))
        .filter(|l| l.contains("method=\"POST\"") && l.contains("/holds\""))
        .filter(|l| l.contains("route=\"/v1/rounds/"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let value: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, value))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_steady_step_the_runners_latency_agrees_with_the_servers_histogram() {
    // A "deployed" stack started here, so the test can read its instance's /metrics around
    // the run.
    let exe = env!("CARGO_BIN_EXE_scenario");
    let cli = scenarios::Cli::parse_from_args(["scenario", "--app-bin", exe]).unwrap();
    let mut options = scenarios::run::plan::stack_options(&cli, None);
    options.instances = 1;
    let stack = scenarios::stack::Stack::start(&scenarios::stack::StackSpec::Local, &options)
        .await
        .expect("the local stack starts");
    let instance = stack.instance_urls()[0].1.clone();
    let before = hold_buckets(&instance).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("url={}", stack.base_url);
    let out = tokio::process::Command::new(exe)
        .args(["flash-sale", "--stack", &url, "-t", "6s"])
        .args(["--rate", &RATE.to_string(), "-u", "40", "--seats", "5000"])
        .args(["-q", "--out"])
        .arg(dir.path())
        .output()
        .await
        .expect("the scenario binary runs");
    let after = hold_buckets(&instance).await;
    stack.stop().await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let holds: Vec<f64> = ops(dir.path())
        .iter()
        .filter(|o| o.op == OpKind::Hold)
        .map(Op::latency_ms)
        .collect();
    let served =
        |le: &str| after.get(le).copied().unwrap_or(0.0) - before.get(le).copied().unwrap_or(0.0);
    assert_eq!(
        served("+Inf") as usize,
        holds.len(),
        "the server saw every hold the runner sent, and no other"
    );
    let n = holds.len() as f64;
    // The client's interval around a request contains the server's: per request, the runner
    // measures at least what the server does, so at every bound its share of faster requests
    // is at most the server's. And the difference is the hop (loopback, the balancer's
    // splice, both processes' scheduling on a busy machine): shifted by it, the runner's
    // distribution covers the server's but for a few requests.
    const HOP_MS: f64 = 100.0;
    assert!(n >= 60.0, "a steady step of {n} holds");
    let mut rows = Vec::new();
    for (le, _) in after.iter().filter(|(le, _)| le.as_str() != "+Inf") {
        let bound_ms: f64 = le.parse::<f64>().unwrap() * 1000.0;
        let server = served(le) / n;
        let runner = holds.iter().filter(|&&l| l <= bound_ms).count() as f64 / n;
        let runner_shifted = holds.iter().filter(|&&l| l <= bound_ms + HOP_MS).count() as f64 / n;
        rows.push(format!(
            "<= {bound_ms} ms: server {server:.3}, runner {runner:.3}, runner +{HOP_MS} ms {runner_shifted:.3}"
        ));
        assert!(runner <= server + 1e-9, "{rows:#?}");
        assert!(runner_shifted + 0.05 >= server, "{rows:#?}");
    }
    eprintln!("{}", rows.join("\n"));
}

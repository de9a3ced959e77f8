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
    // The deployed stack's own Prometheus: the project's rules, plus one that fires as soon as
    // the runner reports a fault, scraping the runner's metrics (`--metrics-listen`). The run
    // is told where it is (`--prometheus-url`) and times the alerts there. Like a deployed
    // one, it is already scraping when the run begins (`start` waits for each target's first
    // scrape; the runner's is down until the run serves its metrics).
    // Below the ephemeral range: it is chosen before Prometheus starts and bound later by the
    // run, and in between no outgoing connection of the parallel tests may be given it
    // (`compose::lasting_port`).
    let metrics = format!("127.0.0.1:{}", compose::lasting_port().unwrap());
    let rules = tempfile::tempdir().unwrap();
    let fault_rule = rules.path().join("lab-fault.yml");
    std::fs::write(
        &fault_rule,
        "groups:\n  - name: lab\n    rules:\n      - alert: LabFaultInForce\n        \
         expr: max(lab_fault_active{job=\"scenario\"}) > 0\n",
    )
    .unwrap();
    let mut rule_files = scenarios::run::provision::alert_rule_files();
    rule_files.push(fault_rule);
    let prometheus = compose::LocalPrometheus::start(&compose::PrometheusOptions {
        targets: vec![compose::ScrapeTarget::new("scenario", metrics.clone())],
        rule_files,
        ..Default::default()
    })
    .await
    .expect("Prometheus (apt-get install -y prometheus)");
    let pushgateway = Pushgateway::start();
    let out = tokio::process::Command::new(exe)
        .args(["flash-sale", "--stack", &url, "--chaos-api", &api])
        .args(["--chaos", "payments:down@2s+3s", "-t", "9s"])
        .args(["--metrics-listen", &metrics])
        .args(["--prometheus-url", &prometheus.url()])
        .args(["--pushgateway-url", &pushgateway.url])
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

    // Prometheus sampled the fault: the runner's gauge at 1 (a Prometheus that had not begun
    // scraping when the 3 s fault began held no such sample, and no alert could fire).
    let sampled = prometheus
        .query("max_over_time(lab_fault_active{job=\"scenario\",target=\"payments\"}[5m])")
        .await
        .unwrap();
    assert_eq!(
        sampled["result"][0]["value"][1],
        "1",
        "{sampled}\n{}",
        prometheus.log_tail(20)
    );
    // --prometheus-url: the alert that Prometheus fired is this fault's, timed on the run's
    // clock after the fault began (scrape and evaluation every second).
    let fired: Vec<&str> = fault.alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(fired, vec!["LabFaultInForce"], "{fault:#?}");
    let at = fault.alerts[0].fired_at_s;
    assert!(
        at >= fault.start_s && at <= fault.start_s + 6.0,
        "fired at {at} s for a fault from {} s",
        fault.start_s
    );
    // --pushgateway-url: the final lab_* metrics, grouped as job="scenario",
    // instance="flash-sale"; the fault is over (0) and the transactions are counted.
    let pushed = reqwest::get(format!("{}/metrics", pushgateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        pushed.contains(
            r#"lab_fault_active{action="down",instance="flash-sale",job="scenario",target="payments"} 0"#
        ),
        "{pushed}"
    );
    let transactions: f64 = pushed
        .lines()
        .filter(|l| {
            l.starts_with("lab_transactions_total{")
                && l.contains(r#"instance="flash-sale""#)
                && l.contains(r#"job="scenario""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(transactions > 0.0, "{pushed}");
}

/// Debian's `prometheus-pushgateway` on a free loopback port, killed on drop.
struct Pushgateway {
    child: std::process::Child,
    url: String,
}

impl Pushgateway {
    fn start() -> Self {
        let port = compose::free_port().unwrap();
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway (apt-get install -y prometheus-pushgateway)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the Pushgateway did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Pushgateway { child, url }
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

//! strategy-matrix: `flash-sale` once per concurrency strategy, each in a child process of
//! the `scenario` binary (Goose allows one attack per process), then one comparison table —
//! throughput, hold latency, conflicts, oversold seats and verdict per strategy.
//!
//! The child binary is `$SCENARIO_EXE` when set (tests point it at the built binary), else
//! this process's own executable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::json;

use crate::catalog::ScenarioName;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::runner::{default_out_dir, Outcome};

fn child_exe() -> Result<PathBuf> {
    match std::env::var_os("SCENARIO_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().map_err(|e| Error::io("finding the scenario binary", e)),
    }
}

/// The command line of one child run.
pub fn child_args(cli: &Cli, strategy: boxoffice::Strategy, out: &std::path::Path) -> Vec<String> {
    let d = ScenarioName::StrategyMatrix.defaults();
    let mut args = vec![
        "flash-sale".to_owned(),
        "--strategy".into(),
        strategy.as_str().into(),
        "--seed".into(),
        cli.seed.to_string(),
        "-u".into(),
        cli.goose.users.unwrap_or(d.users).to_string(),
        "--seats".into(),
        cli.seats.unwrap_or(d.seats).to_string(),
        "--out".into(),
        out.display().to_string(),
        "-q".into(),
    ];
    match &cli.stack {
        crate::stack::StackSpec::Url(u) => args.extend(["--stack".into(), format!("url={u}")]),
        other => args.extend(["--stack".into(), other.name().into()]),
    }
    if let Some(r) = cli.rate {
        args.extend(["--rate".into(), r.to_string()]);
    }
    if let Some(n) = cli.db_max_connections {
        args.extend(["--db-max-connections".into(), n.to_string()]);
    }
    // The same faults for every strategy: how each one holds up under a failover is the
    // point of comparing them.
    if let Some(c) = &cli.chaos {
        args.extend(["--chaos".into(), c.clone()]);
    }
    if let Some(m) = cli.max_recovery {
        args.extend(["--max-recovery".into(), format!("{m}ms")]);
    }
    if let Some(t) = &cli.goose.run_time {
        args.extend(["-t".into(), t.clone()]);
    }
    args.extend(["--instances".into(), cli.instances.to_string()]);
    if cli.standby {
        args.push("--standby".into());
    }
    if let Some(p) = &cli.app_bin {
        args.extend(["--app-bin".into(), p.display().to_string()]);
    }
    for l in &cli.p99 {
        args.extend([
            "--p99".into(),
            format!("{}={}ms", l.transaction, l.limit_ms),
        ]);
    }
    args
}

/// Runs the matrix.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let dir = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(ScenarioName::StrategyMatrix.as_str()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let strategies = if cli.strategies.is_empty() {
        boxoffice::Strategy::ALL.to_vec()
    } else {
        cli.strategies.clone()
    };
    let exe = child_exe()?;
    let started_at = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    let mut children = Vec::new();
    for s in &strategies {
        let out = dir.join(s.as_str());
        if !cli.quiet() {
            eprintln!("strategy-matrix: running flash-sale with {s}…");
        }
        let status = tokio::process::Command::new(&exe)
            .args(child_args(&cli, *s, &out))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(|e| Error::io(format!("running {}", exe.display()), e))?;
        let text = std::fs::read_to_string(out.join(reports::JSON_FILE))
            .map_err(|e| Error::io(format!("reading the {s} report (child exit {status})"), e))?;
        let child = reports::Report::from_json(&text)
            .map_err(|e| Error::api(format!("parsing the {s} report"), e))?;
        rows.push(row(*s, &child));
        for o in &child.verdict.outcomes {
            if o.kind == reports::ThresholdKind::Invariant && !s.is_safe() {
                continue; // the unsafe baseline is expected to break them; the table shows how much
            }
            let mut o = o.clone();
            o.name = format!("{s}: {}", o.name);
            outcomes.push(o);
        }
        children.push(child);
    }
    let duration_s = t0.elapsed().as_secs_f64();
    let first = children.first().cloned().unwrap_or_default();
    let mut run = first.run.clone();
    run.id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    run.scenario = ScenarioName::StrategyMatrix.as_str().into();
    run.description = ScenarioName::StrategyMatrix.description().into();
    run.strategy = strategies
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    run.started_at = started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    run.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    run.duration_s = duration_s;
    let mut report = reports::Report::new(run);
    let mut transactions = Vec::new();
    for (s, c) in strategies.iter().zip(&children) {
        for t in &c.transactions {
            let mut t = t.clone();
            t.name = format!("{s}/{}", t.name);
            transactions.push(t);
        }
    }
    report.summary = reports::Summary::from_transactions(
        &transactions,
        children.iter().map(|c| c.run.duration_s).sum(),
    );
    report.transactions = transactions;
    report.timeline = reports::Timeline {
        interval_s: 1.0,
        points: Vec::new(),
    };
    report.correctness = reports::Correctness {
        checks: strategies
            .iter()
            .zip(&children)
            .flat_map(|(s, c)| {
                c.correctness.checks.iter().map(move |k| {
                    let mut k = k.clone();
                    k.name = format!("{s}: {}", k.name);
                    k
                })
            })
            .collect(),
    };
    report.failover = reports::Failover::no_faults();
    report.comparison = Some(reports::Comparison {
        title: format!(
            "Concurrency strategies under a {}-user rush for {} seats",
            cli.goose
                .users
                .unwrap_or(ScenarioName::StrategyMatrix.defaults().users),
            cli.seats
                .unwrap_or(ScenarioName::StrategyMatrix.defaults().seats)
        ),
        columns: [
            "req/s",
            "hold p50 ms",
            "hold p95 ms",
            "hold p99 ms",
            "holds ok",
            "conflicts",
            "confirmed",
            "oversold",
            "verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    report.artifacts = strategies
        .iter()
        .map(|s| reports::Artifact {
            name: format!("{s} run"),
            path: format!("{s}/{}", reports::HTML_FILE),
        })
        .collect();
    report.verdict = reports::Verdict::from_outcomes(outcomes);
    let written =
        reports::write_all(&report, &dir).map_err(|e| Error::io("writing the matrix report", e))?;
    Ok(Outcome {
        report,
        dir,
        written,
    })
}

fn row(s: boxoffice::Strategy, c: &reports::Report) -> reports::ComparisonRow {
    let hold = c.transactions.iter().find(|t| t.name == "hold");
    let count = |name: &str, key: &str| {
        c.correctness
            .checks
            .iter()
            .find(|k| k.name == name)
            .and_then(|k| k.counts.get(key).copied())
    };
    let mut values = BTreeMap::new();
    values.insert(
        "req/s".to_owned(),
        json!((c.summary.throughput_rps * 10.0).round() / 10.0),
    );
    values.insert("hold p50 ms".to_owned(), json!(hold.map(|h| h.latency.p50)));
    values.insert("hold p95 ms".to_owned(), json!(hold.map(|h| h.latency.p95)));
    values.insert("hold p99 ms".to_owned(), json!(hold.map(|h| h.latency.p99)));
    values.insert("holds ok".to_owned(), json!(hold.map(|h| h.ok)));
    values.insert("conflicts".to_owned(), json!(hold.map(|h| h.failed)));
    values.insert(
        "confirmed".to_owned(),
        json!(count("no-unexpected-sales", "final_confirmed")),
    );
    values.insert(
        "oversold".to_owned(),
        json!(count("no-double-sale", "oversold")),
    );
    values.insert(
        "verdict".to_owned(),
        json!(reports::exit_code::describe(c.verdict.exit_code)),
    );
    reports::ComparisonRow {
        label: if s.is_safe() {
            s.as_str().to_owned()
        } else {
            format!("{s} (unsafe baseline)")
        },
        values,
        passed: c.verdict.passed,
    }
}

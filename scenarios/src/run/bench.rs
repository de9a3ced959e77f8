//! bench: what the runner itself costs. One box office (the chosen stack, started once in
//! this process), then loads on `GET /health/live`, one after the other: `--pairs` pairs of
//! Goose with history recording and Goose without (each a `probe` child process, as Goose
//! allows one attack per process), the order alternating from pair to pair so that neither
//! leg always runs on a warmer (or more tired) machine, then wrk (`wrk -t1 -c<users>
//! -d<secs>s`) when it is installed. The overhead is the median of the pairs'; the verdict
//! fails (exit 3) when it is more than 10% of throughput.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::json;

use crate::catalog::ScenarioName;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::stack::Stack;

use super::child;
use super::plan::{default_out_dir, stack_options};
use super::report::Outcome;

/// Most throughput history recording may cost, as a fraction.
pub const MAX_HISTORY_OVERHEAD: f64 = 0.10;

/// Parses `Requests/sec:` from wrk's output.
pub fn parse_wrk_rps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

async fn probe(
    cli: &Cli,
    base: &str,
    out: &Path,
    history: bool,
    users: usize,
    secs: usize,
) -> Result<reports::Report> {
    let mut args: Vec<String> = [
        "probe",
        "--stack",
        &format!("url={base}"),
        "-u",
        &users.to_string(),
        "-t",
        &secs.to_string(),
        "--admin-email",
        &cli.admin_email,
        "--admin-password",
        &cli.admin_password,
    ]
    .map(String::from)
    .to_vec();
    if !history {
        args.push("--no-history".into());
    }
    child::run(&args, out).await
}

async fn wrk(base: &str, users: usize, secs: usize) -> Option<f64> {
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{users}"),
            &format!("-d{secs}s"),
            &format!("{base}/health/live"),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    parse_wrk_rps(&String::from_utf8_lossy(&out.stdout))
}

/// Runs the benchmark.
pub async fn run(cli: &Cli) -> Result<Outcome> {
    let d = ScenarioName::Bench.defaults();
    let users = cli.goose.users.unwrap_or(d.users);
    let secs: usize = cli
        .goose
        .run_time
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(d.run_time_s.unwrap_or(5));
    let dir = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(ScenarioName::Bench.as_str()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let stack = Stack::start(&cli.stack, &stack_options(cli, None)).await?;
    let started_at = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let base = stack.base_url.clone();
    let pairs = cli.pairs.max(1) as usize;
    let result = async {
        let mut legs = Vec::new();
        for i in 0..pairs {
            // The first pair keeps the old directory names; later ones are numbered.
            let name = |leg: &str| match i {
                0 => dir.join(format!("history-{leg}")),
                _ => dir.join(format!("history-{leg}-{}", i + 1)),
            };
            let (on, off) = if i % 2 == 0 {
                let on = probe(cli, &base, &name("on"), true, users, secs).await?;
                (
                    on,
                    probe(cli, &base, &name("off"), false, users, secs).await?,
                )
            } else {
                let off = probe(cli, &base, &name("off"), false, users, secs).await?;
                (
                    probe(cli, &base, &name("on"), true, users, secs).await?,
                    off,
                )
            };
            legs.push((on, off));
        }
        let wrk = wrk(&base, users, secs).await;
        Ok::<_, Error>((legs, wrk))
    }
    .await;
    stack.stop().await;
    let (legs, wrk_rps) = result?;

    let mut pairs: Vec<(f64, reports::Report, reports::Report)> = legs
        .into_iter()
        .map(|(on, off)| {
            let (l_on, l_off) = live_stats(&on, &off);
            (overhead_of(&l_on, &l_off), on, off)
        })
        .collect();
    let overheads: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    // The pair with the median overhead speaks for the run (the upper median of an even count).
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (overhead, on, off) = pairs.swap_remove(pairs.len() / 2);
    let (l_on, l_off) = live_stats(&on, &off);
    let rows = rows(&l_on, &l_off, wrk_rps, overhead);

    let mut run = on.run.clone();
    run.id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    run.scenario = ScenarioName::Bench.as_str().into();
    run.description = ScenarioName::Bench.description().into();
    run.stack = cli.stack.name().into();
    run.started_at = started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    run.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    run.duration_s = t0.elapsed().as_secs_f64();
    run.parameters
        .insert("history_overhead".into(), json!(overhead));
    // Every pair's, in the order run (odd pairs ran "off" first).
    run.parameters
        .insert("history_overheads".into(), json!(overheads));
    run.parameters.insert("wrk_rps".into(), json!(wrk_rps));
    let mut report = reports::Report::new(run);
    report.transactions = vec![
        reports::TransactionStats {
            name: "live (history on)".into(),
            ..l_on.clone()
        },
        reports::TransactionStats {
            name: "live (history off)".into(),
            ..l_off.clone()
        },
    ];
    report.summary = reports::Summary::from_transactions(
        &report.transactions,
        on.run.duration_s + off.run.duration_s,
    );
    report.timeline = on.timeline.clone();
    report.failover = reports::Failover::no_faults();
    report.comparison = Some(reports::Comparison {
        title: format!("Runner cost on GET /health/live: {users} connections, {secs} s each, the median of {} on/off pairs", overheads.len()),
        columns: vec!["req/s".into(), "p50 ms".into(), "p99 ms".into()],
        rows,
        reading: Some(format!(
            "History recording cost {:.1}% of throughput, the median of {} pairs run in alternating order ({}); the rows show the median pair.",
            overhead * 100.0,
            overheads.len(),
            overheads
                .iter()
                .map(|o| format!("{:.1}%", o * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    });
    report.verdict = reports::Verdict::from_outcomes(vec![reports::ThresholdOutcome::new(
        "history recording overhead",
        reports::ThresholdKind::Throughput,
        format!("<= {:.0}% of throughput", MAX_HISTORY_OVERHEAD * 100.0),
        format!(
            "{:.1}% ({:.0} vs {:.0} req/s)",
            overhead * 100.0,
            l_on.throughput_rps,
            l_off.throughput_rps
        ),
        overhead <= MAX_HISTORY_OVERHEAD,
    )]);
    report.artifacts = vec![
        reports::Artifact {
            name: "history-on probe".into(),
            path: format!("history-on/{}", reports::HTML_FILE),
        },
        reports::Artifact {
            name: "history-off probe".into(),
            path: format!("history-off/{}", reports::HTML_FILE),
        },
    ];
    Outcome::write(report, dir)
}

/// What history costs in one pair: 1 − on ÷ off (0 when the off leg moved nothing).
fn overhead_of(on: &reports::TransactionStats, off: &reports::TransactionStats) -> f64 {
    if off.throughput_rps > 0.0 {
        1.0 - on.throughput_rps / off.throughput_rps
    } else {
        0.0
    }
}

/// The `live` transaction of each leg; the history-off leg's throughput comes from the
/// request counter (no history, no aggregates).
fn live_stats(
    on: &reports::Report,
    off: &reports::Report,
) -> (reports::TransactionStats, reports::TransactionStats) {
    let live = |r: &reports::Report| {
        r.transactions
            .iter()
            .find(|t| t.name == "live")
            .cloned()
            .unwrap_or_default()
    };
    let (l_on, mut l_off) = (live(on), live(off));
    if l_off.count == 0 {
        // No history, no aggregates: throughput from the request counter.
        let counted = off
            .run
            .parameters
            .get("requests_counted")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        l_off.count = counted;
        l_off.ok = counted;
        l_off.throughput_rps = if off.run.duration_s > 0.0 {
            counted as f64 / off.run.duration_s
        } else {
            0.0
        };
    }
    (l_on, l_off)
}

/// The comparison table's rows: each leg's throughput and latency.
fn rows(
    l_on: &reports::TransactionStats,
    l_off: &reports::TransactionStats,
    wrk_rps: Option<f64>,
    overhead: f64,
) -> Vec<reports::ComparisonRow> {
    let mut rows = Vec::new();
    let mut row =
        |label: &str, rps: Option<f64>, p: Option<&reports::Percentiles>, passed: bool| {
            let mut values = BTreeMap::new();
            values.insert("req/s".to_owned(), json!(rps.map(|r| r.round())));
            values.insert("p50 ms".to_owned(), json!(p.map(|p| p.p50)));
            values.insert("p99 ms".to_owned(), json!(p.map(|p| p.p99)));
            rows.push(reports::ComparisonRow {
                label: label.to_owned(),
                values,
                passed,
            });
        };
    row(
        "goose, history on",
        Some(l_on.throughput_rps),
        Some(&l_on.latency),
        overhead <= MAX_HISTORY_OVERHEAD,
    );
    row("goose, history off", Some(l_off.throughput_rps), None, true);
    row(
        if wrk_rps.is_some() {
            "wrk -t1"
        } else {
            "wrk (not installed)"
        },
        wrk_rps,
        None,
        true,
    );

    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_throughput_is_read_from_its_summary() {
        let out = "Running 5s test\n  1 threads and 64 connections\nRequests/sec: 141234.56\nTransfer/sec: 20MB\n";
        assert_eq!(parse_wrk_rps(out), Some(141234.56));
        assert_eq!(parse_wrk_rps("nothing"), None);
    }
}

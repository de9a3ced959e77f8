//! Stage 5: the report. The plan, the attack and the judgement become one
//! [`reports::Report`] — run information and parameters, statistics, timeline, correctness,
//! failover, the descriptor's extra table, the artifacts kept beside it — written as JSON,
//! Markdown, HTML and JUnit; and the console's summary of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::catalog::Table;
use crate::checker::FinalState;
use crate::error::{Error, Result};
use crate::history::{self, HistoryOutput};
use crate::stack::Stack;

use super::attack::Attacked;
use super::judge::{Judged, StateKeys};
use super::plan::{ramp_rates, Pacing, Plan};

/// File name of the final state the checker read.
pub const FINAL_STATE_FILE: &str = "final-state.json";

/// What a finished run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: reports::Report,
    /// Its directory.
    pub dir: PathBuf,
    /// The files written.
    pub written: reports::Written,
}

impl Outcome {
    /// The verdict's exit code.
    pub fn exit_code(&self) -> i32 {
        self.report.verdict.exit_code
    }
    /// Writes `report` into `dir` (JSON, Markdown, HTML, JUnit).
    pub fn write(report: reports::Report, dir: PathBuf) -> Result<Outcome> {
        let written = reports::write_all(&report, &dir)
            .map_err(|e| Error::io(format!("writing the report to {}", dir.display()), e))?;
        Ok(Outcome {
            report,
            dir,
            written,
        })
    }
}

/// Builds the report of an attack and writes it with its artifacts.
pub fn write(
    plan: &Plan,
    stack: &Stack,
    keys: &StateKeys,
    run: Attacked,
    judged: Judged,
    counters: std::collections::BTreeMap<String, f64>,
) -> Result<Outcome> {
    let mut report = reports::Report::new(run_info(plan, stack, keys, &run));
    report.counters = counters;
    report.summary = judged.summary;
    report.transactions = judged.transactions;
    report.timeline = run.out.timeline.clone();
    report.correctness = judged.correctness;
    report.failover = judged.failover;
    report.verdict = judged.verdict;
    report.resources = run.resources.clone().map(|series| reports::Resources {
        interval_s: super::observe::RESOURCE_INTERVAL.as_secs_f64(),
        series,
    });
    report.baseline = judged.baseline;
    report.comparison = match plan.attack.table {
        Some(Table::CapacityRamp) => Some(capacity_table(&run.out, plan, run.schedule_start_s)),
        None => None,
    };
    report.artifacts = artifacts(plan, stack, &judged.state, &run.out)?;
    Outcome::write(report, plan.dir.clone())
}

/// Who ran what, where, with which parameters.
fn run_info(plan: &Plan, stack: &Stack, keys: &StateKeys, run: &Attacked) -> reports::RunInfo {
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut p = BTreeMap::new();
    p.insert("seats".into(), json!(plan.seats));
    p.insert("rounds".into(), json!(keys.rounds()));
    p.insert("open_model".into(), json!(plan.pacing.is_open()));
    match &plan.pacing {
        Pacing::Open { rates, step } if plan.attack.table == Some(Table::CapacityRamp) => {
            p.insert("rates_per_s".into(), json!(rates));
            p.insert("step_secs".into(), json!(step.as_secs()));
            p.insert("growth".into(), json!(plan.cli.growth));
        }
        Pacing::Open { rates, .. } => {
            p.insert("rate_per_s".into(), json!(rates.first()));
        }
        _ => {}
    }
    if plan.pacing == Pacing::Together {
        // Whether the crowd had the sale's page (and its connections) open before the rush.
        p.insert("cold_open".into(), json!(plan.cli.cold_open));
    }
    p.insert("think_ms".into(), json!(plan.knobs.think_ms));
    if let Some(lab) = stack.lab() {
        // Whether a proxy hop (and its CPU) sat between the instances and every server.
        p.insert("wiring".into(), json!(lab.wiring().as_str()));
    }
    if !plan.cli.command.is_empty() {
        // What `--replay` runs again.
        p.insert("command".into(), json!(plan.cli.command));
    }
    // The limits the run was judged by, so `scenario check` judges it again by the same.
    p.insert(
        crate::recheck::THRESHOLDS_PARAMETER.into(),
        plan.thresholds.to_json(),
    );
    if let Some(reason) = &run.aborted {
        p.insert("aborted".into(), json!(reason));
    }
    p.insert("history".into(), json!(!plan.cli.no_history));
    // Counted on the request path whether or not history is recorded (the bench's
    // "history off" leg has no aggregates otherwise).
    p.insert("requests_counted".into(), json!(run.requests_counted));
    let load = reports::Load {
        users_started: run.users_active,
        connections: plan.connections().as_str().to_owned(),
        peak_connections: run.peak_connections,
        connection_limit: run.connection_limit.map(|n| n as u64),
        peak_open_files: run.peak_open_files,
        open_files_limit: run.open_files_limit,
        peak_rss_mib: super::provision::peak_rss_mib().map(f64::round),
        // Open model: arrivals a busy user began late (the corrected latency covers their
        // wait) and arrivals no user was free to begin before the load ended.
        arrivals: run.arrivals.map(|a| reports::ArrivalCounts {
            due: a.due as u64,
            started: a.started as u64,
            late: a.late as u64,
            dropped: a.dropped as u64,
        }),
    };
    reports::RunInfo {
        id: plan.run_id(),
        scenario: plan.name().to_owned(),
        description: plan.scenario.description.to_owned(),
        started_at: stamp(run.started_at),
        finished_at: stamp(run.finished_at),
        duration_s: run.duration_s,
        stack: plan.cli.stack.name().to_owned(),
        strategy: stack
            .strategy
            .map_or_else(|| "as deployed".to_owned(), |s| s.as_str().to_owned()),
        seed: plan.cli.seed,
        users: plan.users as u64,
        target_url: stack.base_url.clone(),
        load,
        parameters: p,
        host: reports::HostInfo::current(),
    }
}

/// Files kept beside the report: the local stack's components and logs, the final state,
/// the history.
fn artifacts(
    plan: &Plan,
    stack: &Stack,
    state: &FinalState,
    out: &HistoryOutput,
) -> Result<Vec<reports::Artifact>> {
    let dir = &plan.dir;
    let mut artifacts = Vec::new();
    if let Some(lab) = stack.lab() {
        let components = serde_json::to_string_pretty(&lab.components()).unwrap_or_default();
        if std::fs::write(dir.join("stack.json"), components).is_ok() {
            artifacts.push(reports::Artifact {
                name: "the local stack's components (pids, addresses, proxies)".into(),
                path: "stack.json".into(),
            });
        }
        for log in lab.keep_logs(dir) {
            if let Some(file) = log.file_name() {
                artifacts.push(reports::Artifact {
                    name: format!("log of {}", file.to_string_lossy().trim_end_matches(".log")),
                    path: file.to_string_lossy().into_owned(),
                });
            }
        }
    }
    write_state(dir, state)?;
    artifacts.push(reports::Artifact {
        name: "final state read by the checker".into(),
        path: FINAL_STATE_FILE.into(),
    });
    if out.path.is_some() {
        artifacts.push(reports::Artifact {
            name: "client history (one operation per line)".into(),
            path: history::HISTORY_FILE.into(),
        });
    }
    Ok(artifacts)
}

fn write_state(dir: &Path, state: &FinalState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(dir.join(FINAL_STATE_FILE), text)
        .map_err(|e| Error::io("writing the final state", e))
}

/// Capacity: one row per step of the ramp, from the timeline. The steps count from when
/// the schedule started (every user running); a step's row reads the timeline's buckets that
/// lie wholly inside it, so a bucket that straddles two steps counts for neither. (Counting
/// from the start rounded up to the next bucket charged every step with up to a second of the
/// next one, at twice its rate: at 400 arrivals/s a step whose seconds had a p99 of 19–42 ms
/// read 317 ms, the first second of 800/s.)
///
/// Goodput is what the service got done: requests answered with a result (ok, or a business
/// refusal such as sold out), not counting requests refused past capacity (503
/// `overloaded`), errors and unknown outcomes. The reading compares the steps after the peak
/// with the peak: a service that degrades gracefully keeps its goodput there and refuses the
/// excess; one that collapses loses goodput as the load grows.
/// The timeline's buckets (`[t, t + interval)`, `t` a multiple of `interval`) that lie wholly
/// inside `[start, end)`: from the first bucket start at or after `start` to the last bucket
/// end at or before `end`.
fn step_buckets(start: f64, end: f64, interval: f64) -> (f64, f64) {
    // A hair of slack: 8.000000001 s is the bucket at 8 s, not the next one.
    let from = ((start / interval) - 1e-6).ceil() * interval;
    let to = ((end / interval) + 1e-6).floor() * interval;
    if to - from >= interval {
        return (from, to);
    }
    // No whole bucket (a step shorter than two): the one nearest the step's start.
    let nearest = (start / interval).round() * interval;
    (nearest, nearest + interval)
}

fn capacity_table(
    out: &HistoryOutput,
    plan: &Plan,
    schedule_start_s: Option<f64>,
) -> reports::Comparison {
    let p99_limit_ms = plan.scenario.defaults.p99_all_ms;
    let rates = ramp_rates(&plan.cli);
    let step = plan.cli.step_secs.max(1) as f64;
    let interval = out.timeline.interval_s.max(1e-3);
    let start = schedule_start_s.unwrap_or(0.0).max(0.0);
    let mut rows = Vec::new();
    let mut goodputs = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        let (from, to) = step_buckets(
            start + i as f64 * step,
            start + (i + 1) as f64 * step,
            interval,
        );
        // The seconds the row covers (at least one bucket, for a step shorter than that).
        let span = (to - from).max(interval);
        let points: Vec<_> = out
            .timeline
            .points
            .iter()
            .filter(|p| p.t_s >= from && p.t_s < to)
            .collect();
        let requests: u64 = points.iter().map(|p| p.requests).sum();
        // Errors and unknown outcomes: what the service failed to answer.
        let errors: u64 = points.iter().map(|p| p.errors + p.unknown).sum();
        let refused: u64 = points.iter().map(|p| p.refused).sum();
        let goodput = requests.saturating_sub(errors + refused) as f64 / span;
        goodputs.push(goodput);
        let worst_p99 = points
            .iter()
            .flat_map(|p| p.per_transaction.values().map(|s| s.p99_ms))
            .fold(0.0_f64, f64::max);
        let mut values = BTreeMap::new();
        values.insert("arrivals/s".to_owned(), json!(rate));
        values.insert("requests/s".to_owned(), json!(requests as f64 / span));
        values.insert("goodput/s".to_owned(), json!(goodput));
        values.insert("refused".to_owned(), json!(refused));
        values.insert("errors".to_owned(), json!(errors));
        values.insert("worst p99 (ms)".to_owned(), json!(worst_p99));
        rows.push(reports::ComparisonRow {
            label: format!("step {} ({rate}/s)", i + 1),
            values,
            passed: worst_p99 <= p99_limit_ms,
        });
    }
    reports::Comparison {
        title: format!(
            "Capacity ramp: open-model arrivals {} every {step} s (p99 SLO {p99_limit_ms} ms)",
            growth_words(plan.cli.growth)
        ),
        columns: [
            "arrivals/s",
            "requests/s",
            "goodput/s",
            "refused",
            "errors",
            "worst p99 (ms)",
        ]
        .map(str::to_owned)
        .to_vec(),
        reading: past_the_peak(&goodputs, &rates),
        rows,
    }
}

/// How the ramp's rate grows, in words: "doubling", "held", "× 1.1".
fn growth_words(growth: f64) -> String {
    if growth == 2.0 {
        "doubling".to_owned()
    } else if growth == 1.0 {
        "held".to_owned()
    } else {
        format!("× {growth}")
    }
}

/// What happened after the step of peak goodput: the lowest goodput of the later steps as a
/// share of the peak (1.0 is perfectly graceful). `None` when the ramp peaked in its last step
/// (it never went past capacity) or moved nothing.
fn past_the_peak(goodputs: &[f64], rates: &[f64]) -> Option<String> {
    let (peak_at, peak) = goodputs
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let after = &goodputs[peak_at + 1..];
    if peak <= 0.0 || after.is_empty() {
        return None;
    }
    let worst = after.iter().copied().fold(f64::INFINITY, f64::min);
    Some(format!(
        "Peak goodput {peak:.0}/s at step {} ({} arrivals/s). Over the {} step(s) of more load after it, goodput fell no lower than {:.2} of the peak.",
        peak_at + 1,
        rates.get(peak_at).copied().unwrap_or_default(),
        after.len(),
        worst / peak,
    ))
}

/// The job-summary file of a GitHub Actions step.
pub const STEP_SUMMARY_ENV: &str = "GITHUB_STEP_SUMMARY";

/// Appends the run's Markdown report to a CI job summary (`$GITHUB_STEP_SUMMARY`).
pub fn append_step_summary(outcome: &Outcome, path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let markdown = std::fs::read_to_string(&outcome.written.markdown)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{markdown}")
}

/// The short summary printed at the end of a run.
pub fn summary_text(outcome: &Outcome) -> String {
    let r = &outcome.report;
    let mut s = String::new();
    s.push_str(&format!(
        "{} on {} ({} strategy, seed {}, {} users) in {:.1}s\n",
        r.run.scenario, r.run.stack, r.run.strategy, r.run.seed, r.run.users, r.run.duration_s
    ));
    s.push_str(&format!(
        "  requests {}  ok {}  rejected {}{}  errors {}  unknown {}  {:.0} req/s  error rate {:.2}%\n",
        r.summary.requests,
        r.summary.ok,
        r.summary.rejected,
        match r.summary.refused {
            0 => String::new(),
            n => format!(" (overloaded {n})"),
        },
        r.summary.errors,
        r.summary.unknown,
        r.summary.throughput_rps,
        r.summary.error_rate * 100.0
    ));
    let load = &r.run.load;
    s.push_str(&format!(
        "  load: {} of {} users ran, {} connections{}, peak {} descriptors, peak RSS {}\n",
        load.users_started,
        r.run.users,
        load.connections,
        load.peak_connections
            .map_or_else(String::new, |c| format!(" (peak {c} open)")),
        load.peak_open_files,
        load.peak_rss_mib
            .map_or_else(|| "?".to_owned(), |m| format!("{m:.0} MiB")),
    ));
    if let Some(a) = load.arrivals {
        s.push_str(&format!(
            "  arrivals due {}  begun {} ({} late)  dropped {} (no free user)\n",
            a.due, a.started, a.late, a.dropped
        ));
    }
    for t in &r.transactions {
        s.push_str(&format!(
            "  {:<13} {:>7} req  ok {:>6}  rejected {:>6}  err {:>4}  unk {:>4}  p50 {:>8.1} ms  p99 {:>8.1} ms\n",
            t.name, t.count, t.ok, t.rejected, t.errors, t.unknown, t.latency.p50, t.latency.p99
        ));
    }
    if let Some(c) = &r.comparison {
        s.push_str(&comparison_text(c));
    }
    for c in &r.correctness.checks {
        let status = match c.status() {
            reports::CheckStatus::Passed => "pass",
            reports::CheckStatus::Failed => "FAIL",
            reports::CheckStatus::Skipped => "skip",
        };
        let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "  [{status}] {:<24} {}\n",
            c.name,
            counts.join(" ")
        ));
    }
    for o in r
        .verdict
        .outcomes
        .iter()
        .filter(|o| !o.passed && o.kind != reports::ThresholdKind::Invariant)
    {
        s.push_str(&format!(
            "  [FAIL] {}: {} (limit {})\n",
            o.name, o.observed, o.limit
        ));
    }
    s.push_str(&format!(
        "verdict: {} (exit {})\n",
        reports::exit_code::describe(r.verdict.exit_code),
        r.verdict.exit_code
    ));
    s.push_str(&format!(
        "report: {}\n        {}\n        {}\n        {}\n",
        outcome.written.html.display(),
        outcome.written.markdown.display(),
        outcome.written.json.display(),
        outcome.written.junit.display()
    ));
    s
}

fn comparison_text(c: &reports::Comparison) -> String {
    let mut s = format!("  {}\n", c.title);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    };
    for row in &c.rows {
        let skipped = row.values.values().filter(|v| *v == "n/a").count() + 1 >= row.values.len()
            && row.values.len() > 1;
        let cells: Vec<String> = if skipped {
            vec![row.values.get("verdict").map_or_else(|| "n/a".into(), text)]
        } else {
            c.columns
                .iter()
                .map(|col| format!("{col} {}", row.values.get(col).map_or("—".into(), text)))
                .collect()
        };
        s.push_str(&format!(
            "    {:<28} {}  {}\n",
            row.label,
            cells.join("  "),
            if row.passed { "ok" } else { "FAIL" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capacity_step_reads_only_the_buckets_wholly_inside_it() {
        // Schedule started 0.28 s in, 8 s steps: the fourth runs 24.28–32.28 s, so its
        // buckets are 25..32 (24 holds the third's tail, 32 the fifth's head).
        assert_eq!(step_buckets(24.28, 32.28, 1.0), (25.0, 32.0));
        // Aligned: every bucket of the step.
        assert_eq!(step_buckets(24.0, 32.0, 1.0), (24.0, 32.0));
        assert_eq!(step_buckets(8.000_000_1, 16.000_000_1, 1.0), (8.0, 16.0));
        // Shorter than two buckets: the nearest one.
        assert_eq!(step_buckets(3.4, 4.4, 1.0), (3.0, 4.0));
        assert_eq!(step_buckets(3.6, 4.6, 1.0), (4.0, 5.0));
    }

    #[test]
    fn the_markdown_report_is_appended_to_the_job_summary() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = Outcome::write(reports::sample_report(), dir.path().join("run")).unwrap();
        let summary = dir.path().join("summary.md");
        std::fs::write(&summary, "earlier step\n").unwrap();
        append_step_summary(&outcome, &summary).unwrap();
        append_step_summary(&outcome, &summary).unwrap();
        let text = std::fs::read_to_string(&summary).unwrap();
        let md = std::fs::read_to_string(&outcome.written.markdown).unwrap();
        assert!(
            text.starts_with("earlier step\n"),
            "appended, not overwritten"
        );
        assert_eq!(text.matches(md.trim_end()).count(), 2);
    }
}

//! The matrix runner: a [`Matrix`] descriptor's base scenario once per cell, each a child
//! process with the parent's options plus the cell's overrides, then one report — a
//! comparison table (a column per measure, a row per cell), every cell's transactions and
//! checks prefixed with its key, links to each cell's own report, and the worst cell's
//! verdict. Cells marked `expected_to_break` (unsafe baselines) do not fail the matrix by
//! breaking invariants; their row shows by how much.

use crate::catalog::{matrix_row, Matrix, Scenario};
use crate::cli::Cli;
use crate::error::{Error, Result};

use super::child;
use super::plan::{chaos_schedule, default_out_dir};
use super::report::Outcome;

/// Runs every cell and writes the matrix's report.
pub async fn run(cli: &Cli, scenario: &'static Scenario, matrix: &Matrix) -> Result<Outcome> {
    let dir = cli
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(scenario.name.as_str()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let users = cli.goose.users.unwrap_or(scenario.defaults.users);
    let seats = cli.seats.unwrap_or(scenario.defaults.seats);
    if let Some(spec) = &cli.chaos {
        // Reported here once, not by the first child as a missing report.
        chaos_schedule(spec, cli.seed)?;
    }
    let cells = (matrix.cells)(cli);
    let mut base = vec![matrix.base.as_str().to_owned()];
    base.extend(child::forwarded_args(
        cli,
        users,
        seats,
        scenario.defaults.p99_all_ms,
    ));
    let started_at = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let mut children = Vec::new();
    let mut ran = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for cell in &cells {
        if cell.not_applicable.is_some() {
            continue;
        }
        if !cli.quiet() {
            eprintln!(
                "{}: running {} with {}…",
                scenario.name.as_str(),
                matrix.base.as_str(),
                cell.key
            );
        }
        let mut args = base.clone();
        args.extend(cell.overrides.iter().cloned());
        match child::run(&args, &dir.join(&cell.key)).await {
            Ok(child) => {
                children.push(child);
                ran.push(cell.clone());
            }
            // One broken cell must not cost the others: the table says which one, and the
            // matrix exits as a run error once its report is written.
            Err(e) => {
                eprintln!(
                    "{}: cell {} did not run: {e}",
                    scenario.name.as_str(),
                    cell.key
                );
                failed.push((cell.key.clone(), e.to_string()));
            }
        }
    }
    let mut report = combine(scenario, &ran, &children);
    report.run.id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    report.run.started_at = started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    report.run.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    report.run.duration_s = t0.elapsed().as_secs_f64();
    if !cli.command.is_empty() {
        // What `--replay` runs again (each cell's report records its own command too).
        report
            .run
            .parameters
            .insert("command".into(), serde_json::json!(cli.command));
    }
    let reading = {
        let pairs: Vec<_> = ran.iter().zip(&children).collect();
        (matrix.read)(&pairs)
    };
    if !reading.checks.is_empty() {
        let mut outcomes = std::mem::take(&mut report.verdict.outcomes);
        let extra = reports::Correctness {
            checks: reading.checks.clone(),
        };
        outcomes.extend(extra.outcomes());
        report.correctness.checks.extend(reading.checks);
        report.verdict = reports::Verdict::from_outcomes(outcomes);
    }
    report.comparison = Some(reports::Comparison {
        reading: reading.text,
        title: (matrix.title)(users, seats),
        columns: matrix.columns.iter().map(|c| c.name.to_owned()).collect(),
        rows: {
            let mut reports = children.iter();
            cells
                .iter()
                .map(|cell| {
                    if let Some(why) = cell.not_applicable {
                        return blank_row(matrix.columns, cell, &format!("n/a: {why}"), true);
                    }
                    match failed.iter().find(|(key, _)| *key == cell.key) {
                        Some((_, e)) => {
                            blank_row(matrix.columns, cell, &format!("run error: {e}"), false)
                        }
                        None => matrix_row(
                            matrix.columns,
                            cell,
                            reports.next().expect("a report per cell that ran"),
                        ),
                    }
                })
                .collect()
        },
    });
    let outcome = Outcome::write(report, dir)?;
    if failed.is_empty() {
        Ok(outcome)
    } else {
        let keys: Vec<_> = failed.iter().map(|(k, _)| k.as_str()).collect();
        Err(Error::Stack(format!(
            "{} of {} cells did not run ({}); the report at {} shows the others",
            failed.len(),
            cells.len(),
            keys.join(", "),
            outcome.written.html.display()
        )))
    }
}

/// The row of a cell without a report (n/a here, or its run failed): every column n/a, and
/// why in the verdict column.
fn blank_row(
    columns: &[crate::catalog::Column],
    cell: &crate::catalog::Cell,
    why: &str,
    passed: bool,
) -> reports::ComparisonRow {
    let mut values: std::collections::BTreeMap<String, serde_json::Value> = columns
        .iter()
        .map(|c| (c.name.to_owned(), serde_json::json!("n/a")))
        .collect();
    values.insert("verdict".into(), serde_json::json!(why));
    reports::ComparisonRow {
        label: cell.label.clone(),
        values,
        passed,
    }
}

/// The matrix's report from its cells' reports (without the table and the timing).
fn combine(
    scenario: &Scenario,
    cells: &[crate::catalog::Cell],
    children: &[reports::Report],
) -> reports::Report {
    let mut run = children.first().map(|c| c.run.clone()).unwrap_or_default();
    run.scenario = scenario.name.as_str().into();
    run.description = scenario.description.into();
    run.strategy = cells
        .iter()
        .map(|c| c.key.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut report = reports::Report::new(run);
    let mut outcomes = Vec::new();
    for (cell, child) in cells.iter().zip(children) {
        let key = &cell.key;
        report.transactions.extend(
            child
                .transactions
                .iter()
                .map(|t| reports::TransactionStats {
                    name: format!("{key}/{}", t.name),
                    ..t.clone()
                }),
        );
        report
            .correctness
            .checks
            .extend(child.correctness.checks.iter().map(|k| {
                let mut k = k.clone();
                k.name = format!("{key}: {}", k.name);
                k
            }));
        outcomes.extend(
            child
                .verdict
                .outcomes
                .iter()
                .filter(|o| {
                    !(cell.expected_to_break && o.kind == reports::ThresholdKind::Invariant)
                })
                .map(|o| reports::ThresholdOutcome {
                    name: format!("{key}: {}", o.name),
                    ..o.clone()
                }),
        );
        report.artifacts.push(reports::Artifact {
            name: format!("{key} run"),
            path: format!("{key}/{}", reports::HTML_FILE),
        });
    }
    report.summary = reports::Summary::from_transactions(
        &report.transactions,
        children.iter().map(|c| c.run.duration_s).sum(),
    );
    report.timeline = reports::Timeline {
        interval_s: 1.0,
        points: Vec::new(),
    };
    report.failover = reports::Failover::no_faults();
    report.verdict = reports::Verdict::from_outcomes(outcomes);
    report
}

//! `scenario check RUN_DIR`: the checker and the verdict re-run offline on what a run left
//! behind — `history.jsonl`, `final-state.json` and `report.json` (for the scenario, whose
//! descriptor gives the checker's scope, and for the thresholds the run was judged by) — so a
//! checker change can be tried on an old run and anyone can re-derive a run's verdict.
//!
//! Re-derived: the per-transaction statistics and totals (from the history, through the same
//! aggregation as a live run), the thresholds' outcomes, every correctness check. Carried over
//! from the saved report, because they need what only the live run had (the chaos probes, the
//! baseline run, the live audit): recovery outcomes, `vs baseline` rules and an
//! `--abort-on-fail` stop.

use std::path::Path;

use clap::ValueEnum as _;

use crate::catalog::{Kind, ScenarioName};
use crate::checker::{self, FinalState};
use crate::error::{Error, Result};
use crate::history;
use crate::run::FINAL_STATE_FILE;
use crate::thresholds::Thresholds;

/// Key of the thresholds in the report's parameters.
pub const THRESHOLDS_PARAMETER: &str = "thresholds";

/// The name of the verdict outcome an `--abort-on-fail` stop adds.
pub const ABORT_OUTCOME: &str = "abort-on-fail";

/// A run judged again.
#[derive(Debug)]
pub struct Rechecked {
    /// The report as saved.
    pub saved: reports::Report,
    /// The same report with statistics, correctness and verdict re-derived.
    pub report: reports::Report,
}

impl Rechecked {
    /// Whether the re-derived verdict and every check agree with the saved ones.
    pub fn agrees(&self) -> bool {
        self.saved.verdict.exit_code == self.report.verdict.exit_code
            && self.saved.correctness == self.report.correctness
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// Re-judges the run in `dir`.
pub fn recheck(dir: &Path) -> Result<Rechecked> {
    let saved = reports::Report::from_json(&read(&dir.join(reports::JSON_FILE))?)
        .map_err(|e| Error::Usage(format!("{}: not a run report: {e}", dir.display())))?;
    let name = ScenarioName::from_str(&saved.run.scenario, false)
        .map_err(|_| Error::Usage(format!("unknown scenario {:?}", saved.run.scenario)))?;
    let Some(Kind::Attack(attack)) = name.scenario().map(|s| &s.kind) else {
        return Err(Error::Usage(format!(
            "{} is not an attack run (a matrix's cells are checked one by one, in their own directories)",
            saved.run.scenario
        )));
    };
    let history_path = dir.join(history::HISTORY_FILE);
    if !history_path.is_file() {
        return Err(Error::Usage(format!(
            "{}: no history (the run had --no-history)",
            history_path.display()
        )));
    }
    let ops = history::read(&history_path)
        .map_err(|e| Error::Usage(format!("{}: {e}", history_path.display())))?;
    let state: FinalState = serde_json::from_str(&read(&dir.join(FINAL_STATE_FILE))?)
        .map_err(|e| Error::Usage(format!("{FINAL_STATE_FILE}: {e}")))?;

    // The same aggregation as a live run: the history's writer, fed from the file.
    let interval = if saved.timeline.interval_s > 0.0 {
        saved.timeline.interval_s
    } else {
        1.0
    };
    let (recorder, writer) = history::start(None, true, interval)
        .map_err(|e| Error::io("starting the history aggregation", e))?;
    for op in ops {
        recorder.record(op);
    }
    let out = writer.finish(saved.run.duration_s);
    let transactions = crate::run::judge::transactions(&out, saved.run.duration_s);
    let summary = reports::Summary::from_transactions(&transactions, saved.run.duration_s);
    let correctness = checker::check(&out.writes, &state, attack.scope);
    let thresholds = saved
        .run
        .parameters
        .get(THRESHOLDS_PARAMETER)
        .map(Thresholds::from_json)
        .unwrap_or_else(|| {
            // A report from before thresholds were saved: the scenario's defaults.
            crate::cli::Cli::parse_from_args(["scenario", name.as_str()])
                .map(|cli| crate::run::plan::thresholds_for(&cli, name))
                .unwrap_or_default()
        });
    let mut outcomes = thresholds.evaluate(&transactions, &summary);
    outcomes.extend(correctness.outcomes());
    outcomes.extend(
        saved
            .verdict
            .outcomes
            .iter()
            .filter(|o| carried_over(o))
            .cloned(),
    );

    let mut report = saved.clone();
    report.transactions = transactions;
    report.summary = summary;
    report.correctness = correctness;
    report.verdict = reports::Verdict::from_outcomes(outcomes);
    Ok(Rechecked { saved, report })
}

/// Outcomes only the live run could produce.
fn carried_over(o: &reports::ThresholdOutcome) -> bool {
    o.kind == reports::ThresholdKind::Recovery
        || o.name.ends_with("vs baseline")
        || o.name.starts_with(ABORT_OUTCOME)
}

/// What `scenario check` prints: each check and the verdict, saved vs re-derived.
pub fn summary_text(r: &Rechecked) -> String {
    let mut s = format!(
        "{} on {} ({}), run {}\n",
        r.report.run.scenario, r.report.run.stack, r.report.run.strategy, r.report.run.id
    );
    let status = |c: Option<&reports::Check>| match c.map(reports::Check::status) {
        Some(reports::CheckStatus::Passed) => "pass",
        Some(reports::CheckStatus::Failed) => "FAIL",
        Some(reports::CheckStatus::Skipped) => "skip",
        None => "—",
    };
    s.push_str("  check                     saved  now\n");
    for c in &r.report.correctness.checks {
        let saved = r.saved.correctness.checks.iter().find(|x| x.name == c.name);
        let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "  {:<24}  {:<5}  {:<4}  {}\n",
            c.name,
            status(saved),
            status(Some(c)),
            counts.join(" ")
        ));
    }
    for o in r.report.verdict.outcomes.iter().filter(|o| !o.passed) {
        s.push_str(&format!(
            "  [FAIL] {}: {} (limit {})\n",
            o.name, o.observed, o.limit
        ));
    }
    let code = |c: i32| format!("{} (exit {c})", reports::exit_code::describe(c));
    s.push_str(&format!(
        "verdict saved: {}  re-derived: {}  {}\n",
        code(r.saved.verdict.exit_code),
        code(r.report.verdict.exit_code),
        if r.agrees() { "agree" } else { "DIFFER" }
    ));
    s
}

/// `scenario check RUN_DIR`: prints the comparison of saved and re-derived judgements, writes
/// the re-derived report with `--out`, returns the re-derived verdict's exit code.
pub fn main(cli: crate::cli::CheckCli) -> Result<i32> {
    let r = recheck(&cli.run_dir)?;
    if let Some(out) = &cli.out {
        reports::write_all(&r.report, out)
            .map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    }
    if !cli.quiet {
        print!("{}", summary_text(&r));
        if let Some(out) = &cli.out {
            println!("report: {}", out.join(reports::HTML_FILE).display());
        }
    }
    Ok(r.report.verdict.exit_code)
}

//! `report.md`: the report as GitHub-flavoured Markdown, short enough for a CI job summary
//! (`$GITHUB_STEP_SUMMARY`).
//!
//! It opens with one verdict line (✅/❌ and the exit code), then tables: summary,
//! transactions, correctness, failover (or its note), the comparison when there is one,
//! thresholds and artifacts. No charts: those live in `report.html`. Every value from the
//! report is escaped so that it cannot break a table or inject HTML.

use std::fmt::Write as _;

use crate::exit_code;
use crate::model::{Assessment, CheckStatus, Report, RunComparison};
use crate::text::{self, md, md_code};

/// Renders the report as Markdown.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    headline(&mut out, report);
    summary(&mut out, report);
    transactions(&mut out, report);
    correctness(&mut out, report);
    failover(&mut out, report);
    resources(&mut out, report);
    comparison(&mut out, report);
    if let Some(cmp) = &report.baseline {
        baseline_section(&mut out, cmp, "###");
    }
    thresholds(&mut out, report);
    artifacts(&mut out, report);
    out
}

/// `writeln!` into a `String` cannot fail; this keeps the call sites readable.
macro_rules! line {
    ($out:expr) => { $out.push('\n') };
    ($out:expr, $($arg:tt)*) => {{ let _ = writeln!($out, $($arg)*); }};
}

fn headline(out: &mut String, report: &Report) {
    let run = &report.run;
    let verdict = &report.verdict;
    let (icon, word) = if verdict.passed {
        ("✅", "PASS")
    } else {
        ("❌", "FAIL")
    };
    line!(
        out,
        "## {icon} {word} · {} · exit {} ({})",
        md(&run.scenario),
        verdict.exit_code,
        exit_code::describe(verdict.exit_code)
    );
    line!(out);
    let mut facts = vec![
        format!("run {}", md_code(&run.id)),
        format!("stack {}", md_code(&run.stack)),
        format!("strategy {}", md_code(&run.strategy)),
        format!("seed {}", run.seed),
        format!("{} users", text::users(run)),
        text::secs(run.duration_s),
    ];
    if !run.started_at.is_empty() {
        facts.push(format!("started {}", md(&run.started_at)));
    }
    line!(out, "{}", facts.join(" · "));
    let load = text::load(&run.load);
    if load != "—" {
        line!(out);
        line!(out, "Load: {}", md(&load));
    }
    if !run.description.is_empty() {
        line!(out);
        line!(out, "> {}", md(&run.description));
    }
    let failed: Vec<String> = verdict
        .outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} ({})", md(&o.name), o.kind))
        .collect();
    if !failed.is_empty() {
        line!(out);
        line!(out, "**Failed:** {}", failed.join(", "));
    }
    line!(out);
}

fn summary(out: &mut String, report: &Report) {
    let s = &report.summary;
    line!(out, "### Summary");
    line!(out);
    line!(
        out,
        "| requests | ok | rejected | errors | unknown | throughput (req/s) | error rate |"
    );
    line!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    line!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |",
        s.requests,
        s.ok,
        text::rejected(s.rejected, s.refused),
        s.errors,
        s.unknown,
        text::rps(s.throughput_rps),
        text::percent(s.error_rate)
    );
    line!(
        out,
        "_Rejected: business refusals (sold out, seat taken, quota reached, declined), not \
         errors. The error rate counts errors and unknown outcomes._"
    );
    line!(out);
}

fn transactions(out: &mut String, report: &Report) {
    line!(out, "### Transactions");
    line!(out);
    if report.transactions.is_empty() {
        line!(out, "_No request was sent._");
        line!(out);
        return;
    }
    line!(
        out,
        "| transaction | count | ok | rejected | errors | unknown | req/s | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms |"
    );
    line!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for tx in &report.transactions {
        let l = &tx.latency;
        line!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&tx.name),
            tx.count,
            tx.ok,
            text::rejected(tx.rejected, tx.refused),
            tx.errors,
            tx.unknown,
            text::rps(tx.throughput_rps),
            text::ms(l.p50),
            text::ms(l.p90),
            text::ms(l.p95),
            text::ms(l.p99),
            text::ms(l.p999),
            text::ms(l.max)
        );
        if let Some(c) = &tx.corrected_latency {
            line!(
                out,
                "| ↳ corrected for coordinated omission | | | | | | | {} | {} | {} | {} | {} | {} |",
                text::ms(c.p50),
                text::ms(c.p90),
                text::ms(c.p95),
                text::ms(c.p99),
                text::ms(c.p999),
                text::ms(c.max)
            );
        }
    }
    line!(out);
}

fn correctness(out: &mut String, report: &Report) {
    line!(out, "### Correctness");
    line!(out);
    if report.correctness.checks.is_empty() {
        line!(out, "_No invariant was checked._");
        line!(out);
        return;
    }
    line!(out, "| | check | counts | examples |");
    line!(out, "|---|---|---|---|");
    for check in &report.correctness.checks {
        let status = match check.status() {
            CheckStatus::Passed => "✅ pass",
            CheckStatus::Failed => "❌ fail",
            CheckStatus::Skipped => "⏭️ skipped",
        };
        let mut name = format!("**{}**", md(&check.name));
        if !check.description.is_empty() {
            let _ = write!(name, "<br>{}", md(&check.description));
        }
        let detail = match &check.skipped_reason {
            Some(reason) => format!("not run: {}", md(reason)),
            None => check
                .examples
                .iter()
                .map(|e| md_code(e))
                .collect::<Vec<_>>()
                .join(" "),
        };
        line!(
            out,
            "| {status} | {name} | {} | {detail} |",
            md(&text::counts(&check.counts))
        );
    }
    line!(out);
}

fn failover(out: &mut String, report: &Report) {
    line!(out, "### Failover");
    line!(out);
    let failover = &report.failover;
    if failover.faults.is_empty() {
        let note = failover
            .note
            .as_deref()
            .unwrap_or(crate::model::Failover::NO_FAULT_NOTE);
        line!(out, "_{}_", md(note));
        line!(out);
        return;
    }
    if let Some(note) = &failover.note {
        line!(out, "_{}_", md(note));
        line!(out);
    }
    // One column per fault, one row per measurement: reads well for the usual 1–3 faults.
    let mut header = String::from("| |");
    let mut rule = String::from("|---|");
    for fault in &failover.faults {
        let _ = write!(header, " {} · {} |", md(&fault.target), md(&fault.kind));
        rule.push_str("---|");
    }
    line!(out, "{header}");
    line!(out, "{rule}");
    for (label, cell) in text::failover_rows() {
        let mut row = format!("| {label} |");
        for fault in &failover.faults {
            let value = cell(fault);
            let value = if label == "schedule" {
                md_code(&value)
            } else {
                md(&value)
            };
            let _ = write!(row, " {value} |");
        }
        line!(out, "{row}");
    }
    line!(out);
}

fn resources(out: &mut String, report: &Report) {
    let Some(resources) = &report.resources else {
        return;
    };
    line!(out, "### Resources of the box office");
    line!(out);
    line!(
        out,
        "| instance | measure | first quarter | last quarter | growth |"
    );
    line!(out, "|---|---|---:|---:|---:|");
    for s in &resources.series {
        let cells = text::growth_cells(s).join(" | ");
        line!(
            out,
            "| {} | {} | {cells} |",
            md(&s.instance),
            md(text::resource_title(&s.measure))
        );
    }
    line!(out);
}

fn comparison(out: &mut String, report: &Report) {
    let Some(comparison) = &report.comparison else {
        return;
    };
    line!(out, "### {}", md(&comparison.title));
    line!(out);
    let mut header = String::from("| |");
    let mut rule = String::from("|---|");
    for column in &comparison.columns {
        let _ = write!(header, " {} |", md(column));
        rule.push_str("---:|");
    }
    header.push_str(" verdict |");
    rule.push_str("---|");
    line!(out, "{header}");
    line!(out, "{rule}");
    for row in &comparison.rows {
        let mut line = format!("| **{}** |", md(&row.label));
        for column in &comparison.columns {
            let value = row
                .values
                .get(column)
                .map_or_else(|| "—".to_owned(), text::json_value);
            let _ = write!(line, " {} |", md(&value));
        }
        line.push_str(if row.passed { " ✅ |" } else { " ❌ |" });
        line!(out, "{line}");
    }
    line!(out);
    if let Some(reading) = &comparison.reading {
        line!(out, "**What this shows.** {}", md(reading));
        line!(out);
    }
}

/// `scenario compare A B` as Markdown: a headline, then the comparison table.
pub fn render_comparison_markdown(cmp: &RunComparison) -> String {
    let mut out = String::new();
    let (icon, word) = if cmp.regressions == 0 {
        ("✅", "no regression")
    } else {
        ("❌", "REGRESSION")
    };
    line!(
        out,
        "## {icon} {word}: {} vs {}",
        md(&cmp.current.id),
        md(&cmp.baseline.id)
    );
    line!(out);
    baseline_section(&mut out, cmp, "###");
    out
}

/// The comparison with a baseline run: which runs, the caveats, one row per metric.
fn baseline_section(out: &mut String, cmp: &RunComparison, heading: &str) {
    line!(out, "{heading} {}", md(&text::comparison_title(cmp)));
    line!(out);
    let side = |r: &crate::model::RunRef| {
        format!(
            "{} ({} on {}, {}, {} users{}) from {}",
            md_code(&r.id),
            md(&r.scenario),
            md(&r.stack),
            md(&r.strategy),
            r.users,
            if r.samples { ", with history" } else { "" },
            md_code(&r.source)
        )
    };
    line!(out, "- baseline (A): {}", side(&cmp.baseline));
    line!(out, "- current (B): {}", side(&cmp.current));
    line!(
        out,
        "- noise rule: a change counts when its test is significant at α={} and it exceeds ±{:.0}% and, for latency, {} ms (medians: Mann–Whitney with effect A ≥ {}; p95/p99 and throughput: bootstrap, {} resamples)",
        cmp.method.alpha,
        cmp.method.tolerance * 100.0,
        cmp.method.min_latency_delta_ms,
        cmp.method.min_effect,
        cmp.method.resamples
    );
    for note in &cmp.notes {
        line!(out, "- _{}_", md(note));
    }
    line!(out);
    line!(out, "| | subject | metric | A | B | Δ | test |");
    line!(out, "|---|---|---|---:|---:|---:|---|");
    for row in &cmp.rows {
        let mark = match row.assessment {
            Assessment::Regression => "❌ regression",
            Assessment::Improvement => "✅ better",
            Assessment::Unchanged => "≈",
            Assessment::Info => "",
        };
        line!(
            out,
            "| {mark} | {} | {} | {} | {} | {} | {} |",
            md(&text::metric_subject(row)),
            md(&row.metric),
            md(&text::metric_value(row.baseline, &row.unit)),
            md(&text::metric_value(row.current, &row.unit)),
            md(&text::metric_delta(row)),
            md(&text::metric_test(row))
        );
    }
    line!(out);
}

fn thresholds(out: &mut String, report: &Report) {
    line!(out, "### Thresholds");
    line!(out);
    if report.verdict.outcomes.is_empty() {
        line!(out, "_No threshold was set._");
        line!(out);
        return;
    }
    line!(out, "| | threshold | kind | limit | observed |");
    line!(out, "|---|---|---|---|---|");
    for o in &report.verdict.outcomes {
        line!(
            out,
            "| {} | {} | {} | {} | {} |",
            if o.passed { "✅" } else { "❌" },
            md(&o.name),
            o.kind,
            md(&o.limit),
            md(&o.observed)
        );
    }
    line!(out);
}

fn artifacts(out: &mut String, report: &Report) {
    if report.artifacts.is_empty() {
        return;
    }
    line!(out, "### Artifacts");
    line!(out);
    for artifact in &report.artifacts {
        line!(out, "- {}: {}", md(&artifact.name), md_code(&artifact.path));
    }
    line!(out);
}

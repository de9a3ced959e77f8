//! The runs index: one self-contained `index.html` beside the run directories
//! (`reports/runs/index.html` by default) listing every run with its scenario, stack, verdict,
//! hold p99 and throughput, and a small trend of those two over the runs of the same scenario
//! and stack, so "is it worse than last week?" has an answer at a glance.
//!
//! [`write_index`] reads every `*/report.json` under a directory (a file that does not parse
//! is skipped, not fatal) and renders the page with [`render_index`]; the runner calls it
//! after each run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::chart::sparkline;
use crate::exit_code;
use crate::html::page_head;
use crate::model::Report;
use crate::text::{self, attr, markup};

/// File name of the index inside the runs directory.
pub const INDEX_FILE: &str = "index.html";

/// How many earlier runs of the same scenario and stack a trend shows.
pub const TREND_RUNS: usize = 20;

/// One run in the index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The run directory's name, relative to the index (the link to its report).
    pub dir: String,
    /// Its report.
    pub report: Report,
}

impl IndexEntry {
    /// p99 of the `hold` transaction, ms, when the run held seats.
    pub fn hold_p99_ms(&self) -> Option<f64> {
        self.report
            .transactions
            .iter()
            .find(|t| t.name == "hold" && t.count > 0)
            .map(|t| t.latency.p99)
    }

    /// Requests per second over the run, when it sent any.
    pub fn throughput_rps(&self) -> Option<f64> {
        (self.report.summary.requests > 0).then_some(self.report.summary.throughput_rps)
    }

    fn group(&self) -> (String, String) {
        (
            self.report.run.scenario.clone(),
            self.report.run.stack.clone(),
        )
    }
}

/// Every run under `dir`: each subdirectory holding a `report.json` that parses.
pub fn read_runs(dir: &Path) -> std::io::Result<Vec<IndexEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let json = path.join(crate::JSON_FILE);
        let Ok(text) = std::fs::read_to_string(&json) else {
            continue;
        };
        let Ok(report) = Report::from_json(&text) else {
            continue;
        };
        let Some(name) = path.file_name() else {
            continue;
        };
        entries.push(IndexEntry {
            dir: name.to_string_lossy().into_owned(),
            report,
        });
    }
    Ok(entries)
}

/// Regenerates `dir/index.html` from the runs under `dir`; returns its path.
pub fn write_index(dir: &Path) -> std::io::Result<PathBuf> {
    let entries = read_runs(dir)?;
    let path = dir.join(INDEX_FILE);
    std::fs::write(&path, render_index(&entries))?;
    Ok(path)
}

/// The index page: newest run first; each row's trends end at that run.
pub fn render_index(entries: &[IndexEntry]) -> String {
    let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
    // Oldest first to build the trends; RFC 3339 UTC stamps sort as text.
    sorted.sort_by(|a, b| {
        (&a.report.run.started_at, &a.dir).cmp(&(&b.report.run.started_at, &b.dir))
    });
    let mut history: BTreeMap<(String, String), Vec<&IndexEntry>> = BTreeMap::new();
    let mut rows = Vec::with_capacity(sorted.len());
    for entry in &sorted {
        let runs = history.entry(entry.group()).or_default();
        runs.push(entry);
        let recent = &runs[runs.len().saturating_sub(TREND_RUNS)..];
        let p99: Vec<Option<f64>> = recent.iter().map(|e| e.hold_p99_ms()).collect();
        let rps: Vec<Option<f64>> = recent.iter().map(|e| e.throughput_rps()).collect();
        rows.push((*entry, p99, rps));
    }

    let mut page = String::with_capacity(16 * 1024);
    page_head(&mut page, "Runs · Box Office Lab");
    let _ = writeln!(page, "<h1>Runs</h1>");
    let _ = writeln!(
        page,
        "<p class=\"description\">{} run{} in this directory, newest first. Trends: hold p99 and throughput over the last {TREND_RUNS} runs of the same scenario and stack, ending at the row's run.</p>",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    if rows.is_empty() {
        page.push_str("<p class=\"note\">No run yet.</p>\n");
    } else {
        page.push_str("<table id=\"runs\"><thead><tr><th>run</th><th>started</th><th>scenario</th><th>stack</th><th>strategy</th><th class=\"num\">users</th><th>verdict</th><th class=\"num\">hold p99</th><th>trend</th><th class=\"num\">throughput</th><th>trend</th></tr></thead><tbody>\n");
        for (entry, p99, rps) in rows.iter().rev() {
            let run = &entry.report.run;
            let verdict = &entry.report.verdict;
            let badge = if verdict.passed {
                "<span class=\"badge pass\">pass</span>".to_owned()
            } else {
                format!(
                    "<span class=\"badge fail\">{}</span> exit {}",
                    markup(exit_code::describe(verdict.exit_code)),
                    verdict.exit_code
                )
            };
            let _ = writeln!(
                page,
                "<tr><td><a href=\"{href}\"><code>{dir}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{badge}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                markup(&run.started_at),
                markup(&run.scenario),
                markup(&run.stack),
                markup(&run.strategy),
                run.users,
                entry
                    .hold_p99_ms()
                    .map_or_else(|| "—".to_owned(), |v| format!("{} ms", text::ms(v))),
                sparkline(p99, "#D55E00", "hold p99 trend"),
                entry
                    .throughput_rps()
                    .map_or_else(|| "—".to_owned(), |v| format!("{} req/s", text::rps(v))),
                sparkline(rps, "#0072B2", "throughput trend"),
                href = attr(&format!("{}/{}", entry.dir, crate::HTML_FILE)),
                dir = markup(&entry.dir),
            );
        }
        page.push_str("</tbody></table>\n");
    }
    page.push_str("<footer>Box Office Lab runs index · regenerated after each run from the runs' report.json</footer>\n</main>\n</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &str, started: &str, p99: f64, passed: bool) -> IndexEntry {
        let mut report = crate::sample_report();
        report.run.started_at = started.into();
        if let Some(t) = report.transactions.iter_mut().find(|t| t.name == "hold") {
            t.latency.p99 = p99;
        }
        if !passed {
            report.verdict = crate::Verdict::from_outcomes(vec![crate::ThresholdOutcome::new(
                "x",
                crate::ThresholdKind::Invariant,
                "holds",
                "broken",
                false,
            )]);
        }
        IndexEntry {
            dir: dir.into(),
            report,
        }
    }

    #[test]
    fn the_index_lists_runs_newest_first_with_their_verdict_and_trends() {
        let page = render_index(&[
            entry("run-1", "2026-11-01T00:00:00Z", 10.0, true),
            entry("run-3", "2026-11-03T00:00:00Z", 30.0, false),
            entry("run-2", "2026-11-02T00:00:00Z", 20.0, true),
        ]);
        let (a, b, c) = (
            page.find("run-3/report.html").unwrap(),
            page.find("run-2/report.html").unwrap(),
            page.find("run-1/report.html").unwrap(),
        );
        assert!(a < b && b < c, "newest first");
        assert!(page.contains("invariant broken"));
        assert_eq!(page.matches("<svg").count(), 6, "two sparklines per run");
    }
}

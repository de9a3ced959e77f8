//! Reports of Box Office Lab: the [`Report`] model that every run fills in (latency,
//! correctness, failover and the verdict), and the pure renderers that turn it into the four
//! files a run leaves in its output directory: `report.json` (the stable, versioned contract),
//! `report.md` (a CI job summary), `report.html` (self-contained, with inline SVG charts) and
//! `verdict.xml` (JUnit, one test case per threshold and per invariant).
//!
//! The runner builds a [`Report`], feeds per-request samples to a [`TimelineBuilder`], turns
//! thresholds and checks into a [`Verdict`] with [`Verdict::from_outcomes`], then calls
//! [`write_all`] and exits with [`Verdict::exit_code`].
//!
//! # Layout
//!
//! - [`model`]: the report and its sections; start here. Units: ms for latencies, seconds
//!   since the run started for times.
//! - [`exit_code`]: what each exit code means and which wins.
//! - [`timeline`]: per-second buckets with an HDR histogram per transaction.
//! - [`json`], [`markdown`], [`html`], [`junit`]: one renderer each; `html` draws its charts
//!   with the private `chart` module, and all share the escapers in the private `text` module.
//! - [`compare`]: two runs compared (noise-aware regression assessment, `--max-regression`
//!   rules); rendered by [`render_comparison_markdown`] / [`render_comparison_html`] and, for a
//!   run's `--baseline`, as a section of its report.
//! - [`index`]: the runs index (`reports/runs/index.html`) with per-scenario trends.
//! - [`sample`]: a filled-in report for tests, docs and previews
//!   (`cargo run -p reports --example preview -- /tmp/report`).
//! - `SCHEMA.md` and `schema/report.schema.json` (next to this crate's manifest): the JSON
//!   contract and its versioning rule.

use std::path::{Path, PathBuf};

mod chart;
pub mod compare;
pub mod exit_code;
pub mod html;
pub mod index;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod sample;
mod text;
pub mod timeline;

pub use compare::{compare, CompareOptions, LatencySamples, RegressionRules};
pub use html::{render_comparison_html, render_html};
pub use index::write_index;
pub use json::{render_json, render_schema, report_schema};
pub use junit::render_junit;
pub use markdown::{render_comparison_markdown, render_markdown};
pub use model::*;
pub use sample::sample_report;
pub use timeline::TimelineBuilder;

/// File name of the JSON report inside a run directory.
pub const JSON_FILE: &str = "report.json";
/// File name of the Markdown report.
pub const MARKDOWN_FILE: &str = "report.md";
/// File name of the HTML report.
pub const HTML_FILE: &str = "report.html";
/// File name of the JUnit verdict.
pub const JUNIT_FILE: &str = "verdict.xml";

/// Where [`write_all`] put each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `verdict.xml`.
    pub junit: PathBuf,
}

/// Renders the report four ways into `dir` (created if missing), overwriting earlier files.
/// Fails only on I/O; a file written before the failure is left in place.
pub fn write_all(report: &Report, dir: &Path) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let written = Written {
        json: dir.join(JSON_FILE),
        markdown: dir.join(MARKDOWN_FILE),
        html: dir.join(HTML_FILE),
        junit: dir.join(JUNIT_FILE),
    };
    std::fs::write(&written.json, render_json(report))?;
    std::fs::write(&written.markdown, render_markdown(report))?;
    std::fs::write(&written.html, render_html(report))?;
    std::fs::write(&written.junit, render_junit(report))?;
    Ok(written)
}

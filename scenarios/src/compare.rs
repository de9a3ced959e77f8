//! Runs compared after the fact: `scenario compare A B` and a run's `--baseline`. A run is
//! read from its directory (or its `report.json`, whose directory is then searched for the
//! history); its `history.jsonl` gives the latency of every request, so that
//! [`reports::compare`] judges latency changes on whole distributions, not on one percentile.
//! The statistics and the rendering live in the `reports` crate; this module reads runs and
//! writes the comparison.

use std::path::{Path, PathBuf};

use reports::{CompareOptions, LatencySamples, RegressionRules, RunComparison};

use crate::error::{Error, Result};
use crate::history::{self, Op};

/// File names `scenario compare --out DIR` writes.
pub const COMPARE_JSON: &str = "compare.json";
/// See [`COMPARE_JSON`].
pub const COMPARE_MARKDOWN: &str = "compare.md";
/// See [`COMPARE_JSON`].
pub const COMPARE_HTML: &str = "compare.html";

/// A run read back from disk.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// Its report.
    pub report: reports::Report,
    /// The path it was read from, as given.
    pub source: String,
    /// Its run directory.
    pub dir: PathBuf,
    /// Latency samples per transaction, when its history was kept.
    pub samples: Option<LatencySamples>,
}

impl LoadedRun {
    /// Reads a run from its directory or its `report.json`; the history beside it, if any,
    /// gives the samples. A report of a major schema version other than 3 or 4 is refused.
    pub fn load(path: &Path) -> Result<LoadedRun> {
        let (dir, json) = if path.is_dir() {
            (path.to_path_buf(), path.join(reports::JSON_FILE))
        } else {
            let dir = path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            (dir, path.to_path_buf())
        };
        let text = std::fs::read_to_string(&json)
            .map_err(|e| Error::Usage(format!("{}: {e}", json.display())))?;
        let report = reports::Report::from_json(&text)
            .map_err(|e| Error::Usage(format!("{}: not a run report: {e}", json.display())))?;
        // 3.x differs from 4.x only where a comparison does not look (the timeline's errors
        // counted unknown outcomes; no `load` section): both compare.
        let major = |v: &str| v.split('.').next().map(str::to_owned);
        let readable = [Some("3".to_owned()), major(reports::SCHEMA_VERSION)];
        if !readable.contains(&major(&report.schema_version)) {
            return Err(Error::Usage(format!(
                "{}: schema {} cannot be compared by this version (schema {})",
                json.display(),
                report.schema_version,
                reports::SCHEMA_VERSION
            )));
        }
        let history = dir.join(history::HISTORY_FILE);
        let samples = if history.is_file() {
            let ops = history::read(&history)
                .map_err(|e| Error::io(format!("reading {}", history.display()), e))?;
            Some(samples_of(&ops))
        } else {
            None
        };
        Ok(LoadedRun {
            report,
            source: path.display().to_string(),
            dir,
            samples,
        })
    }
}

/// The latency of every operation, ms, by transaction name.
pub fn samples_of(ops: &[Op]) -> LatencySamples {
    let mut samples = LatencySamples::new();
    for op in ops {
        samples
            .entry(op.op.as_str().to_owned())
            .or_default()
            .push(op.latency_ms());
    }
    samples
}

/// `current` compared with `baseline`, with the default noise rules.
pub fn compare_runs(baseline: &LoadedRun, current: &LoadedRun) -> RunComparison {
    reports::compare(
        reports::compare::Side {
            report: &baseline.report,
            source: &baseline.source,
            samples: baseline.samples.as_ref(),
        },
        reports::compare::Side {
            report: &current.report,
            source: &current.source,
            samples: current.samples.as_ref(),
        },
        &CompareOptions::default(),
    )
}

/// The exit code of `scenario compare`: with rules, 3 when one is broken; without, 3 when any
/// metric regressed; else 0.
pub fn exit_code(cmp: &RunComparison, rules: Option<&RegressionRules>) -> i32 {
    let broken = match rules {
        Some(rules) => reports::compare::evaluate_rules(rules, cmp)
            .iter()
            .any(|o| !o.passed),
        None => cmp.regressions > 0,
    };
    if broken {
        reports::exit_code::THRESHOLD_MISSED
    } else {
        reports::exit_code::PASS
    }
}

/// Writes `compare.json`, `compare.md` and `compare.html` into `dir`.
pub fn write(cmp: &RunComparison, dir: &Path) -> Result<()> {
    let io = |e| Error::io(format!("writing the comparison to {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut json = serde_json::to_string_pretty(cmp).unwrap_or_default();
    json.push('\n');
    std::fs::write(dir.join(COMPARE_JSON), json).map_err(io)?;
    std::fs::write(
        dir.join(COMPARE_MARKDOWN),
        reports::render_comparison_markdown(cmp),
    )
    .map_err(io)?;
    std::fs::write(dir.join(COMPARE_HTML), reports::render_comparison_html(cmp)).map_err(io)?;
    Ok(())
}

/// `scenario compare A B`: prints the Markdown table (JSON with `--json`), writes the three
/// files with `--out`, returns the exit code.
pub fn main(cli: crate::cli::CompareCli) -> Result<i32> {
    let baseline = LoadedRun::load(&cli.baseline)?;
    let current = LoadedRun::load(&cli.current)?;
    let cmp = compare_runs(&baseline, &current);
    if let Some(dir) = &cli.out {
        write(&cmp, dir)?;
    }
    let rules = cli.max_regression.as_ref();
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&cmp).unwrap_or_default());
    } else if !cli.quiet {
        print!("{}", reports::render_comparison_markdown(&cmp));
        if let Some(rules) = rules {
            for o in reports::compare::evaluate_rules(rules, &cmp) {
                println!(
                    "[{}] {}: {} (limit {})",
                    if o.passed { "pass" } else { "FAIL" },
                    o.name,
                    o.observed,
                    o.limit
                );
            }
        }
        if let Some(dir) = &cli.out {
            println!("written: {}", dir.join(COMPARE_HTML).display());
        }
    }
    Ok(exit_code(&cmp, rules))
}

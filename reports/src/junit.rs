//! `verdict.xml`: the verdict as JUnit XML, so CI systems (GitLab, Jenkins, GitHub test
//! reporters) show each threshold and invariant as a test case.
//!
//! Two suites: `thresholds` has one test case per verdict outcome that is not an invariant
//! (latency, error rate, throughput, recovery); `invariants` has one test case per
//! correctness check, plus any invariant outcome that has no check of the same name. A broken
//! one carries a `<failure>`, a skipped check a `<skipped>`. Run facts go in `<properties>`.
//! Everything is escaped, so the file is always well-formed XML.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::model::{CheckStatus, Report, ThresholdKind, ThresholdOutcome};
use crate::text::{attr, markup};

/// A test case before it is written.
struct Case {
    name: String,
    classname: String,
    outcome: Outcome,
    /// Extra detail for the failure body or `<system-out>`.
    detail: String,
}

enum Outcome {
    Passed,
    Failed { message: String, kind: &'static str },
    Skipped { message: String },
}

/// Renders the verdict as JUnit XML.
pub fn render_junit(report: &Report) -> String {
    let scenario = if report.run.scenario.is_empty() {
        "run"
    } else {
        report.run.scenario.as_str()
    };
    let class = |suite: &str| format!("boxoffice.{scenario}.{suite}");

    let thresholds: Vec<Case> = report
        .verdict
        .outcomes
        .iter()
        .filter(|o| o.kind != ThresholdKind::Invariant)
        .map(|o| outcome_case(o, class("thresholds")))
        .collect();

    let mut invariants: Vec<Case> = Vec::new();
    for check in &report.correctness.checks {
        let mut detail = check.description.clone();
        if !check.counts.is_empty() {
            let _ = write!(detail, "\ncounts: {}", crate::text::counts(&check.counts));
        }
        if !check.examples.is_empty() {
            let _ = write!(detail, "\nexamples: {}", check.examples.join(", "));
        }
        // The verdict may disagree with the check (the runner decides); a failure on either
        // side is a failure here, never hidden.
        let verdict_failed = report
            .verdict
            .outcomes
            .iter()
            .any(|o| o.kind == ThresholdKind::Invariant && o.name == check.name && !o.passed);
        let outcome = match check.status() {
            CheckStatus::Skipped => Outcome::Skipped {
                message: check.skipped_reason.clone().unwrap_or_default(),
            },
            CheckStatus::Failed => Outcome::Failed {
                message: format!("invariant broken: {}", check.name),
                kind: "invariant",
            },
            CheckStatus::Passed if verdict_failed => Outcome::Failed {
                message: format!("invariant failed in the verdict: {}", check.name),
                kind: "invariant",
            },
            CheckStatus::Passed => Outcome::Passed,
        };
        invariants.push(Case {
            name: check.name.clone(),
            classname: class("invariants"),
            outcome,
            detail,
        });
    }
    let checked: BTreeSet<&str> = report
        .correctness
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    invariants.extend(
        report
            .verdict
            .outcomes
            .iter()
            .filter(|o| o.kind == ThresholdKind::Invariant && !checked.contains(o.name.as_str()))
            .map(|o| outcome_case(o, class("invariants"))),
    );

    let properties = properties(report);
    let suites = [("thresholds", thresholds), ("invariants", invariants)];
    let total = |f: fn(&Case) -> bool| -> usize {
        suites
            .iter()
            .map(|(_, cases)| cases.iter().filter(|c| f(c)).count())
            .sum()
    };
    let tests = total(|_| true);
    let failures = total(|c| matches!(c.outcome, Outcome::Failed { .. }));
    let skipped = total(|c| matches!(c.outcome, Outcome::Skipped { .. }));
    // The run's duration goes on the root only: readers that sum suite times would double it.
    let time = seconds(report.run.duration_s);

    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        r#"<testsuites name="{}" tests="{tests}" failures="{failures}" errors="0" skipped="{skipped}" time="{time}">"#,
        attr(&format!("Box Office Lab: {scenario}"))
    );
    for (name, cases) in &suites {
        let failures = cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
            .count();
        let skipped = cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped { .. }))
            .count();
        let _ = write!(
            xml,
            r#"  <testsuite name="{name}" tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="0""#,
            cases.len()
        );
        if !report.run.started_at.is_empty() {
            let _ = write!(xml, r#" timestamp="{}""#, attr(&report.run.started_at));
        }
        xml.push_str(">\n");
        xml.push_str(&properties);
        for case in cases {
            write_case(&mut xml, case);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn outcome_case(o: &ThresholdOutcome, classname: String) -> Case {
    let detail = format!("limit: {}\nobserved: {}", o.limit, o.observed);
    let outcome = if o.passed {
        Outcome::Passed
    } else {
        Outcome::Failed {
            message: format!("{}: observed {}, limit {}", o.name, o.observed, o.limit),
            kind: o.kind.as_str(),
        }
    };
    Case {
        name: o.name.clone(),
        classname,
        outcome,
        detail,
    }
}

fn write_case(xml: &mut String, case: &Case) {
    let _ = write!(
        xml,
        r#"    <testcase name="{}" classname="{}" time="0""#,
        attr(&case.name),
        attr(&case.classname)
    );
    match &case.outcome {
        Outcome::Passed => {
            let _ = writeln!(
                xml,
                "><system-out>{}</system-out></testcase>",
                markup(&case.detail)
            );
        }
        Outcome::Failed { message, kind } => {
            let _ = writeln!(
                xml,
                r#"><failure message="{}" type="{}">{}</failure></testcase>"#,
                attr(message),
                attr(kind),
                markup(&case.detail)
            );
        }
        Outcome::Skipped { message } => {
            let _ = writeln!(xml, r#"><skipped message="{}"/></testcase>"#, attr(message));
        }
    }
}

fn properties(report: &Report) -> String {
    let run = &report.run;
    let mut xml = String::from("    <properties>\n");
    for (name, value) in [
        ("run.id", run.id.clone()),
        ("run.scenario", run.scenario.clone()),
        ("run.stack", run.stack.clone()),
        ("run.strategy", run.strategy.clone()),
        ("run.seed", run.seed.to_string()),
        ("run.users", run.users.to_string()),
        ("run.target_url", run.target_url.clone()),
        ("verdict.exit_code", report.verdict.exit_code.to_string()),
        ("schema_version", report.schema_version.clone()),
    ] {
        let _ = writeln!(
            xml,
            r#"      <property name="{name}" value="{}"/>"#,
            attr(&value)
        );
    }
    xml.push_str("    </properties>\n");
    xml
}

/// JUnit wants a plain decimal number of seconds.
fn seconds(value: f64) -> String {
    if value.is_finite() && value >= 0.0 {
        format!("{value:.3}")
    } else {
        "0".to_owned()
    }
}

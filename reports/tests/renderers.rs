//! The renderers, end to end: each test renders a whole report and checks the output as its
//! reader would (a JSON Schema validator, an XML parser, a person looking for the verdict).

use std::collections::BTreeMap;

use reports::{
    render_html, render_json, render_junit, render_markdown, report_schema, sample_report,
    write_all, Check, Comparison, ComparisonRow, Correctness, Failover, FaultReport, Report,
    RunInfo, ThresholdKind, ThresholdOutcome, Verdict,
};

/// A run that sent nothing: every renderer must still produce a valid, readable file.
fn empty_report() -> Report {
    Report::new(RunInfo {
        id: "empty".to_owned(),
        scenario: "smoke".to_owned(),
        stack: "embedded".to_owned(),
        ..RunInfo::default()
    })
}

/// Every free-text field holds something that would break a naive renderer.
fn hostile_report() -> Report {
    let evil = "<script>alert('x')</script> & \"quotes\" | pipes ]]> `ticks` \u{1} end";
    let mut report = sample_report();
    report.run.scenario = evil.to_owned();
    report.run.description = evil.to_owned();
    report.run.parameters.insert(evil.to_owned(), evil.into());
    report.transactions[0].name = evil.to_owned();
    report.correctness.checks.push(
        Check::new(evil, evil, false)
            .with_count(evil, 1)
            .with_examples([evil]),
    );
    report.failover.faults[0].target = evil.to_owned();
    report.failover.faults[0].spec = evil.to_owned();
    report.verdict = Verdict::from_outcomes(vec![ThresholdOutcome::new(
        evil,
        ThresholdKind::Latency,
        evil,
        evil,
        false,
    )]);
    report.comparison = Some(Comparison {
        title: evil.to_owned(),
        columns: vec![evil.to_owned()],
        rows: vec![ComparisonRow {
            label: evil.to_owned(),
            values: BTreeMap::from([(evil.to_owned(), evil.into())]),
            passed: false,
        }],
        reading: Some(evil.to_owned()),
    });
    report
}

fn committed_schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
    let text = std::fs::read_to_string(path).expect("the committed schema is readable");
    serde_json::from_str(&text).expect("the committed schema is JSON")
}

fn assert_valid(report: &Report) {
    let schema = committed_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let instance: serde_json::Value = serde_json::from_str(&render_json(report)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report.json breaks the schema: {errors:#?}"
    );
}

#[test]
fn a_report_survives_a_json_round_trip() {
    for report in [sample_report(), empty_report(), hostile_report()] {
        let json = render_json(&report);
        let back = Report::from_json(&json).expect("report.json parses back");
        assert_eq!(back, report);
        assert!(json.ends_with('\n'));
    }
}

#[test]
fn the_json_of_a_sample_report_validates_against_the_committed_schema() {
    assert_valid(&sample_report());
    assert_valid(&empty_report());
    assert_valid(&hostile_report());
}

#[test]
fn the_schema_rejects_a_report_of_another_major_version() {
    let schema = committed_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut instance: serde_json::Value =
        serde_json::from_str(&render_json(&sample_report())).unwrap();
    instance["schema_version"] = "1.0".into();
    assert!(!validator.is_valid(&instance));
    instance["schema_version"] = "3.0".into();
    assert!(!validator.is_valid(&instance));
    instance["schema_version"] = "5.0".into();
    assert!(!validator.is_valid(&instance));
    instance["schema_version"] = "4.7".into();
    assert!(
        validator.is_valid(&instance),
        "minor versions are compatible"
    );
}

#[test]
fn a_3x_report_still_parses_with_an_empty_load_and_no_unknown_in_its_timeline() {
    let mut instance: serde_json::Value =
        serde_json::from_str(&render_json(&sample_report())).unwrap();
    instance["schema_version"] = "3.0".into();
    instance["run"].as_object_mut().unwrap().remove("load");
    for point in instance["timeline"]["points"].as_array_mut().unwrap() {
        point.as_object_mut().unwrap().remove("unknown");
        for stats in point["per_transaction"]
            .as_object_mut()
            .unwrap()
            .values_mut()
        {
            stats.as_object_mut().unwrap().remove("unknown");
        }
    }
    let report = Report::from_json(&instance.to_string()).expect("a 3.0 report parses");
    assert_eq!(report.run.load, reports::Load::default());
    assert!(report.timeline.points.iter().all(|p| p.unknown == 0));
    // Rendered, it says nothing of a load it does not know.
    assert!(render_markdown(&report).contains("### Summary"));
    assert!(!render_markdown(&report).contains("Load:"));
}

#[test]
fn the_committed_schema_matches_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");
    if std::env::var_os("BOXOFFICE_BLESS").is_some() {
        std::fs::write(path, reports::render_schema()).expect("the schema file is writable");
    }
    // Compared as values, so key order (serde_json's preserve_order feature) does not matter.
    assert!(
        committed_schema() == report_schema(),
        "reports/schema/report.schema.json is out of date with the Rust types.\n\
         If the change is intended, regenerate it with `BOXOFFICE_BLESS=1 cargo test -p reports`, \
         bump SCHEMA_VERSION by the rule in reports/SCHEMA.md (additive: minor; rename or \
         removal: major) and document the field in SCHEMA.md."
    );
}

#[test]
fn schema_md_documents_every_field_of_the_schema() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SCHEMA.md")).unwrap();
    let schema = report_schema();
    let mut objects = vec![&schema];
    objects.extend(schema["$defs"].as_object().unwrap().values());
    let mut missing = Vec::new();
    for object in objects {
        for field in object["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if !doc.contains(&format!("`{field}`")) {
                missing.push(field.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "reports/SCHEMA.md does not mention {missing:?}"
    );
    assert!(doc.contains(&format!("**`{}`**", reports::SCHEMA_VERSION)));
}

#[test]
fn the_markdown_shows_the_verdict_and_every_check() {
    let report = sample_report();
    let markdown = render_markdown(&report);
    let first = markdown.lines().next().unwrap();
    assert!(first.contains("❌ FAIL"), "{first}");
    assert!(first.contains("exit 4"), "{first}");
    for check in &report.correctness.checks {
        assert!(
            markdown.contains(&check.name),
            "missing check {}",
            check.name
        );
    }
    assert!(markdown.contains("⏭️ skipped"));
    for section in [
        "### Summary",
        "### Transactions",
        "### Correctness",
        "### Failover",
        "### Thresholds",
    ] {
        assert!(markdown.contains(section), "missing {section}");
    }
    assert!(markdown.contains("redis:kill@20s+10s"));
    assert!(markdown.contains("### Concurrency strategies"));
    assert!(markdown.contains("corrected for coordinated omission"));
}

#[test]
fn the_markdown_of_a_passing_run_without_faults_says_so() {
    let mut report = empty_report();
    report.failover = Failover::no_faults();
    let markdown = render_markdown(&report);
    assert!(
        markdown.starts_with("## ✅ PASS · smoke · exit 0"),
        "{markdown}"
    );
    assert!(markdown.contains("no fault was injected in this run"));
    assert!(!markdown.contains("### Artifacts"));
}

#[test]
fn the_markdown_cannot_be_broken_by_hostile_text() {
    let markdown = render_markdown(&hostile_report());
    // Inside a code span `<script>` is shown literally; anywhere else it would be HTML.
    for line in markdown.lines() {
        let text = outside_code_spans(line).replace("<br>", "");
        assert!(!text.contains('<'), "raw HTML leaked: {line}");
    }
    // Every row of a table keeps the table's column count: no unescaped pipe sneaks in.
    let mut table: Vec<&str> = Vec::new();
    for line in markdown.lines().chain([""]) {
        if line.starts_with('|') {
            table.push(line);
            continue;
        }
        if let Some(first) = table.first() {
            let columns = |row: &str| row.replace("\\|", "").matches('|').count();
            for row in &table {
                assert_eq!(columns(row), columns(first), "{row}");
            }
        }
        table.clear();
    }
}

/// The parts of a Markdown line that are not inside a `code span`.
fn outside_code_spans(line: &str) -> String {
    let (mut out, mut in_code, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '`' if !escaped => in_code = !in_code,
            _ if !in_code => out.push(c),
            _ => {}
        }
        escaped = c == '\\' && !escaped;
    }
    out
}

/// Removes text that may legitimately contain a URL: the SVG namespace and the target URL,
/// which is shown as text, not loaded.
fn html_without_allowed_urls(report: &Report) -> String {
    render_html(report)
        .replace(r#"xmlns="http://www.w3.org/2000/svg""#, "")
        .replace(&report.run.target_url, "")
}

#[test]
fn the_html_references_no_external_resource() {
    for report in [sample_report(), empty_report()] {
        let html = html_without_allowed_urls(&report);
        for needle in [
            "http://", "https://", "//cdn", "<script", "<link", "@import", "url(",
        ] {
            assert!(!html.contains(needle), "found {needle:?} in report.html");
        }
        assert!(html.contains("Content-Security-Policy"));
    }
}

#[test]
fn the_html_has_one_svg_per_chart() {
    // The throughput chart, then one latency chart per transaction (each on its own scale),
    // then one chart per resource measure (a line per instance), then the baseline
    // comparison's bars.
    let html = render_html(&sample_report());
    assert_eq!(html.matches("<svg").count(), 7);
    assert_eq!(html.matches("</svg>").count(), 7);
    assert!(html.contains("Resident memory"));
    assert!(html.contains("<title>app-2</title>"));
    // app-1's resident set: 42.25 MiB in the first quarter, 44.75 in the last.
    assert!(
        html.contains("<td class=\"num\">+5.9%</td>"),
        "the growth column"
    );
    assert!(
        html.contains("<td class=\"num\">+0.0%</td>"),
        "app-2's flat line"
    );
    assert!(html.contains("Latency, A vs B"));
    assert!(html.contains("Requests, rejections and errors per second"));
    for transaction in ["browse", "hold", "confirm"] {
        assert!(html.contains(&format!("Latency of {transaction}")));
        for p in ["p50", "p95", "p99"] {
            assert!(html.contains(&format!("<title>{transaction} {p}</title>")));
        }
    }
    // Refusals are their own series, apart from the errors, and unknown outcomes apart too.
    for series in ["requests/s", "rejected/s", "errors/s", "unknown/s"] {
        assert!(
            html.contains(&format!("<title>{series}</title>")),
            "{series}"
        );
    }
}

#[test]
fn the_html_and_markdown_say_what_the_load_cost() {
    let report = sample_report();
    let html = render_html(&report);
    for part in [
        "one shared client",
        "peak 64 connections",
        "212 descriptors of 20000",
        "peak RSS 96 MiB",
    ] {
        assert!(html.contains(part), "{part}");
    }
    assert!(render_markdown(&report).contains("Load: one shared client · peak 64 connections"));
    let mut fewer = report.clone();
    fewer.run.load.users_started = 150;
    fewer.run.load.arrivals = Some(reports::ArrivalCounts {
        due: 400,
        started: 390,
        late: 12,
        dropped: 10,
    });
    let html = render_html(&fewer);
    assert!(html.contains("200 (150 started)"));
    assert!(html.contains("arrivals: 400 due, 390 begun (12 late), 10 dropped"));
}

#[test]
fn the_html_shades_a_fault_window_when_a_fault_is_present() {
    let mut report = sample_report();
    let html = render_html(&report);
    // One band per fault on each of the six charts, labelled with target and kind.
    assert_eq!(html.matches(r#"<rect class="fault""#).count(), 6);
    assert_eq!(html.matches("redis · kill</text>").count(), 6);
    assert!(html.contains("fault window"));

    report.failover.faults.push(FaultReport {
        target: "postgres".to_owned(),
        kind: "pause".to_owned(),
        start_s: 40.0,
        end_s: 45.0,
        ..FaultReport::default()
    });
    let html = render_html(&report);
    assert_eq!(html.matches(r#"<rect class="fault""#).count(), 12);

    report.failover = Failover::no_faults();
    let html = render_html(&report);
    assert_eq!(html.matches(r#"<rect class="fault""#).count(), 0);
    assert!(html.contains("no fault was injected in this run"));
}

#[test]
fn the_html_shows_every_table() {
    let report = sample_report();
    let html = render_html(&report);
    for heading in [
        "<h2>Transactions</h2>",
        "<h2>Correctness</h2>",
        "<h2>Failover</h2>",
        "<h2>Concurrency strategies, 1,000 buyers for 100 seats</h2>",
        "<h2>Thresholds</h2>",
        "<h2>Artifacts</h2>",
    ] {
        assert!(html.contains(heading), "missing {heading}");
    }
    assert!(html.contains(r#"<span class="badge fail">fail</span>"#));
    assert!(html.contains(r#"<span class="badge skip">skipped</span>"#));
    assert!(html.contains("<code>seat r1-A-7</code>"));
    assert!(html.contains(r#"<a href="history.jsonl">"#));
}

#[test]
fn the_html_escapes_hostile_text() {
    let html = render_html(&hostile_report());
    assert!(!html.contains("<script"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!html.contains('\u{1}'));
}

#[test]
fn a_run_with_zero_requests_still_renders_and_its_charts_say_no_data() {
    let report = empty_report();
    let html = render_html(&report);
    // No transaction, so no latency chart: the throughput chart says there is no data.
    assert_eq!(html.matches("<svg").count(), 1);
    assert_eq!(html.matches(">no data</text>").count(), 1);
    assert!(html.contains("No request was sent."));
    assert!(render_markdown(&report).contains("No request was sent."));
    roxmltree::Document::parse(&render_junit(&report)).expect("well-formed junit");
}

#[test]
fn the_junit_is_well_formed_with_one_testcase_per_threshold_and_check() {
    let report = sample_report();
    let xml = render_junit(&report);
    let doc = roxmltree::Document::parse(&xml).expect("verdict.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");

    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let thresholds = report
        .verdict
        .outcomes
        .iter()
        .filter(|o| o.kind != ThresholdKind::Invariant)
        .count();
    assert_eq!(cases.len(), thresholds + report.correctness.checks.len());
    assert_eq!(
        root.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );

    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    let mut expected: Vec<&str> = report
        .verdict
        .outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name.as_str())
        .collect();
    expected.sort_unstable();
    let mut failed_sorted = failed.clone();
    failed_sorted.sort_unstable();
    assert_eq!(failed_sorted, expected);
    assert_eq!(
        root.attribute("failures"),
        Some(failed.len().to_string().as_str())
    );

    let skipped: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(skipped, ["ledger-matches-database"]);

    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure") && n.attribute("type") == Some("invariant"))
        .unwrap();
    assert!(failure.text().unwrap().contains("seat r1-A-7"));
}

#[test]
fn the_junit_lists_invariant_outcomes_that_have_no_check() {
    let mut report = empty_report();
    report.correctness = Correctness {
        checks: vec![Check::new("a", "", true)],
    };
    report.verdict = Verdict::from_outcomes(vec![
        ThresholdOutcome::new("a", ThresholdKind::Invariant, "holds", "holds", true),
        ThresholdOutcome::new("b", ThresholdKind::Invariant, "holds", "broken", false),
    ]);
    let xml = render_junit(&report);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn the_junit_escapes_hostile_text() {
    let report = hostile_report();
    let xml = render_junit(&report);
    let doc = roxmltree::Document::parse(&xml).expect("hostile text cannot break the XML");
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert!(names
        .iter()
        .any(|n| n.starts_with("<script>alert('x')</script> & \"quotes\"")));
}

#[test]
fn write_all_writes_the_four_files_into_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs").join("r1");
    let report = sample_report();
    let written = write_all(&report, &run_dir).unwrap();
    assert_eq!(written.json, run_dir.join("report.json"));
    assert_eq!(written.markdown, run_dir.join("report.md"));
    assert_eq!(written.html, run_dir.join("report.html"));
    assert_eq!(written.junit, run_dir.join("verdict.xml"));
    let json = std::fs::read_to_string(&written.json).unwrap();
    assert_eq!(Report::from_json(&json).unwrap(), report);
    for path in [&written.markdown, &written.html, &written.junit] {
        assert!(
            std::fs::metadata(path).unwrap().len() > 0,
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_sparse_transactions_latency_is_one_continuous_line() {
    // pay completes in seconds 0, 3 and 6 only: three points joined, not three dots.
    let mut builder = reports::TimelineBuilder::default();
    for t in [0.5, 3.5, 6.5] {
        builder.record(t, "pay", 40.0 + t, reports::Outcome::Ok);
    }
    for t in 0..7 {
        builder.record(f64::from(t) + 0.2, "hold", 10.0, reports::Outcome::Rejected);
    }
    let mut report = empty_report();
    report.timeline = builder.build();
    let html = render_html(&report);
    // hold then pay (the timeline's names, sorted): pay's chart is the second.
    let chart = html
        .split(r#"id="latency-chart-1""#)
        .nth(1)
        .expect("a latency chart for pay");
    assert!(chart.contains("Latency of pay"));
    let chart = &chart[..chart.find("</svg>").unwrap()];
    for percentile in ["p50", "p95", "p99"] {
        let series = chart
            .split(&format!("<title>pay {percentile}</title>"))
            .next()
            .unwrap();
        let d = series.rsplit(r#"class="series" d=""#).next().unwrap();
        let d = &d[..d.find('"').unwrap()];
        assert_eq!(d.matches('M').count(), 1, "{percentile}: {d}");
        assert_eq!(d.matches('L').count(), 2, "{percentile}: {d}");
    }
}

//! `report.html`: one self-contained page (inline CSS, inline SVG, no script, no external
//! resource) that opens from disk or from a CI artifact store, offline.
//!
//! Layout, top to bottom: the verdict banner, run facts, summary cards, the charts (requests,
//! rejections and errors over time, then one small latency chart per transaction — p50, p95,
//! p99 on its own scale — all with fault windows shaded), then the tables: transactions, correctness, failover, comparison,
//! thresholds and artifacts. A Content-Security-Policy meta tag forbids every network fetch,
//! so a reviewer can trust the page does not phone home.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::chart::{Band, Chart, LegendEntry, Scale, Series, Swatch};
use crate::exit_code;
use crate::model::{Assessment, CheckStatus, Failover, Report, RunComparison, TimelinePoint};
use crate::text::{self, attr, markup};

/// Okabe–Ito colours (colour-blind safe), minus yellow which is unreadable on white.
const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000",
];
const THROUGHPUT_COLOR: &str = "#0072B2";
const ERROR_COLOR: &str = "#D55E00";
/// Business refusals (sold out, seat taken): expected answers, drawn apart from errors.
const REJECTED_COLOR: &str = "#999999";
/// Unknown outcomes (a write's timeout, reset or 5xx): apart from the definite errors.
const UNKNOWN_COLOR: &str = "#CC79A7";
/// Requests refused past capacity (503 `overloaded`), a part of the rejections.
const OVERLOADED_COLOR: &str = "#E69F00";

/// p50 dotted and thin, p95 dashed, p99 solid and thick: the eye reads the tail first.
const PERCENTILE_STYLES: [(&str, Option<&str>, f64); 3] = [
    ("p50", Some("1.5 3"), 1.2),
    ("p95", Some("6 3"), 1.6),
    ("p99", None, 2.2),
];

const CSS: &str = r#"
:root { --fg: #1f2328; --muted: #57606a; --border: #d0d7de; --panel: #f6f8fa;
        --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
        --skip: #9a6700; --skip-bg: #fff8c5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--border); }
p.description { color: var(--muted); margin: 0 0 16px; }
.verdict { border-radius: 8px; padding: 12px 16px; margin: 16px 0; font-size: 17px; font-weight: 600; }
.verdict.pass { background: var(--ok-bg); color: var(--ok); border: 1px solid #aceebb; }
.verdict.fail { background: var(--bad-bg); color: var(--bad); border: 1px solid #ffcecb; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; font-size: 14px; font-weight: 400; color: var(--fg); }
.badge { display: inline-block; border-radius: 999px; padding: 1px 8px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.pass { background: var(--ok-bg); color: var(--ok); }
.badge.fail { background: var(--bad-bg); color: var(--bad); }
.badge.skip { background: var(--skip-bg); color: var(--skip); }
dl.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 16px 0; }
.card { background: var(--panel); border: 1px solid var(--border); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
figure { margin: 16px 0; border: 1px solid var(--border); border-radius: 8px; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
.multiples { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 16px; }
.multiples figure { margin: 8px 0; }
figcaption { color: var(--muted); font-size: 12px; padding: 4px 8px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--border); text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.corrected td { color: var(--muted); font-style: italic; }
td .description { color: var(--muted); font-size: 13px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--panel);
       border: 1px solid var(--border); border-radius: 4px; padding: 0 4px; overflow-wrap: anywhere; }
.note { color: var(--muted); font-style: italic; }
.lost { color: var(--bad); font-weight: 600; }
tr.regression td { background: var(--bad-bg); }
tr.improvement td { background: var(--ok-bg); }
tr.info td { color: var(--muted); }
.badge.same { background: var(--panel); color: var(--muted); }
svg.spark { display: inline-block; vertical-align: middle; }
#runs td { white-space: nowrap; }
.matrix { overflow-x: auto; }
.matrix thead th.num { white-space: normal; min-width: 5em; }
.matrix tbody th { min-width: 14em; }
p.reading { max-width: 60em; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media (max-width: 720px) { dl.facts { grid-template-columns: max-content 1fr; } }
"#;

/// Renders the report as one self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let run = &report.run;
    let title = format!(
        "{} · {} · Box Office Lab",
        if report.verdict.passed {
            "PASS"
        } else {
            "FAIL"
        },
        run.scenario
    );
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Nothing may be fetched: no script, no font, no image from anywhere.
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(page, "<title>{}</title>", markup(&title));
    let _ = writeln!(page, "<style>{CSS}</style>\n</head>\n<body>\n<main>");

    header(&mut page, report);
    summary_cards(&mut page, report);
    charts(&mut page, report);
    transactions(&mut page, report);
    correctness(&mut page, report);
    failover(&mut page, report);
    resources(&mut page, report);
    comparison(&mut page, report);
    if let Some(cmp) = &report.baseline {
        baseline_section(&mut page, cmp);
    }
    thresholds(&mut page, report);
    artifacts(&mut page, report);

    let _ = writeln!(
        page,
        "<footer>Box Office Lab report · schema {} · generated from report.json</footer>\n</main>\n</body>\n</html>",
        markup(&report.schema_version)
    );
    page
}

fn header(page: &mut String, report: &Report) {
    let run = &report.run;
    let verdict = &report.verdict;
    let _ = writeln!(page, "<h1>{}</h1>", markup(&run.scenario));
    if !run.description.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"description\">{}</p>",
            markup(&run.description)
        );
    }
    // Plain check marks, not emoji: they render with any font, including in headless browsers.
    let (class, word) = if verdict.passed {
        ("pass", "✓ PASS")
    } else {
        ("fail", "✗ FAIL")
    };
    let _ = write!(
        page,
        "<div class=\"verdict {class}\" id=\"verdict\">{word} · exit {} ({})",
        verdict.exit_code,
        markup(exit_code::describe(verdict.exit_code))
    );
    let failed: Vec<_> = verdict.outcomes.iter().filter(|o| !o.passed).collect();
    if !failed.is_empty() {
        page.push_str("<ul>");
        for o in failed {
            let _ = write!(
                page,
                "<li><strong>{}</strong> ({}): observed {}, limit {}</li>",
                markup(&o.name),
                o.kind,
                markup(&o.observed),
                markup(&o.limit)
            );
        }
        page.push_str("</ul>");
    }
    page.push_str("</div>\n");

    let parameters = run
        .parameters
        .iter()
        .map(|(k, v)| {
            format!(
                "<code>{}={}</code>",
                markup(k),
                markup(&text::json_value(v))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let code = |s: &str| {
        if s.is_empty() {
            "—".to_owned()
        } else {
            format!("<code>{}</code>", markup(s))
        }
    };
    let plain = |s: &str| {
        if s.is_empty() {
            "—".to_owned()
        } else {
            markup(s)
        }
    };
    let facts: [(&str, String); 13] = [
        ("run", code(&run.id)),
        ("stack", plain(&run.stack)),
        ("strategy", plain(&run.strategy)),
        ("seed", run.seed.to_string()),
        ("users", markup(&text::users(run))),
        ("load", markup(&text::load(&run.load))),
        ("duration", markup(&text::secs(run.duration_s))),
        ("started", plain(&run.started_at)),
        ("finished", plain(&run.finished_at)),
        ("target", code(&run.target_url)),
        (
            "host",
            if run.host.os.is_empty() {
                "—".to_owned()
            } else {
                format!("{} cores, {}", run.host.cores, markup(&run.host.os))
            },
        ),
        (
            "parameters",
            if parameters.is_empty() {
                "—".to_owned()
            } else {
                parameters
            },
        ),
        ("schema", markup(&report.schema_version)),
    ];
    page.push_str("<dl class=\"facts\">");
    for (label, value) in facts {
        let _ = write!(page, "<dt>{label}</dt><dd>{value}</dd>");
    }
    page.push_str("</dl>\n");
}

fn summary_cards(page: &mut String, report: &Report) {
    let s = &report.summary;
    let cards = [
        ("requests", s.requests.to_string()),
        ("ok", s.ok.to_string()),
        ("rejected", text::rejected(s.rejected, s.refused)),
        ("errors", s.errors.to_string()),
        ("unknown", s.unknown.to_string()),
        (
            "throughput",
            format!("{} req/s", text::rps(s.throughput_rps)),
        ),
        ("error rate", text::percent(s.error_rate)),
    ];
    page.push_str("<h2>Summary</h2>\n<div class=\"cards\">");
    for (label, value) in cards {
        let _ = write!(
            page,
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\">{}</div></div>",
            markup(&value)
        );
    }
    page.push_str("</div>\n");
}

fn charts(page: &mut String, report: &Report) {
    page.push_str("<h2>Over time</h2>\n");
    let bands = fault_bands(report);
    let x_max = x_extent(report);
    let throughput = throughput_chart(report, &bands, x_max);
    let _ = writeln!(
        page,
        "<figure>{}<figcaption>Requests per second, and of those the business refusals (rejected: sold out, seat taken — not errors), the requests refused past capacity (overloaded: 503, counted among the rejections; drawn only when there were some), the errors and the unknown outcomes (a write's timeout, reset or 5xx), all transactions together.</figcaption></figure>",
        throughput.render()
    );
    // One small chart per transaction, each on its own scale, so a fast transaction does not
    // vanish against a slow one.
    page.push_str("<div class=\"multiples\">\n");
    for (i, name) in transaction_names(report).iter().enumerate() {
        let latency = latency_chart(report, name, i, &bands, x_max);
        let _ = writeln!(
            page,
            "<figure>{}<figcaption>{}: p50, p95 and p99 of every request in each {} s interval (refusals and errors included; intervals without one are skipped){}.</figcaption></figure>",
            latency.render(),
            markup(name),
            report.timeline.interval_s,
            if latency.scale == Scale::Log {
                "; logarithmic scale"
            } else {
                ""
            }
        );
    }
    page.push_str("</div>\n");
}

/// The charts span the whole run, and every fault, even past the last sample.
fn x_extent(report: &Report) -> f64 {
    let timeline = &report.timeline;
    let last = timeline
        .points
        .last()
        .map_or(0.0, |p| p.t_s + timeline.interval_s.max(0.0));
    report
        .failover
        .faults
        .iter()
        .map(|f| f.end_s.max(f.start_s))
        .chain([last, report.run.duration_s])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

fn fault_bands(report: &Report) -> Vec<Band> {
    report
        .failover
        .faults
        .iter()
        .map(|f| Band {
            start: f.start_s,
            end: f.end_s,
            label: format!("{} · {}", f.target, f.kind),
            detail: format!(
                "{} ({} → {})",
                f.spec,
                text::secs(f.start_s),
                text::secs(f.end_s)
            ),
        })
        .collect()
}

/// Transactions in the order the report lists them, then any only the timeline knows.
fn transaction_names(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report.transactions.iter().map(|t| t.name.clone()).collect();
    let known: BTreeSet<String> = names.iter().cloned().collect();
    let extra: BTreeSet<&String> = report
        .timeline
        .points
        .iter()
        .flat_map(|p| p.per_transaction.keys())
        .filter(|name| !known.contains(*name))
        .collect();
    names.extend(extra.into_iter().cloned());
    names
}

fn band_legend(bands: &[Band]) -> Option<LegendEntry> {
    (!bands.is_empty()).then(|| LegendEntry {
        label: "fault window".to_owned(),
        swatch: Swatch::Band,
    })
}

/// Each point is drawn at the middle of its interval: it stands for the whole interval.
fn half_interval(report: &Report) -> f64 {
    let interval = report.timeline.interval_s;
    if interval.is_finite() && interval > 0.0 {
        interval / 2.0
    } else {
        0.0
    }
}

fn latency_chart(report: &Report, name: &str, index: usize, bands: &[Band], x_max: f64) -> Chart {
    let points = &report.timeline.points;
    let half = half_interval(report);
    let color = PALETTE[index % PALETTE.len()];
    let series: Vec<Series> = PERCENTILE_STYLES
        .iter()
        .enumerate()
        .map(|(p, (label, dash, width))| Series {
            label: format!("{name} {label}"),
            color,
            dash: *dash,
            width: *width,
            fill: false,
            // Only the intervals in which the transaction completed requests, joined: a
            // sparse transaction (a few pays a second) is a line, not scattered dots; when
            // nothing completed at all, the throughput chart shows it.
            points: points
                .iter()
                .filter_map(|point| {
                    let stats = point.per_transaction.get(name).filter(|s| s.count > 0)?;
                    Some((
                        point.t_s + half,
                        Some([stats.p50_ms, stats.p95_ms, stats.p99_ms][p]),
                    ))
                })
                .collect(),
        })
        .collect();
    let mut legend: Vec<LegendEntry> = PERCENTILE_STYLES
        .iter()
        .map(|(label, dash, width)| LegendEntry {
            label: (*label).to_owned(),
            swatch: Swatch::Line {
                color,
                dash: *dash,
                width: *width,
            },
        })
        .collect();
    legend.extend(band_legend(bands));

    // A log axis keeps the p50 readable when a fault pushes the p99 up by orders of magnitude.
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|&(_, y)| y))
        .filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::MAX, 0.0f64), |(low, high), v| {
        (if v > 0.0 { low.min(v) } else { low }, high.max(v))
    });
    let scale = if low < f64::MAX && high / low >= 50.0 {
        Scale::Log
    } else {
        Scale::Linear
    };
    Chart {
        id: format!("latency-chart-{index}"),
        width: 600.0,
        title: format!("Latency of {name}"),
        x_label: "seconds since start".to_owned(),
        y_label: if scale == Scale::Log {
            "ms (log scale)".to_owned()
        } else {
            "ms".to_owned()
        },
        x_max,
        scale,
        series,
        bands: bands.to_vec(),
        legend,
    }
}

fn throughput_chart(report: &Report, bands: &[Band], x_max: f64) -> Chart {
    let timeline = &report.timeline;
    let has_requests = timeline.points.iter().any(|p| p.requests > 0);
    let per_second = |count: u64| crate::model::per_second(count, timeline.interval_s);
    let half = half_interval(report);
    let mut series = Vec::new();
    let mut legend = Vec::new();
    if has_requests {
        type Count = fn(&TimelinePoint) -> u64;
        let kinds: [(&str, &'static str, Option<&'static str>, Count); 5] = [
            ("requests/s", THROUGHPUT_COLOR, None, |p| p.requests),
            ("rejected/s", REJECTED_COLOR, Some("6 3"), |p| p.rejected),
            ("overloaded/s", OVERLOADED_COLOR, Some("1 3"), |p| p.refused),
            ("errors/s", ERROR_COLOR, None, |p| p.errors),
            ("unknown/s", UNKNOWN_COLOR, Some("2 2"), |p| p.unknown),
        ];
        let any_refused = timeline.points.iter().any(|p| p.refused > 0);
        for (label, color, dash, count) in kinds {
            // Refusals past capacity are drawn only in runs that had some.
            if label == "overloaded/s" && !any_refused {
                continue;
            }
            // Only the requests are filled: filled refusals hid the requests behind them.
            let fill = label == "requests/s";
            series.push(Series {
                label: label.to_owned(),
                color,
                dash,
                width: 2.0,
                fill,
                points: timeline
                    .points
                    .iter()
                    .map(|p| (p.t_s + half, Some(per_second(count(p)))))
                    .collect(),
            });
            legend.push(LegendEntry {
                label: label.to_owned(),
                swatch: Swatch::Line {
                    color,
                    dash,
                    width: 2.5,
                },
            });
        }
    }
    legend.extend(band_legend(bands));
    Chart {
        id: "throughput-chart".to_owned(),
        width: crate::chart::WIDTH,
        title: "Requests, rejections and errors per second".to_owned(),
        x_label: "seconds since start".to_owned(),
        y_label: "per second".to_owned(),
        x_max,
        scale: Scale::Linear,
        series,
        bands: bands.to_vec(),
        legend,
    }
}

fn transactions(page: &mut String, report: &Report) {
    page.push_str("<h2>Transactions</h2>\n");
    if report.transactions.is_empty() {
        page.push_str("<p class=\"note\">No request was sent.</p>\n");
        return;
    }
    page.push_str("<div class=\"scroll\"><table><thead><tr><th>transaction</th>");
    for h in [
        "count", "ok", "rejected", "errors", "unknown", "req/s", "min ms", "mean ms", "p50 ms",
        "p90 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms",
    ] {
        let _ = write!(page, "<th class=\"num\">{h}</th>");
    }
    page.push_str("</tr></thead><tbody>\n");
    for tx in &report.transactions {
        let l = &tx.latency;
        let _ = write!(page, "<tr><td>{}</td>", markup(&tx.name));
        for value in [
            tx.count.to_string(),
            tx.ok.to_string(),
            text::rejected(tx.rejected, tx.refused),
            tx.errors.to_string(),
            tx.unknown.to_string(),
            text::rps(tx.throughput_rps),
        ]
        .into_iter()
        .chain([l.min, l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max].map(text::ms))
        {
            let _ = write!(page, "<td class=\"num\">{}</td>", markup(&value));
        }
        page.push_str("</tr>\n");
        if let Some(c) = &tx.corrected_latency {
            page.push_str(
                "<tr class=\"corrected\"><td colspan=\"7\">↳ corrected for coordinated omission</td>",
            );
            for value in [c.min, c.mean, c.p50, c.p90, c.p95, c.p99, c.p999, c.max].map(text::ms) {
                let _ = write!(page, "<td class=\"num\">{}</td>", markup(&value));
            }
            page.push_str("</tr>\n");
        }
    }
    page.push_str("</tbody></table></div>\n");
}

fn badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">pass</span>"
    } else {
        "<span class=\"badge fail\">fail</span>"
    }
}

fn correctness(page: &mut String, report: &Report) {
    page.push_str("<h2>Correctness</h2>\n");
    if report.correctness.checks.is_empty() {
        page.push_str("<p class=\"note\">No invariant was checked.</p>\n");
        return;
    }
    page.push_str("<table><thead><tr><th></th><th>check</th><th>counts</th><th>examples</th></tr></thead><tbody>\n");
    for check in &report.correctness.checks {
        let status = match check.status() {
            CheckStatus::Passed => badge(true),
            CheckStatus::Failed => badge(false),
            CheckStatus::Skipped => "<span class=\"badge skip\">skipped</span>",
        };
        let counts = check
            .counts
            .iter()
            .map(|(k, v)| format!("{}={v}", markup(k)))
            .collect::<Vec<_>>()
            .join("<br>");
        let detail = match &check.skipped_reason {
            Some(reason) => format!("<span class=\"note\">not run: {}</span>", markup(reason)),
            None => check
                .examples
                .iter()
                .map(|e| format!("<code>{}</code>", markup(e)))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let _ = writeln!(
            page,
            "<tr><td>{status}</td><td><strong>{}</strong><div class=\"description\">{}</div></td><td>{counts}</td><td>{detail}</td></tr>",
            markup(&check.name),
            markup(&check.description)
        );
    }
    page.push_str("</tbody></table>\n");
}

fn failover(page: &mut String, report: &Report) {
    page.push_str("<h2>Failover</h2>\n");
    let failover = &report.failover;
    if let Some(note) = &failover.note {
        let _ = writeln!(page, "<p class=\"note\">{}</p>", markup(note));
    }
    if failover.faults.is_empty() {
        if failover.note.is_none() {
            let _ = writeln!(
                page,
                "<p class=\"note\">{}</p>",
                markup(Failover::NO_FAULT_NOTE)
            );
        }
        return;
    }
    page.push_str("<table><thead><tr><th></th>");
    for fault in &failover.faults {
        let _ = write!(
            page,
            "<th>{} · {}</th>",
            markup(&fault.target),
            markup(&fault.kind)
        );
    }
    page.push_str("</tr></thead><tbody>\n");
    for (label, cell) in text::failover_rows() {
        let _ = write!(page, "<tr><th>{}</th>", markup(label));
        for fault in &failover.faults {
            let value = markup(&cell(fault));
            let value = match label {
                "schedule" => format!("<code>{value}</code>"),
                "acknowledged bookings lost" if fault.acknowledged_lost > 0 => {
                    format!("<span class=\"lost\">{value}</span>")
                }
                _ => value,
            };
            let _ = write!(page, "<td>{value}</td>");
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table>\n");
}

/// The box office's resources: one small chart per measure (a line per instance), then the
/// growth from the first quarter of the run to the last.
fn resources(page: &mut String, report: &Report) {
    let Some(resources) = &report.resources else {
        return;
    };
    page.push_str("<h2>Resources of the box office</h2>\n");
    let bands = fault_bands(report);
    let x_max = x_extent(report).max(
        resources
            .series
            .iter()
            .flat_map(|s| s.points.last().map(|p| p.0))
            .fold(0.0, f64::max),
    );
    let mut measures: Vec<&str> = Vec::new();
    let mut instances: Vec<&str> = Vec::new();
    for s in &resources.series {
        if !measures.contains(&s.measure.as_str()) {
            measures.push(&s.measure);
        }
        if !instances.contains(&s.instance.as_str()) {
            instances.push(&s.instance);
        }
    }
    page.push_str("<div class=\"multiples\">\n");
    for (m, measure) in measures.iter().enumerate() {
        let mut series = Vec::new();
        let mut legend = Vec::new();
        for s in resources.series.iter().filter(|s| s.measure == *measure) {
            let i = instances.iter().position(|x| *x == s.instance).unwrap_or(0);
            let color = PALETTE[i % PALETTE.len()];
            series.push(Series {
                label: s.instance.clone(),
                color,
                dash: None,
                width: 2.0,
                fill: false,
                points: s.points.iter().map(|&(t, v)| (t, Some(v))).collect(),
            });
            legend.push(LegendEntry {
                label: s.instance.clone(),
                swatch: Swatch::Line {
                    color,
                    dash: None,
                    width: 2.5,
                },
            });
        }
        legend.extend(band_legend(&bands));
        let chart = Chart {
            id: format!("resource-{m}"),
            width: crate::chart::WIDTH / 2.0,
            title: crate::text::resource_title(measure).to_owned(),
            x_label: "seconds since start".to_owned(),
            y_label: resource_unit(measure).to_owned(),
            x_max,
            scale: Scale::Linear,
            series,
            bands: bands.clone(),
            legend,
        };
        let _ = writeln!(
            page,
            "<figure>{}<figcaption>{}, sampled from each instance's /metrics every {} s.</figcaption></figure>",
            chart.render(),
            markup(crate::text::resource_title(measure)),
            resources.interval_s
        );
    }
    page.push_str("</div>\n");
    page.push_str("<table><thead><tr><th>instance</th><th>measure</th><th class=\"num\">first quarter</th><th class=\"num\">last quarter</th><th class=\"num\">growth</th></tr></thead><tbody>\n");
    for s in &resources.series {
        let [first, last, growth] = crate::text::growth_cells(s);
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{first}</td><td class=\"num\">{last}</td><td class=\"num\">{growth}</td></tr>",
            markup(&s.instance),
            markup(crate::text::resource_title(&s.measure))
        );
    }
    page.push_str("</tbody></table>\n");
}

fn resource_unit(measure: &str) -> &str {
    match measure {
        "rss_mib" => "MiB",
        "open_fds" => "descriptors",
        "db_pool_connections" => "connections",
        "tasks" => "tasks",
        other => other,
    }
}

fn comparison(page: &mut String, report: &Report) {
    let Some(comparison) = &report.comparison else {
        return;
    };
    let _ = writeln!(page, "<h2>{}</h2>", markup(&comparison.title));
    page.push_str("<div class=\"matrix\"><table><thead><tr><th></th>");
    for column in &comparison.columns {
        let _ = write!(page, "<th class=\"num\">{}</th>", markup(column));
    }
    page.push_str("<th>verdict</th></tr></thead><tbody>\n");
    for row in &comparison.rows {
        let _ = write!(page, "<tr><th>{}</th>", markup(&row.label));
        for column in &comparison.columns {
            let value = row
                .values
                .get(column)
                .map_or_else(|| "—".to_owned(), text::json_value);
            let _ = write!(page, "<td class=\"num\">{}</td>", markup(&value));
        }
        let _ = writeln!(page, "<td>{}</td></tr>", badge(row.passed));
    }
    page.push_str("</tbody></table></div>\n");
    if let Some(reading) = &comparison.reading {
        let _ = writeln!(
            page,
            "<p class=\"reading\"><strong>What this shows.</strong> {}</p>",
            markup(reading)
        );
    }
}

/// `scenario compare A B` as one self-contained page: the headline, then the comparison.
pub fn render_comparison_html(cmp: &RunComparison) -> String {
    let mut page = String::with_capacity(32 * 1024);
    let word = if cmp.regressions == 0 {
        "no regression"
    } else {
        "REGRESSION"
    };
    let title = format!(
        "{word} · {} vs {} · Box Office Lab",
        cmp.current.id, cmp.baseline.id
    );
    page_head(&mut page, &title);
    let _ = writeln!(
        page,
        "<h1>{} vs {}</h1>",
        markup(&cmp.current.id),
        markup(&cmp.baseline.id)
    );
    let (class, mark) = if cmp.regressions == 0 {
        ("pass", "✓ no regression")
    } else {
        ("fail", "✗ REGRESSION")
    };
    let _ = writeln!(
        page,
        "<div class=\"verdict {class}\" id=\"verdict\">{mark} · {}</div>",
        markup(&text::comparison_title(cmp))
    );
    baseline_section(&mut page, cmp);
    page.push_str("<footer>Box Office Lab run comparison · generated from two runs' report.json and history.jsonl</footer>\n</main>\n</body>\n</html>\n");
    page
}

/// The document's head (no network: the CSP forbids every fetch) and the opening of `<main>`.
pub(crate) fn page_head(page: &mut String, title: &str) {
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(page, "<title>{}</title>", markup(title));
    let _ = writeln!(page, "<style>{CSS}</style>\n</head>\n<body>\n<main>");
}

/// The comparison with a baseline run: the runs, a bar chart of each transaction's
/// percentiles in both, and the table of every metric with its test and assessment.
fn baseline_section(page: &mut String, cmp: &RunComparison) {
    let _ = writeln!(
        page,
        "<h2 id=\"baseline\">{}</h2>",
        markup(&text::comparison_title(cmp))
    );
    page.push_str("<dl class=\"facts\">");
    for (label, r) in [
        ("baseline (A)", &cmp.baseline),
        ("current (B)", &cmp.current),
    ] {
        let _ = write!(
            page,
            "<dt>{label}</dt><dd><code>{}</code> · {} on {} · {} · {} users{} · from <code>{}</code></dd>",
            markup(&r.id),
            markup(&r.scenario),
            markup(&r.stack),
            markup(&r.strategy),
            r.users,
            if r.samples { " · with history" } else { " · no history" },
            markup(&r.source)
        );
    }
    page.push_str("</dl>\n");
    let _ = writeln!(
        page,
        "<p class=\"note\">A change counts when its test is significant at α={} and exceeds ±{:.0}% and, for latency, {} ms (medians: Mann–Whitney U with effect size A ≥ {}; p95, p99 and throughput: bootstrap confidence interval, {} resamples; error rates: two-proportion z-test).</p>",
        cmp.method.alpha,
        cmp.method.tolerance * 100.0,
        cmp.method.min_latency_delta_ms,
        cmp.method.min_effect,
        cmp.method.resamples
    );
    for note in &cmp.notes {
        let _ = writeln!(page, "<p class=\"note\">{}</p>", markup(note));
    }
    let pairs: Vec<(String, Option<f64>, Option<f64>)> = cmp
        .rows
        .iter()
        .filter(|r| r.group == "transaction" && r.unit == "ms")
        .map(|r| {
            (
                format!("{} {}", r.subject, r.metric.trim_end_matches("_ms")),
                r.baseline,
                r.current,
            )
        })
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            page,
            "<figure>{}<figcaption>Latency percentiles per transaction, baseline (A) and current (B).</figcaption></figure>",
            crate::chart::paired_bars("compare-latency", "Latency, A vs B", "ms", &pairs)
        );
    }
    page.push_str("<table><thead><tr><th></th><th>subject</th><th>metric</th><th class=\"num\">A</th><th class=\"num\">B</th><th class=\"num\">Δ</th><th>test</th></tr></thead><tbody>\n");
    for row in &cmp.rows {
        let (class, badge) = match row.assessment {
            Assessment::Regression => {
                ("regression", "<span class=\"badge fail\">regression</span>")
            }
            Assessment::Improvement => ("improvement", "<span class=\"badge pass\">better</span>"),
            Assessment::Unchanged => ("unchanged", "<span class=\"badge same\">≈</span>"),
            Assessment::Info => ("info", ""),
        };
        let _ = writeln!(
            page,
            "<tr class=\"{class}\"><td>{badge}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            markup(&text::metric_subject(row)),
            markup(&row.metric),
            markup(&text::metric_value(row.baseline, &row.unit)),
            markup(&text::metric_value(row.current, &row.unit)),
            markup(&text::metric_delta(row)),
            markup(&text::metric_test(row))
        );
    }
    page.push_str("</tbody></table>\n");
}

fn thresholds(page: &mut String, report: &Report) {
    page.push_str("<h2>Thresholds</h2>\n");
    if report.verdict.outcomes.is_empty() {
        page.push_str("<p class=\"note\">No threshold was set.</p>\n");
        return;
    }
    page.push_str("<table><thead><tr><th></th><th>threshold</th><th>kind</th><th>limit</th><th>observed</th></tr></thead><tbody>\n");
    for o in &report.verdict.outcomes {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            badge(o.passed),
            markup(&o.name),
            o.kind,
            markup(&o.limit),
            markup(&o.observed)
        );
    }
    page.push_str("</tbody></table>\n");
}

fn artifacts(page: &mut String, report: &Report) {
    if report.artifacts.is_empty() {
        return;
    }
    page.push_str("<h2>Artifacts</h2>\n<ul>\n");
    for artifact in &report.artifacts {
        // Only relative paths become links: the page must never point off the machine.
        let path = &artifact.path;
        let relative = !path.contains(':') && !path.starts_with('/') && !path.starts_with('\\');
        if relative {
            let _ = writeln!(
                page,
                "<li>{}: <a href=\"{}\"><code>{}</code></a></li>",
                markup(&artifact.name),
                attr(path),
                markup(path)
            );
        } else {
            let _ = writeln!(
                page,
                "<li>{}: <code>{}</code></li>",
                markup(&artifact.name),
                markup(path)
            );
        }
    }
    page.push_str("</ul>\n");
}

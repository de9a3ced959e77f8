//! Text helpers shared by the renderers: escaping for HTML/SVG/XML and Markdown table cells,
//! and number formatting, so that every output shows the same number the same way.
//!
//! Every string that comes from a report goes through one of the escapers before it is
//! written; formatting never panics and shows "—" for a missing or non-finite value.

use std::fmt::Write as _;

use crate::model::{FaultReport, Load, MetricDelta, RunComparison, RunInfo};

/// Escapes text for HTML, SVG and XML, both in element content and in quoted attribute values.
/// Characters XML 1.0 forbids (most control characters) become U+FFFD so the output always
/// parses; line breaks and tabs are kept (use [`attr`] for attributes, where they matter).
pub(crate) fn markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Escapes text for a quoted attribute value; line breaks and tabs become character
/// references so parsers do not normalise them to spaces.
pub(crate) fn attr(text: &str) -> String {
    markup(text)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Makes text safe inside a Markdown table cell: no pipes or line breaks to break the table,
/// no raw HTML (GitHub renders it), no stray backticks or emphasis.
pub(crate) fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\\' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Inline code in Markdown that survives any content: backticks, pipes and line breaks
/// cannot break out of it or out of a table row.
pub(crate) fn md_code(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .filter(|c| !c.is_control())
        .collect();
    // A pipe ends a table cell even inside a code span on GitHub, so it is escaped there too.
    format!("`{}`", clean.replace('|', "\\|"))
}

/// A latency in ms with precision that suits its size: "0.84", "12.3", "812".
pub(crate) fn ms(value: f64) -> String {
    if !value.is_finite() {
        "—".to_owned()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The users of a run: "2000", or "10000 (9412 started)" when fewer than planned ran.
pub(crate) fn users(run: &RunInfo) -> String {
    let started = run.load.users_started;
    if started > 0 && started < run.users {
        format!("{} ({started} started)", run.users)
    } else {
        run.users.to_string()
    }
}

/// What the load cost the runner, in one line: "shared client · peak 64 connections ·
/// 4197 descriptors of 20000 · peak RSS 183 MiB · arrivals: 400 due, 398 begun (12 late),
/// 2 dropped"; "—" for a report without it (before 4.0).
pub(crate) fn load(load: &Load) -> String {
    let mut parts = Vec::new();
    if !load.connections.is_empty() {
        parts.push(match load.connections.as_str() {
            "shared" => "one shared client".to_owned(),
            "per-user" => "a client per user".to_owned(),
            other => other.to_owned(),
        });
    }
    if let Some(c) = load.peak_connections {
        parts.push(format!("peak {c} connections"));
    }
    if let Some(limit) = load.connection_limit {
        parts.push(format!("at most {limit} requests in flight"));
    }
    if load.peak_open_files > 0 {
        parts.push(match load.open_files_limit {
            Some(limit) => format!("{} descriptors of {limit}", load.peak_open_files),
            None => format!("{} descriptors", load.peak_open_files),
        });
    }
    if let Some(mib) = load.peak_rss_mib.filter(|m| m.is_finite()) {
        parts.push(format!("peak RSS {mib:.0} MiB"));
    }
    if let Some(a) = load.arrivals {
        parts.push(format!(
            "arrivals: {} due, {} begun ({} late), {} dropped",
            a.due, a.started, a.late, a.dropped
        ));
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// A rejection count, with the requests refused past capacity among them when there were
/// any: "120" or "120 (overloaded 80)".
pub(crate) fn rejected(rejected: u64, refused: u64) -> String {
    match refused {
        0 => rejected.to_string(),
        n => format!("{rejected} (overloaded {n})"),
    }
}

/// A rate per second: "1234.5".
pub(crate) fn rps(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1}")
    } else {
        "—".to_owned()
    }
}

/// A fraction as a percentage: 0.0123 → "1.23%".
pub(crate) fn percent(fraction: f64) -> String {
    if fraction.is_finite() {
        format!("{:.2}%", fraction * 100.0)
    } else {
        "—".to_owned()
    }
}

/// Seconds with one decimal: "12.3 s".
pub(crate) fn secs(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.1} s")
    } else {
        "—".to_owned()
    }
}

/// A time on the run timeline and how long after `since` it came: "23.4 s (+3.4 s)";
/// "—" when absent.
pub(crate) fn at_after(at: Option<f64>, since: f64) -> String {
    match at {
        Some(t) if t.is_finite() => format!("{} (+{})", secs(t), secs(t - since)),
        _ => "—".to_owned(),
    }
}

/// A plain number for tick labels and tables, trimmed of useless zeros: 5 → "5", 0.25 → "0.25".
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A JSON value from a comparison table, shown as a person would write it.
pub(crate) fn json_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "—".to_owned(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (None, Some(i), _) => i.to_string(),
            (None, None, Some(f)) if f.abs() >= 100.0 => format!("{f:.0}"),
            (None, None, Some(f)) => number((f * 100.0).round() / 100.0),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Counts as "lost=2, acknowledged=100".
pub(crate) fn counts(counts: &std::collections::BTreeMap<String, i64>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in counts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}={value}");
    }
    out
}

/// A value of a compared metric in its unit: "12.3 ms", "812.0 req/s", "1.20%", "holds".
pub(crate) fn metric_value(value: Option<f64>, unit: &str) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "—".to_owned();
    };
    match unit {
        "ms" => format!("{} ms", ms(v)),
        "rps" => format!("{} req/s", rps(v)),
        "fraction" => percent(v),
        "bool" if v >= 1.0 => "holds".to_owned(),
        "bool" => "broken".to_owned(),
        "s" => secs(v),
        _ => number(v),
    }
}

/// The difference of a compared metric: "+7.8 ms (+63.0%)", "+1.20 pts", "—".
pub(crate) fn metric_delta(row: &MetricDelta) -> String {
    let Some(d) = row.delta.filter(|d| d.is_finite()) else {
        return "—".to_owned();
    };
    let sign = if d >= 0.0 { "+" } else { "−" };
    let magnitude = match row.unit.as_str() {
        "ms" => format!("{} ms", ms(d.abs())),
        "rps" => format!("{} req/s", rps(d.abs())),
        "fraction" => return format!("{sign}{:.2} pts", d.abs() * 100.0),
        "bool" => return "—".to_owned(),
        "s" => secs(d.abs()),
        _ => number(d.abs()),
    };
    match row.change {
        Some(c) => format!("{sign}{magnitude} ({c:+.1}%)", c = c * 100.0),
        None => format!("{sign}{magnitude}"),
    }
}

/// The noise test of a compared metric in words: "MWU p=0.0001 A=0.71",
/// "95% CI [+1.2, +3.4] ms", "z p=0.03"; "—" without a test.
pub(crate) fn metric_test(row: &MetricDelta) -> String {
    let Some(t) = &row.test else {
        return "—".to_owned();
    };
    let p = |p: Option<f64>| match p {
        Some(p) if p < 0.0001 => "p<0.0001".to_owned(),
        Some(p) => format!("p={p:.4}"),
        None => "p=—".to_owned(),
    };
    let body = match t.method.as_str() {
        "mann-whitney-u" => format!(
            "Mann–Whitney {} A={:.2}",
            p(t.p_value),
            t.effect_size.unwrap_or(0.5)
        ),
        "two-proportion-z" => format!("z-test {}", p(t.p_value)),
        _ => {
            let unit = match row.unit.as_str() {
                "ms" => " ms",
                "rps" => " req/s",
                _ => "",
            };
            format!(
                "95% CI [{:+.2}, {:+.2}]{unit}",
                t.ci_low.unwrap_or(0.0),
                t.ci_high.unwrap_or(0.0)
            )
        }
    };
    if t.significant {
        body
    } else {
        format!("{body} · noise")
    }
}

/// A comparison row's subject for people: "hold", "all requests", "check no-double-sale".
pub(crate) fn metric_subject(row: &MetricDelta) -> String {
    match row.group.as_str() {
        "transaction" => row.subject.clone(),
        "summary" => "all requests".to_owned(),
        group => format!("{group} {}", row.subject),
    }
}

/// What the rows of a comparison are about, in a heading's words.
pub(crate) fn comparison_title(cmp: &RunComparison) -> String {
    format!(
        "{} regression{} vs baseline {}",
        cmp.regressions,
        if cmp.regressions == 1 { "" } else { "s" },
        cmp.baseline.id
    )
}

/// Formats one measurement of a fault for display.
pub(crate) type FaultCell = fn(&FaultReport) -> String;

/// The rows of the failover table, shared by Markdown and HTML so both show the same numbers:
/// a label and how to format it for one fault. Times are "at (+since the fault started)".
pub(crate) fn failover_rows() -> [(&'static str, FaultCell); 12] {
    [
        ("schedule", |f| f.spec.clone()),
        ("fault window", |f| {
            format!(
                "{} → {} ({})",
                secs(f.start_s),
                secs(f.end_s),
                secs(f.end_s - f.start_s)
            )
        }),
        ("first client error", |f| {
            at_after(f.first_error_s, f.start_s)
        }),
        ("noticed", |f| {
            let at = at_after(f.noticed_s, f.start_s);
            match &f.noticed_by {
                Some(by) if f.noticed_s.is_some() => format!("{at} by {by}"),
                _ => at,
            }
        }),
        ("first success after", |f| {
            at_after(f.first_success_after_s, f.start_s)
        }),
        ("SLO held again after", |f| {
            f.recovered_within_slo_s
                .map_or_else(|| "not within the run".to_owned(), secs)
        }),
        ("bookings in window", |f| match f.bookings_in_window {
            Some(0) => "0 (the fault hit no sale)".to_owned(),
            Some(n) => n.to_string(),
            None => "—".to_owned(),
        }),
        ("errors / requests in window", |f| {
            format!("{} / {}", f.errors_in_window, f.requests_in_window)
        }),
        ("error rate: baseline → window", |f| {
            format!(
                "{} → {}",
                percent(f.error_rate_baseline),
                percent(f.error_rate_window)
            )
        }),
        ("p99: baseline → window", |f| {
            format!("{} ms → {} ms", ms(f.p99_baseline_ms), ms(f.p99_window_ms))
        }),
        ("acknowledged bookings lost", |f| {
            f.acknowledged_lost.to_string()
        }),
        ("alerts fired", |f| {
            if f.alerts.is_empty() {
                "none".to_owned()
            } else {
                f.alerts
                    .iter()
                    .map(|a| format!("{} at {}", a.name, secs(a.fired_at_s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }),
    ]
}

/// A measure's title.
pub(crate) fn resource_title(measure: &str) -> &str {
    match measure {
        "rss_mib" => "Resident memory",
        "open_fds" => "Open file descriptors",
        "db_pool_connections" => "Database pool connections",
        "tasks" => "Async tasks alive",
        other => other,
    }
}

/// A resource series' first-quarter mean, last-quarter mean and growth, as table cells ("—"
/// when there are too few points).
pub(crate) fn growth_cells(s: &crate::model::ResourceSeries) -> [String; 3] {
    match s.growth() {
        Some((first, last, g)) => [
            format!("{first:.1}"),
            format!("{last:.1}"),
            format!("{:+.1}%", g * 100.0),
        ],
        None => ["—".into(), "—".into(), "—".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_escapes_every_special_character_and_drops_forbidden_ones() {
        assert_eq!(
            markup("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{FFFD}"
        );
        assert_eq!(attr("a\nb"), "a&#10;b");
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(
            md("a|b\nc <b>*x*</b>"),
            "a\\|b c &lt;b&gt;\\*x\\*&lt;/b&gt;"
        );
        assert_eq!(md_code("a`b|c"), "`a'b\\|c`");
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(ms(0.8432), "0.84");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(812.4), "812");
        assert_eq!(ms(f64::NAN), "—");
        assert_eq!(percent(0.0123), "1.23%");
        assert_eq!(number(5.0), "5");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(at_after(Some(23.4), 20.0), "23.4 s (+3.4 s)");
        assert_eq!(json_value(&serde_json::json!(1234.5678)), "1235");
        assert_eq!(json_value(&serde_json::json!(12.3456)), "12.35");
        assert_eq!(json_value(&serde_json::json!(null)), "—");
    }
}

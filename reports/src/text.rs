//! Text helpers shared by the renderers: escaping for HTML/SVG/XML and Markdown table cells,
//! and number formatting, so that every output shows the same number the same way.
//!
//! Every string that comes from a report goes through one of the escapers before it is
//! written; formatting never panics and shows "—" for a missing or non-finite value.

use std::fmt::Write as _;

use crate::model::FaultReport;

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

/// Formats one measurement of a fault for display.
pub(crate) type FaultCell = fn(&FaultReport) -> String;

/// The rows of the failover table, shared by Markdown and HTML so both show the same numbers:
/// a label and how to format it for one fault. Times are "at (+since the fault started)".
pub(crate) fn failover_rows() -> [(&'static str, FaultCell); 11] {
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

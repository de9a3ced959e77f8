//! The metric table of `system/METRICS.md` and the same view of a live registry, so that
//! tests can hold the specification and the code equal. Test support only: the service never
//! reads its own documentation. The lab's `scenarios` tests include this same file (by path)
//! to compare the table with what Prometheus scraped.

use std::collections::{BTreeMap, BTreeSet};

/// One metric family: its type (`counter`, `gauge`, `histogram`) and label names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// Label names, sorted, without `le`.
    pub labels: BTreeSet<String>,
}

/// The families of the Markdown table whose header row starts with `| name | type |
/// labels |`: rows `| \`name\` | type | label, label | unit | meaning |`.
pub fn from_markdown(text: &str) -> BTreeMap<String, Family> {
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if !line.trim_start().starts_with('|') {
            in_table = false;
            continue;
        }
        if cells.len() >= 3 && cells[0] == "name" && cells[1] == "type" {
            in_table = true;
            continue;
        }
        if !in_table || cells[0].starts_with("---") || cells.len() < 3 {
            continue;
        }
        let name = cells[0].trim_matches('`').to_owned();
        let labels = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        out.insert(
            name,
            Family {
                kind: cells[1].to_owned(),
                labels,
            },
        );
    }
    out
}

/// The families in a Prometheus text exposition (`# TYPE` lines and sample labels).
pub fn from_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.insert(
                    name.to_owned(),
                    Family {
                        kind: kind.to_owned(),
                        labels: BTreeSet::new(),
                    },
                );
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let sample = &line[..name_end];
        let family = out
            .keys()
            .filter(|f| {
                sample == f.as_str()
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| sample.strip_suffix(s) == Some(f.as_str()))
            })
            .max_by_key(|f| f.len())
            .cloned();
        let (Some(family), Some(open)) = (family, line.find('{')) else {
            continue;
        };
        let close = line.rfind('}').unwrap_or(line.len());
        let labels = parse_label_names(&line[open + 1..close]);
        if let Some(f) = out.get_mut(&family) {
            f.labels.extend(labels.into_iter().filter(|l| l != "le"));
        }
    }
    out
}

fn parse_label_names(s: &str) -> Vec<String> {
    // name="value",name="value" with escaped quotes inside values.
    let mut names = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        names.push(rest[..eq].trim().trim_start_matches(',').to_owned());
        let after = &rest[eq + 1..];
        let mut chars = after.char_indices().skip(1);
        let mut end = after.len();
        let mut escaped = false;
        for (i, c) in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end.min(after.len())..];
    }
    names
}

/// A readable difference between the specification and what is emitted; empty when equal.
pub fn diff(spec: &BTreeMap<String, Family>, emitted: &BTreeMap<String, Family>) -> String {
    let mut out = String::new();
    for (name, f) in spec {
        match emitted.get(name) {
            None => out.push_str(&format!("in METRICS.md, not emitted: {name}\n")),
            Some(e) if e != f => out.push_str(&format!(
                "{name}: METRICS.md says {} {:?}, emitted {} {:?}\n",
                f.kind, f.labels, e.kind, e.labels
            )),
            _ => {}
        }
    }
    for name in emitted.keys().filter(|n| !spec.contains_key(*n)) {
        out.push_str(&format!("emitted, not in METRICS.md: {name}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_parser_reads_families_and_label_names() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1\",y=\"a,b=\\\"c\\\"\"} 3\n\
                    # TYPE h_seconds histogram\nh_seconds_bucket{r=\"1\",le=\"0.5\"} 1\nh_seconds_sum{r=\"1\"} 1\n\
                    # TYPE g gauge\ng 0\n";
        let f = from_exposition(text);
        assert_eq!(f["a_total"].labels, ["x", "y"].map(String::from).into());
        assert_eq!(f["h_seconds"].labels, ["r"].map(String::from).into());
        assert_eq!(f["h_seconds"].kind, "histogram");
        assert!(f["g"].labels.is_empty());
    }

    #[test]
    fn the_markdown_parser_reads_the_table_rows() {
        let md = "intro\n\n| name | type | labels | unit | meaning |\n|---|---|---|---|---|\n\
                  | `a_total` | counter | x, y | 1 | m |\n| `g` | gauge | | 1 | m |\n\nafter | no\n";
        let f = from_markdown(md);
        assert_eq!(f.len(), 2);
        assert_eq!(f["a_total"].labels, ["x", "y"].map(String::from).into());
        assert!(f["g"].labels.is_empty());
    }
}

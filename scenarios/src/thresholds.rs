//! Thresholds: the limits a run is judged by, from flags (`--p99 hold=500ms`,
//! `--max-error-rate 0.05`) or the scenario's defaults, evaluated into
//! [`reports::ThresholdOutcome`]s.

use std::collections::BTreeMap;
use std::str::FromStr;

use reports::{ThresholdKind, ThresholdOutcome, TransactionStats};

/// A latency limit: `TX=DURATION`, where TX is a transaction name or `all`.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyLimit {
    /// Transaction name, or `all` for every transaction.
    pub transaction: String,
    /// Limit, ms.
    pub limit_ms: f64,
}

impl FromStr for LatencyLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (tx, d) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected TRANSACTION=DURATION, e.g. hold=500ms"))?;
        Ok(Self {
            transaction: tx.trim().to_owned(),
            limit_ms: parse_duration_ms(d.trim())?,
        })
    }
}

/// Parses `250ms`, `1.5s`, `800us` or a bare number of ms.
pub fn parse_duration_ms(s: &str) -> Result<f64, String> {
    let (num, factor) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(v * factor)
}

/// Parses a rate as a fraction (`0.05`) or a percentage (`5%`).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a rate (e.g. 0.05 or 5%)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} is outside 0..=1 (0%..=100%)"));
    }
    Ok(v)
}

/// Every threshold of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// Limits on p50, p95, p99, by percentile name.
    pub latency: BTreeMap<&'static str, Vec<LatencyLimit>>,
    /// Most (errors + unknown) / requests, over all transactions (rejections are not errors).
    pub max_error_rate: Option<f64>,
    /// Most unknown / requests (a write's timeout, transport error or 5xx).
    pub max_unknown_rate: Option<f64>,
    /// Least requests per second over the run.
    pub min_throughput_rps: Option<f64>,
}

impl Thresholds {
    /// Evaluates against the measured transactions and totals.
    pub fn evaluate(
        &self,
        transactions: &[TransactionStats],
        summary: &reports::Summary,
    ) -> Vec<ThresholdOutcome> {
        let mut out = Vec::new();
        for (pct, limits) in &self.latency {
            for l in limits {
                let pick = |t: &TransactionStats| match *pct {
                    "p50" => t.latency.p50,
                    "p95" => t.latency.p95,
                    _ => t.latency.p99,
                };
                let observed = if l.transaction == "all" {
                    transactions
                        .iter()
                        .filter(|t| t.count > 0)
                        .map(pick)
                        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
                } else {
                    transactions
                        .iter()
                        .find(|t| t.name == l.transaction && t.count > 0)
                        .map(pick)
                };
                let name = format!("{pct} latency of {}", l.transaction);
                let limit = format!("<= {} ms", l.limit_ms);
                out.push(match observed {
                    Some(v) => ThresholdOutcome::new(
                        name,
                        ThresholdKind::Latency,
                        limit,
                        format!("{v:.1} ms"),
                        v <= l.limit_ms,
                    ),
                    None => ThresholdOutcome::new(
                        name,
                        ThresholdKind::Latency,
                        limit,
                        "no request",
                        false,
                    ),
                });
            }
        }
        if let Some(max) = self.max_error_rate {
            out.push(rate_outcome("error rate", summary.error_rate, max));
        }
        if let Some(max) = self.max_unknown_rate {
            let rate = if summary.requests == 0 {
                0.0
            } else {
                summary.unknown as f64 / summary.requests as f64
            };
            out.push(rate_outcome("unknown-outcome rate", rate, max));
        }
        if let Some(min) = self.min_throughput_rps {
            out.push(ThresholdOutcome::new(
                "throughput",
                ThresholdKind::Throughput,
                format!(">= {min} req/s"),
                format!("{:.1} req/s", summary.throughput_rps),
                summary.throughput_rps >= min,
            ));
        }
        out
    }
}

impl Thresholds {
    /// The thresholds as JSON, kept in the report's parameters (`thresholds`) so that
    /// `scenario check` can judge a saved run by the same limits:
    /// `{"p99": {"all": 500.0}, "max_error_rate": 0.0, …}` (latencies in ms).
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (pct, limits) in &self.latency {
            let per_tx: serde_json::Map<String, serde_json::Value> = limits
                .iter()
                .map(|l| (l.transaction.clone(), serde_json::json!(l.limit_ms)))
                .collect();
            map.insert((*pct).to_owned(), per_tx.into());
        }
        for (key, value) in [
            ("max_error_rate", self.max_error_rate),
            ("max_unknown_rate", self.max_unknown_rate),
            ("min_throughput_rps", self.min_throughput_rps),
        ] {
            if let Some(v) = value {
                map.insert(key.to_owned(), serde_json::json!(v));
            }
        }
        map.into()
    }

    /// Reads [`Thresholds::to_json`]'s form back; unknown keys are ignored.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let mut t = Thresholds::default();
        for pct in ["p50", "p95", "p99"] {
            if let Some(per_tx) = value.get(pct).and_then(|v| v.as_object()) {
                let limits = per_tx
                    .iter()
                    .filter_map(|(tx, ms)| {
                        ms.as_f64().map(|limit_ms| LatencyLimit {
                            transaction: tx.clone(),
                            limit_ms,
                        })
                    })
                    .collect();
                t.latency.insert(pct, limits);
            }
        }
        let get = |k: &str| value.get(k).and_then(serde_json::Value::as_f64);
        t.max_error_rate = get("max_error_rate");
        t.max_unknown_rate = get("max_unknown_rate");
        t.min_throughput_rps = get("min_throughput_rps");
        t
    }
}

fn rate_outcome(name: &str, observed: f64, max: f64) -> ThresholdOutcome {
    ThresholdOutcome::new(
        name,
        ThresholdKind::ErrorRate,
        format!("<= {:.2}%", max * 100.0),
        format!("{:.2}%", observed * 100.0),
        observed <= max,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_parse_in_the_usual_units() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500.0));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500.0));
        assert_eq!(parse_duration_ms("250"), Ok(250.0));
        assert!(parse_duration_ms("fast").is_err());
        assert_eq!(parse_rate("5%"), Ok(0.05));
        assert_eq!(parse_rate("0.1"), Ok(0.1));
        assert!(parse_rate("120%").is_err());
        assert_eq!(
            "hold=2s".parse(),
            Ok(LatencyLimit {
                transaction: "hold".into(),
                limit_ms: 2000.0
            })
        );
    }

    #[test]
    fn thresholds_round_trip_through_the_reports_json() {
        let mut t = Thresholds::default();
        t.latency.insert(
            "p99",
            vec!["hold=500ms".parse().unwrap(), "all=1s".parse().unwrap()],
        );
        t.latency.insert("p50", vec!["pay=20ms".parse().unwrap()]);
        t.max_error_rate = Some(0.01);
        t.min_throughput_rps = Some(50.0);
        let mut back = Thresholds::from_json(&t.to_json());
        // Limits come back ordered by transaction name.
        for limits in back.latency.values_mut().chain(t.latency.values_mut()) {
            limits.sort_by(|a, b| a.transaction.cmp(&b.transaction));
        }
        assert_eq!(back, t);
    }

    #[test]
    fn a_slow_transaction_misses_its_latency_threshold() {
        let tx = TransactionStats {
            name: "hold".into(),
            count: 10,
            ok: 10,
            latency: reports::Percentiles {
                p99: 900.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut t = Thresholds::default();
        t.latency.insert(
            "p99",
            vec![
                "hold=500ms".parse().unwrap(),
                "all=1s".parse().unwrap(),
                "pay=1s".parse().unwrap(),
            ],
        );
        let o = t.evaluate(&[tx], &reports::Summary::default());
        assert!(!o[0].passed);
        assert!(o[1].passed);
        assert!(
            !o[2].passed,
            "a limit on a transaction that never ran cannot pass"
        );
        assert_eq!(
            reports::Verdict::from_outcomes(o).exit_code,
            reports::exit_code::THRESHOLD_MISSED
        );
    }
}

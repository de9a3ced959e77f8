//! A filled-in, deterministic report: a flash sale on the `naive` strategy with Redis killed
//! for ten seconds. Tests, docs and `cargo run -p reports --example preview` use it to show
//! every section of every renderer with realistic numbers, without running the lab.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::model::{
    AlertFiring, Artifact, Check, Comparison, ComparisonRow, Correctness, Failover, FaultReport,
    HostInfo, Load, Outcome, OutcomeCounts, Percentiles, Report, RunInfo, Summary, ThresholdKind,
    ThresholdOutcome, TransactionStats, Verdict, SCHEMA_VERSION,
};
use crate::timeline::TimelineBuilder;

const DURATION_S: f64 = 60.0;
const FAULT: (f64, f64) = (20.0, 30.0);
/// Name, requests per second, base latency in ms.
const TRANSACTIONS: [(&str, u32, f64); 3] = [
    ("browse", 60, 4.0),
    ("hold", 30, 12.0),
    ("confirm", 12, 35.0),
];

/// A deterministic example report with every section filled in, including a fault, a broken
/// invariant, a skipped check and a strategy comparison.
pub fn sample_report() -> Report {
    let mut report = sample_without_baseline();
    // The same run as its own baseline, a little faster and with a check that held: the
    // comparison section shows regressions, an improvement and unchanged rows.
    let mut baseline = report.clone();
    baseline.run.id = "20261119T223100Z-flash-sale-42".to_owned();
    baseline.run.started_at = "2026-11-19T22:31:00Z".to_owned();
    for tx in &mut baseline.transactions {
        tx.latency.p50 *= 0.8;
        tx.latency.p95 *= 0.7;
        tx.latency.p99 *= 0.6;
    }
    if let Some(t) = baseline.transactions.last_mut() {
        t.latency.p99 *= 3.0;
    }
    for check in &mut baseline.correctness.checks {
        if check.skipped_reason.is_none() {
            check.passed = true;
        }
    }
    report.baseline = Some(crate::compare::compare(
        crate::compare::Side {
            report: &baseline,
            source: "reports/runs/20261119T223100Z-flash-sale-42",
            samples: None,
        },
        crate::compare::Side {
            report: &report,
            source: "reports/runs/20261120T223100Z-flash-sale-42",
            samples: None,
        },
        &crate::compare::CompareOptions::default(),
    ));
    report
}

fn sample_without_baseline() -> Report {
    let mut rng = XorShift(0x5EED_B0C5);
    let mut timeline = TimelineBuilder::default();
    let mut histograms: BTreeMap<&str, (Histogram<u64>, OutcomeCounts)> = BTreeMap::new();

    for second in 0..DURATION_S as u32 {
        for (name, rate, base_ms) in TRANSACTIONS {
            // Closed model: users stuck in slow requests send fewer, so throughput dips.
            let in_fault_second = (FAULT.0..FAULT.1).contains(&f64::from(second));
            let rate = if in_fault_second && name != "browse" {
                rate / 2
            } else {
                rate
            };
            for i in 0..rate {
                let t = f64::from(second) + f64::from(i) / f64::from(rate);
                let in_fault = (FAULT.0..FAULT.1).contains(&t);
                let recovering = (FAULT.1..FAULT.1 + 4.0).contains(&t);
                let u = rng.unit();
                // Browsing is served from the database when the cache is gone: slower, not failing.
                let (latency_ms, ok) = match (name, in_fault, recovering) {
                    ("browse", true, _) => (base_ms * (4.0 + 8.0 * u * u), true),
                    (_, true, _) if u < 0.35 => (1000.0 + 1000.0 * rng.unit(), false),
                    (_, true, _) => (base_ms * (6.0 + 30.0 * u.powi(3)), true),
                    (_, _, true) => (base_ms * (2.0 + 4.0 * u.powi(3)), u > 0.03),
                    _ => (base_ms * (0.6 + 1.6 * u.powi(4)), u > 0.002),
                };
                // Most holds of a rush are refused (seat taken, sold out): not errors.
                let outcome = match (ok, name) {
                    // A read that fails is an error; a write's fate is unknown.
                    (false, "browse") => Outcome::Error,
                    (false, _) => Outcome::Unknown,
                    (true, "hold") if rng.unit() < 0.6 => Outcome::Rejected,
                    (true, _) => Outcome::Ok,
                };
                timeline.record(t, name, latency_ms, outcome);
                let (histogram, counts) = histograms.entry(name).or_insert_with(|| {
                    (
                        Histogram::new(3).expect("valid precision"),
                        OutcomeCounts::default(),
                    )
                });
                histogram
                    .record((latency_ms * 1000.0) as u64)
                    .expect("sample latencies are far below the histogram's limit");
                counts.add(outcome);
            }
        }
    }
    timeline.cover(DURATION_S);

    let transactions: Vec<TransactionStats> = TRANSACTIONS
        .iter()
        .map(|(name, _, _)| {
            let (histogram, counts) = &histograms[name];
            let latency = Percentiles::from_histogram(histogram);
            TransactionStats {
                name: (*name).to_owned(),
                count: counts.total(),
                ok: counts.ok,
                rejected: counts.rejected,
                errors: counts.errors,
                unknown: counts.unknown,
                refused: counts.refused,
                throughput_rps: counts.total() as f64 / DURATION_S,
                latency,
                // Stand-in numbers: the sample is a closed-model run, but shows the row.
                corrected_latency: (*name == "confirm").then_some(Percentiles {
                    mean: latency.mean * 1.2,
                    p90: latency.p90 * 1.3,
                    p95: latency.p95 * 1.5,
                    p99: latency.p99 * 1.8,
                    p999: latency.p999 * 1.9,
                    max: latency.max * 2.0,
                    ..latency
                }),
            }
        })
        .collect();
    let summary = Summary::from_transactions(&transactions, DURATION_S);
    let hold_p99 = transactions[1].latency.p99;

    let correctness = Correctness {
        checks: vec![
            Check::new(
                "no-double-sale",
                "No seat is in two live bookings of the same round.",
                false,
            )
            .with_count("seats", 100)
            .with_count("double_sold", 3)
            .with_examples(["seat r1-A-7", "seat r1-A-8", "seat r1-C-2"]),
            Check::new(
                "inventory-balances",
                "Confirmed + held + free = capacity for every round, none negative.",
                true,
            )
            .with_count("rounds", 4),
            Check::new(
                "no-lost-booking",
                "Every acknowledged booking exists afterwards.",
                true,
            )
            .with_count("acknowledged", 97)
            .with_count("final", 97)
            .with_count("lost", 0),
            Check::skipped(
                "ledger-matches-database",
                "Each confirmed booking has exactly one ledger effect.",
                "the embedded stack runs the ledger projection in-process with no broker to replay",
            ),
        ],
    };

    let mut outcomes = vec![
        ThresholdOutcome::new(
            "p99 latency of hold",
            ThresholdKind::Latency,
            "<= 250 ms",
            format!("{:.0} ms", hold_p99),
            hold_p99 <= 250.0,
        ),
        ThresholdOutcome::new(
            "error rate",
            ThresholdKind::ErrorRate,
            "<= 5%",
            format!("{:.2}%", summary.error_rate * 100.0),
            summary.error_rate <= 0.05,
        ),
        ThresholdOutcome::new(
            "recovery after redis kill",
            ThresholdKind::Recovery,
            "<= 15 s",
            "13.5 s",
            true,
        ),
    ];
    outcomes.extend(correctness.outcomes());

    Report {
        schema_version: SCHEMA_VERSION.to_owned(),
        run: RunInfo {
            id: "20261120T223100Z-flash-sale-42".to_owned(),
            scenario: "flash-sale".to_owned(),
            description: "1,000 buyers rush 100 seats of one round; Redis is killed mid-sale."
                .to_owned(),
            started_at: "2026-11-20T22:31:00Z".to_owned(),
            finished_at: "2026-11-20T22:32:00Z".to_owned(),
            duration_s: DURATION_S,
            stack: "embedded".to_owned(),
            strategy: "naive".to_owned(),
            seed: 42,
            users: 200,
            target_url: "http://127.0.0.1:38080".to_owned(),
            load: Load {
                users_started: 200,
                connections: "shared".to_owned(),
                peak_connections: Some(64),
                connection_limit: None,
                peak_open_files: 212,
                open_files_limit: Some(20_000),
                peak_rss_mib: Some(96.0),
                arrivals: None,
            },
            parameters: BTreeMap::from([
                ("seats".to_owned(), json!(100)),
                ("hold_ttl_s".to_owned(), json!(300)),
                ("chaos".to_owned(), json!("redis:kill@20s+10s")),
            ]),
            host: HostInfo {
                cores: 2,
                os: "linux".to_owned(),
            },
        },
        summary,
        transactions,
        timeline: timeline.build(),
        correctness,
        baseline: None,
        failover: Failover {
            note: None,
            faults: vec![FaultReport {
                target: "redis".to_owned(),
                kind: "kill".to_owned(),
                spec: "redis:kill@20s+10s".to_owned(),
                start_s: FAULT.0,
                end_s: FAULT.1,
                first_error_s: Some(20.04),
                noticed_s: Some(22.5),
                noticed_by: Some("readiness".to_owned()),
                first_success_after_s: Some(20.3),
                recovered_within_slo_s: Some(13.5),
                errors_in_window: 178,
                requests_in_window: 1020,
                error_rate_baseline: 0.002,
                error_rate_window: 0.175,
                p99_baseline_ms: hold_p99.min(40.0),
                p99_window_ms: 1890.0,
                acknowledged_lost: 0,
                alerts: vec![AlertFiring {
                    name: "BoxOfficeDependencyDown".to_owned(),
                    fired_at_s: 25.0,
                }],
                bookings_in_window: Some(12),
            }],
        },
        resources: Some(sample_resources()),
        comparison: Some(Comparison {
            title: "Concurrency strategies, 1,000 buyers for 100 seats".to_owned(),
            columns: [
                "throughput_rps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "conflicts",
                "retries",
                "oversold",
            ]
            .map(str::to_owned)
            .to_vec(),
            rows: [
                ("naive", 412.0, 9.1, 31.0, 58.0, 0, 0, 3),
                ("optimistic", 388.5, 10.4, 40.2, 77.9, 912, 1840, 0),
                ("pessimistic", 301.2, 14.8, 61.0, 140.3, 0, 0, 0),
                ("atomic", 430.7, 8.7, 28.5, 49.6, 900, 0, 0),
            ]
            .into_iter()
            .map(
                |(label, rps, p50, p95, p99, conflicts, retries, oversold)| ComparisonRow {
                    label: label.to_owned(),
                    values: BTreeMap::from([
                        ("throughput_rps".to_owned(), json!(rps)),
                        ("p50_ms".to_owned(), json!(p50)),
                        ("p95_ms".to_owned(), json!(p95)),
                        ("p99_ms".to_owned(), json!(p99)),
                        ("conflicts".to_owned(), json!(conflicts)),
                        ("retries".to_owned(), json!(retries)),
                        ("oversold".to_owned(), json!(oversold)),
                    ]),
                    passed: oversold == 0,
                },
            )
            .collect(),
            reading: Some(
                "What this shows: naive sold 3 seats twice, the three safe strategies none; \
                 optimistic paid for it with 1,840 retries."
                    .to_owned(),
            ),
        }),
        counters: BTreeMap::from([(
            "boxoffice_strategy_retries_total{operation=\"hold\"}".to_owned(),
            1840.0,
        )]),
        verdict: Verdict::from_outcomes(outcomes),
        artifacts: vec![
            Artifact {
                name: "client history".to_owned(),
                path: "history.jsonl".to_owned(),
            },
            Artifact {
                name: "box office log".to_owned(),
                path: "logs/app-1.log".to_owned(),
            },
        ],
    }
}

/// A tiny deterministic generator: the sample must not change between runs or platforms.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Two instances over a minute: flat descriptors, a slowly growing resident set on one.
fn sample_resources() -> crate::model::Resources {
    let series =
        |instance: &str, measure: &str, f: &dyn Fn(f64) -> f64| crate::model::ResourceSeries {
            instance: instance.to_owned(),
            measure: measure.to_owned(),
            points: (0..13)
                .map(|i| f64::from(i) * 5.0)
                .map(|t| (t, f(t)))
                .collect(),
        };
    crate::model::Resources {
        interval_s: 5.0,
        series: vec![
            series("app-1", "rss_mib", &|t| 42.0 + t * 0.05),
            series("app-2", "rss_mib", &|_| 40.0),
            series("app-1", "open_fds", &|_| 61.0),
            series("app-2", "open_fds", &|_| 58.0),
        ],
    }
}

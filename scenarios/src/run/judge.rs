//! Stage 4: judge. The final state is read back through the admin API, the checker judges
//! the history against it, the history's aggregates become per-transaction statistics, the
//! thresholds are evaluated, a chaos run gets its failover section and recovery outcomes,
//! and all of it becomes one verdict.

use crate::api::Api;
use crate::checker::{self, FinalState};
use crate::error::Result;
use crate::failover::{self, Slo, Window};
use crate::history::{HistoryOutput, OpKind};
use crate::seed::World;

use super::attack::{Attacked, FaultsSeen};
use super::plan::Plan;

/// What the final state is read with: the admin's token and the seeded rounds and coupons.
#[derive(Debug, Clone, Default)]
pub struct StateKeys {
    admin_token: String,
    rounds: Vec<i64>,
    coupons: Vec<String>,
}

impl StateKeys {
    /// The keys of a seeded world.
    pub fn of(world: &World) -> Self {
        Self {
            admin_token: world.admin_token.clone(),
            rounds: world.rounds.iter().map(|r| r.id).collect(),
            coupons: world.coupons.clone(),
        }
    }

    /// Rounds seeded.
    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }
}

/// The judgement of a run.
#[derive(Debug)]
pub struct Judged {
    /// The final state the checker read.
    pub state: FinalState,
    /// Per-transaction statistics.
    pub transactions: Vec<reports::TransactionStats>,
    /// Totals.
    pub summary: reports::Summary,
    /// The checker's findings.
    pub correctness: reports::Correctness,
    /// The failover section (no faults: empty).
    pub failover: reports::Failover,
    /// The comparison with `--baseline`.
    pub baseline: Option<reports::RunComparison>,
    /// The verdict.
    pub verdict: reports::Verdict,
}

/// How long the final state is asked for again while the box office cannot answer it (a
/// database that is still recovering from the run's last fault, an instance restarting).
const FINAL_STATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The final state, asked for again every second for up to [`FINAL_STATE_PATIENCE`] while
/// reading it fails: a run that ends just after a fault must not lose its report to one
/// 503 `database_unavailable` answered while the database recovers.
async fn final_state(api: &Api, keys: &StateKeys) -> Result<FinalState> {
    let t0 = std::time::Instant::now();
    loop {
        match api
            .final_state(&keys.admin_token, &keys.rounds, &keys.coupons)
            .await
        {
            Ok(state) => return Ok(state),
            Err(e) if t0.elapsed() < FINAL_STATE_PATIENCE => {
                tracing::warn!("reading the final state failed, trying again in 1 s: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the final state and judges the run.
pub async fn judge(plan: &Plan, api: &Api, keys: &StateKeys, run: &Attacked) -> Result<Judged> {
    let state = if plan.attack.seeds_world {
        final_state(api, keys).await?
    } else {
        FinalState::default()
    };
    let correctness = checker::check(&run.out.writes, &state, plan.attack.scope);
    let transactions = transactions(&run.out, run.duration_s);
    let summary = reports::Summary::from_transactions(&transactions, run.duration_s);
    let mut outcomes = plan.thresholds.evaluate(&transactions, &summary);
    outcomes.extend(correctness.outcomes());
    if let Some(series) = &run.resources {
        outcomes.extend(resource_outcomes(series, plan.cli.max_rss_growth));
    }
    let failover = match &run.faults {
        Some(seen) => {
            let slo = Slo {
                max_error_rate: plan.cli.slo_error_rate,
                p99_ms: plan.p99_all_ms(),
            };
            let section = failover_section(
                seen,
                &run.out,
                &state,
                slo,
                run.duration_s * 1000.0,
                plan.attack.scope.seats,
            );
            outcomes.extend(recovery_outcomes(&section, plan.cli.max_recovery));
            section
        }
        None => reports::Failover::no_faults(),
    };
    if let Some(reason) = &run.aborted {
        outcomes.push(reports::ThresholdOutcome::new(
            crate::recheck::ABORT_OUTCOME,
            reports::ThresholdKind::Invariant,
            "no invariant breaks during the run",
            format!("stopped early: {reason}"),
            false,
        ));
    }
    let baseline = plan.baseline.as_ref().map(|base| {
        let cmp = compare_with_baseline(
            plan,
            run,
            base,
            &transactions,
            &summary,
            &correctness,
            &failover,
        );
        if let Some(rules) = &plan.cli.max_regression {
            outcomes.extend(reports::compare::evaluate_rules(rules, &cmp));
        }
        cmp
    });
    Ok(Judged {
        baseline,
        state,
        transactions,
        summary,
        correctness,
        failover,
        verdict: reports::Verdict::from_outcomes(outcomes),
    })
}

/// This run against `--baseline`, its latency samples read back from the history just written.
fn compare_with_baseline(
    plan: &Plan,
    run: &Attacked,
    base: &crate::compare::LoadedRun,
    transactions: &[reports::TransactionStats],
    summary: &reports::Summary,
    correctness: &reports::Correctness,
    failover: &reports::Failover,
) -> reports::RunComparison {
    let mut current = reports::Report::default();
    current.run.id = plan.run_id();
    current.run.scenario = plan.name().to_owned();
    current.run.stack = plan.cli.stack.name().to_owned();
    current.run.strategy = plan.cli.strategy.as_str().to_owned();
    current.run.users = plan.users as u64;
    current.run.started_at = run
        .started_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    current.transactions = transactions.to_vec();
    current.summary = summary.clone();
    current.timeline = run.out.timeline.clone();
    current.correctness = correctness.clone();
    current.failover = failover.clone();
    let samples = run
        .out
        .path
        .as_deref()
        .and_then(|p| crate::history::read(p).ok())
        .map(|ops| crate::compare::samples_of(&ops));
    let source = plan.dir.display().to_string();
    reports::compare(
        reports::compare::Side {
            report: &base.report,
            source: &base.source,
            samples: base.samples.as_ref(),
        },
        reports::compare::Side {
            report: &current,
            source: &source,
            samples: samples.as_ref(),
        },
        &reports::CompareOptions::default(),
    )
}

/// Per-transaction statistics from the history's aggregates, in the history's order.
pub fn transactions(out: &HistoryOutput, duration_s: f64) -> Vec<reports::TransactionStats> {
    OpKind::ALL
        .iter()
        .filter_map(|k| out.transactions.get(k).map(|a| (k, a)))
        .map(|(k, a)| reports::TransactionStats {
            name: k.as_str().to_owned(),
            count: a.count(),
            ok: a.counts.ok,
            rejected: a.counts.rejected,
            errors: a.counts.errors,
            unknown: a.counts.unknown,
            refused: a.counts.refused,
            throughput_rps: if duration_s > 0.0 {
                a.count() as f64 / duration_s
            } else {
                0.0
            },
            latency: reports::Percentiles::from_histogram(&a.latency_us),
            corrected_latency: a
                .corrected_us
                .as_ref()
                .map(reports::Percentiles::from_histogram),
        })
        .collect()
}

/// The failover section of a chaos run.
fn failover_section(
    seen: &FaultsSeen,
    out: &HistoryOutput,
    state: &FinalState,
    slo: Slo,
    run_end_ms: f64,
    sells_seats: bool,
) -> reports::Failover {
    let windows: Vec<Window> = seen
        .records
        .iter()
        .filter_map(|r| Window::from_record(r.clone(), seen.offset_ms, run_end_ms))
        .collect();
    let lost = checker::bookings::lost_bookings(&out.writes, state).unwrap_or_default();
    let faults = failover::analyze(
        &windows,
        &out.samples,
        &seen.readiness,
        &seen.alerts,
        &lost,
        slo,
        run_end_ms,
    );
    let problems: Vec<String> = seen
        .records
        .iter()
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("{}:{}: {e}", r.fault.target, r.fault.action))
        })
        .collect();
    // A fault that met neither a booking nor an error tested nothing about sales (a rush
    // sold out before it began): say so rather than let its clean recovery speak for it.
    let idle: Vec<&str> = faults
        .iter()
        .filter(|f| f.bookings_in_window == Some(0) && f.errors_in_window == 0)
        .map(|f| f.spec.as_str())
        .collect();
    let mut notes = Vec::new();
    if seen.records.is_empty() {
        notes.push("the chaos schedule did not run (see the warnings of the run)".to_owned());
    }
    if !problems.is_empty() {
        notes.push(format!("faults that failed: {}", problems.join("; ")));
    }
    if !idle.is_empty() && sells_seats {
        notes.push(format!(
            "no booking was made during {} (and no request failed): the fault hit no sale, so its \
             recovery says nothing about bookings; give the run a steady --rate and a venue that \
             lasts it (e.g. --rate 15 --seats 20000)",
            idle.join(", ")
        ));
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    reports::Failover { note, faults }
}

/// One recovery outcome per fault against `--max-recovery` (ms), when given.
fn recovery_outcomes(
    failover: &reports::Failover,
    max_recovery_ms: Option<f64>,
) -> Vec<reports::ThresholdOutcome> {
    let Some(max_ms) = max_recovery_ms else {
        return Vec::new();
    };
    failover
        .faults
        .iter()
        .map(|f| {
            let observed = f
                .recovered_within_slo_s
                .map_or("never recovered in the run".to_owned(), |s| {
                    format!("{s:.1} s")
                });
            reports::ThresholdOutcome::new(
                format!("recovery after {}", f.spec),
                reports::ThresholdKind::Recovery,
                format!("<= {:.1} s", max_ms / 1000.0),
                observed,
                f.recovered_within_slo_s
                    .is_some_and(|s| s * 1000.0 <= max_ms),
            )
        })
        .collect()
}

/// One outcome per instance: its resident memory's growth from the first quarter of the
/// run to the last against `max_growth` (a fraction). An instance with too few samples to
/// tell fails: a soak that could not watch has not shown the absence of a leak.
fn resource_outcomes(
    series: &[reports::ResourceSeries],
    max_growth: f64,
) -> Vec<reports::ThresholdOutcome> {
    let rss: Vec<_> = series.iter().filter(|s| s.measure == "rss_mib").collect();
    if rss.is_empty() {
        return vec![reports::ThresholdOutcome::new(
            "resident memory growth",
            reports::ThresholdKind::Resource,
            format!("<= {:+.0}%", max_growth * 100.0),
            "no sample: the instances' /metrics could not be read",
            false,
        )];
    }
    rss.into_iter()
        .map(|s| {
            let (observed, passed) = match s.growth() {
                Some((first, last, g)) => (
                    format!("{:+.1}% ({first:.1} → {last:.1} MiB)", g * 100.0),
                    g <= max_growth,
                ),
                None => (
                    format!("{} samples: too few to tell", s.points.len()),
                    false,
                ),
            };
            reports::ThresholdOutcome::new(
                format!("resident memory growth of {}", s.instance),
                reports::ThresholdKind::Resource,
                format!("<= {:+.0}%", max_growth * 100.0),
                observed,
                passed,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss(instance: &str, values: &[f64]) -> reports::ResourceSeries {
        reports::ResourceSeries {
            instance: instance.to_owned(),
            measure: "rss_mib".to_owned(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 * 5.0, *v))
                .collect(),
        }
    }

    #[test]
    fn memory_that_grows_past_the_limit_fails_and_flat_memory_passes() {
        let flat = rss("app-1", &[50.0; 12]);
        let leaking = rss(
            "app-2",
            &(0..12)
                .map(|i| 50.0 + 2.0 * f64::from(i))
                .collect::<Vec<_>>(),
        );
        let out = resource_outcomes(&[flat, leaking], 0.10);
        assert_eq!(out.len(), 2);
        assert!(out[0].passed, "{:?}", out[0]);
        assert!(!out[1].passed, "{:?}", out[1]);
        assert_eq!(out[1].kind, reports::ThresholdKind::Resource);
        assert!(out[1].observed.starts_with("+"), "{:?}", out[1]);
        let verdict = reports::Verdict::from_outcomes(out);
        assert_eq!(verdict.exit_code, reports::exit_code::THRESHOLD_MISSED);
    }

    #[test]
    fn a_soak_that_could_not_watch_does_not_pass() {
        assert!(!resource_outcomes(&[], 0.1)[0].passed);
        assert!(!resource_outcomes(&[rss("app-1", &[50.0, 50.0])], 0.1)[0].passed);
    }
}

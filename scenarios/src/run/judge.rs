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
    /// The verdict.
    pub verdict: reports::Verdict,
}

/// Reads the final state and judges the run.
pub async fn judge(plan: &Plan, api: &Api, keys: &StateKeys, run: &Attacked) -> Result<Judged> {
    let state = if plan.attack.seeds_world {
        api.final_state(&keys.admin_token, &keys.rounds, &keys.coupons)
            .await?
    } else {
        FinalState::default()
    };
    let correctness = checker::check(&run.out.writes, &state, plan.attack.scope);
    let transactions = transactions(&run.out, run.duration_s);
    let summary = reports::Summary::from_transactions(&transactions, run.duration_s);
    let mut outcomes = plan.thresholds.evaluate(&transactions, &summary);
    outcomes.extend(correctness.outcomes());
    let failover = match &run.faults {
        Some(seen) => {
            let slo = Slo {
                max_error_rate: plan.cli.slo_error_rate,
                p99_ms: plan.p99_all_ms(),
            };
            let section = failover_section(seen, &run.out, &state, slo, run.duration_s * 1000.0);
            outcomes.extend(recovery_outcomes(&section, plan.cli.max_recovery));
            section
        }
        None => reports::Failover::no_faults(),
    };
    Ok(Judged {
        state,
        transactions,
        summary,
        correctness,
        failover,
        verdict: reports::Verdict::from_outcomes(outcomes),
    })
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
    let note = if seen.records.is_empty() {
        Some("the chaos schedule did not run (see the warnings of the run)".to_owned())
    } else if problems.is_empty() {
        None
    } else {
        Some(format!("faults that failed: {}", problems.join("; ")))
    };
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

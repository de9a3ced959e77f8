//! The failover report: what each injected fault did, measured from the client history, the
//! readiness probes and the final state — the numbers seed 003 claimed ("failover 40 s, data
//! loss 0") without a tool that measured them.
//!
//! All times are ms on the history's clock (0 = the attack's start). For one fault:
//!
//! ```text
//!   baseline          fault window (start → end)            after
//! ──────────────┬──────────────────────────────────┬──────────────────────────
//!               start   first error   noticed       end   first success   back within SLO
//! ```
//!
//! "Errors" are error and unknown outcomes (timeouts, connection errors, 5xx, a 4xx that
//! is not a business answer): a business refusal (a sold-out seat) is a correct answer even
//! during a fault. "Back within SLO" is the start of the
//! first [`SUSTAIN_S`] consecutive one-second buckets, at or after the first error, in which
//! the error rate is at most the SLO's and the p99 at most its limit; it is reported as a
//! duration from the fault's start, which is what the `--max-recovery` budget bounds.

use chaos::schedule::FaultRecord;

use crate::history::Sample;

/// Seconds the SLO must hold without a break to count as recovered.
pub const SUSTAIN_S: usize = 3;

/// The service level a run is held to while it recovers.
#[derive(Debug, Clone, Copy)]
pub struct Slo {
    /// Most errors / requests in a one-second bucket.
    pub max_error_rate: f64,
    /// Most p99 latency in a one-second bucket, ms.
    pub p99_ms: f64,
}

/// A readiness probe's answer about one instance at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// When the answer came, ms on the history's clock.
    pub t_ms: f64,
    /// Which instance.
    pub instance: String,
    /// Whether it said ready.
    pub ready: bool,
}

/// One fault as it happened, on the history's clock.
#[derive(Debug, Clone)]
pub struct Window {
    /// The schedule's record.
    pub record: FaultRecord,
    /// When it was applied, ms.
    pub start_ms: f64,
    /// When it was reverted (or the run ended), ms.
    pub end_ms: f64,
}

impl Window {
    /// Places a schedule record on the history's clock: the schedule started `offset_ms`
    /// after the history's epoch; a fault never reverted ends with the run.
    pub fn from_record(record: FaultRecord, offset_ms: f64, run_end_ms: f64) -> Option<Window> {
        let start_ms = offset_ms + record.applied_at?.as_secs_f64() * 1000.0;
        let end_ms = record
            .reverted_at
            .map_or(run_end_ms, |d| offset_ms + d.as_secs_f64() * 1000.0);
        Some(Window {
            record,
            start_ms,
            end_ms: end_ms.max(start_ms),
        })
    }
}

/// Measures each fault. `samples` in completion order; `lost` = acknowledged bookings
/// missing at the end, with their acknowledgement times.
pub fn analyze(
    windows: &[Window],
    samples: &[Sample],
    readiness: &[Readiness],
    alerts: &[(f64, String)],
    lost: &[(f64, String)],
    slo: Slo,
    run_end_ms: f64,
) -> Vec<reports::FaultReport> {
    let first_start = windows
        .iter()
        .map(|w| w.start_ms)
        .fold(f64::INFINITY, f64::min);
    let baseline: Vec<&Sample> = samples.iter().filter(|s| s.t_ms < first_start).collect();
    let (error_rate_baseline, p99_baseline_ms) = rate_and_p99(&baseline);
    let mut out = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let first_error = samples
            .iter()
            .find(|s| s.error && s.t_ms >= w.start_ms)
            .map(|s| s.t_ms);
        let after = first_error.unwrap_or(w.start_ms);
        let first_success = samples
            .iter()
            .find(|s| !s.error && s.t_ms >= after)
            .map(|s| s.t_ms);
        let recovered_ms = recovery(samples, after, run_end_ms, slo);
        let window_end = recovered_ms.unwrap_or(w.end_ms).max(w.end_ms);
        // Every request that overlapped the window: one stuck on a frozen component only
        // completes after it, and must count too.
        let in_window: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.t_ms >= w.start_ms && s.t_ms - s.latency_ms <= window_end)
            .collect();
        let (error_rate_window, p99_window_ms) = rate_and_p99(&in_window);
        // Alerts that fired from the fault's start until the next fault (or the run's end).
        let next = windows.get(i + 1).map_or(f64::INFINITY, |n| n.start_ms);
        let fired: Vec<&(f64, String)> = alerts
            .iter()
            .filter(|(t, _)| *t >= w.start_ms && *t < next)
            .collect();
        let by_readiness = readiness
            .iter()
            .find(|r| !r.ready && r.t_ms >= w.start_ms && r.t_ms <= window_end.max(w.end_ms))
            .map(|r| (r.t_ms, format!("readiness:{}", r.instance)));
        let by_alert = fired
            .iter()
            .map(|(t, n)| (*t, format!("alert:{n}")))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let noticed = match (by_readiness, by_alert) {
            (Some(r), Some(a)) => Some(if a.0 < r.0 { a } else { r }),
            (r, a) => r.or(a),
        };
        // Losses are charged by acknowledgement time: to this fault from its start (from the
        // beginning of the run for the first) until the next fault starts.
        let from = if i == 0 {
            f64::NEG_INFINITY
        } else {
            w.start_ms
        };
        let to = windows.get(i + 1).map_or(f64::INFINITY, |n| n.start_ms);
        let lost_here = lost.iter().filter(|(t, _)| *t >= from && *t < to).count() as u64;
        out.push(reports::FaultReport {
            target: w.record.fault.target.clone(),
            kind: w.record.fault.action.to_string(),
            spec: spec_of(&w.record),
            start_s: w.start_ms / 1000.0,
            end_s: w.end_ms / 1000.0,
            first_error_s: first_error.map(|t| t / 1000.0),
            noticed_s: noticed.as_ref().map(|(t, _)| t / 1000.0),
            noticed_by: noticed.map(|(_, by)| by),
            first_success_after_s: first_success.map(|t| t / 1000.0),
            recovered_within_slo_s: recovered_ms.map(|t| ((t - w.start_ms) / 1000.0).max(0.0)),
            errors_in_window: in_window.iter().filter(|s| s.error).count() as u64,
            bookings_in_window: Some(in_window.iter().filter(|s| s.booking).count() as u64),
            requests_in_window: in_window.len() as u64,
            error_rate_baseline,
            error_rate_window,
            p99_baseline_ms,
            p99_window_ms,
            acknowledged_lost: lost_here,
            alerts: fired
                .iter()
                .map(|(t, n)| reports::AlertFiring {
                    name: n.clone(),
                    fired_at_s: t / 1000.0,
                })
                .collect(),
        });
    }
    out
}

/// The fault as schedule text: `target:action@at+duration`.
fn spec_of(r: &FaultRecord) -> String {
    let f = &r.fault;
    let mut s = format!("{}:{}@{}s", f.target, f.action, fmt_s(f.at.as_secs_f64()));
    if let Some(d) = f.duration {
        s.push_str(&format!("+{}s", fmt_s(d.as_secs_f64())));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!(" (error: {e})"));
    }
    s
}

fn fmt_s(x: f64) -> String {
    let t = format!("{x:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Error rate and p99 (ms) of a set of samples; zeros when empty.
fn rate_and_p99(samples: &[&Sample]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let errors = samples.iter().filter(|s| s.error).count() as f64;
    let mut lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    (errors / samples.len() as f64, percentile(&mut lat, 0.99))
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

/// The start (ms) of the first run of [`SUSTAIN_S`] one-second buckets from `from_ms` on, each
/// with requests and within the SLO. A run cut short by the end of the run counts if at least
/// one bucket is in it and every bucket in it holds.
fn recovery(samples: &[Sample], from_ms: f64, run_end_ms: f64, slo: Slo) -> Option<f64> {
    let buckets = ((run_end_ms - from_ms) / 1000.0).ceil().max(0.0) as usize;
    if buckets == 0 {
        return None;
    }
    let mut per: Vec<Vec<&Sample>> = vec![Vec::new(); buckets];
    for s in samples.iter().filter(|s| s.t_ms >= from_ms) {
        let b = ((s.t_ms - from_ms) / 1000.0) as usize;
        if let Some(slot) = per.get_mut(b) {
            slot.push(s);
        }
    }
    let good: Vec<bool> = per
        .iter()
        .map(|b| {
            if b.is_empty() {
                return false;
            }
            let (rate, p99) = rate_and_p99(b);
            rate <= slo.max_error_rate && p99 <= slo.p99_ms
        })
        .collect();
    (0..buckets)
        .find(|&i| {
            let end = (i + SUSTAIN_S).min(buckets);
            good[i..end].iter().all(|g| *g)
        })
        .map(|i| from_ms + i as f64 * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos::schedule::{FaultAction, ScheduledFault};
    use std::time::Duration;

    fn record(at_s: u64, dur_s: u64) -> FaultRecord {
        FaultRecord {
            fault: ScheduledFault {
                target: "redis".into(),
                action: FaultAction::Kill,
                at: Duration::from_secs(at_s),
                duration: Some(Duration::from_secs(dur_s)),
            },
            applied_at: Some(Duration::from_secs(at_s)),
            reverted_at: Some(Duration::from_secs(at_s + dur_s)),
            error: None,
        }
    }

    /// 10 requests a second for `secs` seconds; errors during [err_from, err_to) seconds,
    /// with latency 500 ms while erroring, 5 ms otherwise.
    fn traffic(secs: u64, err_from: f64, err_to: f64) -> Vec<Sample> {
        (0..secs * 10)
            .map(|i| {
                let t_ms = i as f64 * 100.0 + 50.0;
                let error = t_ms >= err_from * 1000.0 && t_ms < err_to * 1000.0;
                Sample {
                    t_ms,
                    latency_ms: if error { 500.0 } else { 5.0 },
                    error,
                    booking: !error,
                }
            })
            .collect()
    }

    const SLO: Slo = Slo {
        max_error_rate: 0.01,
        p99_ms: 100.0,
    };

    #[test]
    fn a_fault_that_breaks_requests_is_measured_from_first_error_to_sustained_recovery() {
        let w = Window::from_record(record(5, 3), 0.0, 20_000.0).unwrap();
        let samples = traffic(20, 5.5, 9.0);
        let ready = vec![
            Readiness {
                t_ms: 4_000.0,
                instance: "app-1".into(),
                ready: true,
            },
            Readiness {
                t_ms: 6_200.0,
                instance: "app-1".into(),
                ready: false,
            },
        ];
        let lost = vec![(6_000.0, "booking 7: paid, now missing".to_owned())];
        let r = &analyze(&[w], &samples, &ready, &[], &lost, SLO, 20_000.0)[0];
        assert_eq!(r.start_s, 5.0);
        assert_eq!(r.end_s, 8.0);
        assert_eq!(r.first_error_s, Some(5.55));
        assert_eq!(r.noticed_s, Some(6.2));
        assert_eq!(r.noticed_by.as_deref(), Some("readiness:app-1"));
        assert_eq!(r.first_success_after_s, Some(9.05));
        // Buckets start at the first error (5.55 s): [8.55, 9.55) still holds the error at
        // 8.95 s, so the first clean three seconds start at 9.55 s.
        let rec = r.recovered_within_slo_s.unwrap();
        assert!((rec - 4.55).abs() < 1e-9, "{rec}");
        assert_eq!(r.errors_in_window, 35);
        assert_eq!(r.error_rate_baseline, 0.0);
        assert!(r.error_rate_window > 0.5);
        assert_eq!(r.p99_baseline_ms, 5.0);
        assert_eq!(r.p99_window_ms, 500.0);
        assert_eq!(r.acknowledged_lost, 1);
        assert_eq!(r.spec, "redis:kill@5s+3s");
    }

    #[test]
    fn a_fault_clients_never_notice_recovers_at_once_and_has_no_first_error() {
        let w = Window::from_record(record(5, 3), 0.0, 20_000.0).unwrap();
        let r = &analyze(&[w], &traffic(20, 99.0, 99.0), &[], &[], &[], SLO, 20_000.0)[0];
        assert_eq!(r.first_error_s, None);
        assert_eq!(r.noticed_s, None);
        assert_eq!(r.recovered_within_slo_s, Some(0.0));
        assert_eq!(r.errors_in_window, 0);
    }

    #[test]
    fn a_system_that_never_recovers_has_no_recovery_time() {
        let w = Window::from_record(record(5, 3), 0.0, 20_000.0).unwrap();
        let r = &analyze(&[w], &traffic(20, 5.0, 99.0), &[], &[], &[], SLO, 20_000.0)[0];
        assert_eq!(r.recovered_within_slo_s, None);
        assert_eq!(r.first_success_after_s, None);
    }

    #[test]
    fn the_schedule_clock_is_shifted_onto_the_history_clock() {
        let w = Window::from_record(record(2, 1), 1_500.0, 9_000.0).unwrap();
        assert_eq!(w.start_ms, 3_500.0);
        assert_eq!(w.end_ms, 4_500.0);
        let mut unreverted = record(2, 1);
        unreverted.reverted_at = None;
        assert_eq!(
            Window::from_record(unreverted, 0.0, 9_000.0)
                .unwrap()
                .end_ms,
            9_000.0
        );
        let mut failed = record(2, 1);
        failed.applied_at = None;
        assert!(Window::from_record(failed, 0.0, 9_000.0).is_none());
    }
}

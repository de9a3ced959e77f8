//! Two runs compared: the numbers of a baseline run (A) and a current run (B) side by side,
//! each difference assessed as a regression, an improvement or noise, and the
//! `--max-regression` rules that turn a regression into a verdict.
//!
//! A single percentile of two runs differs every time; whether the difference is real is a
//! statistical question, answered on the recorded latencies of every request (the runs'
//! `history.jsonl`, handed in as [`LatencySamples`]):
//!
//! - medians: a one-sided **Mann–Whitney U** test on the two whole distributions (normal
//!   approximation with tie correction, `statrs` for the normal CDF) plus the Vargha–Delaney
//!   effect size A, so that ten thousand requests do not make a 1% shift "significant";
//! - p95 and p99: a **bootstrap** 95% confidence interval of the percentile's difference;
//! - throughput: a bootstrap interval of the difference of the mean requests per timeline
//!   interval; error rates: a **two-proportion z-test**.
//!
//! A change is a regression only when the test says it is beyond noise *and* it is larger
//! than the tolerance (10% by default). Without samples (a `report.json` alone, or a run
//! with `--no-history`) percentiles are compared on the tolerance alone, and a note says so.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::model::{
    Assessment, CheckStatus, ComparisonMethod, MetricDelta, Report, RunComparison, RunRef,
    SignificanceTest, ThresholdKind, ThresholdOutcome, TransactionStats,
};

/// Latency of every request, ms, by transaction name.
pub type LatencySamples = BTreeMap<String, Vec<f64>>;

/// The noise rules of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Significance level of every test.
    pub alpha: f64,
    /// Smallest relative change worth flagging (0.1 = 10%).
    pub tolerance: f64,
    /// Smallest Vargha–Delaney A for a median shift to count (0.56: a small effect).
    pub min_effect: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Most samples per transaction and run the tests use (an evenly spaced subset beyond).
    pub max_samples: usize,
    /// Smallest latency difference worth flagging, ms: on a shared machine a few ms of a
    /// tail percentile are the scheduler's time slices, not the system.
    pub min_latency_delta_ms: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            alpha: 0.01,
            tolerance: 0.10,
            min_effect: 0.56,
            resamples: 400,
            max_samples: 20_000,
            min_latency_delta_ms: 5.0,
        }
    }
}

/// One side of a comparison: a run's report, where it came from, and its samples if any.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The run's report.
    pub report: &'a Report,
    /// The run directory or `report.json` it was read from (shown in the comparison).
    pub source: &'a str,
    /// Latency samples from its history.
    pub samples: Option<&'a LatencySamples>,
}

impl Side<'_> {
    fn run_ref(&self) -> RunRef {
        let run = &self.report.run;
        RunRef {
            id: run.id.clone(),
            source: self.source.to_owned(),
            scenario: run.scenario.clone(),
            stack: run.stack.clone(),
            strategy: run.strategy.clone(),
            users: run.users,
            started_at: run.started_at.clone(),
            samples: self.samples.is_some(),
        }
    }
}

/// Compares `current` (B) with `baseline` (A), row by row.
pub fn compare(baseline: Side<'_>, current: Side<'_>, opts: &CompareOptions) -> RunComparison {
    let (a, b) = (baseline.report, current.report);
    // Deterministic resampling: the same two runs always give the same comparison.
    let mut rng = SmallRng::seed_from_u64(0x5EED_C0DE);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if a.run.scenario != b.run.scenario || a.run.stack != b.run.stack {
        notes.push(format!(
            "different runs: {} on {} vs {} on {}; the comparison is shown but may not be meaningful",
            a.run.scenario, a.run.stack, b.run.scenario, b.run.stack
        ));
    }
    if baseline.samples.is_none() || current.samples.is_none() {
        notes.push(
            "no history for one of the runs: latency percentiles are compared on the tolerance alone, not tested for noise"
                .to_owned(),
        );
    }

    // Summary.
    let (sa, sb) = (&a.summary, &b.summary);
    rows.push(info_row(
        "summary",
        "all",
        "requests",
        "count",
        Some(sa.requests as f64),
        Some(sb.requests as f64),
    ));
    let throughput_test = throughput_test(a, b, opts, &mut rng);
    rows.push(judged_row(
        ("summary", "all", "throughput_rps", "rps"),
        Some(sa.throughput_rps),
        Some(sb.throughput_rps),
        throughput_test,
        Direction::HigherIsBetter,
        opts,
    ));
    let error_test = proportion_test(
        (sa.errors + sa.unknown, sa.requests),
        (sb.errors + sb.unknown, sb.requests),
        opts,
    );
    rows.push(rate_row(
        ("summary", "all", "error_rate"),
        sa.error_rate,
        sb.error_rate,
        error_test,
    ));
    rows.push(info_row(
        "summary",
        "all",
        "rejected_rate",
        "fraction",
        Some(sa.rejected_rate),
        Some(sb.rejected_rate),
    ));

    // Transactions: the current run's order, then any the baseline alone had.
    let mut names: Vec<&str> = b.transactions.iter().map(|t| t.name.as_str()).collect();
    for t in &a.transactions {
        if !names.contains(&t.name.as_str()) {
            names.push(&t.name);
        }
    }
    for name in names {
        let ta = a.transactions.iter().find(|t| t.name == name);
        let tb = b.transactions.iter().find(|t| t.name == name);
        let samples = match (baseline.samples, current.samples) {
            (Some(sa), Some(sb)) => match (sa.get(name), sb.get(name)) {
                (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => Some((
                    subsample(x, opts.max_samples),
                    subsample(y, opts.max_samples),
                )),
                _ => None,
            },
            _ => None,
        };
        let mw = samples.as_ref().map(|(x, y)| mann_whitney(x, y, opts));
        let boot = samples
            .as_ref()
            .map(|(x, y)| bootstrap_percentiles(x, y, &[0.95, 0.99], opts, &mut rng));
        let value = |t: Option<&TransactionStats>, metric: &str| {
            t.map(|t| match metric {
                "p50_ms" => t.latency.p50,
                "p95_ms" => t.latency.p95,
                "p99_ms" => t.latency.p99,
                _ => t.throughput_rps,
            })
        };
        rows.push(judged_row(
            ("transaction", name, "p50_ms", "ms"),
            value(ta, "p50_ms"),
            value(tb, "p50_ms"),
            mw,
            Direction::LowerIsBetter,
            opts,
        ));
        for (i, metric) in ["p95_ms", "p99_ms"].into_iter().enumerate() {
            rows.push(judged_row(
                ("transaction", name, metric, "ms"),
                value(ta, metric),
                value(tb, metric),
                boot.as_ref().map(|b| b[i].clone()),
                Direction::LowerIsBetter,
                opts,
            ));
        }
        rows.push(info_row(
            "transaction",
            name,
            "throughput_rps",
            "rps",
            value(ta, "throughput_rps"),
            value(tb, "throughput_rps"),
        ));
        let errors =
            |t: Option<&TransactionStats>| t.map_or((0, 0), |t| (t.errors + t.unknown, t.count));
        let test = match (ta, tb) {
            (Some(_), Some(_)) => proportion_test(errors(ta), errors(tb), opts),
            _ => None,
        };
        let mut row = judged_row(
            ("transaction", name, "errors", "count"),
            ta.map(|t| (t.errors + t.unknown) as f64),
            tb.map(|t| (t.errors + t.unknown) as f64),
            test,
            Direction::LowerIsBetter,
            opts,
        );
        // Counts follow the number of requests; the error *rate* decides (the z-test).
        row.assessment = match &row.test {
            Some(t) if t.significant => {
                let rate = |(e, n): (u64, u64)| if n == 0 { 0.0 } else { e as f64 / n as f64 };
                if rate(errors(tb)) > rate(errors(ta)) {
                    Assessment::Regression
                } else {
                    Assessment::Improvement
                }
            }
            _ => Assessment::Unchanged,
        };
        rows.push(row);
        rows.push(info_row(
            "transaction",
            name,
            "rejected",
            "count",
            ta.map(|t| t.rejected as f64),
            tb.map(|t| t.rejected as f64),
        ));
    }

    // Checks: held (1), broken (0), skipped (none).
    let mut checks: Vec<&str> = b
        .correctness
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for c in &a.correctness.checks {
        if !checks.contains(&c.name.as_str()) {
            checks.push(&c.name);
        }
    }
    for name in checks {
        let held = |r: &Report| {
            r.correctness
                .checks
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| match c.status() {
                    CheckStatus::Passed => Some(1.0),
                    CheckStatus::Failed => Some(0.0),
                    CheckStatus::Skipped => None,
                })
        };
        let (va, vb) = (held(a), held(b));
        let assessment = match (va, vb) {
            (Some(x), Some(y)) if y < x => Assessment::Regression,
            (Some(x), Some(y)) if y > x => Assessment::Improvement,
            (None, Some(y)) if y < 1.0 => Assessment::Regression,
            _ => Assessment::Unchanged,
        };
        rows.push(MetricDelta {
            assessment,
            ..plain_row("check", name, "holds", "bool", va, vb)
        });
    }

    // Recovery per fault, matched by its schedule spec.
    let mut specs: BTreeSet<&str> = BTreeSet::new();
    for f in a.failover.faults.iter().chain(&b.failover.faults) {
        specs.insert(&f.spec);
    }
    for spec in specs {
        let find = |r: &Report| r.failover.faults.iter().find(|f| f.spec == spec).cloned();
        let (fa, fb) = (find(a), find(b));
        let (va, vb) = (
            fa.as_ref().and_then(|f| f.recovered_within_slo_s),
            fb.as_ref().and_then(|f| f.recovered_within_slo_s),
        );
        let mut row = plain_row("recovery", spec, "recovered_within_slo_s", "s", va, vb);
        row.assessment = match (fa.is_some() && fb.is_some(), va, vb) {
            (false, _, _) => Assessment::Info,
            (true, Some(_), None) => Assessment::Regression,
            (true, None, Some(_)) => Assessment::Improvement,
            // A second on a 1 s probe cadence is noise.
            (true, Some(x), Some(y)) if y - x > 1.0 && y > x * (1.0 + opts.tolerance) => {
                Assessment::Regression
            }
            (true, Some(x), Some(y)) if x - y > 1.0 && y < x * (1.0 - opts.tolerance) => {
                Assessment::Improvement
            }
            _ => Assessment::Unchanged,
        };
        rows.push(row);
    }

    let regressions = rows
        .iter()
        .filter(|r| r.assessment == Assessment::Regression)
        .count() as u64;
    RunComparison {
        baseline: baseline.run_ref(),
        current: current.run_ref(),
        method: ComparisonMethod {
            alpha: opts.alpha,
            tolerance: opts.tolerance,
            min_effect: opts.min_effect,
            resamples: opts.resamples as u64,
            min_latency_delta_ms: opts.min_latency_delta_ms,
        },
        rows,
        regressions,
        notes,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

fn plain_row(
    group: &str,
    subject: &str,
    metric: &str,
    unit: &str,
    baseline: Option<f64>,
    current: Option<f64>,
) -> MetricDelta {
    let delta = baseline.zip(current).map(|(a, b)| b - a);
    let change = baseline
        .zip(delta)
        .and_then(|(a, d)| (a != 0.0).then(|| d / a))
        .filter(|c| c.is_finite());
    MetricDelta {
        group: group.to_owned(),
        subject: subject.to_owned(),
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        baseline,
        current,
        delta,
        change,
        test: None,
        assessment: Assessment::Unchanged,
    }
}

fn info_row(
    group: &str,
    subject: &str,
    metric: &str,
    unit: &str,
    baseline: Option<f64>,
    current: Option<f64>,
) -> MetricDelta {
    MetricDelta {
        assessment: Assessment::Info,
        ..plain_row(group, subject, metric, unit, baseline, current)
    }
}

/// A row judged by its test (when there is one) and the tolerance.
fn judged_row(
    (group, subject, metric, unit): (&str, &str, &str, &str),
    baseline: Option<f64>,
    current: Option<f64>,
    test: Option<SignificanceTest>,
    direction: Direction,
    opts: &CompareOptions,
) -> MetricDelta {
    let mut row = plain_row(group, subject, metric, unit, baseline, current);
    let beyond_noise = test.as_ref().is_none_or(|t| t.significant);
    let big_enough = unit != "ms"
        || row
            .delta
            .is_some_and(|d| d.abs() >= opts.min_latency_delta_ms);
    row.assessment = match row.change {
        Some(c) if beyond_noise && big_enough && c.abs() > opts.tolerance => {
            let worse = match direction {
                Direction::LowerIsBetter => c > 0.0,
                Direction::HigherIsBetter => c < 0.0,
            };
            if worse {
                Assessment::Regression
            } else {
                Assessment::Improvement
            }
        }
        _ => Assessment::Unchanged,
    };
    row.test = test;
    row
}

/// An error-rate row: judged by the z-test alone (a relative change of a rate near 0 means
/// nothing).
fn rate_row(
    (group, subject, metric): (&str, &str, &str),
    baseline: f64,
    current: f64,
    test: Option<SignificanceTest>,
) -> MetricDelta {
    let mut row = plain_row(
        group,
        subject,
        metric,
        "fraction",
        Some(baseline),
        Some(current),
    );
    row.assessment = match &test {
        Some(t) if t.significant && current > baseline => Assessment::Regression,
        Some(t) if t.significant && current < baseline => Assessment::Improvement,
        _ => Assessment::Unchanged,
    };
    row.test = test;
    row
}

/// At most `max` values, evenly spaced (the history is in completion order, so the subset
/// spans the whole run).
fn subsample(values: &[f64], max: usize) -> Vec<f64> {
    if values.len() <= max || max == 0 {
        return values.iter().copied().filter(|v| v.is_finite()).collect();
    }
    let step = values.len() as f64 / max as f64;
    (0..max)
        .map(|i| values[(i as f64 * step) as usize])
        .filter(|v| v.is_finite())
        .collect()
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal is valid")
}

/// Mann–Whitney U of `b` against `a` (normal approximation, tie-corrected, with continuity
/// correction); the p-value is one-sided in the direction of the observed shift.
pub fn mann_whitney(a: &[f64], b: &[f64], opts: &CompareOptions) -> SignificanceTest {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, false))
        .chain(b.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut rank_sum_b = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their average.
        let rank = (i + 1 + j) as f64 / 2.0;
        let in_b = all[i..j].iter().filter(|x| x.1).count() as f64;
        rank_sum_b += rank * in_b;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let u_b = rank_sum_b - nb * (nb + 1.0) / 2.0;
    let effect = if na * nb > 0.0 { u_b / (na * nb) } else { 0.5 };
    let mean = na * nb / 2.0;
    let nf = n as f64;
    let variance = if nf > 1.0 {
        na * nb / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))
    } else {
        0.0
    };
    let p_value = if variance > 0.0 {
        let sd = variance.sqrt();
        let z = ((u_b - mean).abs() - 0.5).max(0.0) / sd;
        1.0 - standard_normal().cdf(z)
    } else {
        1.0
    };
    let significant = p_value < opts.alpha && (effect - 0.5).abs() >= opts.min_effect - 0.5;
    SignificanceTest {
        method: "mann-whitney-u".into(),
        n_baseline: a.len() as u64,
        n_current: b.len() as u64,
        p_value: Some(p_value),
        effect_size: Some(effect),
        ci_low: None,
        ci_high: None,
        significant,
    }
}

/// The `q`-quantile of `values` (nearest rank), reordering `values`.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    let (_, v, _) = values.select_nth_unstable_by(k, f64::total_cmp);
    *v
}

/// Bootstrap 95% intervals of `quantile(b) − quantile(a)` for each of `qs`.
fn bootstrap_percentiles(
    a: &[f64],
    b: &[f64],
    qs: &[f64],
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> Vec<SignificanceTest> {
    let mut diffs: Vec<Vec<f64>> = vec![Vec::with_capacity(opts.resamples); qs.len()];
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    for _ in 0..opts.resamples {
        for x in ra.iter_mut() {
            *x = a[rng.gen_range(0..a.len())];
        }
        for x in rb.iter_mut() {
            *x = b[rng.gen_range(0..b.len())];
        }
        for (i, &q) in qs.iter().enumerate() {
            diffs[i].push(quantile(&mut rb, q) - quantile(&mut ra, q));
        }
    }
    diffs
        .into_iter()
        .map(|d| interval_test("bootstrap", a.len(), b.len(), d, opts.alpha))
        .collect()
}

/// A bootstrap interval from resampled differences: the test is significant when the
/// `1 − alpha` interval excludes 0; the reported interval is the 95% one.
fn interval_test(
    method: &str,
    na: usize,
    nb: usize,
    mut diffs: Vec<f64>,
    alpha: f64,
) -> SignificanceTest {
    let low = quantile(&mut diffs, 0.025);
    let high = quantile(&mut diffs, 0.975);
    let strict_low = quantile(&mut diffs, alpha / 2.0);
    let strict_high = quantile(&mut diffs, 1.0 - alpha / 2.0);
    SignificanceTest {
        method: method.into(),
        n_baseline: na as u64,
        n_current: nb as u64,
        p_value: None,
        effect_size: None,
        ci_low: Some(low),
        ci_high: Some(high),
        significant: strict_low > 0.0 || strict_high < 0.0,
    }
}

/// Bootstrap of the mean requests per second over the timelines' intervals (needs five
/// intervals or more in each run).
fn throughput_test(
    a: &Report,
    b: &Report,
    opts: &CompareOptions,
    rng: &mut SmallRng,
) -> Option<SignificanceTest> {
    let per_second = |r: &Report| -> Vec<f64> {
        let width = if r.timeline.interval_s > 0.0 {
            r.timeline.interval_s
        } else {
            1.0
        };
        r.timeline
            .points
            .iter()
            // The last interval is usually cut short by the end of the run.
            .take(r.timeline.points.len().saturating_sub(1))
            .map(|p| p.requests as f64 / width)
            .collect()
    };
    let (xa, xb) = (per_second(a), per_second(b));
    if xa.len() < 5 || xb.len() < 5 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut diffs = Vec::with_capacity(opts.resamples);
    let mut ra = vec![0.0; xa.len()];
    let mut rb = vec![0.0; xb.len()];
    for _ in 0..opts.resamples {
        for x in ra.iter_mut() {
            *x = xa[rng.gen_range(0..xa.len())];
        }
        for x in rb.iter_mut() {
            *x = xb[rng.gen_range(0..xb.len())];
        }
        diffs.push(mean(&rb) - mean(&ra));
    }
    Some(interval_test(
        "bootstrap",
        xa.len(),
        xb.len(),
        diffs,
        opts.alpha,
    ))
}

/// Two-proportion z-test of `(errors, requests)` in each run; one-sided in the direction of
/// the change.
fn proportion_test(
    (ea, na): (u64, u64),
    (eb, nb): (u64, u64),
    opts: &CompareOptions,
) -> Option<SignificanceTest> {
    if na == 0 || nb == 0 {
        return None;
    }
    let (pa, pb) = (ea as f64 / na as f64, eb as f64 / nb as f64);
    let pooled = (ea + eb) as f64 / (na + nb) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / na as f64 + 1.0 / nb as f64)).sqrt();
    let p_value = if se > 0.0 {
        1.0 - standard_normal().cdf((pb - pa).abs() / se)
    } else {
        1.0
    };
    Some(SignificanceTest {
        method: "two-proportion-z".into(),
        n_baseline: na,
        n_current: nb,
        p_value: Some(p_value),
        effect_size: None,
        ci_low: None,
        ci_high: None,
        significant: p_value < opts.alpha,
    })
}

/// A `--max-regression` rule: how much worse than the baseline a metric may get.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionRule {
    /// One transaction (`hold.p99=+20%`), or every transaction when none.
    pub transaction: Option<String>,
    /// The metric.
    pub metric: RuleMetric,
    /// The most change allowed, a positive fraction: +0.2 lets p99 grow by 20%, and lets
    /// throughput fall by 20%; for `error_rate` it is absolute (0.01 = one percentage point).
    pub limit: f64,
}

/// What a [`RegressionRule`] limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMetric {
    /// A latency percentile of each transaction: p50, p95 or p99.
    Latency(&'static str),
    /// Requests per second over the run.
    Throughput,
    /// (errors + unknown) / requests over the run, in percentage points.
    ErrorRate,
}

/// A comma-separated list of rules: `p99=+20%,throughput=-10%,hold.p95=+30%,error_rate=+1%`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegressionRules(pub Vec<RegressionRule>);

impl FromStr for RegressionRules {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| part.parse())
            .collect::<Result<Vec<_>, _>>()
            .map(RegressionRules)
    }
}

impl FromStr for RegressionRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!("{s:?}: expected METRIC=CHANGE, e.g. p99=+20%, throughput=-10%, hold.p95=+30%, error_rate=+1%")
        };
        let (key, value) = s.trim().split_once('=').ok_or_else(usage)?;
        let (transaction, metric) = match key.trim().rsplit_once('.') {
            Some((tx, m)) => (Some(tx.trim().to_owned()), m.trim()),
            None => (None, key.trim()),
        };
        let metric = match metric {
            "p50" => RuleMetric::Latency("p50"),
            "p95" => RuleMetric::Latency("p95"),
            "p99" => RuleMetric::Latency("p99"),
            "throughput" if transaction.is_none() => RuleMetric::Throughput,
            "error_rate" if transaction.is_none() => RuleMetric::ErrorRate,
            _ => return Err(usage()),
        };
        let value = value.trim();
        let number = value.strip_suffix('%').unwrap_or(value);
        let v: f64 = number.trim().parse().map_err(|_| usage())?;
        let v = if value.ends_with('%') { v / 100.0 } else { v };
        if !v.is_finite() {
            return Err(usage());
        }
        Ok(RegressionRule {
            transaction,
            metric,
            limit: v.abs(),
        })
    }
}

/// One verdict outcome per rule and subject it applies to (kind latency, throughput or error
/// rate, so a broken rule exits 3). A rule is broken only by a change beyond it **and**
/// beyond noise (the row's test, when there is one).
pub fn evaluate_rules(rules: &RegressionRules, cmp: &RunComparison) -> Vec<ThresholdOutcome> {
    let beyond_noise = |row: &MetricDelta| row.test.as_ref().is_none_or(|t| t.significant);
    let noise = |row: &MetricDelta| match &row.test {
        Some(t) if !t.significant => " (within noise)",
        _ => "",
    };
    let mut outcomes = Vec::new();
    for rule in &rules.0 {
        match rule.metric {
            RuleMetric::Latency(p) => {
                let metric = format!("{p}_ms");
                for row in cmp.rows.iter().filter(|r| {
                    r.group == "transaction"
                        && r.metric == metric
                        && rule.transaction.as_ref().is_none_or(|t| *t == r.subject)
                }) {
                    let Some(change) = row.change else {
                        continue;
                    };
                    outcomes.push(ThresholdOutcome::new(
                        format!("{p} of {} vs baseline", row.subject),
                        ThresholdKind::Latency,
                        format!("<= {:+.0}%", rule.limit * 100.0),
                        format!("{:+.1}%{}", change * 100.0, noise(row)),
                        !(change > rule.limit
                            && beyond_noise(row)
                            && row.delta.unwrap_or(0.0) >= cmp.method.min_latency_delta_ms),
                    ));
                }
            }
            RuleMetric::Throughput => {
                if let Some(row) = cmp
                    .rows
                    .iter()
                    .find(|r| r.group == "summary" && r.metric == "throughput_rps")
                {
                    let change = row.change.unwrap_or(0.0);
                    outcomes.push(ThresholdOutcome::new(
                        "throughput vs baseline",
                        ThresholdKind::Throughput,
                        format!(">= {:+.0}%", -rule.limit * 100.0),
                        format!("{:+.1}%{}", change * 100.0, noise(row)),
                        !(change < -rule.limit && beyond_noise(row)),
                    ));
                }
            }
            RuleMetric::ErrorRate => {
                if let Some(row) = cmp
                    .rows
                    .iter()
                    .find(|r| r.group == "summary" && r.metric == "error_rate")
                {
                    let delta = row.delta.unwrap_or(0.0);
                    outcomes.push(ThresholdOutcome::new(
                        "error rate vs baseline",
                        ThresholdKind::ErrorRate,
                        format!("<= {:+.2} points", rule.limit * 100.0),
                        format!("{:+.2} points{}", delta * 100.0, noise(row)),
                        !(delta > rule.limit && beyond_noise(row)),
                    ));
                }
            }
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Percentiles;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Exponential latencies with mean `mean_ms` plus a floor.
    fn latencies(seed: u64, n: usize, floor: f64, mean_ms: f64) -> Vec<f64> {
        let mut u = lcg(seed);
        (0..n)
            .map(|_| floor - mean_ms * (1.0 - u()).max(1e-12).ln())
            .collect()
    }

    fn report(name: &str, samples: &[f64]) -> Report {
        let mut sorted = samples.to_vec();
        let mut p = |q: f64| quantile(&mut sorted, q);
        let mut r = Report::default();
        r.run.scenario = "flash-sale".into();
        r.transactions = vec![TransactionStats {
            name: name.into(),
            count: samples.len() as u64,
            ok: samples.len() as u64,
            latency: Percentiles {
                p50: p(0.5),
                p95: p(0.95),
                p99: p(0.99),
                ..Percentiles::default()
            },
            ..TransactionStats::default()
        }];
        r.summary = crate::model::Summary::from_transactions(&r.transactions, 10.0);
        r
    }

    fn run(a: &[f64], b: &[f64]) -> RunComparison {
        let (ra, rb) = (report("hold", a), report("hold", b));
        let sa: LatencySamples = [("hold".to_owned(), a.to_vec())].into();
        let sb: LatencySamples = [("hold".to_owned(), b.to_vec())].into();
        compare(
            Side {
                report: &ra,
                source: "a",
                samples: Some(&sa),
            },
            Side {
                report: &rb,
                source: "b",
                samples: Some(&sb),
            },
            &CompareOptions::default(),
        )
    }

    fn row<'a>(c: &'a RunComparison, metric: &str) -> &'a MetricDelta {
        c.rows
            .iter()
            .find(|r| r.group == "transaction" && r.metric == metric)
            .unwrap()
    }

    #[test]
    fn two_samples_of_one_distribution_are_not_a_regression() {
        let c = run(&latencies(1, 3000, 2.0, 5.0), &latencies(2, 3000, 2.0, 5.0));
        for m in ["p50_ms", "p95_ms", "p99_ms"] {
            assert_eq!(
                row(&c, m).assessment,
                Assessment::Unchanged,
                "{:?}",
                row(&c, m)
            );
        }
        assert_eq!(c.regressions, 0, "{c:#?}");
    }

    #[test]
    fn a_slower_distribution_is_a_regression_with_its_test() {
        let c = run(
            &latencies(1, 3000, 2.0, 5.0),
            &latencies(2, 3000, 10.0, 12.0),
        );
        let p50 = row(&c, "p50_ms");
        assert_eq!(p50.assessment, Assessment::Regression, "{p50:?}");
        let t = p50.test.as_ref().unwrap();
        assert!(
            t.p_value.unwrap() < 1e-6 && t.effect_size.unwrap() > 0.6,
            "{t:?}"
        );
        let p99 = row(&c, "p99_ms");
        assert_eq!(p99.assessment, Assessment::Regression, "{p99:?}");
        assert!(p99.test.as_ref().unwrap().ci_low.unwrap() > 0.0);
        // And the other way round it is an improvement.
        let c = run(
            &latencies(2, 3000, 10.0, 12.0),
            &latencies(1, 3000, 2.0, 5.0),
        );
        assert_eq!(row(&c, "p99_ms").assessment, Assessment::Improvement);
    }

    #[test]
    fn a_shift_of_a_few_milliseconds_is_not_a_regression() {
        let a = latencies(1, 3000, 1.0, 1.0);
        let b: Vec<f64> = a.iter().map(|v| v * 1.5).collect();
        let c = run(&a, &b);
        assert!(row(&c, "p99_ms").delta.unwrap() < 5.0);
        assert_eq!(row(&c, "p99_ms").assessment, Assessment::Unchanged);
        assert!(evaluate_rules(&"p99=+10%".parse().unwrap(), &c)[0].passed);
    }

    #[test]
    fn a_tiny_but_significant_shift_is_within_tolerance() {
        let a = latencies(1, 20000, 10.0, 5.0);
        let b: Vec<f64> = a.iter().map(|v| v * 1.03).collect();
        let c = run(&a, &b);
        assert_eq!(row(&c, "p50_ms").assessment, Assessment::Unchanged);
        assert_eq!(row(&c, "p99_ms").assessment, Assessment::Unchanged);
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_example() {
        // a = 1,2,3 and b = 4,5,6: U_b = 9 (every b above every a), A = 1.
        let t = mann_whitney(
            &[1.0, 2.0, 3.0],
            &[4.0, 5.0, 6.0],
            &CompareOptions::default(),
        );
        assert_eq!(t.effect_size, Some(1.0));
        // z = (9 - 4.5 - 0.5) / sqrt(9 * 7 / 12) = 1.7457 → p = 0.0404.
        assert!((t.p_value.unwrap() - 0.0404).abs() < 0.001, "{t:?}");
        assert!(!t.significant, "too few samples at alpha 0.01");
    }

    #[test]
    fn rules_parse_and_break_only_beyond_their_limit_and_noise() {
        let rules: RegressionRules = "p99=+20%,throughput=-10%,hold.p50=0.5,error_rate=+1%"
            .parse()
            .unwrap();
        assert_eq!(rules.0.len(), 4);
        assert_eq!(rules.0[1].limit, 0.10);
        assert_eq!(rules.0[2].transaction.as_deref(), Some("hold"));
        assert!("p98=+2%".parse::<RegressionRules>().is_err());
        assert!("p99".parse::<RegressionRules>().is_err());
        assert!("hold.throughput=-5%".parse::<RegressionRules>().is_err());

        let slower = run(
            &latencies(1, 3000, 2.0, 5.0),
            &latencies(2, 3000, 10.0, 12.0),
        );
        let outcomes = evaluate_rules(&"p99=+20%".parse().unwrap(), &slower);
        assert_eq!(outcomes.len(), 1);
        assert!(!outcomes[0].passed, "{outcomes:?}");
        let lenient = evaluate_rules(&"p99=+500%".parse().unwrap(), &slower);
        assert!(lenient[0].passed, "{lenient:?}");
        let same = run(&latencies(1, 3000, 2.0, 5.0), &latencies(2, 3000, 2.0, 5.0));
        let strict = evaluate_rules(&"p99=+1%".parse().unwrap(), &same);
        assert!(
            strict[0].passed,
            "a change within noise breaks no rule: {strict:?}"
        );
    }

    #[test]
    fn a_check_that_held_and_now_breaks_is_a_regression() {
        let mut a = report("hold", &[1.0]);
        let mut b = a.clone();
        a.correctness.checks = vec![crate::model::Check::new("no-double-sale", "x", true)];
        b.correctness.checks = vec![crate::model::Check::new("no-double-sale", "x", false)];
        let c = compare(
            Side {
                report: &a,
                source: "a",
                samples: None,
            },
            Side {
                report: &b,
                source: "b",
                samples: None,
            },
            &CompareOptions::default(),
        );
        let check = c.rows.iter().find(|r| r.group == "check").unwrap();
        assert_eq!(check.assessment, Assessment::Regression);
        assert!(c.regressions >= 1);
        assert!(c.notes.iter().any(|n| n.contains("no history")));
    }
}

//! The report model: one [`Report`] per run, filled in by the scenario runner (run, summary,
//! transactions, timeline, verdict), the checker (correctness) and the chaos code (failover),
//! then handed to the renderers.
//!
//! Every type here is `Serialize + Deserialize + JsonSchema`; the JSON form is the stable,
//! versioned contract documented in `reports/SCHEMA.md` and `reports/schema/report.schema.json`.
//! Units are part of the contract: latencies are `f64` milliseconds (`_ms`), times on the run
//! timeline are `f64` seconds since the run started (`_s`), rates are fractions in `0.0..=1.0`.
//! Floats must be finite: JSON has no NaN, so a non-finite value would be written as `null`
//! and the file would no longer validate.

use std::collections::BTreeMap;

use hdrhistogram::{Counter, Histogram};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit_code;

/// The version of the report schema this crate writes: `MAJOR.MINOR`.
///
/// Additive changes (a new field that older readers can ignore and newer readers default)
/// bump the minor version; renames, removals, new enum variants and changes of type, meaning
/// or unit bump the major version. See `reports/SCHEMA.md`.
pub const SCHEMA_VERSION: &str = "4.1";

/// The most example ids a [`Check`] keeps; more would bloat the report without helping anyone
/// find the bug.
pub const MAX_EXAMPLES: usize = 10;

/// Everything one run of the lab measured, checked and decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Schema version of this document, `MAJOR.MINOR` (currently "4.1"). Readers must refuse
    /// a major version they do not know and ignore fields they do not know.
    #[schemars(regex(pattern = r"^4\.[0-9]+$"))]
    pub schema_version: String,
    /// What ran, where, with which parameters.
    pub run: RunInfo,
    /// Totals over every transaction.
    pub summary: Summary,
    /// One entry per transaction (Goose request name), in the order the scenario declares them.
    pub transactions: Vec<TransactionStats>,
    /// Per-interval counts and latency percentiles, for the charts.
    pub timeline: Timeline,
    /// Invariants checked over the client history and the final state.
    pub correctness: Correctness,
    /// What each injected fault did to the system.
    pub failover: Failover,
    /// A side-by-side table (strategy matrix, capacity ramp) when the scenario produces one.
    #[serde(default)]
    pub comparison: Option<Comparison>,
    /// The box office's own resources sampled during the run (a soak), when sampled.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// This run compared with a baseline run (`--baseline`), when one was given.
    #[serde(default)]
    pub baseline: Option<RunComparison>,
    /// The stack's own counters over the attack, read before the stack stopped (3.1): the box
    /// office's `/metrics` summed over its instances (`boxoffice_strategy_retries_total{…}`),
    /// and on PostgreSQL the database's statistics (`pg_xact`, `pg_tup_returned`…), each the
    /// increase from the attack's start to its end. Empty when they could not be read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, f64>,
    /// Thresholds, their outcomes and the exit code.
    pub verdict: Verdict,
    /// Other files the run wrote (history, logs), relative to the run directory.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

impl Report {
    /// An empty report for `run`, at the current [`SCHEMA_VERSION`], with a passing verdict
    /// and no data; the runner fills in the rest.
    pub fn new(run: RunInfo) -> Self {
        Self {
            run,
            ..Self::default()
        }
    }

    /// Parses a `report.json`. Unknown fields are ignored (forward compatibility within a
    /// major version); the caller decides what to do with `schema_version`.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

impl Default for Report {
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION.to_owned(),
            run: RunInfo::default(),
            summary: Summary::default(),
            transactions: Vec::new(),
            timeline: Timeline::default(),
            correctness: Correctness::default(),
            failover: Failover::default(),
            comparison: None,
            resources: None,
            baseline: None,
            counters: BTreeMap::new(),
            verdict: Verdict::default(),
            artifacts: Vec::new(),
        }
    }
}

/// What ran, where, and with which knobs: enough to replay the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    /// Unique id of the run; also the name of its output directory.
    pub id: String,
    /// Scenario name as given on the command line, e.g. "flash-sale".
    pub scenario: String,
    /// One-line human description of the scenario.
    pub description: String,
    /// When the load started, RFC 3339 (e.g. "2026-11-20T22:31:00Z").
    pub started_at: String,
    /// When the load stopped, RFC 3339.
    pub finished_at: String,
    /// Length of the measured run in seconds; the timeline spans `0..duration_s`.
    pub duration_s: f64,
    /// Which stack served the run: "embedded", "local", "docker" or "url".
    pub stack: String,
    /// Concurrency-control strategy of the box office: "naive", "optimistic", "pessimistic",
    /// "redis-lock", "fenced" or "atomic".
    pub strategy: String,
    /// Seed for data generation and the chaos schedule; the same seed replays the same run.
    pub seed: u64,
    /// Number of virtual users (closed model) or the peak user count.
    pub users: u64,
    /// Base URL the load was sent to.
    pub target_url: String,
    /// What the load cost the load generator: users that ran, connections, descriptors,
    /// memory, and the open model's arrivals (4.0).
    #[serde(default)]
    pub load: Load,
    /// Every other scenario parameter (rate, hold TTL, seats…), by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The machine that generated the load.
    pub host: HostInfo,
}

/// What the load cost the load generator, so that a run of 10,000 users can be told from
/// one that quietly ran fewer, or queued its requests behind a connection limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Load {
    /// Virtual users that began their first iteration (at most `RunInfo.users`).
    pub users_started: u64,
    /// How virtual users reach the target: `shared` (one HTTP client and keep-alive
    /// connection pool for the whole run) or `per-user` (a client, so a connection, per user).
    pub connections: String,
    /// Most TCP connections the runner held open to the target at once (sampled every
    /// second); `null` where it cannot be read (not Linux, or a host name rather than an
    /// address).
    #[serde(default)]
    pub peak_connections: Option<u64>,
    /// Requests in flight were limited to this many (the open-files budget), if they were:
    /// a request beyond it waited for a slot, and its latency includes the wait.
    #[serde(default)]
    pub connection_limit: Option<u64>,
    /// Most descriptors the runner's process held at once (its sockets, and on the embedded
    /// and local stacks the in-process servers' and balancer's too).
    pub peak_open_files: u64,
    /// The runner's soft limit on open files during the run (raised to the hard limit at
    /// start).
    #[serde(default)]
    pub open_files_limit: Option<u64>,
    /// Peak resident memory of the runner's process, MiB (`VmHWM`); `null` where unknown.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// The open model's arrivals; `null` for a closed-model run.
    #[serde(default)]
    pub arrivals: Option<ArrivalCounts>,
}

/// What became of an open model's arrivals (each the start of one user journey at a time
/// fixed in advance by the rate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArrivalCounts {
    /// Due by the rate between the first arrival and the end of the load.
    pub due: u64,
    /// Begun by a virtual user.
    pub started: u64,
    /// Of those, begun more than 100 ms after they were due (every virtual user was busy):
    /// their corrected latency includes the wait.
    pub late: u64,
    /// Due, but no virtual user was free to begin them before the load ended: the rate was
    /// not achieved; their latency is in no histogram.
    pub dropped: u64,
}

/// The machine that generated the load: numbers from a 2-core laptop and a 64-core server
/// are not comparable without it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    /// Logical CPUs available to the lab process.
    pub cores: usize,
    /// Operating system, as Rust names it ("linux", "macos", "windows").
    pub os: String,
}

impl HostInfo {
    /// The machine this process runs on.
    pub fn current() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_owned(),
        }
    }
}

/// What a request's client saw. Every request is exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A 2xx: the operation happened.
    Ok,
    /// A definite business refusal (seat taken, sold out, quota reached, card declined,
    /// hold expired): the expected answer for most buyers of a flash sale, not an error.
    /// (Histories written before schema 2.0 call it `fail`.)
    #[serde(alias = "fail")]
    Rejected,
    /// A definite failure that is not a business answer: a 4xx the client should not have
    /// caused (validation, authentication, not found), or a read that timed out, lost its
    /// connection or got a 5xx.
    Error,
    /// A state-changing request whose fate the client cannot know: a timeout, a transport
    /// error or a 5xx. It may or may not have happened; the checker treats it so.
    Unknown,
}

impl Outcome {
    /// Whether it counts against an error rate (errors and unknowns; never rejections).
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Unknown)
    }

    /// Whether the operation happened: yes (ok), no (rejected or error), or maybe.
    pub fn happened(self) -> Option<bool> {
        match self {
            Outcome::Ok => Some(true),
            Outcome::Rejected | Outcome::Error => Some(false),
            Outcome::Unknown => None,
        }
    }

    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Requests by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeCounts {
    /// Definite successes.
    pub ok: u64,
    /// Definite business refusals (not errors).
    pub rejected: u64,
    /// Definite failures that are not business answers.
    pub errors: u64,
    /// Unknown outcomes of state-changing requests (timeout, reset, 5xx).
    pub unknown: u64,
    /// Of the rejections, requests the service refused past capacity (503 `overloaded`:
    /// it did not start them), 4.1.
    #[serde(default)]
    pub refused: u64,
}

impl OutcomeCounts {
    /// Counts one request.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.ok + self.rejected + self.errors + self.unknown
    }
}

/// Totals over every transaction of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Requests sent (ok + rejected + errors + unknown).
    pub requests: u64,
    /// Requests with a definite success.
    pub ok: u64,
    /// Requests the service refused for a business reason (sold out, seat taken, quota
    /// reached, card declined): a correct answer, not an error.
    pub rejected: u64,
    /// Requests that definitely failed for another reason (a 4xx that is not a business
    /// refusal; a read's timeout, transport error or 5xx).
    pub errors: u64,
    /// State-changing requests whose outcome the client cannot know (timeout, connection
    /// reset, 5xx).
    pub unknown: u64,
    /// Requests per second over the run.
    pub throughput_rps: f64,
    /// (errors + unknown) / requests, a fraction in 0..=1; 0 when no request was sent.
    /// Rejections are not errors.
    pub error_rate: f64,
    /// rejected / requests, a fraction in 0..=1.
    pub rejected_rate: f64,
    /// Of the rejections, requests refused past capacity (503 `overloaded`), 4.1.
    #[serde(default)]
    pub refused: u64,
}

impl Summary {
    /// Sums the transactions; throughput is over `duration_s` (0 when the duration is not
    /// positive).
    pub fn from_transactions(transactions: &[TransactionStats], duration_s: f64) -> Self {
        let mut summary = Self::default();
        for tx in transactions {
            summary.requests += tx.count;
            summary.ok += tx.ok;
            summary.rejected += tx.rejected;
            summary.errors += tx.errors;
            summary.unknown += tx.unknown;
            summary.refused += tx.refused;
        }
        summary.throughput_rps = per_second(summary.requests, duration_s);
        summary.error_rate = fraction(summary.errors + summary.unknown, summary.requests);
        summary.rejected_rate = fraction(summary.rejected, summary.requests);
        summary
    }
}

/// `count / duration_s`, or 0 when the duration is not positive.
pub(crate) fn per_second(count: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 && duration_s.is_finite() {
        count as f64 / duration_s
    } else {
        0.0
    }
}

/// `part / whole`, or 0 when `whole` is 0.
pub(crate) fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Counts and latency of one transaction (one Goose request name, e.g. "hold" or "confirm").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransactionStats {
    /// Transaction name.
    pub name: String,
    /// Requests sent (ok + rejected + errors + unknown).
    pub count: u64,
    /// Definite successes.
    pub ok: u64,
    /// Business refusals (sold out, seat taken, quota reached, declined): not errors.
    pub rejected: u64,
    /// Definite failures that are not business answers.
    pub errors: u64,
    /// Unknown outcomes of state-changing requests (timeout, reset, 5xx).
    pub unknown: u64,
    /// Of the rejections, requests refused past capacity (503 `overloaded`), 4.1.
    #[serde(default)]
    pub refused: u64,
    /// Requests per second over the run.
    pub throughput_rps: f64,
    /// Latency as measured from the moment each request was actually sent, in ms.
    pub latency: Percentiles,
    /// Latency corrected for coordinated omission (measured from when each request should
    /// have been sent), in ms; present only for open-model (fixed arrival rate) runs.
    #[serde(default)]
    pub corrected_latency: Option<Percentiles>,
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percentiles {
    /// Fastest request, ms.
    pub min: f64,
    /// Arithmetic mean, ms.
    pub mean: f64,
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 95th percentile, ms.
    pub p95: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// 99.9th percentile, ms.
    pub p999: f64,
    /// Slowest request, ms.
    pub max: f64,
}

impl Percentiles {
    /// Reads the distribution from a histogram recorded in **microseconds**. An empty
    /// histogram gives all zeros (check the transaction's count before reading them).
    pub fn from_histogram<T: Counter>(histogram: &Histogram<T>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            min: ms(histogram.min()),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The box office's resources over a run, one series per (instance, measure), sampled from
/// each instance's `/metrics` every few seconds: what a soak watches for leaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// Seconds between samples.
    pub interval_s: f64,
    /// The series, by instance then measure.
    pub series: Vec<ResourceSeries>,
}

/// One measure of one instance over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceSeries {
    /// Which instance (`app-1`, or `embedded`).
    pub instance: String,
    /// What: `rss_mib`, `open_fds`, `db_pool_connections`, `tasks`.
    pub measure: String,
    /// `(seconds since the run started, value)`, oldest first.
    pub points: Vec<(f64, f64)>,
}

impl ResourceSeries {
    /// Mean of the first and of the last quarter of the points, and the growth between them
    /// as a fraction of the first (`None` with fewer than 4 points or a zero first mean).
    pub fn growth(&self) -> Option<(f64, f64, f64)> {
        let n = self.points.len();
        if n < 4 {
            return None;
        }
        let q = n / 4;
        let mean = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
        let first = mean(&self.points[..q]);
        let last = mean(&self.points[n - q..]);
        (first > 0.0).then(|| (first, last, (last - first) / first))
    }
}

/// Per-interval statistics over the run, oldest first, with no gaps: an interval in which
/// nothing completed is present with zero counts (an outage must show as a drop, not vanish).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Timeline {
    /// Width of each interval in seconds (1.0 unless the run chose otherwise).
    pub interval_s: f64,
    /// One point per interval, starting at t = 0.
    pub points: Vec<TimelinePoint>,
}

/// One interval of the timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelinePoint {
    /// Start of the interval, seconds since the run started.
    pub t_s: f64,
    /// Requests that fell in this interval, all transactions together.
    pub requests: u64,
    /// Of those, business refusals (not errors).
    #[serde(default)]
    pub rejected: u64,
    /// Of those, definite errors (unknown outcomes apart since 4.0).
    pub errors: u64,
    /// Of those, unknown outcomes (4.0; a 3.x file counted them in `errors`).
    #[serde(default)]
    pub unknown: u64,
    /// Of the rejections, requests refused past capacity (503 `overloaded`), 4.1.
    #[serde(default)]
    pub refused: u64,
    /// The same per transaction; a transaction with no request in the interval is absent.
    #[serde(default)]
    pub per_transaction: BTreeMap<String, PointStats>,
}

/// One transaction in one interval of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointStats {
    /// Requests in the interval.
    pub count: u64,
    /// Of those, business refusals (not errors).
    #[serde(default)]
    pub rejected: u64,
    /// Of those, definite errors (unknown outcomes apart since 4.0).
    pub errors: u64,
    /// Of those, unknown outcomes (4.0).
    #[serde(default)]
    pub unknown: u64,
    /// Of the rejections, requests refused past capacity (503 `overloaded`), 4.1.
    #[serde(default)]
    pub refused: u64,
    /// Median latency of all requests in the interval (failures included), ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// The checker's findings: Jepsen-style invariants over the client history and the final
/// database state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Correctness {
    /// One entry per invariant, in the order the checker ran them.
    pub checks: Vec<Check>,
}

impl Correctness {
    /// One [`ThresholdKind::Invariant`] outcome per check that ran, for
    /// [`Verdict::from_outcomes`]. Skipped checks give no outcome: they were not run, so they
    /// neither pass nor break the verdict (the renderers show them as skipped).
    pub fn outcomes(&self) -> Vec<ThresholdOutcome> {
        self.checks
            .iter()
            .filter(|check| check.status() != CheckStatus::Skipped)
            .map(|check| {
                let observed = if check.passed {
                    "holds".to_owned()
                } else if check.counts.is_empty() {
                    "broken".to_owned()
                } else {
                    let counts: Vec<String> = check
                        .counts
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    format!("broken ({})", counts.join(", "))
                };
                ThresholdOutcome {
                    name: check.name.clone(),
                    kind: ThresholdKind::Invariant,
                    limit: "holds".to_owned(),
                    observed,
                    passed: check.passed,
                }
            })
            .collect()
    }
}

/// One invariant and what the checker found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Short stable name, e.g. "no-double-sale".
    pub name: String,
    /// What the invariant says, in one sentence.
    pub description: String,
    /// True when the invariant held. Always false for a skipped check.
    pub passed: bool,
    /// Set when the check could not run on this stack, saying why; a skipped check counts as
    /// not run, never as passed.
    #[serde(default)]
    pub skipped_reason: Option<String>,
    /// Numbers behind the finding, e.g. {"acknowledged": 100, "final": 98, "lost": 2}.
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    /// Up to 10 ids (bookings, seats, users) that break the invariant, to start debugging.
    #[serde(default)]
    pub examples: Vec<String>,
}

/// Where a [`Check`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The check ran and the invariant held.
    Passed,
    /// The check ran and the invariant was broken.
    Failed,
    /// The check could not run on this stack.
    Skipped,
}

impl Check {
    /// A check that ran; `passed` says whether the invariant held.
    pub fn new(name: impl Into<String>, description: impl Into<String>, passed: bool) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            passed,
            ..Self::default()
        }
    }

    /// A check that could not run on this stack, and why.
    pub fn skipped(
        name: impl Into<String>,
        description: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            passed: false,
            skipped_reason: Some(reason.into()),
            ..Self::default()
        }
    }

    /// Adds a named count.
    pub fn with_count(mut self, name: impl Into<String>, value: i64) -> Self {
        self.counts.insert(name.into(), value);
        self
    }

    /// Keeps up to [`MAX_EXAMPLES`] example ids (the rest are dropped).
    pub fn with_examples<I, S>(mut self, examples: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.examples = examples
            .into_iter()
            .take(MAX_EXAMPLES)
            .map(Into::into)
            .collect();
        self
    }

    /// Passed, failed or skipped; a skipped reason wins over `passed`.
    pub fn status(&self) -> CheckStatus {
        match (&self.skipped_reason, self.passed) {
            (Some(_), _) => CheckStatus::Skipped,
            (None, true) => CheckStatus::Passed,
            (None, false) => CheckStatus::Failed,
        }
    }
}

/// What the injected faults did to the system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failover {
    /// Why there is nothing to report, e.g. "no fault was injected in this run".
    #[serde(default)]
    pub note: Option<String>,
    /// One entry per injected fault, in schedule order.
    #[serde(default)]
    pub faults: Vec<FaultReport>,
}

impl Failover {
    /// The note renderers show when a run had no chaos schedule.
    pub const NO_FAULT_NOTE: &'static str = "no fault was injected in this run";

    /// A failover section for a run without faults.
    pub fn no_faults() -> Self {
        Self {
            note: Some(Self::NO_FAULT_NOTE.to_owned()),
            faults: Vec::new(),
        }
    }
}

/// One injected fault, measured. Times ending in `_s` are seconds since the run started,
/// on the same clock as the timeline, unless the field says it is a duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaultReport {
    /// Component the fault hit, e.g. "redis", "postgres", "app-1".
    pub target: String,
    /// Kind of fault, e.g. "kill", "pause", "latency", "down".
    pub kind: String,
    /// The fault as written in the schedule, e.g. "redis:kill@20s+10s".
    pub spec: String,
    /// When the fault was applied.
    pub start_s: f64,
    /// When the fault was lifted (process restarted, proxy restored).
    pub end_s: f64,
    /// First client error at or after `start_s`; none if clients never saw one.
    #[serde(default)]
    pub first_error_s: Option<f64>,
    /// When the system noticed (readiness turned false or an alert fired); none if it never did.
    #[serde(default)]
    pub noticed_s: Option<f64>,
    /// What noticed, e.g. "readiness" or "alert:BookingErrorBudgetBurn".
    #[serde(default)]
    pub noticed_by: Option<String>,
    /// First successful request after the first error (or after `start_s` when there was none).
    #[serde(default)]
    pub first_success_after_s: Option<f64>,
    /// A duration: seconds from `start_s` until the SLO held again and kept holding (the
    /// recovery time compared with the failover budget); none if it never recovered in the run.
    #[serde(default)]
    pub recovered_within_slo_s: Option<f64>,
    /// Erroneous or unknown requests between `start_s` and recovery (or `end_s`); business
    /// refusals are not errors.
    pub errors_in_window: u64,
    /// All requests in the same window.
    pub requests_in_window: u64,
    /// Error rate before the fault, a fraction in 0..=1.
    pub error_rate_baseline: f64,
    /// Error rate during the window, a fraction in 0..=1.
    pub error_rate_window: f64,
    /// p99 latency before the fault, ms.
    pub p99_baseline_ms: f64,
    /// p99 latency during the window, ms.
    pub p99_window_ms: f64,
    /// Acknowledged bookings missing from the final state (the recovery point objective, as
    /// a count): anything above 0 is data loss.
    pub acknowledged_lost: u64,
    /// Alerts that fired because of this fault.
    #[serde(default)]
    pub alerts: Vec<AlertFiring>,
    /// Bookings made or paid successfully in the same window as the errors; 0 means the
    /// fault hit no sale (everything was sold before it, or nothing was being sold), so the
    /// window says nothing about bookings. Absent in reports before schema 3.0.
    #[serde(default)]
    pub bookings_in_window: Option<u64>,
}

impl FaultReport {
    /// Seconds from the fault to the first client error.
    pub fn time_to_first_error_s(&self) -> Option<f64> {
        self.first_error_s.map(|t| t - self.start_s)
    }

    /// Seconds from the fault until the system noticed.
    pub fn time_to_notice_s(&self) -> Option<f64> {
        self.noticed_s.map(|t| t - self.start_s)
    }

    /// Seconds from the fault to the first success after it.
    pub fn time_to_first_success_s(&self) -> Option<f64> {
        self.first_success_after_s.map(|t| t - self.start_s)
    }
}

/// An alert that fired during a fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertFiring {
    /// Alert name as in the Prometheus rules.
    pub name: String,
    /// When it fired, seconds since the run started.
    pub fired_at_s: f64,
}

/// A side-by-side table: the strategy matrix (one row per strategy) or the capacity ramp
/// (one row per step).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// Table title, e.g. "Concurrency strategies under a 1,000-user rush".
    pub title: String,
    /// Column names, in display order; each row has a value for each (missing shows as "—").
    pub columns: Vec<String>,
    /// The rows, in display order.
    pub rows: Vec<ComparisonRow>,
    /// "What this shows": one paragraph reading the table, generated from its numbers (3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<String>,
}

/// One row of a [`Comparison`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComparisonRow {
    /// Row label, e.g. "optimistic" or "step 3".
    pub label: String,
    /// Values by column name: numbers, strings, booleans or null.
    #[serde(default)]
    pub values: BTreeMap<String, serde_json::Value>,
    /// Whether this row met its thresholds.
    pub passed: bool,
}

/// Two runs compared metric by metric (`scenario compare A B`, or a run's `--baseline`): the
/// baseline is A, the current run is B; every delta is B − A. Latency changes are judged on
/// the recorded samples (`history.jsonl`), not on one percentile, so noise is not a regression.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunComparison {
    /// The run compared against (A).
    pub baseline: RunRef,
    /// The run judged (B).
    pub current: RunRef,
    /// The noise rules the assessments used.
    pub method: ComparisonMethod,
    /// One row per subject and metric: the summary, each transaction, each check, each fault's
    /// recovery.
    pub rows: Vec<MetricDelta>,
    /// How many rows are assessed `regression`.
    pub regressions: u64,
    /// Caveats, e.g. a run without history (percentile deltas only, not tested for noise),
    /// or runs of different scenarios.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Which run a side of a [`RunComparison`] is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRef {
    /// The run's id ([`RunInfo::id`]).
    pub id: String,
    /// Where it was read from: a run directory or a `report.json` path, as given.
    pub source: String,
    /// Scenario name.
    pub scenario: String,
    /// Stack name.
    pub stack: String,
    /// Concurrency strategy.
    pub strategy: String,
    /// Virtual users.
    pub users: u64,
    /// When its load started, RFC 3339.
    pub started_at: String,
    /// Latency samples per transaction were read from its history, so latency changes were
    /// tested for noise.
    pub samples: bool,
}

/// The noise rules of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComparisonMethod {
    /// Significance level of every test, e.g. 0.01.
    pub alpha: f64,
    /// Smallest relative change worth flagging, a fraction (0.1 = 10%): a significant change
    /// smaller than this is `unchanged`.
    pub tolerance: f64,
    /// Smallest Vargha–Delaney effect size A (the chance that a request of B is slower than one
    /// of A) for a median shift to count; 0.56 is a "small" effect.
    pub min_effect: f64,
    /// Bootstrap resamples behind each percentile's and the throughput's confidence interval.
    pub resamples: u64,
    /// Smallest latency difference flagged, ms (a few ms of a tail percentile are the
    /// scheduler's time slices on a shared machine).
    #[serde(default)]
    pub min_latency_delta_ms: f64,
}

/// One metric of one subject in both runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricDelta {
    /// What the row is about: "summary", "transaction", "check" or "recovery".
    pub group: String,
    /// The transaction, check or fault (its schedule spec); "all" for the summary.
    pub subject: String,
    /// The metric: "p50_ms", "p95_ms", "p99_ms", "throughput_rps", "requests", "errors",
    /// "rejected", "error_rate", "rejected_rate", "holds" (a check: 1 held, 0 broken) or
    /// "recovered_within_slo_s".
    pub metric: String,
    /// Its unit: "ms", "rps", "count", "fraction", "bool" or "s".
    pub unit: String,
    /// Value in the baseline run; none when the subject is absent there (or a check was
    /// skipped, or a fault never recovered).
    #[serde(default)]
    pub baseline: Option<f64>,
    /// Value in the current run; none as for `baseline`.
    #[serde(default)]
    pub current: Option<f64>,
    /// current − baseline, when both are present.
    #[serde(default)]
    pub delta: Option<f64>,
    /// delta / baseline, a fraction (0.25 = +25%); none when the baseline is 0 or absent.
    #[serde(default)]
    pub change: Option<f64>,
    /// The noise test behind the assessment, when one applies and both runs had data.
    #[serde(default)]
    pub test: Option<SignificanceTest>,
    /// What the difference means.
    pub assessment: Assessment,
}

/// A statistical test of a difference between two runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignificanceTest {
    /// "mann-whitney-u" (medians: the whole latency distributions), "bootstrap" (a
    /// percentile's or the per-interval throughput's 95% confidence interval of the
    /// difference) or "two-proportion-z" (error rates).
    pub method: String,
    /// Samples in the baseline run (requests or timeline intervals).
    pub n_baseline: u64,
    /// Samples in the current run.
    pub n_current: u64,
    /// One-sided p-value in the direction of the observed change (Mann–Whitney, z-test).
    #[serde(default)]
    pub p_value: Option<f64>,
    /// Mann–Whitney: Vargha–Delaney A, the chance that a request of the current run is
    /// slower than one of the baseline (ties count half); 0.5 is no difference.
    #[serde(default)]
    pub effect_size: Option<f64>,
    /// Bootstrap: lower end of the 95% confidence interval of current − baseline, in the
    /// row's unit.
    #[serde(default)]
    pub ci_low: Option<f64>,
    /// Bootstrap: upper end of the same interval.
    #[serde(default)]
    pub ci_high: Option<f64>,
    /// Whether the difference is beyond noise at the comparison's `alpha` (and, for
    /// Mann–Whitney, of at least `min_effect`).
    pub significant: bool,
}

/// What a [`MetricDelta`] means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// Worse beyond noise and tolerance (slower, fewer requests per second, more errors, a
    /// check that held now broken, a longer or missing recovery).
    Regression,
    /// Better beyond noise and tolerance.
    Improvement,
    /// No difference beyond noise or tolerance.
    #[default]
    Unchanged,
    /// Shown for context, not judged (request and rejection counts).
    Info,
}

impl Assessment {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Improvement => "improvement",
            Self::Unchanged => "unchanged",
            Self::Info => "info",
        }
    }
}

/// The decision CI gates on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// True when every outcome passed.
    pub passed: bool,
    /// Process exit code of `scenario --verdict`; see [`crate::exit_code`]: 0 pass, 1 run
    /// error, 2 usage error, 3 threshold missed, 4 invariant broken, 5 failover budget exceeded.
    pub exit_code: i32,
    /// Every threshold and invariant that was evaluated.
    pub outcomes: Vec<ThresholdOutcome>,
}

impl Default for Verdict {
    fn default() -> Self {
        Self::from_outcomes(Vec::new())
    }
}

impl Verdict {
    /// Decides pass/fail and the exit code. When several kinds fail, a broken invariant (4)
    /// wins over an exceeded failover budget (5), which wins over a missed latency, error-rate
    /// or throughput threshold (3): wrong answers matter more than slow ones.
    pub fn from_outcomes(outcomes: Vec<ThresholdOutcome>) -> Self {
        let failed = |kinds: &[ThresholdKind]| {
            outcomes
                .iter()
                .any(|o| !o.passed && kinds.contains(&o.kind))
        };
        let exit_code = if failed(&[ThresholdKind::Invariant]) {
            exit_code::INVARIANT_BROKEN
        } else if failed(&[ThresholdKind::Recovery]) {
            exit_code::RECOVERY_EXCEEDED
        } else if failed(&[
            ThresholdKind::Latency,
            ThresholdKind::ErrorRate,
            ThresholdKind::Throughput,
            ThresholdKind::Resource,
        ]) {
            exit_code::THRESHOLD_MISSED
        } else {
            exit_code::PASS
        };
        Self {
            passed: exit_code == exit_code::PASS,
            exit_code,
            outcomes,
        }
    }
}

/// One evaluated threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdOutcome {
    /// What was checked, e.g. "p99 latency of confirm".
    pub name: String,
    /// Which family it belongs to; decides the exit code when it fails.
    pub kind: ThresholdKind,
    /// The limit as written, e.g. "<= 500 ms".
    pub limit: String,
    /// What the run measured, e.g. "812 ms".
    pub observed: String,
    /// True when the observation is within the limit.
    pub passed: bool,
}

impl ThresholdOutcome {
    /// An outcome; `limit` and `observed` are free text shown as written.
    pub fn new(
        name: impl Into<String>,
        kind: ThresholdKind,
        limit: impl Into<String>,
        observed: impl Into<String>,
        passed: bool,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            limit: limit.into(),
            observed: observed.into(),
            passed,
        }
    }
}

/// The family of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// A latency percentile; failing gives exit code 3.
    Latency,
    /// An error rate; failing gives exit code 3.
    ErrorRate,
    /// A correctness invariant; failing gives exit code 4.
    Invariant,
    /// A recovery time against the failover budget; failing gives exit code 5.
    Recovery,
    /// A minimum throughput; failing gives exit code 3.
    Throughput,
    /// Growth of a resource of the box office over a run (a soak's leak check); failing
    /// gives exit code 3.
    Resource,
}

impl ThresholdKind {
    /// The name used in JSON ("error_rate").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::ErrorRate => "error_rate",
            Self::Invariant => "invariant",
            Self::Recovery => "recovery",
            Self::Throughput => "throughput",
            Self::Resource => "resource",
        }
    }
}

impl std::fmt::Display for ThresholdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Another file the run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Artifact {
    /// What it is, e.g. "client history".
    pub name: String,
    /// Where it is, relative to the run directory (e.g. "history.jsonl").
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: ThresholdKind, passed: bool) -> ThresholdOutcome {
        ThresholdOutcome::new(format!("{kind}"), kind, "limit", "observed", passed)
    }

    #[test]
    fn a_verdict_with_every_outcome_passed_exits_zero() {
        let verdict = Verdict::from_outcomes(vec![
            outcome(ThresholdKind::Latency, true),
            outcome(ThresholdKind::Invariant, true),
        ]);
        assert!(verdict.passed);
        assert_eq!(verdict.exit_code, exit_code::PASS);
    }

    #[test]
    fn a_verdict_without_outcomes_passes() {
        let verdict = Verdict::from_outcomes(Vec::new());
        assert!(verdict.passed);
        assert_eq!(verdict.exit_code, 0);
        assert_eq!(Verdict::default(), verdict);
    }

    #[test]
    fn a_missed_latency_error_rate_or_throughput_threshold_exits_three() {
        for kind in [
            ThresholdKind::Latency,
            ThresholdKind::ErrorRate,
            ThresholdKind::Throughput,
        ] {
            let verdict = Verdict::from_outcomes(vec![outcome(kind, false)]);
            assert!(!verdict.passed);
            assert_eq!(verdict.exit_code, 3, "{kind}");
        }
    }

    #[test]
    fn a_broken_invariant_takes_precedence_over_everything_else() {
        let verdict = Verdict::from_outcomes(vec![
            outcome(ThresholdKind::Latency, false),
            outcome(ThresholdKind::Recovery, false),
            outcome(ThresholdKind::Invariant, false),
            outcome(ThresholdKind::Throughput, false),
        ]);
        assert_eq!(verdict.exit_code, exit_code::INVARIANT_BROKEN);
    }

    #[test]
    fn an_exceeded_failover_budget_takes_precedence_over_a_missed_threshold() {
        let verdict = Verdict::from_outcomes(vec![
            outcome(ThresholdKind::ErrorRate, false),
            outcome(ThresholdKind::Recovery, false),
            outcome(ThresholdKind::Invariant, true),
        ]);
        assert_eq!(verdict.exit_code, exit_code::RECOVERY_EXCEEDED);
    }

    #[test]
    fn skipped_checks_give_no_outcome_and_never_count_as_passed() {
        let correctness = Correctness {
            checks: vec![
                Check::new("a", "holds", true),
                Check::new("b", "broken", false).with_count("lost", 2),
                Check::skipped("c", "needs kafka", "embedded stack has no broker"),
            ],
        };
        assert_eq!(correctness.checks[2].status(), CheckStatus::Skipped);
        assert!(!correctness.checks[2].passed);
        let outcomes = correctness.outcomes();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|o| o.kind == ThresholdKind::Invariant));
        assert_eq!(outcomes[1].observed, "broken (lost=2)");
        assert_eq!(Verdict::from_outcomes(outcomes).exit_code, 4);
    }

    #[test]
    fn a_check_keeps_at_most_ten_examples() {
        let check = Check::new("x", "y", false).with_examples((0..25).map(|i| format!("b-{i}")));
        assert_eq!(check.examples.len(), MAX_EXAMPLES);
        assert_eq!(check.examples[9], "b-9");
    }

    #[test]
    fn percentiles_are_read_from_a_microsecond_histogram_in_milliseconds() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000u64 {
            histogram.record(us * 1000).unwrap();
        }
        let p = Percentiles::from_histogram(&histogram);
        assert!((p.min - 1.0).abs() < 0.01, "{p:?}");
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert!((p.mean - 500.5).abs() < 1.0, "{p:?}");
        assert_eq!(
            Percentiles::from_histogram(&Histogram::<u64>::new(3).unwrap()),
            Percentiles::default()
        );
    }

    #[test]
    fn the_summary_adds_up_the_transactions_and_rejections_are_not_errors() {
        let tx = |count, ok, rejected, errors, unknown| TransactionStats {
            count,
            ok,
            rejected,
            errors,
            unknown,
            ..TransactionStats::default()
        };
        let summary =
            Summary::from_transactions(&[tx(100, 50, 40, 5, 5), tx(100, 100, 0, 0, 0)], 10.0);
        assert_eq!(summary.requests, 200);
        assert_eq!(summary.ok, 150);
        assert_eq!(summary.rejected, 40);
        assert!((summary.throughput_rps - 20.0).abs() < 1e-9);
        assert!((summary.error_rate - 0.05).abs() < 1e-9);
        assert!((summary.rejected_rate - 0.20).abs() < 1e-9);
        let empty = Summary::from_transactions(&[], 0.0);
        assert_eq!(empty.error_rate, 0.0);
        assert_eq!(empty.throughput_rps, 0.0);
    }

    #[test]
    fn outcomes_count_apart_and_old_histories_still_read() {
        let mut c = OutcomeCounts::default();
        for o in [
            Outcome::Ok,
            Outcome::Rejected,
            Outcome::Rejected,
            Outcome::Error,
            Outcome::Unknown,
        ] {
            c.add(o);
        }
        assert_eq!(
            (c.ok, c.rejected, c.errors, c.unknown, c.total()),
            (1, 2, 1, 1, 5)
        );
        assert!(
            !Outcome::Rejected.is_error()
                && Outcome::Error.is_error()
                && Outcome::Unknown.is_error()
        );
        assert_eq!(Outcome::Unknown.happened(), None);
        let old: Outcome = serde_json::from_str("\"fail\"").unwrap();
        assert_eq!(old, Outcome::Rejected);
        assert_eq!(
            serde_json::to_string(&Outcome::Rejected).unwrap(),
            "\"rejected\""
        );
    }
}

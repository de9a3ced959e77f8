//! The client history: every operation a virtual user performs, Jepsen-style — when it was
//! invoked, when it completed, and whether it definitely happened (`ok`), definitely did not
//! (`fail`) or cannot be known (`unknown`: timeouts, connection errors, 5xx).
//!
//! Virtual users hand each [`Op`] to a cheap, clonable [`Recorder`] (one channel send and two
//! atomic increments); a single writer thread ([`HistoryWriter`]) serialises the records to
//! `history.jsonl`, feeds the per-transaction histograms and the timeline, and keeps the
//! state-changing operations in memory for the checker. Nothing on the request path formats
//! JSON or takes a lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// File name of the history inside a run directory.
pub const HISTORY_FILE: &str = "history.jsonl";

/// What an operation's client saw: ok, rejected (a business refusal), error or unknown
/// (see [`reports::Outcome`]).
pub use reports::Outcome;

/// Statuses that are a definite business refusal: payment required (declined), conflict
/// (seat taken, sold out, quota reached, already claimed), gone (hold expired).
const REFUSALS: [u16; 3] = [402, 409, 410];

/// The error code of a request the box office refused past capacity, before starting it.
pub const OVERLOADED: &str = "overloaded";

/// The error code of a request the box office refused because its database was unreachable,
/// before starting it (a database failure *during* a request is `database_interrupted`).
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

/// Whether an answer (`status`, the body's error `code`) is the box office refusing the
/// request past capacity, before starting it.
pub fn refused(status: Option<u16>, code: Option<&str>) -> bool {
    status == Some(503) && code == Some(OVERLOADED)
}

/// Whether an answer says the box office did not start the request (refused past capacity,
/// or its database unreachable), so that it changed nothing and sending it again is safe.
pub fn not_started(status: Option<u16>, code: Option<&str>) -> bool {
    status == Some(503) && matches!(code, Some(OVERLOADED | DATABASE_UNAVAILABLE))
}

/// Classifies an HTTP answer to `op` with the body's error `code`: 2xx ok; a business refusal
/// or a 503 `overloaded` (refused before it started) rejected; any other 4xx, and a 503
/// `database_unavailable` (a failure, but one that definitely did not start), an error; any
/// other 5xx or no answer at all (timeout, transport) unknown when `op` changes state (it may
/// have happened), else an error.
pub fn classify(op: OpKind, status: Option<u16>, code: Option<&str>) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Ok,
        _ if refused(status, code) => Outcome::Rejected,
        Some(s) if REFUSALS.contains(&s) => Outcome::Rejected,
        Some(s) if (400..500).contains(&s) => Outcome::Error,
        _ if not_started(status, code) => Outcome::Error,
        _ if op.is_write() => Outcome::Unknown,
        _ => Outcome::Error,
    }
}

/// The kind of operation; also the transaction name in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `GET /health/live` (the benchmark).
    Live,
    /// `GET /v1/events`.
    ListEvents,
    /// `GET /v1/events?q=`.
    Search,
    /// `GET /v1/events/{id}`.
    Event,
    /// `GET /v1/rounds/{id}/availability`.
    Availability,
    /// `GET /v1/rounds/{id}/seats`.
    Seats,
    /// `POST /v1/rounds/{id}/holds`.
    Hold,
    /// `DELETE /v1/holds/{id}`.
    Release,
    /// `POST /v1/bookings`.
    Book,
    /// `POST /v1/bookings/{id}/pay`.
    Pay,
    /// `POST /v1/bookings/{id}/cancel`.
    Cancel,
    /// `POST /v1/coupons/{code}/claims`.
    Claim,
}

impl OpKind {
    /// Every kind, in the order the report lists transactions.
    pub const ALL: [OpKind; 12] = [
        OpKind::Live,
        OpKind::ListEvents,
        OpKind::Search,
        OpKind::Event,
        OpKind::Availability,
        OpKind::Seats,
        OpKind::Hold,
        OpKind::Release,
        OpKind::Book,
        OpKind::Pay,
        OpKind::Cancel,
        OpKind::Claim,
    ];

    /// The name in the history, the report and threshold flags (`--p99 hold=500ms`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Live => "live",
            OpKind::ListEvents => "list_events",
            OpKind::Search => "search",
            OpKind::Event => "event",
            OpKind::Availability => "availability",
            OpKind::Seats => "seats",
            OpKind::Hold => "hold",
            OpKind::Release => "release",
            OpKind::Book => "book",
            OpKind::Pay => "pay",
            OpKind::Cancel => "cancel",
            OpKind::Claim => "claim",
        }
    }

    /// Whether the operation changes state, so the checker needs it.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpKind::Hold
                | OpKind::Release
                | OpKind::Book
                | OpKind::Pay
                | OpKind::Cancel
                | OpKind::Claim
        )
    }
}

/// One operation of one virtual user. Times are milliseconds since the run's epoch (the
/// moment the load started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// When the request was sent.
    pub invoke_ms: f64,
    /// When the response (or the error) was in.
    pub complete_ms: f64,
    /// When an open-model schedule wanted the request sent; absent in closed-model runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_ms: Option<f64>,
    /// The box office's user id.
    pub user: i64,
    /// What was done.
    pub op: OpKind,
    /// What the client saw.
    pub outcome: Outcome,
    /// HTTP status, absent when no response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `error.code` of the response body, or the client error (`timeout`, `connect`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Round involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_id: Option<i64>,
    /// Hold involved (sent or returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<i64>,
    /// Booking involved (sent or returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
    /// Seats asked for or granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seat_ids: Vec<i64>,
    /// Money sent or returned, minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Coupon code involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    /// Idempotency key sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Op {
    /// An operation with only its kind, user and outcome set; the caller fills in the rest.
    pub fn new(op: OpKind, user: i64, outcome: Outcome) -> Self {
        Self {
            invoke_ms: 0.0,
            complete_ms: 0.0,
            intended_ms: None,
            user,
            op,
            outcome,
            status: None,
            error: None,
            round_id: None,
            hold_id: None,
            booking_id: None,
            seat_ids: Vec::new(),
            amount: None,
            coupon: None,
            key: None,
        }
    }

    /// Latency as the client measured it, ms.
    pub fn latency_ms(&self) -> f64 {
        (self.complete_ms - self.invoke_ms).max(0.0)
    }
}

/// Live counters the progress line reads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Operations completed.
    pub requests: AtomicU64,
    /// Of those, business refusals (not errors).
    pub rejected: AtomicU64,
    /// Of those, definite errors (not business answers).
    pub errors: AtomicU64,
    /// Of those, unknown outcomes (a write's timeout, transport error or 5xx).
    pub unknown: AtomicU64,
    /// Virtual users that sent at least one request.
    pub users_active: AtomicU64,
    /// Virtual users that started working.
    pub users_started: AtomicU64,
    /// Virtual users (or iterations, for one-shot scenarios) that finished.
    pub users_done: AtomicU64,
}

enum Msg {
    Op(Box<Op>),
    Close,
}

/// The virtual users' handle on the history: clone it freely.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Msg>>,
    epoch: Instant,
    counters: Arc<Counters>,
    observer: Option<Arc<dyn Observer>>,
    connections: Option<Arc<tokio::sync::Semaphore>>,
}

/// Sees every operation as it is recorded (the runner's live metrics).
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// One finished operation.
    fn observe(&self, op: OpKind, latency_s: f64, outcome: Outcome);
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Recorder {
    /// Milliseconds since the run's epoch.
    pub fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1000.0
    }

    /// The run's epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The live counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// At most `n` requests in flight at once (so at most `n` connections open): a request
    /// beyond waits for a permit, and the wait counts in its latency.
    pub fn with_connection_limit(mut self, n: usize) -> Self {
        self.connections = Some(Arc::new(tokio::sync::Semaphore::new(n.max(1))));
        self
    }

    /// A permit to have one request in flight, when the run limits them.
    pub async fn connection(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match &self.connections {
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Also feeds every operation to `observer` (the runner's live metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Records an operation (counted even when history recording is off).
    pub fn record(&self, op: Op) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = &self.observer {
            observer.observe(op.op, op.latency_ms() / 1000.0, op.outcome);
        }
        let counter = match op.outcome {
            Outcome::Ok => None,
            Outcome::Rejected => Some(&self.counters.rejected),
            Outcome::Error => Some(&self.counters.errors),
            Outcome::Unknown => Some(&self.counters.unknown),
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = &self.tx {
            // The writer only goes away after `finish`, when no user runs any more.
            let _ = tx.send(Msg::Op(Box::new(op)));
        }
    }
}

/// Latency and counts of one transaction, as the writer accumulated them.
#[derive(Debug, Clone)]
pub struct TxAggregate {
    /// Latency, microseconds.
    pub latency_us: Histogram<u64>,
    /// Latency from the intended start (open model), microseconds.
    pub corrected_us: Option<Histogram<u64>>,
    /// Requests by outcome.
    pub counts: reports::OutcomeCounts,
    /// Everything but successes, by error code.
    pub codes: BTreeMap<String, u64>,
}

impl TxAggregate {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new(3).expect("3 significant digits is valid"),
            corrected_us: None,
            counts: reports::OutcomeCounts::default(),
            codes: BTreeMap::new(),
        }
    }

    /// Requests of every outcome.
    pub fn count(&self) -> u64 {
        self.counts.total()
    }
}

/// What the writer hands back when the run is over.
#[derive(Debug)]
pub struct HistoryOutput {
    /// Per transaction.
    pub transactions: BTreeMap<OpKind, TxAggregate>,
    /// Per-second timeline.
    pub timeline: reports::Timeline,
    /// State-changing operations, in completion order, for the checker.
    pub writes: Vec<Op>,
    /// Every operation's completion time, latency and whether it was an error (unknown
    /// outcome), in completion order, for the failover analysis.
    pub samples: Vec<Sample>,
    /// Every operation recorded.
    pub recorded: u64,
    /// Where the history was written, if it was.
    pub path: Option<PathBuf>,
    /// The first I/O error, if writing the file failed (the in-memory parts stay valid).
    pub io_error: Option<String>,
}

/// Owns the writer thread; [`finish`](Self::finish) closes it and returns what it gathered.
#[derive(Debug)]
pub struct HistoryWriter {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<HistoryOutput>,
}

/// Starts a history: a writer thread writing to `path` (or nowhere when `None`) and the
/// recorder the virtual users share. `record_ops = false` turns the channel off entirely
/// (the benchmark's "history off"); counters still work.
pub fn start(
    path: Option<&Path>,
    record_ops: bool,
    interval_s: f64,
) -> std::io::Result<(Recorder, HistoryWriter)> {
    let file = path
        .map(File::create)
        .transpose()?
        .map(|f| BufWriter::with_capacity(1 << 16, f));
    let (tx, rx) = mpsc::channel::<Msg>();
    let epoch = Instant::now();
    let path_owned = path.map(Path::to_path_buf);
    let thread = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || write_loop(rx, file, path_owned, interval_s))?;
    let recorder = Recorder {
        tx: record_ops.then(|| tx.clone()),
        epoch,
        counters: Arc::new(Counters::default()),
        observer: None,
        connections: None,
    };
    Ok((recorder, HistoryWriter { tx, thread }))
}

impl HistoryWriter {
    /// Stops the writer after everything sent so far, flushes the file and returns the
    /// aggregates. `duration_s` makes the timeline cover the whole run.
    pub fn finish(self, duration_s: f64) -> HistoryOutput {
        let _ = self.tx.send(Msg::Close);
        let mut out = self.thread.join().unwrap_or_else(|_| HistoryOutput {
            transactions: BTreeMap::new(),
            timeline: reports::Timeline::default(),
            writes: Vec::new(),
            samples: Vec::new(),
            recorded: 0,
            path: None,
            io_error: Some("the history writer panicked".into()),
        });
        if let Some(last) = out.timeline.points.last() {
            let end = last.t_s + out.timeline.interval_s;
            if end < duration_s {
                // Rebuild is cheap: only pad with empty points.
                let interval = out.timeline.interval_s.max(1e-9);
                let mut t = end;
                while t < duration_s {
                    out.timeline.points.push(reports::TimelinePoint {
                        t_s: t,
                        ..Default::default()
                    });
                    t += interval;
                }
            }
        }
        out
    }
}

fn write_loop(
    rx: mpsc::Receiver<Msg>,
    mut file: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    interval_s: f64,
) -> HistoryOutput {
    let mut transactions: BTreeMap<OpKind, TxAggregate> = BTreeMap::new();
    let mut timeline = reports::TimelineBuilder::new(interval_s);
    let mut writes = Vec::new();
    let mut samples = Vec::new();
    let mut recorded = 0u64;
    let mut io_error = None;
    loop {
        // Polled rather than blocking in `recv`: a sender only pays for a futex wake-up when
        // the receiver sleeps in `recv`, and at tens of thousands of operations a second
        // those wake-ups cost more than writing the history itself.
        let op = match rx.try_recv() {
            Ok(Msg::Op(op)) => op,
            Ok(_) | Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                std::thread::sleep(std::time::Duration::from_millis(2));
                continue;
            }
        };
        recorded += 1;
        if let Some(f) = file.as_mut() {
            let res = serde_json::to_writer(&mut *f, &*op)
                .map_err(std::io::Error::from)
                .and_then(|()| f.write_all(b"\n"));
            if let Err(e) = res {
                io_error.get_or_insert_with(|| e.to_string());
                file = None;
            }
        }
        let agg = transactions.entry(op.op).or_insert_with(TxAggregate::new);
        let latency_us = (op.latency_ms() * 1000.0).round() as u64;
        record_us(&mut agg.latency_us, latency_us);
        if let Some(intended) = op.intended_ms {
            let corrected = ((op.complete_ms - intended).max(0.0) * 1000.0).round() as u64;
            record_us(
                agg.corrected_us
                    .get_or_insert_with(|| Histogram::new(3).expect("valid precision")),
                corrected,
            );
        }
        agg.counts.add(op.outcome);
        let refused = refused(op.status, op.error.as_deref());
        if refused {
            agg.counts.refused += 1;
        }
        if op.outcome != Outcome::Ok {
            let code = op
                .error
                .clone()
                .or_else(|| op.status.map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            *agg.codes.entry(code).or_default() += 1;
        }
        timeline.record(
            op.complete_ms / 1000.0,
            op.op.as_str(),
            op.latency_ms(),
            op.outcome,
        );
        if refused {
            timeline.refused(op.complete_ms / 1000.0, op.op.as_str());
        }
        samples.push(Sample {
            t_ms: op.complete_ms,
            latency_ms: op.latency_ms(),
            error: op.outcome.is_error(),
            booking: matches!(op.op, OpKind::Book | OpKind::Pay) && op.outcome == Outcome::Ok,
        });
        if op.op.is_write() {
            writes.push(*op);
        }
    }
    if let Some(mut f) = file {
        if let Err(e) = f.flush() {
            io_error.get_or_insert_with(|| e.to_string());
        }
    }
    HistoryOutput {
        transactions,
        timeline: timeline.build(),
        writes,
        samples,
        recorded,
        path,
        io_error,
    }
}

/// One operation as the failover analysis sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it completed, ms since the history's epoch.
    pub t_ms: f64,
    /// How long it took, ms.
    pub latency_ms: f64,
    /// Whether it was an error or an unknown outcome (a timeout, a connection error, a 5xx,
    /// a 4xx that is not a business answer): what a fault causes. A business refusal (sold
    /// out, seat taken) is a correct answer, not an error of the system.
    pub error: bool,
    /// Whether it made or paid a booking.
    pub booking: bool,
}

/// Records into an auto-resizing histogram (`saturating_record` alone would clamp to its
/// current, tiny range instead of growing it).
fn record_us(h: &mut Histogram<u64>, us: u64) {
    if h.record(us.max(1)).is_err() {
        h.saturating_record(us.max(1));
    }
}

/// Reads a `history.jsonl` back (for tools and tests).
pub fn read(path: &Path) -> std::io::Result<Vec<Op>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_jepsen_outcomes() {
        assert_eq!(classify(OpKind::Hold, Some(201), None), Outcome::Ok);
        assert_eq!(classify(OpKind::Hold, Some(409), None), Outcome::Rejected);
        assert_eq!(classify(OpKind::Pay, Some(402), None), Outcome::Rejected);
        assert_eq!(classify(OpKind::Book, Some(410), None), Outcome::Rejected);
        assert_eq!(classify(OpKind::Hold, Some(422), None), Outcome::Error);
        assert_eq!(classify(OpKind::Hold, Some(401), None), Outcome::Error);
        assert_eq!(classify(OpKind::Hold, Some(503), None), Outcome::Unknown);
        // The database failed while it ran: it may have happened.
        assert_eq!(
            classify(OpKind::Hold, Some(503), Some("database_interrupted")),
            Outcome::Unknown
        );
        // Refused because the database was unreachable, before it started: a failure, and
        // definitely not applied (the checker holds it to that).
        assert_eq!(
            classify(OpKind::Hold, Some(503), Some(DATABASE_UNAVAILABLE)),
            Outcome::Error
        );
        assert!(not_started(Some(503), Some(DATABASE_UNAVAILABLE)));
        assert!(!refused(Some(503), Some(DATABASE_UNAVAILABLE)));
        assert!(!not_started(Some(503), Some("database_interrupted")));
        // Refused by admission before it started: definitely did not happen.
        assert_eq!(
            classify(OpKind::Hold, Some(503), Some(OVERLOADED)),
            Outcome::Rejected
        );
        assert_eq!(classify(OpKind::Pay, None, None), Outcome::Unknown);
        // A read changes nothing: its failure is an error, never an unknown.
        assert_eq!(
            classify(OpKind::ListEvents, Some(503), None),
            Outcome::Error
        );
        assert_eq!(classify(OpKind::Availability, None, None), Outcome::Error);
    }

    #[test]
    fn recorded_operations_come_back_from_the_file_and_the_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let (rec, writer) = start(Some(&path), true, 1.0).unwrap();
        let mut op = Op::new(OpKind::Hold, 7, Outcome::Ok);
        op.invoke_ms = 1.0;
        op.complete_ms = 3.5;
        op.seat_ids = vec![1, 2];
        rec.record(op.clone());
        rec.record(Op::new(OpKind::ListEvents, 7, Outcome::Unknown));
        rec.record(Op::new(OpKind::Claim, 8, Outcome::Rejected));
        let out = writer.finish(2.0);
        assert_eq!(out.recorded, 3);
        assert_eq!(out.writes[0], op);
        assert_eq!(out.transactions[&OpKind::Hold].counts.ok, 1);
        assert_eq!(out.transactions[&OpKind::Claim].counts.rejected, 1);
        assert_eq!(out.transactions[&OpKind::ListEvents].counts.unknown, 1);
        assert_eq!(read(&path).unwrap()[0], op);
        // Each outcome is counted apart: one unknown, one rejection, no error.
        assert_eq!(rec.counters().unknown.load(Ordering::Relaxed), 1);
        assert_eq!(rec.counters().errors.load(Ordering::Relaxed), 0);
        assert_eq!(rec.counters().rejected.load(Ordering::Relaxed), 1);
        assert!(out.timeline.points.len() >= 2);
        let p = reports::Percentiles::from_histogram(&out.transactions[&OpKind::Hold].latency_us);
        assert!((p.p50 - 2.5).abs() < 0.01, "{p:?}");
    }

    #[tokio::test]
    async fn a_connection_limit_holds_requests_beyond_it_until_one_finishes() {
        let (rec, _writer) = start(None, false, 1.0).unwrap();
        assert!(rec.connection().await.is_none(), "no limit unless asked");
        let rec = rec.with_connection_limit(2);
        let a = rec.connection().await.expect("a permit");
        let _b = rec.connection().await.expect("a permit");
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), rec.connection());
        assert!(
            third.await.is_err(),
            "the third waits while two are in flight"
        );
        drop(a);
        let third = tokio::time::timeout(std::time::Duration::from_millis(500), rec.connection());
        assert!(third.await.expect("released").is_some());
    }
}

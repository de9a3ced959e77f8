//! Builds the per-interval [`Timeline`] from raw samples, so the runner only has to call
//! [`TimelineBuilder::record`] once per completed request.
//!
//! Each sample falls into the interval `floor(t_s / interval_s)`; each (interval, transaction)
//! cell keeps its own HDR histogram (microseconds, 2 significant digits, auto-resizing), from
//! which [`build`](TimelineBuilder::build) reads p50/p95/p99. Samples may arrive in any order.
//! Intervals in which nothing happened are filled with zero points so an outage shows as a
//! drop to zero instead of vanishing. Memory is a few kilobytes per cell that received samples
//! (a 10-minute run with 5 transactions at 1-second intervals stays in the tens of megabytes).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::model::{Outcome, PointStats, Timeline, TimelinePoint};

/// Accumulates samples into per-interval, per-transaction histograms.
#[derive(Debug)]
pub struct TimelineBuilder {
    interval_s: f64,
    /// Sparse: only intervals that received a sample; gaps are filled in `build`.
    intervals: BTreeMap<u64, BTreeMap<String, Cell>>,
    /// The timeline covers at least intervals `0..covered` even if they are empty.
    covered: u64,
    dropped: u64,
}

#[derive(Debug)]
struct Cell {
    /// Latencies in microseconds.
    latency_us: Histogram<u32>,
    count: u64,
    rejected: u64,
    errors: u64,
    unknown: u64,
    refused: u64,
}

impl Cell {
    fn new() -> Self {
        Self {
            // 2 significant digits keep each cell small; auto-resize means no sample is too slow.
            latency_us: Histogram::new(2).expect("2 significant digits is a valid precision"),
            count: 0,
            rejected: 0,
            errors: 0,
            unknown: 0,
            refused: 0,
        }
    }
}

impl Default for TimelineBuilder {
    /// One-second intervals.
    fn default() -> Self {
        Self::new(1.0)
    }
}

impl TimelineBuilder {
    /// A builder with intervals of `interval_s` seconds; a non-positive or non-finite width
    /// falls back to 1 second.
    pub fn new(interval_s: f64) -> Self {
        let interval_s = if interval_s.is_finite() && interval_s > 0.0 {
            interval_s
        } else {
            1.0
        };
        Self {
            interval_s,
            intervals: BTreeMap::new(),
            covered: 0,
            dropped: 0,
        }
    }

    /// Width of each interval in seconds.
    pub fn interval_s(&self) -> f64 {
        self.interval_s
    }

    /// Records one completed request: when it happened (seconds since the run started),
    /// which transaction, how long it took (ms) and its outcome (rejections, errors and
    /// unknown outcomes are counted apart). Negative times count as 0; negative or non-finite latencies as
    /// 0 ms; a sample with a non-finite time is dropped and counted in [`dropped`](Self::dropped).
    pub fn record(&mut self, t_s: f64, transaction: &str, latency_ms: f64, outcome: Outcome) {
        if !t_s.is_finite() {
            self.dropped += 1;
            return;
        }
        let index = self.index(t_s);
        let cells = self.intervals.entry(index).or_default();
        if !cells.contains_key(transaction) {
            // Checked first so the common case does not allocate the name.
            cells.insert(transaction.to_owned(), Cell::new());
        }
        let Some(cell) = cells.get_mut(transaction) else {
            return;
        };
        let latency_us = if latency_ms.is_finite() && latency_ms > 0.0 {
            (latency_ms * 1000.0).round() as u64
        } else {
            0
        };
        // `record` grows the histogram as needed; only a value beyond what it can ever track
        // (hundreds of years) fails, and is then clamped to the largest trackable value.
        if cell.latency_us.record(latency_us).is_err() {
            cell.latency_us.saturating_record(latency_us);
        }
        cell.count += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::Rejected => cell.rejected += 1,
            Outcome::Error => cell.errors += 1,
            Outcome::Unknown => cell.unknown += 1,
        }
    }

    /// Counts the sample just [`record`](Self::record)ed at `t_s` for `transaction` as refused
    /// past capacity (one of its rejections). Without a matching `record` it does nothing.
    pub fn refused(&mut self, t_s: f64, transaction: &str) {
        if !t_s.is_finite() {
            return;
        }
        let index = self.index(t_s);
        if let Some(cell) = self
            .intervals
            .get_mut(&index)
            .and_then(|cells| cells.get_mut(transaction))
        {
            cell.refused = (cell.refused + 1).min(cell.rejected);
        }
    }

    /// Makes the timeline reach at least `end_s` (usually the run duration) even if the last
    /// seconds had no samples, so a run that ends in an outage shows it.
    pub fn cover(&mut self, end_s: f64) {
        if end_s.is_finite() && end_s > 0.0 {
            let intervals = (end_s / self.interval_s).ceil() as u64;
            self.covered = self.covered.max(intervals);
        }
    }

    /// Samples dropped because their time was not a finite number.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The timeline: one point per interval from t = 0 to the last sample (or the covered
    /// end, whichever is later), with empty intervals as zero points.
    pub fn build(self) -> Timeline {
        let last = self.intervals.keys().next_back().map_or(0, |&i| i + 1);
        let len = last.max(self.covered);
        let mut intervals = self.intervals;
        let points = (0..len)
            .map(|index| {
                let mut point = TimelinePoint {
                    t_s: index as f64 * self.interval_s,
                    ..TimelinePoint::default()
                };
                for (name, cell) in intervals.remove(&index).unwrap_or_default() {
                    let ms = |q: f64| cell.latency_us.value_at_quantile(q) as f64 / 1000.0;
                    point.requests += cell.count;
                    point.rejected += cell.rejected;
                    point.errors += cell.errors;
                    point.unknown += cell.unknown;
                    point.refused += cell.refused;
                    point.per_transaction.insert(
                        name,
                        PointStats {
                            count: cell.count,
                            rejected: cell.rejected,
                            errors: cell.errors,
                            unknown: cell.unknown,
                            refused: cell.refused,
                            p50_ms: ms(0.50),
                            p95_ms: ms(0.95),
                            p99_ms: ms(0.99),
                        },
                    );
                }
                point
            })
            .collect();
        Timeline {
            interval_s: self.interval_s,
            points,
        }
    }

    fn index(&self, t_s: f64) -> u64 {
        // `as` saturates, so an absurdly late sample cannot wrap around.
        (t_s.max(0.0) / self.interval_s).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        // 2 significant digits: within 1 %.
        (a - b).abs() <= b.abs() * 0.01 + 1e-9
    }

    #[test]
    fn the_timeline_builder_buckets_samples_per_second_and_per_transaction() {
        let mut builder = TimelineBuilder::default();
        builder.record(0.1, "hold", 10.0, Outcome::Ok);
        builder.record(0.9, "hold", 20.0, Outcome::Unknown);
        builder.record(0.5, "confirm", 100.0, Outcome::Ok);
        builder.record(1.0, "hold", 30.0, Outcome::Ok);
        builder.record(1.5, "hold", 31.0, Outcome::Rejected);
        builder.record(2.999, "confirm", 40.0, Outcome::Error);
        let timeline = builder.build();

        assert_eq!(timeline.interval_s, 1.0);
        assert_eq!(timeline.points.len(), 3);
        let [first, second, third] = &timeline.points[..] else {
            panic!("three points expected");
        };
        // An unknown outcome is counted apart from the errors.
        assert_eq!(
            (first.t_s, first.requests, first.errors, first.unknown),
            (0.0, 3, 0, 1)
        );
        assert_eq!(first.per_transaction["hold"].count, 2);
        assert_eq!(first.per_transaction["hold"].unknown, 1);
        assert_eq!(first.per_transaction["hold"].errors, 0);
        assert!(close(first.per_transaction["hold"].p50_ms, 10.0));
        assert!(close(first.per_transaction["hold"].p99_ms, 20.0));
        assert!(close(first.per_transaction["confirm"].p95_ms, 100.0));
        // A rejection is counted, and apart from the errors.
        assert_eq!(
            (second.t_s, second.requests, second.rejected, second.errors),
            (1.0, 2, 1, 0)
        );
        assert_eq!(second.per_transaction["hold"].rejected, 1);
        assert!(!second.per_transaction.contains_key("confirm"));
        assert_eq!((third.t_s, third.requests, third.errors), (2.0, 1, 1));
    }

    #[test]
    fn empty_intervals_are_filled_with_zero_points() {
        let mut builder = TimelineBuilder::default();
        builder.record(0.5, "hold", 5.0, Outcome::Ok);
        builder.record(4.5, "hold", 5.0, Outcome::Ok);
        let timeline = builder.build();
        let requests: Vec<u64> = timeline.points.iter().map(|p| p.requests).collect();
        assert_eq!(requests, [1, 0, 0, 0, 1]);
        assert!(timeline.points[2].per_transaction.is_empty());
    }

    #[test]
    fn samples_may_arrive_out_of_order() {
        let mut builder = TimelineBuilder::default();
        builder.record(3.2, "hold", 1.0, Outcome::Ok);
        builder.record(0.2, "hold", 1.0, Outcome::Ok);
        builder.record(3.7, "hold", 1.0, Outcome::Ok);
        let timeline = builder.build();
        assert_eq!(timeline.points[0].requests, 1);
        assert_eq!(timeline.points[3].requests, 2);
    }

    #[test]
    fn cover_extends_the_timeline_to_the_end_of_the_run() {
        let mut builder = TimelineBuilder::default();
        builder.record(1.5, "hold", 5.0, Outcome::Ok);
        builder.cover(10.0);
        let timeline = builder.build();
        assert_eq!(timeline.points.len(), 10);
        assert_eq!(timeline.points[9].t_s, 9.0);
        assert_eq!(timeline.points[9].requests, 0);
    }

    #[test]
    fn an_empty_builder_gives_an_empty_timeline() {
        let timeline = TimelineBuilder::default().build();
        assert!(timeline.points.is_empty());
        assert_eq!(timeline.interval_s, 1.0);
    }

    #[test]
    fn custom_intervals_bucket_by_their_width_and_bad_input_is_tolerated() {
        let mut builder = TimelineBuilder::new(0.5);
        builder.record(0.25, "hold", 1.0, Outcome::Ok);
        builder.record(0.75, "hold", -3.0, Outcome::Ok);
        builder.record(-1.0, "hold", f64::NAN, Outcome::Unknown);
        builder.record(f64::NAN, "hold", 1.0, Outcome::Ok);
        assert_eq!(builder.dropped(), 1);
        let timeline = builder.build();
        assert_eq!(timeline.interval_s, 0.5);
        assert_eq!(timeline.points.len(), 2);
        assert_eq!(timeline.points[0].requests, 2);
        assert_eq!(timeline.points[0].unknown, 1);
        assert_eq!(timeline.points[0].errors, 0);
        assert_eq!(timeline.points[1].t_s, 0.5);
        assert_eq!(timeline.points[1].per_transaction["hold"].p99_ms, 0.0);
        assert_eq!(TimelineBuilder::new(0.0).interval_s(), 1.0);
    }
}

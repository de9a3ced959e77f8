//! `bandwidth`: limits a direction to `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy). Data
//! is released in slices of 100 ms worth of bytes, each at the instant the link would have
//! finished sending it, so the client sees a steady trickle rather than one late burst.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Emit, Toxic};

/// Attributes of `bandwidth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// KB/s; 0 = unlimited.
    pub rate: u64,
}

/// How much of each slice: 100 ms worth of bytes at the rate.
const SLICE: Duration = Duration::from_millis(100);

/// Per-connection state of `bandwidth`.
#[derive(Debug)]
pub struct Bandwidth {
    config: Config,
    /// When the simulated link is free again.
    busy_until: Option<Instant>,
}

impl Bandwidth {
    /// A bandwidth limit.
    pub fn new(config: Config) -> Self {
        Bandwidth {
            config,
            busy_until: None,
        }
    }

    /// Time to send `bytes` at the rate.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        if self.config.rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(bytes as f64 / (self.config.rate as f64 * 1000.0))
    }

    fn slice_len(&self) -> usize {
        ((self.config.rate as f64 * 1000.0 * SLICE.as_secs_f64()) as usize).max(1)
    }
}

impl Toxic for Bandwidth {
    fn on_data(&mut self, at: Instant, data: Vec<u8>, out: &mut Vec<Emit>) {
        if self.config.rate == 0 {
            out.push(Emit::data(at, data));
            return;
        }
        let mut t = self.busy_until.map_or(at, |b| b.max(at));
        for slice in data.chunks(self.slice_len()) {
            t += self.transmit_time(slice.len());
            out.push(Emit::data(t, slice.to_vec()));
        }
        self.busy_until = Some(t);
    }

    fn on_close(&mut self, at: Instant, out: &mut Vec<Emit>) {
        out.push(Emit::close(self.busy_until.map_or(at, |b| b.max(at))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_releases_data_at_the_rate() {
        let now = Instant::now();
        let mut t = Bandwidth::new(Config { rate: 100 });
        let mut out = Vec::new();
        t.on_data(now, vec![0; 200_000], &mut out);
        // 200 KB at 100 KB/s: 20 slices of 10 KB, the last one released after 2 s.
        assert_eq!(out.len(), 20);
        assert!(out
            .iter()
            .all(|e| matches!(&e.action, super::super::Action::Data(d) if d.len() == 10_000)));
        assert_eq!(out[0].at, now + Duration::from_millis(100));
        assert_eq!(out[19].at, now + Duration::from_secs(2));
    }

    #[test]
    fn bandwidth_queues_a_second_chunk_behind_the_first() {
        let now = Instant::now();
        let mut t = Bandwidth::new(Config { rate: 1 });
        let mut out = Vec::new();
        t.on_data(now, vec![0; 100], &mut out);
        t.on_data(now, vec![0; 100], &mut out);
        assert_eq!(out[0].at, now + Duration::from_millis(100));
        assert_eq!(out[1].at, now + Duration::from_millis(200));
        // An idle link does not bank credit: data after a pause starts from its arrival.
        let later = now + Duration::from_secs(10);
        t.on_data(later, vec![0; 100], &mut out);
        assert_eq!(out[2].at, later + Duration::from_millis(100));
    }

    #[test]
    fn a_zero_rate_means_unlimited() {
        let now = Instant::now();
        let mut out = Vec::new();
        Bandwidth::new(Config { rate: 0 }).on_data(now, vec![0; 1 << 20], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].at, now);
    }
}

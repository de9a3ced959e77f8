//! `slicer`: cuts each chunk into smaller ones of `average_size` ± `size_variation` bytes,
//! released `delay` µs apart — the way a slow network or a small MSS delivers a response in
//! pieces, which shakes out parsers that assume one read = one message. Split points come
//! from the seeded RNG, by recursive halving as in Toxiproxy (no bias toward a small last
//! slice).

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Emit, Toxic};
use crate::error::Error;

/// Attributes of `slicer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Target slice size, bytes (> 0).
    pub average_size: usize,
    /// ± bytes around the average (< `average_size`).
    pub size_variation: usize,
    /// Pause between slices, µs.
    pub delay: u64,
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.average_size == 0 {
            return Err(Error::BadRequest("slicer average_size must be > 0".into()));
        }
        if self.size_variation >= self.average_size {
            return Err(Error::BadRequest(
                "slicer size_variation must be smaller than average_size".into(),
            ));
        }
        Ok(())
    }
}

/// Per-connection state of `slicer`.
#[derive(Debug)]
pub struct Slicer {
    config: Config,
    rng: SmallRng,
    /// When the last slice went out, so slices of consecutive chunks keep their spacing.
    last: Option<Instant>,
}

impl Slicer {
    /// A slicer drawing its split points from `rng`.
    pub fn new(config: Config, rng: SmallRng) -> Self {
        Slicer {
            config,
            rng,
            last: None,
        }
    }

    /// Slice lengths for a chunk of `len` bytes; they sum to `len`.
    pub fn slice_lengths(&mut self, len: usize) -> Vec<usize> {
        let mut bounds = vec![0];
        self.split(0, len, &mut bounds);
        bounds.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn split(&mut self, start: usize, end: usize, bounds: &mut Vec<usize>) {
        let (avg, var) = (self.config.average_size, self.config.size_variation);
        if end - start <= avg + var {
            bounds.push(end);
            return;
        }
        let half = (end - start) / 2;
        let offset = if var > 0 {
            self.rng.gen_range(-(var as i64)..=var as i64)
        } else {
            0
        };
        let mid = (start as i64 + half as i64 + offset).clamp(start as i64 + 1, end as i64 - 1);
        self.split(start, mid as usize, bounds);
        self.split(mid as usize, end, bounds);
    }
}

impl Toxic for Slicer {
    fn on_data(&mut self, at: Instant, data: Vec<u8>, out: &mut Vec<Emit>) {
        let delay = Duration::from_micros(self.config.delay);
        let mut t = self.last.map_or(at, |l| l.max(at));
        let mut offset = 0;
        for (i, len) in self.slice_lengths(data.len()).into_iter().enumerate() {
            if i > 0 {
                t += delay;
            }
            out.push(Emit::data(t, data[offset..offset + len].to_vec()));
            offset += len;
        }
        self.last = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn slicer(average_size: usize, size_variation: usize, delay: u64, seed: u64) -> Slicer {
        Slicer::new(
            Config {
                average_size,
                size_variation,
                delay,
            },
            SmallRng::seed_from_u64(seed),
        )
    }

    #[test]
    fn slicer_splits_a_buffer_into_chunks_of_the_configured_size() {
        let mut s = slicer(100, 20, 0, 1);
        for len in [0, 1, 99, 120, 121, 1000, 65_536] {
            let lens = s.slice_lengths(len);
            assert_eq!(lens.iter().sum::<usize>(), len);
            if len > 120 {
                assert!(lens.len() > 1);
                // Halving keeps every slice within [avg - var, avg + var] give or take the
                // halving remainder.
                assert!(
                    lens.iter().all(|l| (35..=120).contains(l)),
                    "{len}: {lens:?}"
                );
            }
        }
    }

    #[test]
    fn slicer_without_variation_makes_equal_slices() {
        let mut s = slicer(4, 0, 0, 1);
        assert_eq!(s.slice_lengths(16), vec![4, 4, 4, 4]);
    }

    #[test]
    fn slicer_spaces_slices_by_the_delay_and_replays_by_seed() {
        let now = Instant::now();
        let mut a = slicer(10, 3, 500, 9);
        let mut out = Vec::new();
        a.on_data(now, vec![7; 100], &mut out);
        assert!(out.len() >= 7);
        for (i, e) in out.iter().enumerate() {
            assert_eq!(e.at, now + Duration::from_micros(500 * i as u64));
        }
        let mut b = slicer(10, 3, 500, 9);
        let mut replay = Vec::new();
        b.on_data(now, vec![7; 100], &mut replay);
        assert_eq!(out, replay);
    }

    #[test]
    fn slicer_rejects_a_variation_as_large_as_the_average() {
        let c = Config {
            average_size: 5,
            size_variation: 5,
            delay: 0,
        };
        assert!(c.validate().is_err());
    }
}

//! `latency`: delays every chunk by `latency` ms ± `jitter` ms, drawn per chunk from the
//! toxic's seeded RNG. The delay counts from when the chunk was read, so pipelined chunks are
//! not delayed cumulatively (as in Toxiproxy).

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Emit, Toxic};

/// Attributes of `latency`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Base delay, ms.
    pub latency: u64,
    /// Uniform ± variation around `latency`, ms. The delay never goes below 0.
    pub jitter: u64,
}

/// Per-connection state of `latency`.
#[derive(Debug)]
pub struct Latency {
    config: Config,
    rng: SmallRng,
}

impl Latency {
    /// A latency toxic drawing its jitter from `rng`.
    pub fn new(config: Config, rng: SmallRng) -> Self {
        Latency { config, rng }
    }

    /// The delay for the next chunk: `latency + U[-jitter, +jitter]`, at least 0.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.config.latency as i64;
        let jitter = self.config.jitter as i64;
        let offset = if jitter > 0 {
            self.rng.gen_range(-jitter..=jitter)
        } else {
            0
        };
        Duration::from_millis((base + offset).max(0) as u64)
    }
}

impl Toxic for Latency {
    fn on_data(&mut self, at: Instant, data: Vec<u8>, out: &mut Vec<Emit>) {
        let delay = self.next_delay();
        out.push(Emit::data(at + delay, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn toxic(latency: u64, jitter: u64, seed: u64) -> Latency {
        Latency::new(Config { latency, jitter }, SmallRng::seed_from_u64(seed))
    }

    #[test]
    fn latency_without_jitter_delays_each_chunk_by_exactly_the_latency() {
        let now = Instant::now();
        let mut t = toxic(100, 0, 1);
        let mut out = Vec::new();
        t.on_data(now, b"a".to_vec(), &mut out);
        t.on_data(now + Duration::from_millis(5), b"b".to_vec(), &mut out);
        assert_eq!(
            out[0],
            Emit::data(now + Duration::from_millis(100), b"a".to_vec())
        );
        assert_eq!(
            out[1],
            Emit::data(now + Duration::from_millis(105), b"b".to_vec())
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_replayed_by_the_same_seed() {
        let a: Vec<_> = {
            let mut t = toxic(200, 50, 7);
            (0..500).map(|_| t.next_delay()).collect()
        };
        let b: Vec<_> = {
            let mut t = toxic(200, 50, 7);
            (0..500).map(|_| t.next_delay()).collect()
        };
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|d| (150..=250).contains(&(d.as_millis() as u64))));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 50, "jitter should vary");
        let c: Vec<_> = {
            let mut t = toxic(200, 50, 8);
            (0..500).map(|_| t.next_delay()).collect()
        };
        assert_ne!(a, c);
    }

    #[test]
    fn jitter_larger_than_latency_never_makes_a_negative_delay() {
        let mut t = toxic(10, 100, 3);
        assert!((0..1000).all(|_| t.next_delay() <= Duration::from_millis(110)));
    }
}

//! `limit_data`: lets `bytes` bytes through, then closes the connection, like a peer that
//! dies mid-response. The byte count spans chunks; the chunk that crosses the limit is cut.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Emit, Toxic};

/// Attributes of `limit_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Bytes to pass before closing.
    pub bytes: u64,
}

/// Per-connection state of `limit_data`.
#[derive(Debug)]
pub struct LimitData {
    config: Config,
    passed: u64,
    closed: bool,
}

/// How much of a `len`-byte chunk passes when `passed` of `limit` bytes are already through,
/// and whether the connection closes after it.
pub fn cut(passed: u64, limit: u64, len: usize) -> (usize, bool) {
    let remaining = limit.saturating_sub(passed);
    if (len as u64) < remaining {
        (len, false)
    } else {
        (remaining as usize, true)
    }
}

impl LimitData {
    /// A byte limit.
    pub fn new(config: Config) -> Self {
        LimitData {
            config,
            passed: 0,
            closed: false,
        }
    }
}

impl Toxic for LimitData {
    fn on_data(&mut self, at: Instant, mut data: Vec<u8>, out: &mut Vec<Emit>) {
        if self.closed {
            return;
        }
        let (take, close) = cut(self.passed, self.config.bytes, data.len());
        data.truncate(take);
        self.passed += take as u64;
        if take > 0 {
            out.push(Emit::data(at, data));
        }
        if close {
            self.closed = true;
            out.push(Emit::close(at));
        }
    }

    fn on_close(&mut self, at: Instant, out: &mut Vec<Emit>) {
        if !self.closed {
            self.closed = true;
            out.push(Emit::close(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_passes_chunks_under_the_limit_and_cuts_the_one_that_crosses_it() {
        assert_eq!(cut(0, 10, 4), (4, false));
        assert_eq!(cut(8, 10, 4), (2, true));
        assert_eq!(cut(0, 10, 10), (10, true));
        assert_eq!(cut(10, 10, 1), (0, true));
    }

    #[test]
    fn limit_data_closes_after_exactly_n_bytes_across_chunks() {
        let now = Instant::now();
        let mut t = LimitData::new(Config { bytes: 5 });
        let mut out = Vec::new();
        t.on_data(now, b"abc".to_vec(), &mut out);
        t.on_data(now, b"defg".to_vec(), &mut out);
        t.on_data(now, b"more".to_vec(), &mut out);
        t.on_close(now, &mut out);
        assert_eq!(
            out,
            vec![
                Emit::data(now, b"abc".to_vec()),
                Emit::data(now, b"de".to_vec()),
                Emit::close(now)
            ]
        );
    }
}

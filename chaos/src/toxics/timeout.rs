//! `timeout`: a blackhole. Every byte is dropped; after `timeout` ms the connection is closed.
//! With `timeout = 0` it never closes: the connection hangs until the toxic is removed, and
//! removing it closes the connection (Toxiproxy's cleanup), because the data it swallowed is
//! gone and the stream could never be consistent again.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ms, Emit, Toxic};

/// Attributes of `timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// ms until the close, counted from when the toxic started on the connection; 0 = never.
    pub timeout: u64,
}

/// Per-connection state of `timeout`.
#[derive(Debug)]
pub struct Timeout {
    /// When to close; `None` for "hang forever" or once closed.
    deadline: Option<Instant>,
    closed: bool,
}

impl Timeout {
    /// A blackhole started at `now`.
    pub fn new(config: Config, now: Instant) -> Self {
        Timeout {
            deadline: (config.timeout > 0).then(|| now + ms(config.timeout)),
            closed: false,
        }
    }
}

impl Toxic for Timeout {
    fn on_data(&mut self, _at: Instant, _data: Vec<u8>, _out: &mut Vec<Emit>) {}

    fn on_close(&mut self, at: Instant, out: &mut Vec<Emit>) {
        if !self.closed {
            self.closed = true;
            self.deadline = None;
            out.push(Emit::close(at));
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<Emit>) {
        self.on_close(now, out);
    }

    fn on_remove(&mut self, now: Instant, out: &mut Vec<Emit>) {
        self.on_close(now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_drops_data_and_closes_at_its_deadline() {
        let now = Instant::now();
        let mut t = Timeout::new(Config { timeout: 500 }, now);
        let mut out = Vec::new();
        t.on_data(now, b"dropped".to_vec(), &mut out);
        assert!(out.is_empty());
        assert_eq!(t.deadline(), Some(now + ms(500)));
        t.on_deadline(now + ms(500), &mut out);
        assert_eq!(out, vec![Emit::close(now + ms(500))]);
        assert_eq!(t.deadline(), None);
        t.on_remove(now + ms(600), &mut out);
        assert_eq!(out.len(), 1, "closes once");
    }

    #[test]
    fn timeout_zero_hangs_until_removed() {
        let now = Instant::now();
        let mut t = Timeout::new(Config { timeout: 0 }, now);
        let mut out = Vec::new();
        t.on_data(now, b"dropped".to_vec(), &mut out);
        assert_eq!(t.deadline(), None);
        assert!(out.is_empty());
        t.on_remove(now + ms(10_000), &mut out);
        assert_eq!(out, vec![Emit::close(now + ms(10_000))]);
    }
}

//! `reset_peer`: on the first data (or close) after it starts, waits `timeout` ms and then
//! resets the connection: the proxy closes the socket with SO_LINGER 0, so the peer's next
//! read or write fails with ECONNRESET. Data arriving in the meantime is dropped, as in
//! Toxiproxy.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ms, Emit, Toxic};

/// Attributes of `reset_peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// ms between the first data and the reset; 0 = reset at once.
    pub timeout: u64,
}

/// Per-connection state of `reset_peer`.
#[derive(Debug)]
pub struct ResetPeer {
    config: Config,
    /// When the reset fires, once armed by data.
    armed: Option<Instant>,
    fired: bool,
}

impl ResetPeer {
    /// A reset waiting for data.
    pub fn new(config: Config) -> Self {
        ResetPeer {
            config,
            armed: None,
            fired: false,
        }
    }

    fn arm(&mut self, at: Instant) {
        if self.armed.is_none() && !self.fired {
            self.armed = Some(at + ms(self.config.timeout));
        }
    }
}

impl Toxic for ResetPeer {
    fn on_data(&mut self, at: Instant, _data: Vec<u8>, _out: &mut Vec<Emit>) {
        self.arm(at);
    }

    fn on_close(&mut self, at: Instant, _out: &mut Vec<Emit>) {
        self.arm(at);
    }

    fn deadline(&self) -> Option<Instant> {
        self.armed
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Vec<Emit>) {
        if let Some(at) = self.armed.take() {
            self.fired = true;
            out.push(Emit::reset(at.min(now)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_peer_waits_for_data_then_resets_after_the_timeout() {
        let now = Instant::now();
        let mut t = ResetPeer::new(Config { timeout: 200 });
        assert_eq!(t.deadline(), None, "idle connections are not reset");
        let mut out = Vec::new();
        t.on_data(now, b"x".to_vec(), &mut out);
        t.on_data(now + ms(50), b"y".to_vec(), &mut out);
        assert!(out.is_empty(), "data is dropped while waiting");
        assert_eq!(t.deadline(), Some(now + ms(200)));
        t.on_deadline(now + ms(200), &mut out);
        assert_eq!(out, vec![Emit::reset(now + ms(200))]);
        assert_eq!(t.deadline(), None);
    }
}

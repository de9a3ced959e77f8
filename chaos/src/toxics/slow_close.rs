//! `slow_close`: passes data through but delays the close by `delay` ms, like a peer that
//! lingers before sending its FIN.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ms, Emit, Toxic};

/// Attributes of `slow_close`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How long to hold the close, ms.
    pub delay: u64,
}

/// Per-connection state of `slow_close`.
#[derive(Debug)]
pub struct SlowClose {
    config: Config,
}

impl SlowClose {
    /// A close delay.
    pub fn new(config: Config) -> Self {
        SlowClose { config }
    }
}

impl Toxic for SlowClose {
    fn on_close(&mut self, at: Instant, out: &mut Vec<Emit>) {
        out.push(Emit::close(at + ms(self.config.delay)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_close_passes_data_now_and_closes_after_the_delay() {
        let now = Instant::now();
        let mut t = SlowClose::new(Config { delay: 300 });
        let mut out = Vec::new();
        t.on_data(now, b"x".to_vec(), &mut out);
        t.on_close(now, &mut out);
        assert_eq!(
            out,
            vec![Emit::data(now, b"x".to_vec()), Emit::close(now + ms(300))]
        );
    }
}

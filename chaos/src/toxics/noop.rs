//! `noop`: passes everything through unchanged. It stands in for a toxic whose toxicity roll
//! said "not on this connection", so a chain keeps one entry per configured toxic.

use super::Toxic;

/// Passes data and closes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl Toxic for Noop {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxics::Emit;
    use std::time::Instant;

    #[test]
    fn noop_passes_data_and_close_unchanged() {
        let now = Instant::now();
        let mut out = Vec::new();
        Noop.on_data(now, b"hi".to_vec(), &mut out);
        Noop.on_close(now, &mut out);
        assert_eq!(out, vec![Emit::data(now, b"hi".to_vec()), Emit::close(now)]);
    }
}

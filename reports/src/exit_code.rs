//! Exit codes of `scenario … --verdict`, written down once so that the runner, CI scripts and
//! the reports agree on what a number means.
//!
//! When several kinds of failure happen in one run, the most serious one decides the code:
//! [`INVARIANT_BROKEN`] (4) over [`RECOVERY_EXCEEDED`] (5) over [`THRESHOLD_MISSED`] (3).
//! See [`crate::Verdict::from_outcomes`].

/// Every threshold and invariant held.
pub const PASS: i32 = 0;
/// The lab itself failed (stack did not start, load generator crashed): nothing was judged.
pub const RUN_ERROR: i32 = 1;
/// The command line or a schedule file was invalid.
pub const USAGE: i32 = 2;
/// A latency, throughput or error-rate threshold was missed.
pub const THRESHOLD_MISSED: i32 = 3;
/// A correctness invariant was broken (oversold seat, lost booking…); wins over 5 and 3.
pub const INVARIANT_BROKEN: i32 = 4;
/// A failover budget (recovery time) was exceeded; wins over 3.
pub const RECOVERY_EXCEEDED: i32 = 5;

/// A short human phrase for an exit code, for headlines ("invariant broken").
pub fn describe(code: i32) -> &'static str {
    match code {
        PASS => "pass",
        RUN_ERROR => "run error",
        USAGE => "usage error",
        THRESHOLD_MISSED => "threshold missed",
        INVARIANT_BROKEN => "invariant broken",
        RECOVERY_EXCEEDED => "failover budget exceeded",
        _ => "unknown exit code",
    }
}

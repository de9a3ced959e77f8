//! The integration tests of `scenarios`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod alert_drills;
mod bench;
mod browse_and_buy;
mod capacity;
mod chaos_drills;
mod common;
mod compare_runs;
mod config;
mod coupon_rush;
mod docs;
mod experiments;
mod fault_matrix;
mod flash_sale;
mod latency_truth;
mod local_stack;
// The box office's METRICS.md parser, shared with its own tests (test support, not library).
#[allow(dead_code)]
#[path = "../../../system/tests/it/support/metrics_spec.rs"]
mod metrics_spec;
mod naive_oversell;
mod observability;
mod soak;
mod stacks;
mod strategy_matrix;

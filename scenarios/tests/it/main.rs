//! The integration tests of `scenarios`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod browse_and_buy;
mod capacity;
mod chaos_drills;
mod common;
mod coupon_rush;
mod flash_sale;
mod local_stack;
mod naive_oversell;
mod observability;
mod stacks;
mod strategy_matrix;

//! The integration tests of `system`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod api;
mod concurrency;
mod kafka;
mod metrics_spec;
mod payments;
mod reaper;
mod redis;
mod role;
mod support;

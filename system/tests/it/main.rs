//! The integration tests of `system`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod api;
mod browser;
mod concurrency;
mod contract;
mod kafka;
mod logs;
mod metrics_spec;
mod outage;
mod outbox;
mod overload;
mod payments;
mod reaper;
mod redis;
mod role;
mod seat_stream;
mod support;
mod traces;

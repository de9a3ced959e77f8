//! The integration tests of `compose`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod deploy;
mod failover;
mod postgres;
mod redis_kafka;

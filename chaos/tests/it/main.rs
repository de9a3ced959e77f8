//! The integration tests of `chaos`, one test binary (each file a module) so that the
//! suites are compiled and linked once instead of once per file.

mod common;
mod http_api;
mod process_faults;
mod schedule_on_the_wire;
mod toxics_on_the_wire;

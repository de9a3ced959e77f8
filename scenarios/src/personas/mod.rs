//! Personas: one file per kind of visitor, each a set of Goose transactions over the shared
//! [`crate::context::RunContext`]. The buying steps they share live in [`steps`].
//!
//! - [`flash_buyer`]: arrives with the crowd, holds, books, pays (flash-sale, capacity).
//! - [`browser`]: lists, searches, looks at events and availability, buys nothing.
//! - [`shopper`]: browses, then holds, sometimes abandons, books, pays, sometimes cancels.
//! - [`coupon_hunter`]: claims a first-come coupon, some click twice (coupon-rush).
//! - [`prober`]: hits `GET /health/live` (the runner's own benchmark).

pub mod browser;
pub mod coupon_hunter;
pub mod flash_buyer;
pub mod prober;
pub mod shopper;
pub mod steps;

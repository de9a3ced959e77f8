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

use std::sync::Arc;

use crate::context::RunContext;

/// A persona, as a scenario descriptor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// [`flash_buyer`].
    FlashBuyer,
    /// [`browser`].
    Browser,
    /// [`shopper`].
    Shopper,
    /// [`coupon_hunter`].
    CouponHunter,
    /// [`prober`].
    Prober,
}

impl Persona {
    /// Whether each of its iterations waits for its turn (`RunContext::arrive`): the
    /// crowd's gate or its open-model slot. Browsers and probers just loop.
    pub fn waits_its_turn(self) -> bool {
        matches!(
            self,
            Persona::FlashBuyer | Persona::Shopper | Persona::CouponHunter
        )
    }

    /// The persona as a Goose scenario with this weight.
    pub fn goose_scenario(
        self,
        ctx: &Arc<RunContext>,
        weight: usize,
    ) -> Result<goose::prelude::Scenario, goose::GooseError> {
        let scenario = match self {
            Persona::FlashBuyer => flash_buyer::scenario(ctx),
            Persona::Browser => browser::scenario(ctx),
            Persona::Shopper => shopper::scenario(ctx),
            Persona::CouponHunter => coupon_hunter::scenario(ctx),
            Persona::Prober => prober::scenario(ctx),
        };
        scenario.set_weight(weight)
    }
}

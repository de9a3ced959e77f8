//! The final state the checker compares the history with, as the box office's admin API
//! reports it (`/v1/admin/…`): read from the database, so it is the truth whatever the
//! concurrency strategy claimed. The types mirror the JSON and tolerate extra fields.

use serde::{Deserialize, Serialize};

/// `GET /v1/admin/rounds/{id}/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoundAudit {
    /// Round.
    pub round_id: i64,
    /// Seats in the round.
    pub capacity: i64,
    /// Seats marked available.
    pub available: i64,
    /// Seats marked held.
    pub held: i64,
    /// Seats marked sold.
    pub sold: i64,
    /// Seats claimed by more than one live hold or booking.
    pub seats_double_claimed: i64,
    /// Claims beyond the first on those seats.
    pub oversold: i64,
    /// Up to 10 seat ids claimed twice.
    pub examples: Vec<i64>,
    /// Confirmed bookings.
    pub confirmed_bookings: i64,
    /// Seats of confirmed bookings.
    pub confirmed_seats: i64,
    /// Sum of confirmed amounts.
    pub confirmed_revenue: i64,
}

/// One booking of `GET /v1/admin/rounds/{id}/bookings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BookingRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// The hold it came from.
    pub hold_id: i64,
    /// `pending_payment`, `confirmed`, `cancelled` or `expired`.
    pub status: String,
    /// Amount, minor units.
    pub amount: i64,
    /// Seats.
    pub seat_ids: Vec<i64>,
}

impl BookingRecord {
    /// Whether the booking still claims its seats.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "pending_payment" | "confirmed")
    }
}

/// One hold of `GET /v1/admin/rounds/{id}/holds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// `active`, `released`, `expired` or `booked`.
    pub status: String,
    /// Seats.
    pub seat_ids: Vec<i64>,
}

impl HoldRecord {
    /// Whether the hold itself still claims its seats (a booked hold's seats belong to its
    /// booking).
    pub fn is_live(&self) -> bool {
        self.status == "active"
    }
}

/// Sales totals of `GET /v1/admin/rounds/{id}/sales`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SalesTotals {
    /// Confirmed bookings.
    pub confirmed_bookings: i64,
    /// Their seats.
    pub seats_sold: i64,
    /// Their amounts, minor units.
    pub revenue: i64,
}

/// `GET /v1/admin/rounds/{id}/sales`: the database's totals beside the ledger's (a Kafka
/// consumer's projection of booking events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoundSales {
    /// From the bookings table.
    pub database: SalesTotals,
    /// From the ledger.
    pub ledger: SalesTotals,
    /// Milliseconds the checker waited for the ledger to catch up (it gives up after 20 s).
    pub waited_ms: i64,
}

/// What the public, cached availability said at the end, against the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheReading {
    /// Free seats per `GET /v1/rounds/{id}/availability` right after the run.
    pub cached_available: i64,
    /// Free seats per the same call after the cache's TTL (what a lost invalidation can
    /// leave stale is bounded by it).
    pub after_ttl_available: i64,
    /// Free seats per the database (the audit).
    pub database_available: i64,
}

/// Everything known about one round at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundState {
    /// The audit.
    pub audit: RoundAudit,
    /// Sales by the database and by the ledger; `None` when the stack has no such route.
    #[serde(default)]
    pub sales: Option<RoundSales>,
    /// The cache against the database; `None` when it could not be read.
    #[serde(default)]
    pub cache: Option<CacheReading>,
    /// Every booking; `None` when the stack's API does not list them.
    pub bookings: Option<Vec<BookingRecord>>,
    /// Every hold; `None` when the stack's API does not list them.
    pub holds: Option<Vec<HoldRecord>>,
}

/// `GET /v1/admin/coupons/{code}/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CouponAudit {
    /// Code.
    pub code: String,
    /// Claims allowed.
    pub quota: i64,
    /// The coupon row's counter.
    pub counter: i64,
    /// Claim rows.
    pub claims: i64,
    /// Users with more than one claim.
    pub users_with_several_claims: i64,
    /// Up to 10 such user ids.
    pub examples: Vec<i64>,
}

/// `GET /v1/admin/payments/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentsAudit {
    /// Sum of captures.
    pub captured: i64,
    /// Sum of refunds.
    pub refunded: i64,
    /// Sum of confirmed bookings' amounts.
    pub confirmed: i64,
    /// Idempotency keys used by more than one payment.
    pub duplicate_keys: i64,
}

/// The final state of everything the run touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// The rounds the run sold.
    pub rounds: Vec<RoundState>,
    /// Money, across the whole database.
    pub payments: Option<PaymentsAudit>,
    /// The coupons the run claimed.
    pub coupons: Vec<CouponAudit>,
}

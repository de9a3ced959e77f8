//! Request and response bodies of the public contract. Requests reject unknown fields.
//! Times are RFC 3339 strings; money is an integer in minor units.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clock::rfc3339;
use crate::store;

/// `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail, used to log in.
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Display name.
    pub name: String,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    /// Id.
    pub id: i64,
    /// E-mail (normalised).
    pub email: String,
    /// Display name.
    pub name: String,
}

/// `POST /v1/auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// An access token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// JWT, to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// A row of a section.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowRequest {
    /// Row label.
    pub label: String,
    /// Seats in the row (1 to 1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub seats: i64,
    /// Price tier of the row's seats.
    pub tier: String,
}

/// A section of a seat map.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionRequest {
    /// Section name.
    pub name: String,
    /// Rows.
    pub rows: Vec<RowRequest>,
}

/// `POST /v1/venues`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueRequest {
    /// Venue name.
    pub name: String,
    /// Seat map.
    pub sections: Vec<SectionRequest>,
}

/// A venue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VenueResponse {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Seats.
    pub capacity: i64,
    /// Seats per tier.
    pub tiers: BTreeMap<String, i64>,
}

/// `POST /v1/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// Title.
    pub title: String,
    /// Venue.
    pub venue_id: i64,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A round in an event's detail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoundResponse {
    /// Id.
    pub id: i64,
    /// Event.
    pub event_id: i64,
    /// Start, RFC 3339.
    pub starts_at: String,
    /// Seats.
    pub capacity: i64,
    /// Price per tier, minor units.
    pub prices: BTreeMap<String, i64>,
}

impl From<store::catalog::Round> for RoundResponse {
    fn from(r: store::catalog::Round) -> Self {
        Self {
            id: r.id,
            event_id: r.event_id,
            starts_at: rfc3339(r.starts_at),
            capacity: r.capacity,
            prices: r.prices,
        }
    }
}

/// An event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventResponse {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Venue.
    pub venue_id: i64,
    /// Venue name.
    pub venue_name: String,
    /// Category.
    pub category: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Rounds (in `GET /v1/events/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Vec<RoundResponse>>,
}

impl From<store::catalog::Event> for EventResponse {
    fn from(e: store::catalog::Event) -> Self {
        Self {
            id: e.id,
            title: e.title,
            venue_id: e.venue_id,
            venue_name: e.venue_name,
            category: e.category,
            description: e.description,
            rounds: None,
        }
    }
}

/// `GET /v1/events` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Text to find in titles and categories, at most 200 characters.
    #[serde(default)]
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Page, 1 to 1000000 (default 1).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    /// Results per page, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

/// A page of events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub items: Vec<EventResponse>,
    /// Page number.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Matches in all pages.
    pub total: i64,
}

/// `POST /v1/events/{id}/rounds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundRequest {
    /// Start, RFC 3339.
    pub starts_at: String,
    /// Price per tier of the venue, minor units; every tier needs one.
    pub prices: BTreeMap<String, i64>,
}

/// Seat counts of a round.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AvailabilityResponse {
    /// Round.
    pub round_id: i64,
    /// Seats.
    pub capacity: i64,
    /// Free.
    pub available: i64,
    /// Held by a hold or unpaid booking.
    pub held: i64,
    /// Sold.
    pub sold: i64,
}

/// One seat of a round.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatResponse {
    /// Id.
    pub id: i64,
    /// `section-row-number`.
    pub label: String,
    /// Section.
    pub section: String,
    /// Row.
    pub row: String,
    /// Tier.
    pub tier: String,
    /// Price, minor units.
    pub price: i64,
    /// `available`, `held` or `sold`.
    pub status: String,
}

/// The seats of a round.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatsResponse {
    /// Seats by id.
    pub seats: Vec<SeatResponse>,
}

/// `POST /v1/rounds/{id}/holds`: exactly one of `seat_ids` and `quantity`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequestBody {
    /// These seats (distinct ids), all or nothing; at most the service's seats per hold.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub seat_ids: Option<Vec<i64>>,
    /// This many seats, best available: 1 to the service's seats per hold.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub quantity: Option<i64>,
}

/// A hold.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoldResponse {
    /// Id.
    pub id: i64,
    /// Round.
    pub round_id: i64,
    /// Seats.
    pub seat_ids: Vec<i64>,
    /// Expiry, RFC 3339.
    pub expires_at: String,
    /// Sum of the seats' prices, minor units.
    pub amount: i64,
    /// `active`, `released`, `expired` or `booked`.
    pub status: String,
}

impl From<store::holds::Hold> for HoldResponse {
    fn from(h: store::holds::Hold) -> Self {
        Self {
            id: h.id,
            round_id: h.round_id,
            seat_ids: h.seat_ids,
            expires_at: rfc3339(h.expires_at),
            amount: h.amount,
            status: h.status,
        }
    }
}

/// `POST /v1/bookings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// An active hold of the caller.
    pub hold_id: i64,
    /// A coupon the caller has claimed.
    #[serde(default)]
    pub coupon_code: Option<String>,
}

/// `POST /v1/bookings/{id}/pay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// Must equal the booking's amount.
    pub amount: i64,
}

/// A booking.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingResponse {
    /// Id.
    pub id: i64,
    /// `pending_payment`, `confirmed`, `cancelled` or `expired`.
    pub status: String,
    /// Amount due (after discount), minor units.
    pub amount: i64,
    /// Seats.
    pub seat_ids: Vec<i64>,
    /// Round.
    pub round_id: i64,
    /// The hold it came from.
    pub hold_id: i64,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Payment deadline, RFC 3339.
    pub pay_by: String,
    /// When it was confirmed.
    pub confirmed_at: Option<String>,
    /// When it was cancelled or expired.
    pub closed_at: Option<String>,
    /// Whether a coupon discount applies.
    pub coupon_applied: bool,
}

impl From<store::bookings::Booking> for BookingResponse {
    fn from(b: store::bookings::Booking) -> Self {
        Self {
            id: b.id,
            status: b.status,
            amount: b.amount,
            seat_ids: b.seat_ids,
            round_id: b.round_id,
            hold_id: b.hold_id,
            created_at: rfc3339(b.created_at),
            pay_by: rfc3339(b.pay_by),
            confirmed_at: b.confirmed_at.map(rfc3339),
            closed_at: b.closed_at.map(rfc3339),
            coupon_applied: b.coupon_id.is_some(),
        }
    }
}

/// The caller's bookings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingList {
    /// Newest first (at most 100).
    pub bookings: Vec<BookingResponse>,
}

/// `POST /v1/coupons`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    /// Code (1 to 64 of A-Z 0-9 _ -, case-insensitive).
    pub code: String,
    /// Claims allowed, 1 to 10000000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub quota: i64,
    /// Discount, 1 to 100 percent.
    #[schema(minimum = 1, maximum = 100)]
    pub discount_percent: i64,
}

/// A coupon.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CouponResponse {
    /// Id.
    pub id: i64,
    /// Code.
    pub code: String,
    /// Claims allowed.
    pub quota: i64,
    /// Claims counted.
    pub claimed: i64,
    /// Discount, percent.
    pub discount_percent: i64,
}

impl From<store::coupons::Coupon> for CouponResponse {
    fn from(c: store::coupons::Coupon) -> Self {
        Self {
            id: c.id,
            code: c.code,
            quota: c.quota,
            claimed: c.claimed,
            discount_percent: c.discount_percent,
        }
    }
}

/// A claim.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    /// Claim id.
    pub id: i64,
    /// Coupon code.
    pub code: String,
    /// Discount, percent.
    pub discount_percent: i64,
}

/// Health of the service and its dependencies.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, `ready` or `not_ready`.
    pub status: String,
    /// Per dependency: `ok` or what went wrong.
    #[serde(default)]
    pub checks: BTreeMap<String, String>,
}

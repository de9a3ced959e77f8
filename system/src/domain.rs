//! Validated domain values. Parse, don't validate: each newtype has private fields and a
//! `parse` that returns `Result`, so a handler that holds an `Email` or a `SeatIds` knows it is
//! well-formed. No I/O here. Handlers turn a [`DomainError`] into a 422 with its code.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was rejected: a stable machine-readable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// Stable code, e.g. `invalid_quantity`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> DomainError {
    DomainError {
        code,
        message: message.into(),
    }
}

/// A normalised (trimmed, lower-case) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` with a dot in the domain, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim().to_lowercase();
        let bad = || invalid("invalid_email", "email must look like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(s))
    }

    /// The address as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 128 characters (not stored; only its hash is).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// 8 to 128 characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if !(8..=128).contains(&n) {
            return Err(invalid(
                "invalid_password",
                "password must have 8 to 128 characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display text (a person's name, a venue's name, a title): trimmed, 1 to `max` characters,
/// no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// `field` names the field in the error code (`invalid_<field>`).
    pub fn parse(raw: &str, field: &'static str, max: usize) -> Result<Self, DomainError> {
        let s = raw.trim();
        let n = s.chars().count();
        if n == 0 || n > max || s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(DomainError {
                code: "invalid_text",
                message: format!("{field} must have 1 to {max} printable characters"),
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A price tier or other short identifier: 1 to 32 of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tier(String);

impl Tier {
    /// 1 to 32 of `A-Z a-z 0-9 _ -`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty()
            || raw.len() > 32
            || !raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "invalid_tier",
                format!("tier {raw:?} must be 1 to 32 of A-Z a-z 0-9 _ -"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The tier name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of money in minor units (cents, won), 0 to 10^12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(i64);

impl Money {
    /// Largest accepted amount.
    pub const MAX: i64 = 1_000_000_000_000;

    /// 0 to [`Money::MAX`] minor units.
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if !(0..=Self::MAX).contains(&raw) {
            return Err(invalid(
                "invalid_amount",
                format!("amount must be between 0 and {}", Self::MAX),
            ));
        }
        Ok(Self(raw))
    }

    /// Minor units.
    pub fn minor(self) -> i64 {
        self.0
    }
}

/// How many seats a best-available hold asks for: 1 to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    /// 1 to `max`.
    pub fn parse(raw: i64, max: u32) -> Result<Self, DomainError> {
        if raw < 1 || raw > i64::from(max) {
            return Err(invalid(
                "invalid_quantity",
                format!("quantity must be between 1 and {max}"),
            ));
        }
        Ok(Self(raw as u32))
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Chosen seats for a hold: 1 to `max` distinct positive ids, kept sorted so that every
/// strategy locks rows in the same order (no deadlock between two multi-seat holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatIds(Vec<i64>);

impl SeatIds {
    /// 1 to `max` distinct positive ids.
    pub fn parse(raw: &[i64], max: u32) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > max as usize {
            return Err(invalid(
                "invalid_seat_ids",
                format!("seat_ids must list 1 to {max} seats"),
            ));
        }
        if raw.iter().any(|&id| id <= 0) {
            return Err(invalid(
                "invalid_seat_ids",
                "seat ids are positive integers",
            ));
        }
        let mut seen = HashSet::with_capacity(raw.len());
        if !raw.iter().all(|id| seen.insert(*id)) {
            return Err(invalid(
                "duplicate_seat_ids",
                "seat_ids must not repeat a seat",
            ));
        }
        let mut ids = raw.to_vec();
        ids.sort_unstable();
        Ok(Self(ids))
    }

    /// The ids, ascending.
    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }
}

/// A coupon code: 1 to 64 of `A-Z 0-9 _ -`, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCode(String);

impl CouponCode {
    /// 1 to 64 of `A-Z a-z 0-9 _ -`; normalised to upper case.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        if s.is_empty()
            || s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                "invalid_coupon_code",
                "coupon code must be 1 to 64 of A-Z 0-9 _ -",
            ));
        }
        Ok(Self(s.to_ascii_uppercase()))
    }

    /// The normalised code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A discount of 1 to 100 percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscountPercent(u8);

impl DiscountPercent {
    /// 1 to 100.
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if !(1..=100).contains(&raw) {
            return Err(invalid(
                "invalid_discount",
                "discount_percent must be between 1 and 100",
            ));
        }
        Ok(Self(raw as u8))
    }

    /// The percentage.
    pub fn get(self) -> u8 {
        self.0
    }

    /// `amount` after this discount, rounded down to a minor unit.
    pub fn apply(self, amount: i64) -> i64 {
        amount - amount * i64::from(self.0) / 100
    }
}

/// A coupon quota: 1 to 10^7 claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(i64);

impl Quota {
    /// 1 to 10,000,000.
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if !(1..=10_000_000).contains(&raw) {
            return Err(invalid(
                "invalid_quota",
                "quota must be between 1 and 10000000",
            ));
        }
        Ok(Self(raw))
    }

    /// The number of claims allowed.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Limits of a venue's seat map.
pub mod limits {
    /// Most sections in a venue.
    pub const MAX_SECTIONS: usize = 100;
    /// Most rows in a section.
    pub const MAX_ROWS_PER_SECTION: usize = 500;
    /// Most seats in a row.
    pub const MAX_SEATS_PER_ROW: i64 = 1000;
    /// Most seats in a venue.
    pub const MAX_CAPACITY: i64 = 100_000;
    /// Most results on a page (`per_page` of `GET /v1/events`).
    pub const MAX_PER_PAGE: i64 = 100;
    /// Highest page number a listing accepts.
    pub const MAX_PAGE: i64 = 1_000_000;
    /// Longest search text, in characters.
    pub const MAX_QUERY_CHARS: usize = 200;
}

/// The concurrency control used for holds and coupon claims; chosen per run because comparing
/// them is one of the lab's experiments. See [`crate::store::holds`] for what each guarantees.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Read, check, write in separate steps. Oversells under contention: that is its purpose.
    Naive,
    /// Version compare-and-set, retried a bounded number of times.
    Optimistic,
    /// Row locks (`SELECT … FOR UPDATE` on PostgreSQL; `BEGIN IMMEDIATE` on SQLite).
    Pessimistic,
    /// One conditional update plus a unique index as the last guard. The default.
    Atomic,
    /// A lease lock (Redis `SET NX PX`, or in-process) around read-check-write, no row locks.
    /// Unsafe: a holder paused past the lock's TTL writes over its successor.
    RedisLock,
    /// The same lock with a fencing token the database checks on every write: a paused
    /// holder's late write is rejected.
    Fenced,
}

impl Strategy {
    /// Every strategy this build supports, in a stable order.
    pub const ALL: [Strategy; 6] = [
        Strategy::Naive,
        Strategy::Optimistic,
        Strategy::Pessimistic,
        Strategy::Atomic,
        Strategy::RedisLock,
        Strategy::Fenced,
    ];

    /// The name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::Optimistic => "optimistic",
            Strategy::Pessimistic => "pessimistic",
            Strategy::Atomic => "atomic",
            Strategy::RedisLock => "redis-lock",
            Strategy::Fenced => "fenced",
        }
    }

    /// Whether the strategy promises never to sell a seat twice.
    pub fn is_safe(self) -> bool {
        !matches!(self, Strategy::Naive | Strategy::RedisLock)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Strategy {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| invalid("invalid_strategy", format!("unknown strategy {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_normalised_and_checked() {
        assert_eq!(Email::parse(" A@B.io ").unwrap().as_str(), "a@b.io");
        for bad in ["", "a", "a@b", "@b.io", "a@@b.io", "a b@c.io", "a@.io"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn seat_ids_reject_duplicates_and_sort() {
        assert_eq!(
            SeatIds::parse(&[3, 1, 2], 10).unwrap().as_slice(),
            &[1, 2, 3]
        );
        assert_eq!(
            SeatIds::parse(&[1, 1], 10).unwrap_err().code,
            "duplicate_seat_ids"
        );
        assert!(SeatIds::parse(&[], 10).is_err());
        assert!(SeatIds::parse(&[0], 10).is_err());
        assert!(SeatIds::parse(&[1, 2, 3], 2).is_err());
    }

    #[test]
    fn quantities_outside_the_bounds_are_rejected() {
        assert!(Quantity::parse(0, 10).is_err());
        assert!(Quantity::parse(-1, 10).is_err());
        assert!(Quantity::parse(11, 10).is_err());
        assert!(Quantity::parse(i64::MAX, 10).is_err());
        assert_eq!(Quantity::parse(10, 10).unwrap().get(), 10);
    }

    #[test]
    fn a_discount_rounds_down_to_a_minor_unit() {
        assert_eq!(DiscountPercent::parse(10).unwrap().apply(1005), 905);
        assert_eq!(DiscountPercent::parse(100).unwrap().apply(1005), 0);
        assert!(DiscountPercent::parse(0).is_err());
        assert!(DiscountPercent::parse(101).is_err());
    }

    #[test]
    fn strategies_round_trip_through_their_names() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert!("redis".parse::<Strategy>().is_err());
    }
}

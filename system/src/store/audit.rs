//! Invariants read straight from the tables: the database is the final arbiter of a sale,
//! whatever a strategy claimed. Used by the `oversold seats` gauge, by tests, and by the
//! lab's checker (through the admin API).

use sqlx::Row;

use super::Db;
use crate::error::Result;

/// The state of one round's inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    /// Claims beyond the first on those seats: the number of seats sold (or held) twice.
    pub oversold: i64,
    /// Up to 10 ids of seats claimed twice.
    pub examples: Vec<i64>,
    /// Live claims (seats of active holds, pending or confirmed bookings).
    pub live_claims: i64,
    /// Confirmed bookings and the seats and money they account for.
    pub confirmed_bookings: i64,
    /// Seats of confirmed bookings (counted through their claims).
    pub confirmed_seats: i64,
    /// Sum of confirmed bookings' amounts.
    pub confirmed_revenue: i64,
}

impl RoundAudit {
    /// Whether every invariant of the round holds.
    pub fn is_consistent(&self) -> bool {
        self.oversold == 0
            && self.available >= 0
            && self.held >= 0
            && self.sold >= 0
            && self.available + self.held + self.sold == self.capacity
    }
}

/// Audits a round.
pub async fn round(db: &Db, round_id: i64) -> Result<RoundAudit> {
    let mut a = RoundAudit {
        round_id,
        ..Default::default()
    };
    let rows =
        sqlx::query("SELECT status, COUNT(*) AS n FROM seats WHERE round_id = $1 GROUP BY status")
            .bind(round_id)
            .fetch_all(&db.pool)
            .await?;
    for row in rows {
        let n: i64 = row.try_get("n")?;
        match row.try_get::<String, _>("status")?.as_str() {
            "available" => a.available = n,
            "held" => a.held = n,
            "sold" => a.sold = n,
            _ => {}
        }
    }
    a.capacity = sqlx::query("SELECT capacity FROM rounds WHERE id = $1")
        .bind(round_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<i64, _>("capacity"))
        .transpose()?
        .unwrap_or(0);
    let dup = sqlx::query(
        "SELECT seat_id, COUNT(*) AS n FROM hold_seats WHERE round_id = $1 AND live = 1
         GROUP BY seat_id HAVING COUNT(*) > 1 ORDER BY seat_id",
    )
    .bind(round_id)
    .fetch_all(&db.pool)
    .await?;
    for row in &dup {
        let n: i64 = row.try_get("n")?;
        a.seats_double_claimed += 1;
        a.oversold += n - 1;
        if a.examples.len() < 10 {
            a.examples.push(row.try_get("seat_id")?);
        }
    }
    a.live_claims =
        sqlx::query("SELECT COUNT(*) AS n FROM hold_seats WHERE round_id = $1 AND live = 1")
            .bind(round_id)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS revenue,
                CAST(COALESCE(SUM(seat_count), 0) AS BIGINT) AS seats
         FROM bookings WHERE round_id = $1 AND status = 'confirmed'",
    )
    .bind(round_id)
    .fetch_one(&db.pool)
    .await?;
    a.confirmed_bookings = row.try_get("n")?;
    a.confirmed_revenue = row.try_get("revenue")?;
    a.confirmed_seats = row.try_get("seats")?;
    Ok(a)
}

/// Oversold seats across every round (the gauge that must stay 0).
pub async fn oversold_total(db: &Db) -> Result<i64> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(n - 1), 0) AS BIGINT) AS oversold FROM (
             SELECT COUNT(*) AS n FROM hold_seats WHERE live = 1 GROUP BY seat_id HAVING COUNT(*) > 1
         ) d",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("oversold")?)
}

/// Seats of every round by state (`available`, `held`, `sold`): the `boxoffice_seats` gauge.
pub async fn seats_by_state(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM seats GROUP BY status")
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((row.try_get("status")?, row.try_get("n")?));
    }
    Ok(out)
}

/// The state of one coupon.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CouponAudit {
    /// Code.
    pub code: String,
    /// Claims allowed.
    pub quota: i64,
    /// The counter on the coupon row.
    pub counter: i64,
    /// Claim rows.
    pub claims: i64,
    /// Users with more than one claim.
    pub users_with_several_claims: i64,
    /// Up to 10 such user ids.
    pub examples: Vec<i64>,
}

impl CouponAudit {
    /// Claims within quota and at most one per user.
    pub fn is_consistent(&self) -> bool {
        self.claims <= self.quota && self.users_with_several_claims == 0
    }
}

/// Audits a coupon; `None` when the code is unknown.
pub async fn coupon(db: &Db, code: &str) -> Result<Option<CouponAudit>> {
    let Some(c) = super::coupons::by_code(db, code).await? else {
        return Ok(None);
    };
    let claims: i64 = sqlx::query("SELECT COUNT(*) AS n FROM coupon_claims WHERE coupon_id = $1")
        .bind(c.id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    let rows = sqlx::query(
        "SELECT user_id FROM coupon_claims WHERE coupon_id = $1 GROUP BY user_id HAVING COUNT(*) > 1 ORDER BY user_id",
    )
    .bind(c.id)
    .fetch_all(&db.pool)
    .await?;
    Ok(Some(CouponAudit {
        code: c.code,
        quota: c.quota,
        counter: c.claimed,
        claims,
        users_with_several_claims: rows.len() as i64,
        examples: rows
            .iter()
            .take(10)
            .map(|r| r.try_get("user_id"))
            .collect::<Result<_, _>>()?,
    }))
}

/// Money in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentsAudit {
    /// Sum of captures.
    pub captured: i64,
    /// Sum of refunds.
    pub refunded: i64,
    /// Sum of confirmed bookings' amounts.
    pub confirmed: i64,
    /// Idempotency keys used by more than one payment row (the unique index keeps it 0).
    pub duplicate_keys: i64,
}

impl PaymentsAudit {
    /// captured − refunded = confirmed, and no key twice.
    pub fn is_consistent(&self) -> bool {
        self.captured - self.refunded == self.confirmed && self.duplicate_keys == 0
    }
}

/// Audits payments across all bookings.
pub async fn payments(db: &Db) -> Result<PaymentsAudit> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END), 0) AS BIGINT) AS captured,
                CAST(COALESCE(SUM(CASE WHEN kind = 'refund' THEN amount ELSE 0 END), 0) AS BIGINT) AS refunded
         FROM payments",
    )
    .fetch_one(&db.pool)
    .await?;
    let confirmed: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS s FROM bookings WHERE status = 'confirmed'",
    )
    .fetch_one(&db.pool)
    .await?
    .try_get("s")?;
    let duplicate_keys: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT idempotency_key FROM payments GROUP BY idempotency_key HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    Ok(PaymentsAudit {
        captured: row.try_get("captured")?,
        refunded: row.try_get("refunded")?,
        confirmed,
        duplicate_keys,
    })
}

/// A booking as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BookingRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// The hold it was made from.
    pub hold_id: i64,
    /// Status.
    pub status: String,
    /// Amount, minor units.
    pub amount: i64,
    /// Seats.
    pub seat_ids: Vec<i64>,
}

/// A hold as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HoldRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Status.
    pub status: String,
    /// Seats.
    pub seat_ids: Vec<i64>,
}

/// hold id → its seats, for one round.
async fn seats_by_hold(db: &Db, round_id: i64) -> Result<std::collections::HashMap<i64, Vec<i64>>> {
    let rows = sqlx::query(
        "SELECT hold_id, seat_id FROM hold_seats WHERE round_id = $1 ORDER BY hold_id, seat_id",
    )
    .bind(round_id)
    .fetch_all(&db.pool)
    .await?;
    let mut map: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for row in rows {
        map.entry(row.try_get("hold_id")?)
            .or_default()
            .push(row.try_get("seat_id")?);
    }
    Ok(map)
}

/// Every booking of a round, by id.
pub async fn round_bookings(db: &Db, round_id: i64) -> Result<Vec<BookingRecord>> {
    let mut seats = seats_by_hold(db, round_id).await?;
    let rows = sqlx::query(
        "SELECT id, user_id, hold_id, status, amount FROM bookings WHERE round_id = $1 ORDER BY id",
    )
    .bind(round_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let hold_id: i64 = r.try_get("hold_id")?;
            Ok(BookingRecord {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                hold_id,
                status: r.try_get("status")?,
                amount: r.try_get("amount")?,
                seat_ids: seats.remove(&hold_id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Every hold of a round, by id.
pub async fn round_holds(db: &Db, round_id: i64) -> Result<Vec<HoldRecord>> {
    let mut seats = seats_by_hold(db, round_id).await?;
    let rows = sqlx::query("SELECT id, user_id, status FROM holds WHERE round_id = $1 ORDER BY id")
        .bind(round_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            Ok(HoldRecord {
                id,
                user_id: r.try_get("user_id")?,
                status: r.try_get("status")?,
                seat_ids: seats.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
}

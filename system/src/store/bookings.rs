//! Bookings and the money they move. A booking is made from an active hold
//! (`pending_payment`), then `confirmed` when the provider captures its amount, or
//! `cancelled` (refunded if it was paid), or `expired` by the reaper when it is not paid in
//! time. Every capture and refund is a row in `payments` with a unique idempotency key, so
//! that "captured − refunded = confirmed amounts" can be checked from the database alone.
//!
//! The provider is called outside any database transaction (a slow provider must not hold
//! row locks); the state change afterwards is conditional, and a capture that lost the race
//! (the booking expired or was cancelled meanwhile) is refunded at once.

use sqlx::{AnyConnection, Row};

use rusqlite::OptionalExtension;

use super::coupons::Coupon;
use super::inline::Columns;
use super::outbox::{self, Event};
use super::{holds, Db};
use crate::error::{ApiError, Result};
use crate::payments::{ChargeOutcome, PaymentError, PaymentsClient};

/// A stored booking.
#[derive(Debug, Clone)]
pub struct Booking {
    /// Id.
    pub id: i64,
    /// The hold it was made from.
    pub hold_id: i64,
    /// Owner.
    pub user_id: i64,
    /// Round.
    pub round_id: i64,
    /// `pending_payment`, `confirmed`, `cancelled` or `expired`.
    pub status: String,
    /// Amount due after discount, minor units.
    pub amount: i64,
    /// Coupon applied, if any.
    pub coupon_id: Option<i64>,
    /// Created, epoch ms.
    pub created_at: i64,
    /// Payment deadline, epoch ms.
    pub pay_by: i64,
    /// When it was confirmed.
    pub confirmed_at: Option<i64>,
    /// When it was cancelled or expired.
    pub closed_at: Option<i64>,
    /// The seats.
    pub seat_ids: Vec<i64>,
    pay_key: Option<String>,
}

macro_rules! columns {
    () => {
        "id, hold_id, user_id, round_id, status, amount, coupon_id, created_at, pay_by, confirmed_at, closed_at, pay_key"
    };
}
const GET: &str = concat!("SELECT ", columns!(), " FROM bookings WHERE id = $1");

fn from_row<R: Columns>(row: &R) -> Result<Booking, R::Error> {
    Ok(Booking {
        id: row.int("id")?,
        hold_id: row.int("hold_id")?,
        user_id: row.int("user_id")?,
        round_id: row.int("round_id")?,
        status: row.text("status")?,
        amount: row.int("amount")?,
        coupon_id: row.opt_int("coupon_id")?,
        created_at: row.int("created_at")?,
        pay_by: row.int("pay_by")?,
        confirmed_at: row.opt_int("confirmed_at")?,
        closed_at: row.opt_int("closed_at")?,
        pay_key: row.opt_text("pay_key")?,
        seat_ids: Vec::new(),
    })
}

/// A booking with its seats.
pub async fn get(db: &Db, id: i64) -> Result<Option<Booking>> {
    if let Some(found) = db
        .inline()
        .and_then(|reads| reads.read(|conn| get_inline(conn, id)))
    {
        return Ok(found);
    }
    if db.backend == super::Backend::Postgres {
        let row = sqlx::query(GET_POSTGRES)
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut b = from_row(&row)?;
        b.seat_ids = holds::seat_list(&row)?;
        return Ok(Some(b));
    }
    let row = sqlx::query(GET).bind(id).fetch_optional(&db.pool).await?;
    let Some(row) = row else { return Ok(None) };
    let mut b = from_row(&row)?;
    b.seat_ids = holds::seat_ids(db, b.hold_id).await?;
    Ok(Some(b))
}

/// [`GET`] with the booking's seats in the same round trip (PostgreSQL).
const GET_POSTGRES: &str = concat!(
    "SELECT ",
    columns!(),
    ", ",
    holds::seat_list_sql!("bookings.hold_id"),
    " FROM bookings WHERE id = $1"
);

/// Bookings with their seats, by id (missing ids are left out): one read on PostgreSQL, one
/// [`get`] each elsewhere.
pub async fn get_many(db: &Db, ids: &[i64]) -> Result<std::collections::HashMap<i64, Booking>> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    if db.backend != super::Backend::Postgres {
        for &id in ids {
            if let Some(b) = get(db, id).await? {
                out.insert(id, b);
            }
        }
        return Ok(out);
    }
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT {}, {} FROM bookings WHERE {}",
        columns!(),
        holds::seat_list_sql!("bookings.hold_id"),
        super::json_in(db.backend, "id", 1, true)
    );
    let rows = sqlx::query(&sql)
        .bind(super::json_list(ids))
        .fetch_all(&db.pool)
        .await?;
    for row in rows {
        let mut b = from_row(&row)?;
        b.seat_ids = holds::seat_list(&row)?;
        out.insert(b.id, b);
    }
    Ok(out)
}

/// [`get`] on the calling thread (SQLite, see [`super::inline`]).
fn get_inline(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Booking>> {
    let found = conn
        .prepare_cached(GET)?
        .query_row([id], |row| from_row(row))
        .optional()?;
    let Some(mut b) = found else {
        return Ok(None);
    };
    b.seat_ids = holds::seat_ids_inline(conn, b.hold_id)?;
    Ok(Some(b))
}

/// A booking owned by `user_id` (404 for anyone else's: its existence is not disclosed).
pub async fn get_owned(db: &Db, id: i64, user_id: i64) -> Result<Booking> {
    match get(db, id).await? {
        Some(b) if b.user_id == user_id => Ok(b),
        _ => Err(ApiError::not_found("booking")),
    }
}

/// A user's bookings, newest first, at most `limit`.
pub async fn of_user(db: &Db, user_id: i64, limit: i64) -> Result<Vec<Booking>> {
    let postgres = db.backend == super::Backend::Postgres;
    let sql = if postgres { OF_USER_POSTGRES } else { OF_USER };
    let rows = sqlx::query(sql)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut b = from_row(row)?;
        b.seat_ids = if postgres {
            holds::seat_list(row)?
        } else {
            holds::seat_ids(db, b.hold_id).await?
        };
        out.push(b);
    }
    Ok(out)
}

const OF_USER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM bookings WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);
/// [`OF_USER`] with each booking's seats (PostgreSQL): one round trip instead of one per booking.
const OF_USER_POSTGRES: &str = concat!(
    "SELECT ",
    columns!(),
    ", ",
    holds::seat_list_sql!("bookings.hold_id"),
    " FROM bookings WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);

/// Turns the user's active hold into a booking, applying a claimed coupon.
#[tracing::instrument(name = "db.bookings.create", skip_all, fields(otel.kind = "client", db.system = db.backend.as_str()))]
pub async fn create(
    db: &Db,
    user_id: i64,
    hold_id: i64,
    coupon_code: Option<&str>,
    now: i64,
    pay_by: i64,
) -> Result<Booking> {
    if db.backend == super::Backend::Postgres && coupon_code.is_none() {
        return create_postgres(db, hold_id, user_id, now, pay_by).await;
    }
    let hold = holds::get(db, hold_id)
        .await?
        .filter(|h| h.user_id == user_id)
        .ok_or_else(|| ApiError::not_found("hold"))?;
    let coupon =
        match coupon_code {
            Some(code) => Some(super::coupons::by_code(db, code).await?.ok_or_else(|| {
                ApiError::unprocessable("unknown_coupon", "no coupon has this code")
            })?),
            None => None,
        };
    let seat_count = hold.seat_ids.len() as i64;
    let sqlite = db
        .write_inline(|tx| {
            create_inline(tx, &hold, coupon.as_ref(), user_id, now, pay_by, seat_count)
        })
        .await;
    if let Some(created) = sqlite {
        let mut booking = created?;
        booking.seat_ids = hold.seat_ids;
        return Ok(booking);
    }
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(BOOK_HOLD)
        .bind(hold_id)
        .bind(now)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        tx.rollback().await?;
        return Err(hold_not_active());
    }
    let mut amount = hold.amount;
    let mut claim_id = None;
    if let Some(c) = &coupon {
        let row = sqlx::query(FIND_CLAIM)
            .bind(c.id)
            .bind(user_id)
            .fetch_optional(tx.conn())
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(coupon_not_claimed());
        };
        claim_id = Some(row.try_get::<i64, _>("id")?);
        amount = discounted(c, amount);
    }
    let row = sqlx::query(INSERT_BOOKING)
        .bind(hold_id)
        .bind(user_id)
        .bind(hold.round_id)
        .bind(amount)
        .bind(coupon.as_ref().map(|c| c.id))
        .bind(seat_count)
        .bind(now)
        .bind(pay_by)
        .fetch_one(tx.conn())
        .await?;
    let mut booking = from_row(&row)?;
    if let Some(claim) = claim_id {
        let n = sqlx::query(SPEND_CLAIM)
            .bind(booking.id)
            .bind(claim)
            .execute(tx.conn())
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Err(claim_spent());
        }
    }
    sqlx::query(SEATS_BOOKED)
        .bind(booking.id)
        .bind(hold_id)
        .execute(tx.conn())
        .await?;
    let event = Event::booking("booking.created", &booking, seat_count, None, now);
    outbox::record(tx.conn(), &event).await?;
    tx.commit().await?;
    booking.seat_ids = hold.seat_ids;
    Ok(booking)
}

/// [`create`] without a coupon on PostgreSQL, as one autocommitted statement
/// ([`BOOK_POSTGRES`]) that also reads the hold: one round trip where a read of the hold and
/// its seats and a transaction took eight (two reads, `BEGIN`, four statements, `COMMIT`). The
/// outbox row's payload is the event made here with provisional booking, round, amount and
/// seat count, which the statement replaces with the row's own. When no booking comes back, a
/// read of the hold tells a hold that is not the caller's (404) from one no longer active (409).
async fn create_postgres(
    db: &Db,
    hold_id: i64,
    user_id: i64,
    now: i64,
    pay_by: i64,
) -> Result<Booking> {
    let provisional = Booking {
        id: 0,
        hold_id,
        user_id,
        round_id: 0,
        status: "pending_payment".into(),
        amount: 0,
        coupon_id: None,
        created_at: now,
        pay_by,
        confirmed_at: None,
        closed_at: None,
        seat_ids: Vec::new(),
        pay_key: None,
    };
    let event = Event::booking("booking.created", &provisional, 0, None, now);
    let row = {
        let mut conn = db.acquire_write().await?;
        sqlx::query(BOOK_POSTGRES)
            .bind(hold_id)
            .bind(now)
            .bind(user_id)
            .bind(pay_by)
            .bind(&event.event_id)
            .bind(outbox::BOOKING_TOPIC)
            .bind(outbox::payload(&event))
            .fetch_optional(&mut *conn)
            .await?
    };
    if let Some(row) = row {
        let mut booking = from_row(&row)?;
        booking.seat_ids = holds::seat_list(&row)?;
        return Ok(booking);
    }
    match holds::get(db, hold_id).await? {
        Some(h) if h.user_id == user_id => Err(hold_not_active()),
        _ => Err(ApiError::not_found("hold")),
    }
}

/// [`BOOK_HOLD`] (only for the caller's hold), [`INSERT_BOOKING`] (without a coupon) from the
/// hold's row, [`SEATS_BOOKED`] and the outbox row as data-modifying CTEs of one statement:
/// nothing is written unless the hold was the caller's and active. The outbox row's key is the
/// round, as [`outbox::topic_and_key`] makes it; its payload gets the booking's id, round,
/// amount and seat count (`||` on `jsonb` replaces those keys of the provisional event).
const BOOK_POSTGRES: &str = concat!(
    "WITH h AS (
         UPDATE holds SET status = 'booked'
         WHERE id = $1 AND user_id = $3 AND status = 'active' AND expires_at > $2
         RETURNING id, round_id, amount, seat_count),
     b AS (
         INSERT INTO bookings (hold_id, user_id, round_id, status, amount, coupon_id, seat_count, created_at, pay_by)
         SELECT h.id, $3, h.round_id, 'pending_payment', h.amount, NULL, h.seat_count, $2, $4 FROM h
         RETURNING seat_count, ",
    columns!(),
    "),
     s AS (UPDATE seats SET booking_id = b.id FROM b WHERE seats.hold_id = b.hold_id),
     o AS (
         INSERT INTO outbox (event_id, topic, event_key, payload, created_at)
         SELECT $5, $6, CAST(b.round_id AS TEXT),
                CAST(CAST($7 AS jsonb) || jsonb_build_object('booking_id', b.id, 'round_id', b.round_id,
                     'amount', b.amount, 'seats', b.seat_count) AS TEXT), $2
         FROM b)
     SELECT ",
    columns!(),
    ", ",
    holds::seat_list_sql!("b.hold_id"),
    " FROM b"
);

/// [`create`]'s transaction as one inline write (SQLite, see [`super::inline`]): the same
/// statements, in the same order, with the same refusals.
fn create_inline(
    tx: &rusqlite::Transaction<'_>,
    hold: &holds::Hold,
    coupon: Option<&Coupon>,
    user_id: i64,
    now: i64,
    pay_by: i64,
    seat_count: i64,
) -> Result<Booking> {
    if tx.prepare_cached(BOOK_HOLD)?.execute((hold.id, now))? == 0 {
        return Err(hold_not_active());
    }
    let mut amount = hold.amount;
    let mut claim_id = None;
    if let Some(c) = coupon {
        let claim = tx
            .prepare_cached(FIND_CLAIM)?
            .query_row((c.id, user_id), |row| row.get::<_, i64>("id"))
            .optional()?;
        let Some(claim) = claim else {
            return Err(coupon_not_claimed());
        };
        claim_id = Some(claim);
        amount = discounted(c, amount);
    }
    let booking = tx.prepare_cached(INSERT_BOOKING)?.query_row(
        (
            hold.id,
            user_id,
            hold.round_id,
            amount,
            coupon.map(|c| c.id),
            seat_count,
            now,
            pay_by,
        ),
        |row| from_row(row),
    )?;
    if let Some(claim) = claim_id {
        if tx
            .prepare_cached(SPEND_CLAIM)?
            .execute((booking.id, claim))?
            != 1
        {
            return Err(claim_spent());
        }
    }
    tx.prepare_cached(SEATS_BOOKED)?
        .execute((booking.id, hold.id))?;
    let event = Event::booking("booking.created", &booking, seat_count, None, now);
    outbox::record_inline(tx, &event)?;
    Ok(booking)
}

const BOOK_HOLD: &str =
    "UPDATE holds SET status = 'booked' WHERE id = $1 AND status = 'active' AND expires_at > $2";
const FIND_CLAIM: &str = "SELECT id FROM coupon_claims WHERE coupon_id = $1 AND user_id = $2 AND booking_id IS NULL ORDER BY id LIMIT 1";
const INSERT_BOOKING: &str = concat!(
    "INSERT INTO bookings (hold_id, user_id, round_id, status, amount, coupon_id, seat_count, created_at, pay_by)
     VALUES ($1, $2, $3, 'pending_payment', $4, $5, $6, $7, $8) RETURNING ",
    columns!()
);
const SPEND_CLAIM: &str =
    "UPDATE coupon_claims SET booking_id = $1 WHERE id = $2 AND booking_id IS NULL";
const SEATS_BOOKED: &str = "UPDATE seats SET booking_id = $1 WHERE hold_id = $2";

fn hold_not_active() -> ApiError {
    ApiError::conflict(
        "hold_not_active",
        "the hold has expired, was released, or is booked already",
    )
}

fn coupon_not_claimed() -> ApiError {
    ApiError::conflict(
        "coupon_not_claimed",
        "claim the coupon before using it (or it is spent)",
    )
}

fn claim_spent() -> ApiError {
    ApiError::conflict("coupon_not_claimed", "the coupon claim was spent meanwhile")
}

fn discounted(coupon: &Coupon, amount: i64) -> i64 {
    crate::domain::DiscountPercent::parse(coupon.discount_percent)
        .map(|d| d.apply(amount))
        .unwrap_or(amount)
}

async fn record_payment(
    conn: &mut AnyConnection,
    booking_id: i64,
    kind: &str,
    amount: i64,
    provider_ref: &str,
    key: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(RECORD_PAYMENT)
        .bind(booking_id)
        .bind(kind)
        .bind(amount)
        .bind(provider_ref)
        .bind(key)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

const RECORD_PAYMENT: &str =
    "INSERT INTO payments (booking_id, kind, amount, provider_ref, idempotency_key, created_at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING";

fn provider_unavailable(e: PaymentError) -> ApiError {
    match e {
        PaymentError::Unavailable(m) => ApiError::unavailable(
            "payment_unavailable",
            format!(
                "the payment provider did not answer; retry with the same Idempotency-Key ({m})"
            ),
        ),
        PaymentError::Rejected(m) => {
            ApiError::internal(format!("payment provider rejected the call: {m}"))
        }
    }
}

/// After a capture: confirms the booking (`None` if it is no longer pending), records the
/// payment either way, and sells its seats, in one transaction.
async fn confirm(
    db: &Db,
    b: &Booking,
    key: &str,
    charge_id: &str,
    now: i64,
) -> Result<Option<Booking>> {
    if db.backend == super::Backend::Postgres {
        return confirm_postgres(db, b, key, charge_id, now).await;
    }
    let mut tx = db.begin_write_patient().await?;
    // The confirmed booking comes back from the update itself: no read after the commit.
    let confirmed = sqlx::query(CONFIRM)
        .bind(now)
        .bind(key)
        .bind(b.id)
        .fetch_optional(tx.conn())
        .await?
        .map(|row| from_row(&row))
        .transpose()?;
    record_payment(tx.conn(), b.id, "charge", b.amount, charge_id, key, now).await?;
    if confirmed.is_some() {
        sqlx::query(SEATS_SOLD)
            .bind(b.id)
            .bind(b.hold_id)
            .execute(tx.conn())
            .await?;
        let event = confirmed_event(b, now);
        outbox::record(tx.conn(), &event).await?;
    }
    tx.commit().await?;
    Ok(confirmed)
}

/// [`confirm`] on PostgreSQL as one autocommitted statement ([`CONFIRM_POSTGRES`]): one round
/// trip where the transaction took six. Like the transaction, it waits for a connection even
/// while the database is found unreachable: the capture already happened.
async fn confirm_postgres(
    db: &Db,
    b: &Booking,
    key: &str,
    charge_id: &str,
    now: i64,
) -> Result<Option<Booking>> {
    let event = confirmed_event(b, now);
    let (topic, event_key) = outbox::topic_and_key(&event);
    let mut conn = db.acquire_write_patient().await?;
    let confirmed = sqlx::query(CONFIRM_POSTGRES)
        .bind(now)
        .bind(key)
        .bind(b.id)
        .bind(b.amount)
        .bind(charge_id)
        .bind(b.hold_id)
        .bind(&event.event_id)
        .bind(topic)
        .bind(event_key)
        .bind(outbox::payload(&event))
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| from_row(&row))
        .transpose()?;
    Ok(confirmed)
}

/// [`CONFIRM`], [`RECORD_PAYMENT`] (whether or not the booking could be confirmed: the money
/// moved), and, only for a confirmed booking, [`SEATS_SOLD`] and the outbox row, as
/// data-modifying CTEs of one statement.
const CONFIRM_POSTGRES: &str = concat!(
    "WITH c AS (
         UPDATE bookings SET status = 'confirmed', confirmed_at = $1, pay_key = $2
         WHERE id = $3 AND status = 'pending_payment'
         RETURNING ",
    columns!(),
    "),
     p AS (
         INSERT INTO payments (booking_id, kind, amount, provider_ref, idempotency_key, created_at)
         VALUES ($3, 'charge', $4, $5, $2, $1) ON CONFLICT (idempotency_key) DO NOTHING),
     s AS (
         UPDATE seats SET status = 'sold', booking_id = $3
         WHERE hold_id = $6 AND EXISTS (SELECT 1 FROM c)),
     o AS (
         INSERT INTO outbox (event_id, topic, event_key, payload, created_at)
         SELECT $7, $8, $9, $10, $1 FROM c)
     SELECT ",
    columns!(),
    " FROM c"
);

/// [`confirm`] as one inline write (SQLite, see [`super::inline`]).
fn confirm_inline(
    tx: &rusqlite::Transaction<'_>,
    b: &Booking,
    key: &str,
    charge_id: &str,
    now: i64,
) -> Result<Option<Booking>> {
    let confirmed = tx
        .prepare_cached(CONFIRM)?
        .query_row((now, key, b.id), |row| from_row(row))
        .optional()?;
    tx.prepare_cached(RECORD_PAYMENT)?
        .execute((b.id, "charge", b.amount, charge_id, key, now))?;
    if confirmed.is_some() {
        tx.prepare_cached(SEATS_SOLD)?.execute((b.id, b.hold_id))?;
        outbox::record_inline(tx, &confirmed_event(b, now))?;
    }
    Ok(confirmed)
}

const CONFIRM: &str = concat!(
    "UPDATE bookings SET status = 'confirmed', confirmed_at = $1, pay_key = $2
     WHERE id = $3 AND status = 'pending_payment' RETURNING ",
    columns!()
);
const SEATS_SOLD: &str = "UPDATE seats SET status = 'sold', booking_id = $1 WHERE hold_id = $2";

/// The `booking.confirmed` event of `b` (read with its seats), before it was confirmed.
fn confirmed_event(b: &Booking, now: i64) -> Event {
    Event::booking(
        "booking.confirmed",
        b,
        b.seat_ids.len() as i64,
        Some("pending_payment"),
        now,
    )
}

/// Pays a booking: checks the amount server-side, captures it at the provider, confirms the
/// booking and sells its seats. `client_key` (the request's `Idempotency-Key`) makes a retry
/// safe: a retry of a successful payment answers with the confirmed booking again.
#[tracing::instrument(name = "db.bookings.pay", skip_all, fields(otel.kind = "client", db.system = db.backend.as_str()))]
pub async fn pay(
    db: &Db,
    payments: &PaymentsClient,
    user_id: i64,
    booking_id: i64,
    amount: i64,
    client_key: Option<&str>,
    now: i64,
) -> Result<Booking> {
    let b = get_owned(db, booking_id, user_id).await?;
    let provider_key = client_key.map(|k| format!("booking-{booking_id}-charge-{k}"));
    match b.status.as_str() {
        "confirmed" => {
            if provider_key.is_some() && provider_key == b.pay_key {
                return Ok(b);
            }
            return Err(ApiError::conflict(
                "already_paid",
                "the booking is paid already",
            ));
        }
        "pending_payment" => {}
        other => {
            return Err(ApiError::conflict(
                "invalid_state",
                format!("a {other} booking cannot be paid"),
            ))
        }
    }
    if b.pay_by <= now {
        return Err(ApiError::conflict(
            "booking_expired",
            "the payment deadline has passed",
        ));
    }
    if amount != b.amount {
        return Err(ApiError::unprocessable(
            "amount_mismatch",
            format!("the amount due is {}", b.amount),
        ));
    }
    let key = provider_key
        .unwrap_or_else(|| format!("booking-{booking_id}-charge-{}", uuid::Uuid::new_v4()));
    let charge_id = match payments
        .charge(&key, b.amount, &format!("booking-{booking_id}"))
        .await
        .map_err(provider_unavailable)?
    {
        ChargeOutcome::Captured(id) => id,
        ChargeOutcome::Declined => {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                "payment_declined",
                "the payment provider declined the charge",
            ))
        }
    };
    let sqlite = db
        .write_inline(|tx| confirm_inline(tx, &b, &key, &charge_id, now))
        .await;
    let confirmed = match sqlite {
        Some(confirmed) => confirmed?,
        None => confirm(db, &b, &key, &charge_id, now).await?,
    };
    if let Some(mut confirmed) = confirmed {
        confirmed.seat_ids = b.seat_ids;
        return Ok(confirmed);
    }
    // The booking changed while the provider was capturing: give the money back.
    let refund_key = format!("{key}-refund");
    match payments.refund(&charge_id, &refund_key, b.amount).await {
        Ok(refund_id) => {
            let mut tx = db.begin_write_patient().await?;
            record_payment(
                tx.conn(),
                booking_id,
                "refund",
                b.amount,
                &refund_id,
                &refund_key,
                now,
            )
            .await?;
            tx.commit().await?;
        }
        Err(e) => {
            tracing::error!(booking_id, charge_id, error = %e, "refund of an orphaned capture failed")
        }
    }
    let now_status = get(db, booking_id)
        .await?
        .map(|b| b.status)
        .unwrap_or_default();
    if now_status == "confirmed" {
        return Err(ApiError::conflict(
            "already_paid",
            "the booking is paid already",
        ));
    }
    Err(ApiError::conflict(
        "invalid_state",
        format!("the booking became {now_status} during payment; the charge was refunded"),
    ))
}

/// Cancels a booking: an unpaid one is closed; a paid one is refunded in full first. Seats go
/// back on sale, a coupon claim spent on it is given back.
#[tracing::instrument(name = "db.bookings.cancel", skip_all, fields(otel.kind = "client", db.system = db.backend.as_str()))]
pub async fn cancel(
    db: &Db,
    payments: &PaymentsClient,
    user_id: i64,
    booking_id: i64,
    now: i64,
) -> Result<Booking> {
    let b = get_owned(db, booking_id, user_id).await?;
    let (from, refund) = match b.status.as_str() {
        "pending_payment" => ("pending_payment", None),
        "confirmed" => {
            let key = b.pay_key.clone().unwrap_or_default();
            let row = sqlx::query(
                "SELECT provider_ref FROM payments WHERE booking_id = $1 AND kind = 'charge' AND idempotency_key = $2",
            )
            .bind(booking_id)
            .bind(&key)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| ApiError::internal("confirmed booking without its charge"))?;
            let charge_id: String = row.try_get("provider_ref")?;
            let refund_key = format!("{key}-refund");
            let refund_id = payments
                .refund(&charge_id, &refund_key, b.amount)
                .await
                .map_err(provider_unavailable)?;
            ("confirmed", Some((refund_id, refund_key)))
        }
        other => {
            return Err(ApiError::conflict(
                "invalid_state",
                format!("a {other} booking cannot be cancelled"),
            ))
        }
    };
    let mut tx = db.begin_write_patient().await?;
    if let Some((refund_id, refund_key)) = &refund {
        // Recorded even if a concurrent cancel wins below: the provider refunded once
        // (same key) and the unique key keeps one row.
        record_payment(
            tx.conn(),
            booking_id,
            "refund",
            b.amount,
            refund_id,
            refund_key,
            now,
        )
        .await?;
    }
    let n = sqlx::query(
        "UPDATE bookings SET status = 'cancelled', closed_at = $1 WHERE id = $2 AND status = $3",
    )
    .bind(now)
    .bind(booking_id)
    .bind(from)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if n == 0 {
        tx.commit().await?;
        return Err(ApiError::conflict(
            "invalid_state",
            "the booking changed meanwhile; reload it",
        ));
    }
    sqlx::query("UPDATE coupon_claims SET booking_id = NULL WHERE booking_id = $1")
        .bind(booking_id)
        .execute(tx.conn())
        .await?;
    holds::release_seats(tx.conn(), b.hold_id).await?;
    let event = Event::booking(
        "booking.cancelled",
        &b,
        b.seat_ids.len() as i64,
        Some(from),
        now,
    );
    outbox::record(tx.conn(), &event).await?;
    tx.commit().await?;
    get_owned(db, booking_id, user_id).await
}

/// Expires holds and unpaid bookings whose time is up; returns (holds, bookings) expired.
pub async fn expire_due(db: &Db, now: i64) -> Result<(u64, u64)> {
    let e = expire_due_detailed(db, now).await?;
    Ok((e.holds.len() as u64, e.bookings.len() as u64))
}

/// What one expiry sweep changed.
#[derive(Debug, Clone, Default)]
pub struct Expired {
    /// (hold id, round id) of the holds expired.
    pub holds: Vec<(i64, i64)>,
    /// The bookings expired.
    pub bookings: Vec<ExpiredBooking>,
}

/// A booking the reaper expired.
#[derive(Debug, Clone, Copy)]
pub struct ExpiredBooking {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Round.
    pub round_id: i64,
}

impl Expired {
    /// The rounds whose seats changed, each once.
    pub fn rounds(&self) -> Vec<i64> {
        let mut r: Vec<i64> = self
            .holds
            .iter()
            .map(|h| h.1)
            .chain(self.bookings.iter().map(|b| b.round_id))
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }
}

/// [`expire_due`], saying what it expired.
pub async fn expire_due_detailed(db: &Db, now: i64) -> Result<Expired> {
    let mut tx = db.begin_write().await?;
    let hold_rows = sqlx::query(
        "UPDATE holds SET status = 'expired' WHERE status = 'active' AND expires_at <= $1 RETURNING id, round_id",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    for row in &hold_rows {
        holds::release_seats(tx.conn(), row.try_get("id")?).await?;
    }
    let booking_rows = sqlx::query(
        "UPDATE bookings SET status = 'expired', closed_at = $1
         WHERE status = 'pending_payment' AND pay_by <= $1
         RETURNING id, hold_id, user_id, round_id, amount, coupon_id, seat_count",
    )
    .bind(now)
    .fetch_all(tx.conn())
    .await?;
    for row in &booking_rows {
        let booking_id: i64 = row.try_get("id")?;
        sqlx::query("UPDATE coupon_claims SET booking_id = NULL WHERE booking_id = $1")
            .bind(booking_id)
            .execute(tx.conn())
            .await?;
        holds::release_seats(tx.conn(), row.try_get("hold_id")?).await?;
        let event = Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            kind: "booking.expired".into(),
            user_id: row.try_get("user_id")?,
            round_id: Some(row.try_get("round_id")?),
            booking_id: Some(booking_id),
            coupon_id: row.try_get("coupon_id")?,
            seats: row.try_get("seat_count")?,
            amount: row.try_get("amount")?,
            previous_status: Some("pending_payment".into()),
            at: now,
        };
        outbox::record(tx.conn(), &event).await?;
    }
    tx.commit().await?;
    let mut out = Expired::default();
    for row in &hold_rows {
        out.holds
            .push((row.try_get("id")?, row.try_get("round_id")?));
    }
    for row in &booking_rows {
        out.bookings.push(ExpiredBooking {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            round_id: row.try_get("round_id")?,
        });
    }
    Ok(out)
}

//! The transactional outbox and the ledger's projection.
//!
//! A state change calls [`record`] on its own transaction's connection, so the change and its
//! event commit or roll back together. The relay ([`crate::kafka`]) reads [`unsent`] rows in
//! id order, publishes them and calls [`mark_sent`] only after the broker acknowledged them:
//! a crash in between publishes a row again, which consumers absorb because they are
//! idempotent by `event_id` ([`apply_to_ledger`]).

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::Db;
use crate::error::Result;

/// Logical topic of booking events (keyed by round id).
pub const BOOKING_TOPIC: &str = "booking.events";
/// Logical topic of coupon events (keyed by coupon id).
pub const COUPON_TOPIC: &str = "coupon.events";

/// One event, as stored in the outbox and published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID): what consumers deduplicate on.
    pub event_id: String,
    /// `booking.created`, `booking.confirmed`, `booking.cancelled`, `booking.expired`,
    /// `coupon.claimed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The booking's owner, or the claimant.
    pub user_id: i64,
    /// Round (booking events).
    pub round_id: Option<i64>,
    /// Booking (booking events).
    pub booking_id: Option<i64>,
    /// Coupon (coupon events, and bookings that used one).
    pub coupon_id: Option<i64>,
    /// Seats of the booking.
    pub seats: i64,
    /// Amount of the booking, minor units.
    pub amount: i64,
    /// The booking's status before this change (`cancelled` from `confirmed` takes a sale back).
    pub previous_status: Option<String>,
    /// When, epoch ms.
    pub at: i64,
}

impl Event {
    /// A booking event.
    pub fn booking(
        kind: &str,
        b: &super::bookings::Booking,
        seats: i64,
        previous_status: Option<&str>,
        at: i64,
    ) -> Self {
        Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            user_id: b.user_id,
            round_id: Some(b.round_id),
            booking_id: Some(b.id),
            coupon_id: b.coupon_id,
            seats,
            amount: b.amount,
            previous_status: previous_status.map(str::to_owned),
            at,
        }
    }
}

/// Writes `event` to the outbox on `conn` (inside the caller's transaction).
pub async fn record(conn: &mut AnyConnection, event: &Event) -> Result<(), sqlx::Error> {
    let (topic, key) = topic_and_key(event);
    sqlx::query(INSERT)
        .bind(&event.event_id)
        .bind(topic)
        .bind(key)
        .bind(payload(event))
        .bind(event.at)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`record`] inside an inline write transaction (SQLite, see [`super::inline`]).
pub(crate) fn record_inline(tx: &rusqlite::Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let (topic, key) = topic_and_key(event);
    tx.prepare_cached(INSERT)?
        .execute((&event.event_id, topic, key, payload(event), event.at))?;
    Ok(())
}

const INSERT: &str =
    "INSERT INTO outbox (event_id, topic, event_key, payload, created_at) VALUES ($1, $2, $3, $4, $5)";

/// The topic an event goes to, and its partition key.
pub(crate) fn topic_and_key(event: &Event) -> (&'static str, String) {
    if event.kind.starts_with("coupon.") {
        (
            COUPON_TOPIC,
            event.coupon_id.unwrap_or_default().to_string(),
        )
    } else {
        (
            BOOKING_TOPIC,
            event.round_id.unwrap_or_default().to_string(),
        )
    }
}

/// The row's JSON: the event, plus the writer's W3C trace context under `"trace"` when
/// tracing is on, so that the relay (another task, maybe another instance) can continue the
/// request's trace. Consumers ignore the extra field.
pub(crate) fn payload(event: &Event) -> String {
    let trace = crate::telemetry::current_context_fields();
    if trace.is_empty() {
        return serde_json::to_string(event).unwrap_or_default();
    }
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("trace".into(), serde_json::json!(trace));
    }
    value.to_string()
}

/// The trace context stored in a row's payload by [`record`] (empty when none).
pub fn stored_trace(payload: &str) -> std::collections::HashMap<String, String> {
    #[derive(Deserialize)]
    struct Stored {
        #[serde(default)]
        trace: std::collections::HashMap<String, String>,
    }
    serde_json::from_str::<Stored>(payload)
        .map(|s| s.trace)
        .unwrap_or_default()
}

/// An outbox row waiting to be published.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Row id (publication order).
    pub id: i64,
    /// Logical topic.
    pub topic: String,
    /// Partition key.
    pub key: String,
    /// JSON [`Event`].
    pub payload: String,
    /// When the row was written, epoch ms (the relay's lag is measured from it).
    pub created_at: i64,
}

/// Up to `limit` unsent rows, oldest first.
pub async fn unsent(db: &Db, limit: i64) -> Result<Vec<Pending>> {
    let mut conn = db.pool.acquire().await?;
    unsent_on(&mut conn, limit, "").await
}

/// Up to `limit` unsent rows, oldest first, read on `conn` with a row-lock suffix (the relay
/// on PostgreSQL passes ` FOR UPDATE SKIP LOCKED` inside its transaction, so that relays of
/// several instances take disjoint batches and never publish the same row concurrently).
pub async fn unsent_on(conn: &mut AnyConnection, limit: i64, lock: &str) -> Result<Vec<Pending>> {
    let rows = sqlx::query(&format!(
        "SELECT id, topic, event_key, payload, created_at FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1{lock}"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(Pending {
            id: r.try_get("id")?,
            topic: r.try_get("topic")?,
            key: r.try_get("event_key")?,
            payload: r.try_get("payload")?,
            created_at: r.try_get("created_at")?,
        });
    }
    Ok(out)
}

/// Marks rows as published (in a transaction of its own).
pub async fn mark_sent(db: &Db, ids: &[i64], now: i64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    mark_sent_on(tx.conn(), ids, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Marks rows as published on `conn` (the caller's transaction).
pub async fn mark_sent_on(conn: &mut AnyConnection, ids: &[i64], now: i64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET sent_at = $1 WHERE {}",
        super::json_in(super::Backend::of(conn), "id", 2, true)
    );
    sqlx::query(&sql)
        .bind(now)
        .bind(super::json_list(ids))
        .execute(conn)
        .await?;
    Ok(())
}

/// Which of `event_ids` `consumer` has recorded (see [`record_processed_many`]), in one read.
pub async fn processed_among(
    db: &Db,
    consumer: &str,
    event_ids: &[&str],
) -> Result<std::collections::HashSet<String>> {
    if event_ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT event_id FROM processed_events WHERE consumer = $1 AND {}",
        super::json_in(db.backend, "event_id", 2, false)
    );
    let rows = sqlx::query(&sql)
        .bind(consumer)
        .bind(super::json_list(event_ids))
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<String, _>("event_id")?))
        .collect()
}

/// Records that `consumer` has handled `event_ids` (for effects outside the database, such as
/// the notifier's publish: recorded after the effect, so a crash in between repeats it), in
/// one statement: autocommitted on PostgreSQL, in a write transaction on SQLite.
pub async fn record_processed_many(
    db: &Db,
    consumer: &str,
    event_ids: &[&str],
    now: i64,
) -> Result<()> {
    if event_ids.is_empty() {
        return Ok(());
    }
    let sql = record_processed_sql(db.backend, "$1", 3, "");
    let insert = sqlx::query(&sql)
        .bind(consumer)
        .bind(now)
        .bind(super::json_list(event_ids));
    if db.backend == super::Backend::Postgres {
        insert.execute(&mut *db.acquire_write().await?).await?;
    } else {
        let mut tx = db.begin_write().await?;
        insert.execute(tx.conn()).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Inserts the event ids of the JSON array `$list` for `consumer` (an SQL expression), at
/// `$2`, skipping those recorded before; `returning` ends the statement.
fn record_processed_sql(
    backend: super::Backend,
    consumer: &str,
    list: usize,
    returning: &str,
) -> String {
    // SQLite needs the `WHERE` to tell an upsert's `ON` from a join's.
    format!(
        "INSERT INTO processed_events (consumer, event_id, processed_at)
         SELECT {consumer}, value, $2 FROM ({}) AS ids WHERE true
         ON CONFLICT (consumer, event_id) DO NOTHING{returning}",
        super::json_elements(backend, list, false)
    )
}

/// Rows not yet published.
pub async fn backlog(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}

/// Rows not yet published and the creation time (epoch ms) of the oldest of them, in one
/// read (the partial index `outbox_unsent` keeps it cheap).
pub async fn backlog_and_oldest(db: &Db) -> Result<(i64, Option<i64>)> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE sent_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}

/// Applies a booking event to the ledger once: the event id goes into `processed_events` in
/// the same transaction as the effect. Returns `false` for an event applied before.
pub async fn apply_to_ledger(db: &Db, event: &Event, now: i64) -> Result<bool> {
    Ok(apply_batch_to_ledger(db, std::slice::from_ref(event), now).await? == 1)
}

/// Applies events to the ledger in one transaction: each event once (by `event_id`, within
/// the batch and against `processed_events`), the sales deltas summed per round and written
/// with one upsert per round. Returns how many events were fresh; the others had been applied
/// before. One commit for the batch instead of one per event: a single serial consumer
/// committing each event spent its time waiting for the WAL flush and fell behind the
/// bookings of a sustained sale.
pub async fn apply_batch_to_ledger(db: &Db, events: &[Event], now: i64) -> Result<usize> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let distinct: Vec<&Event> = events
        .iter()
        .filter(|e| seen.insert(e.event_id.as_str()))
        .collect();
    let ids: Vec<&str> = distinct.iter().map(|e| e.event_id.as_str()).collect();
    let sql = record_processed_sql(db.backend, "'ledger'", 1, " RETURNING event_id");
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(&sql)
        .bind(super::json_list(&ids))
        .bind(now)
        .fetch_all(tx.conn())
        .await?;
    let mut inserted = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        inserted.insert(row.try_get::<String, _>("event_id")?);
    }
    let mut sales: std::collections::BTreeMap<i64, (i64, i64, i64)> = Default::default();
    let mut fresh = 0;
    for event in distinct {
        if !inserted.contains(&event.event_id) {
            continue;
        }
        fresh += 1;
        let delta = ledger_delta(event);
        if let (true, Some(round)) = (delta != 0, event.round_id) {
            let s = sales.entry(round).or_default();
            s.0 += delta;
            s.1 += delta * event.seats;
            s.2 += delta * event.amount;
        }
    }
    for (round, (bookings, seats, revenue)) in sales {
        upsert_ledger_sales(tx.conn(), round, bookings, seats, revenue).await?;
    }
    tx.commit().await?;
    Ok(fresh)
}

/// What an event changes in its round's confirmed bookings: +1, −1 or nothing.
fn ledger_delta(event: &Event) -> i64 {
    match (event.kind.as_str(), event.previous_status.as_deref()) {
        ("booking.confirmed", _) => 1,
        ("booking.cancelled", Some("confirmed")) => -1,
        _ => 0,
    }
}

async fn upsert_ledger_sales(
    conn: &mut AnyConnection,
    round: i64,
    bookings: i64,
    seats: i64,
    revenue: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ledger_sales (round_id, confirmed_bookings, seats_sold, revenue) VALUES ($1, $2, $3, $4)
         ON CONFLICT (round_id) DO UPDATE SET
             confirmed_bookings = ledger_sales.confirmed_bookings + excluded.confirmed_bookings,
             seats_sold = ledger_sales.seats_sold + excluded.seats_sold,
             revenue = ledger_sales.revenue + excluded.revenue",
    )
    .bind(round)
    .bind(bookings)
    .bind(seats)
    .bind(revenue)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ledger's totals of a round: (confirmed bookings, seats sold, revenue).
pub async fn ledger_sales(db: &Db, round_id: i64) -> Result<(i64, i64, i64)> {
    let row = sqlx::query(
        "SELECT confirmed_bookings, seats_sold, revenue FROM ledger_sales WHERE round_id = $1",
    )
    .bind(round_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(match row {
        Some(r) => (
            r.try_get("confirmed_bookings")?,
            r.try_get("seats_sold")?,
            r.try_get("revenue")?,
        ),
        None => (0, 0, 0),
    })
}

/// How many events `consumer` has applied.
pub async fn processed_count(db: &Db, consumer: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM processed_events WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}

//! A hold after it is placed: reading it, releasing it (by its owner), and releasing its
//! seats (also for the bookings and the reaper).

use rusqlite::OptionalExtension;
use sqlx::{AnyConnection, Row};

use super::Hold;
use crate::error::{ApiError, Result};
use crate::store::inline::Columns;
use crate::store::Db;

/// The seats of the hold whose id is the expression `$hold` as one text column, `seat_list`
/// (ids ascending, comma-separated; NULL for none), for a row that must come back with its
/// seats in one round trip on PostgreSQL. [`seat_list`] reads it.
macro_rules! seat_list_sql {
    ($hold:literal) => {
        concat!(
            "(SELECT string_agg(CAST(seat_id AS TEXT), ',' ORDER BY seat_id) FROM hold_seats WHERE hold_id = ",
            $hold,
            ") AS seat_list"
        )
    };
}
pub(crate) use seat_list_sql;

/// A hold with its seats.
pub async fn get(db: &Db, id: i64) -> Result<Option<Hold>> {
    if let Some(found) = db
        .inline()
        .and_then(|reads| reads.read(|conn| get_inline(conn, id)))
    {
        return Ok(found);
    }
    if db.backend == crate::store::Backend::Postgres {
        let Some(row) = sqlx::query(GET_POSTGRES)
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut hold = from_row(&row)?;
        hold.seat_ids = seat_list(&row)?;
        return Ok(Some(hold));
    }
    let Some(row) = sqlx::query(GET).bind(id).fetch_optional(&db.pool).await? else {
        return Ok(None);
    };
    let mut hold = from_row(&row)?;
    hold.seat_ids = seat_ids(db, id).await?;
    Ok(Some(hold))
}

const GET: &str =
    "SELECT id, round_id, user_id, status, amount, expires_at FROM holds WHERE id = $1";
/// [`GET`] with the hold's seats in the same round trip, as [`SEAT_LIST`] (PostgreSQL).
const GET_POSTGRES: &str = concat!(
    "SELECT id, round_id, user_id, status, amount, expires_at, ",
    seat_list_sql!("holds.id"),
    " FROM holds WHERE id = $1"
);

/// The seat ids of a row's `seat_list` column (see [`seat_list_sql!`]).
pub(crate) fn seat_list(row: &sqlx::any::AnyRow) -> Result<Vec<i64>> {
    let list: Option<String> = row.try_get("seat_list")?;
    list.as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|e| ApiError::internal(format!("seat list {s:?}: {e}")))
        })
        .collect()
}
const SEAT_IDS: &str = "SELECT seat_id FROM hold_seats WHERE hold_id = $1 ORDER BY seat_id";

fn from_row<R: Columns>(row: &R) -> Result<Hold, R::Error> {
    Ok(Hold {
        id: row.int("id")?,
        round_id: row.int("round_id")?,
        user_id: row.int("user_id")?,
        status: row.text("status")?,
        amount: row.int("amount")?,
        expires_at: row.int("expires_at")?,
        seat_ids: Vec::new(),
    })
}

/// [`get`] on the calling thread (SQLite, see [`crate::store::inline`]).
fn get_inline(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Hold>> {
    let found = conn
        .prepare_cached(GET)?
        .query_row([id], |row| from_row(row))
        .optional()?;
    let Some(mut hold) = found else {
        return Ok(None);
    };
    hold.seat_ids = seat_ids_inline(conn, id)?;
    Ok(Some(hold))
}

/// The seats a hold claimed (and the booking made from it sells), ascending.
pub(crate) async fn seat_ids(db: &Db, hold_id: i64) -> Result<Vec<i64>> {
    if let Some(ids) = db
        .inline()
        .and_then(|reads| reads.read(|conn| seat_ids_inline(conn, hold_id)))
    {
        return Ok(ids);
    }
    let rows = sqlx::query(SEAT_IDS)
        .bind(hold_id)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<i64, _>("seat_id"))
        .collect::<Result<_, _>>()?)
}

/// [`seat_ids`] on the calling thread.
pub(crate) fn seat_ids_inline(
    conn: &rusqlite::Connection,
    hold_id: i64,
) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached(SEAT_IDS)?
        .query_map([hold_id], |row| row.get(0))?
        .collect()
}

/// Releases the seats of a hold (or of the booking made from it) inside `conn`'s
/// transaction: seats the hold still owns become available and its claims stop being live.
pub async fn release_seats(conn: &mut AnyConnection, hold_id: i64) -> Result<u64, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE seats SET status = 'available', hold_id = NULL, booking_id = NULL, version = version + 1
         WHERE hold_id = $1",
    )
    .bind(hold_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("UPDATE hold_seats SET live = 0 WHERE hold_id = $1")
        .bind(hold_id)
        .execute(&mut *conn)
        .await?;
    Ok(n)
}

/// The owner gives a hold back (returned as it was). 404 if it is not theirs; 409 if it is no
/// longer active.
pub async fn release(db: &Db, hold_id: i64, user_id: i64) -> Result<Hold> {
    let h = get(db, hold_id)
        .await?
        .ok_or_else(|| ApiError::not_found("hold"))?;
    if h.user_id != user_id {
        return Err(ApiError::not_found("hold"));
    }
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("UPDATE holds SET status = 'released' WHERE id = $1 AND status = 'active'")
        .bind(hold_id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n == 0 {
        tx.rollback().await?;
        let status = get(db, hold_id)
            .await?
            .map(|h| h.status)
            .unwrap_or_default();
        return Err(ApiError::conflict(
            "hold_not_active",
            format!("the hold is {status}, not active"),
        ));
    }
    release_seats(tx.conn(), hold_id).await?;
    tx.commit().await?;
    Ok(h)
}

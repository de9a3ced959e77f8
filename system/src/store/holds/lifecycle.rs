//! A hold after it is placed: reading it, releasing it (by its owner), and releasing its
//! seats (also for the bookings and the reaper).

use sqlx::{AnyConnection, Row};

use super::Hold;
use crate::error::{ApiError, Result};
use crate::store::Db;

/// A hold with its seats.
pub async fn get(db: &Db, id: i64) -> Result<Option<Hold>> {
    let Some(row) = sqlx::query(
        "SELECT id, round_id, user_id, status, amount, expires_at FROM holds WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let seat_rows =
        sqlx::query("SELECT seat_id FROM hold_seats WHERE hold_id = $1 ORDER BY seat_id")
            .bind(id)
            .fetch_all(&db.pool)
            .await?;
    let seat_ids = seat_rows
        .iter()
        .map(|r| r.try_get::<i64, _>("seat_id"))
        .collect::<Result<_, _>>()?;
    Ok(Some(Hold {
        id: row.try_get("id")?,
        round_id: row.try_get("round_id")?,
        user_id: row.try_get("user_id")?,
        status: row.try_get("status")?,
        amount: row.try_get("amount")?,
        expires_at: row.try_get("expires_at")?,
        seat_ids,
    }))
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

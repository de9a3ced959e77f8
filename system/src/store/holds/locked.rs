//! `redis-lock` and `fenced`: a lease lock on the whole round (see [`crate::locks`]), then
//! read, check and write with no row locks; released by compare-and-delete. `fenced` also
//! stamps its fencing token on the seats it reads and writes only where the stamp is still its
//! own, so a holder that stalled past the lock's TTL cannot write over a newer one.
//!
//! When the lock service fails or hangs, `fenced` does not wait for it: the database decides
//! ([`hold_by_database`]), with row locks as `pessimistic` does, and moves the fence of the
//! seats it takes one step on, so that a holder of a Redis lock that stamped them before
//! (and writes `WHERE fence = $its_token`) is refused. Both kinds of holder can run at once
//! (one instance cut off from Redis, another not); the fence keeps them apart.

use sqlx::AnyConnection;

use super::rows::{
    hold as placed, insert_hold, insert_hold_seats, mark_held, read_available, read_seats,
    seat_row, NewHold, SeatRow,
};
use super::{seats_unavailable, unknown_seats, Attempt, Hold, HoldRequest};
use crate::domain::Strategy;
use crate::error::ApiError;
use crate::locks::{Grant, Lease, Locks};
use crate::store::{placeholders, Db};

/// One attempt: lock the round, read and check, write; release. `fenced` goes to the
/// database instead when the lock service does not answer.
pub(super) async fn hold(
    db: &Db,
    locks: &Locks,
    h: NewHold,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    let resource = format!("round:{}", h.round_id);
    let lease = if h.strategy == Strategy::Fenced {
        match locks.acquire_or_database(&resource).await? {
            Grant::Lease(lease) => lease,
            Grant::Database => return hold_by_database(db, h, request).await,
        }
    } else {
        locks.acquire(&resource).await?
    };
    let result = hold_locked(db, locks, &lease, h, request).await;
    locks.release(&lease).await;
    result
}

/// `fenced` without the lock service: lock the seats' rows (`SELECT … FOR UPDATE` in id
/// order; SQLite's write lock), check, and write them held with `fence = fence + 1`, in one
/// transaction. The row locks keep these holders apart from each other and from a lock
/// holder's write in progress; the fence step refuses a lock holder that stamped a seat
/// before and writes after (its `WHERE fence = $token` no longer matches). A token is never
/// reused as a row's fence by this step: a holder with `token = fence + 1` that has not
/// stamped yet finds `fence < token` false and is refused too.
async fn hold_by_database(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
    super::pessimistic::lock_and_hold(db, h, request, true).await
}

/// The attempt while `lease` is held.
async fn hold_locked(
    db: &Db,
    locks: &Locks,
    lease: &Lease,
    h: NewHold,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    let fence = (h.strategy == Strategy::Fenced).then_some(lease.fence);
    let seats = {
        let mut conn = db.pool.acquire().await?;
        read_and_check(&mut conn, h.round_id, request, fence).await?
    };
    // Where a stalled holder stalls: after deciding, before writing.
    locks.injected_pause().await;
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let mut tx = db.begin_write().await?;
    let id = insert_hold(tx.conn(), h, amount, ids.len()).await?;
    if let Some(token) = fence {
        let sql = format!(
            "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
             WHERE id IN ({}) AND fence = $2",
            placeholders(3, ids.len())
        );
        let mut q = sqlx::query(&sql).bind(id).bind(token);
        for seat in &ids {
            q = q.bind(*seat);
        }
        let n = q.execute(tx.conn()).await?.rows_affected();
        if n != ids.len() as u64 {
            tx.rollback().await?;
            return Err(Attempt::Final(lock_expired()));
        }
    } else {
        mark_held(tx.conn(), id, &ids, false).await?;
    }
    insert_hold_seats(tx.conn(), id, h.round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(placed(id, h.round_id, h.user_id, amount, h.expires_at, ids))
}

/// The seats the request asks for, read plainly (`redis-lock`) or stamped with the fencing
/// token (`fenced`, [`stamp_seats`]), and checked: 409 when they are not (all) available,
/// 422 when chosen seats are not the round's, 409 `lock_expired` when a newer holder has
/// stamped one of them.
async fn read_and_check(
    conn: &mut AnyConnection,
    round_id: i64,
    request: &HoldRequest,
    fence: Option<i64>,
) -> Result<Vec<SeatRow>, Attempt> {
    match request {
        HoldRequest::Seats(ids) => {
            let ids = ids.as_slice();
            let seats = match fence {
                Some(token) => stamp_seats(conn, round_id, Some(ids), 0, token).await?,
                None => read_seats(conn, round_id, ids, "").await?,
            };
            if seats.len() != ids.len() {
                // Fenced: a seat of the round that a newer holder has stamped, or not a
                // seat of this round at all; tell them apart.
                let known = read_seats(conn, round_id, ids, "").await?;
                if known.len() != ids.len() {
                    return Err(Attempt::Final(unknown_seats()));
                }
                return Err(Attempt::Final(lock_expired()));
            }
            if seats.iter().any(|s| !s.status_available) {
                return Err(Attempt::Final(seats_unavailable()));
            }
            Ok(seats)
        }
        HoldRequest::Quantity(q) => {
            let n = i64::from(q.get());
            let seats = match fence {
                Some(token) => stamp_seats(conn, round_id, None, n, token).await?,
                None => read_available(conn, round_id, n, "").await?,
            };
            if seats.len() < q.get() as usize {
                return Err(Attempt::Final(seats_unavailable()));
            }
            Ok(seats)
        }
    }
}

/// The fenced read: records `token` on the seats it reads (`fence < token` only: a seat a
/// newer holder has stamped is not returned) and returns them with their status. Chosen seats
/// when `ids` is given, else up to `n` available seats, lowest ids first. Autocommitted, so
/// that a holder with an older token finds the stamp when it comes to write.
async fn stamp_seats(
    conn: &mut AnyConnection,
    round_id: i64,
    ids: Option<&[i64]>,
    n: i64,
    token: i64,
) -> Result<Vec<SeatRow>, sqlx::Error> {
    let rows = match ids {
        Some(ids) => {
            let sql = format!(
                "UPDATE seats SET fence = $2 WHERE +round_id = $1 AND fence < $2 AND id IN ({})
                 RETURNING id, price, status, version",
                placeholders(3, ids.len())
            );
            let mut q = sqlx::query(&sql).bind(round_id).bind(token);
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(conn).await?
        }
        None => {
            sqlx::query(
                "UPDATE seats SET fence = $2
                 WHERE status = 'available' AND fence < $2 AND id IN (
                     SELECT id FROM seats WHERE round_id = $1 AND status = 'available'
                     ORDER BY id LIMIT $3)
                 RETURNING id, price, status, version",
            )
            .bind(round_id)
            .bind(token)
            .bind(n)
            .fetch_all(conn)
            .await?
        }
    };
    let mut seats = rows.iter().map(seat_row).collect::<Result<Vec<_>, _>>()?;
    seats.sort_unstable_by_key(|s| s.id);
    Ok(seats)
}

/// 409 for a fenced write whose token is older than one the database has seen.
pub(crate) fn lock_expired() -> ApiError {
    ApiError::conflict(
        "lock_expired",
        "the lock expired before the write and a newer lock holder wrote first; retry",
    )
}

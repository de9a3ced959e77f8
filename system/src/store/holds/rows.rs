//! The reads and writes every strategy shares: seat rows as read before deciding, and the
//! three writes of a hold (the `holds` row, the seats marked `held`, a `hold_seats` claim per
//! seat). How and when they run is each strategy's business.

use sqlx::{AnyConnection, Row};

use super::{seats_unavailable, unknown_seats, Attempt, Hold, HoldRequest};
use crate::domain::Strategy;
use crate::store::placeholders;

/// A seat as read before deciding.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeatRow {
    pub(super) id: i64,
    pub(super) price: i64,
    pub(super) status_available: bool,
    pub(super) version: i64,
}

pub(super) fn seat_row(row: &sqlx::any::AnyRow) -> Result<SeatRow, sqlx::Error> {
    Ok(SeatRow {
        id: row.try_get("id")?,
        price: row.try_get("price")?,
        status_available: row.try_get::<String, _>("status")? == "available",
        version: row.try_get("version")?,
    })
}

/// Reads the requested seats of the round (with `lock`, a row-lock suffix). 422 when some of
/// them are not seats of this round.
pub(super) async fn read_seats(
    conn: &mut AnyConnection,
    round_id: i64,
    ids: &[i64],
    lock: &str,
) -> Result<Vec<SeatRow>, Attempt> {
    let sql = format!(
        "SELECT id, price, status, version FROM seats WHERE +round_id = $1 AND id IN ({}) ORDER BY id{lock}",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(round_id);
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(conn).await?;
    let seats = rows.iter().map(seat_row).collect::<Result<Vec<_>, _>>()?;
    if seats.len() != ids.len() {
        return Err(Attempt::Final(unknown_seats()));
    }
    Ok(seats)
}

/// Reads up to `n` available seats of the round, lowest ids first.
pub(super) async fn read_available(
    conn: &mut AnyConnection,
    round_id: i64,
    n: i64,
    lock: &str,
) -> Result<Vec<SeatRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, price, status, version FROM seats WHERE round_id = $1 AND status = 'available'
         ORDER BY id LIMIT $2{lock}"
    ))
    .bind(round_id)
    .bind(n)
    .fetch_all(conn)
    .await?;
    rows.iter().map(seat_row).collect()
}

/// The seats a request asks for, read with `lock` (a row-lock suffix): all chosen seats, or
/// the lowest available ones. 409 when they are not (all) available, 422 when chosen seats
/// are not the round's.
pub(super) async fn choose(
    conn: &mut AnyConnection,
    round_id: i64,
    request: &HoldRequest,
    lock: &str,
) -> Result<Vec<SeatRow>, Attempt> {
    let seats = match request {
        HoldRequest::Seats(ids) => {
            let seats = read_seats(conn, round_id, ids.as_slice(), lock).await?;
            if seats.iter().any(|s| !s.status_available) {
                return Err(Attempt::Final(seats_unavailable()));
            }
            seats
        }
        HoldRequest::Quantity(q) => {
            let seats = read_available(conn, round_id, i64::from(q.get()), lock).await?;
            if seats.len() < q.get() as usize {
                return Err(Attempt::Final(seats_unavailable()));
            }
            seats
        }
    };
    Ok(seats)
}

/// Who holds, where, and for how long: the parts of a hold every strategy writes alike.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewHold {
    pub(super) round_id: i64,
    pub(super) user_id: i64,
    pub(super) strategy: Strategy,
    pub(super) now: i64,
    pub(super) expires_at: i64,
}

pub(super) async fn insert_hold(
    conn: &mut AnyConnection,
    h: NewHold,
    amount: i64,
    seat_count: usize,
) -> Result<i64, sqlx::Error> {
    let NewHold {
        round_id,
        user_id,
        strategy,
        now,
        expires_at,
    } = h;
    sqlx::query(
        "INSERT INTO holds (round_id, user_id, status, amount, seat_count, strategy, created_at, expires_at)
         VALUES ($1, $2, 'active', $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(round_id)
    .bind(user_id)
    .bind(amount)
    .bind(seat_count as i64)
    .bind(strategy.as_str())
    .bind(now)
    .bind(expires_at)
    .fetch_one(conn)
    .await?
    .try_get("id")
}

pub(super) async fn insert_hold_seats(
    conn: &mut AnyConnection,
    hold_id: i64,
    round_id: i64,
    seat_ids: &[i64],
    guard: bool,
) -> Result<(), sqlx::Error> {
    let values: Vec<String> = (0..seat_ids.len())
        .map(|i| {
            let p = 3 + i;
            if guard {
                format!("($1, ${p}, $2, 1, ${p})")
            } else {
                format!("($1, ${p}, $2, 1, NULL)")
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO hold_seats (hold_id, seat_id, round_id, live, guard) VALUES {}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(hold_id).bind(round_id);
    for id in seat_ids {
        q = q.bind(*id);
    }
    q.execute(conn).await?;
    Ok(())
}

/// Marks seats held by `hold_id`. With `only_if_available`, only seats still available are
/// touched; returns the number of rows changed.
pub(super) async fn mark_held(
    conn: &mut AnyConnection,
    hold_id: i64,
    seat_ids: &[i64],
    only_if_available: bool,
) -> Result<u64, sqlx::Error> {
    let cond = if only_if_available {
        " AND status = 'available'"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
         WHERE id IN ({}){cond}",
        placeholders(2, seat_ids.len())
    );
    let mut q = sqlx::query(&sql).bind(hold_id);
    for id in seat_ids {
        q = q.bind(*id);
    }
    Ok(q.execute(conn).await?.rows_affected())
}

pub(in crate::store) fn hold(
    id: i64,
    round_id: i64,
    user_id: i64,
    amount: i64,
    expires_at: i64,
    mut seat_ids: Vec<i64>,
) -> Hold {
    seat_ids.sort_unstable();
    Hold {
        id,
        round_id,
        user_id,
        status: "active".into(),
        amount,
        expires_at,
        seat_ids,
    }
}

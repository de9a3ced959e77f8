//! `optimistic`: read the seats with their `version`, then one compare-and-set per seat
//! inside a transaction; a miss means the whole attempt starts over (the caller retries,
//! bounded, with backoff).

use rand::Rng;

use super::rows::{
    choose, hold as placed, insert_hold, insert_hold_seats, read_available, NewHold, SeatRow,
};
use super::{seats_unavailable, Attempt, Hold, HoldRequest};
use crate::store::Db;

/// One attempt: read, then write only if no seat's version moved.
pub(super) async fn hold(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
    let seats = candidates(db, h.round_id, request).await?;
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let mut tx = db.begin_write().await?;
    let id = insert_hold(tx.conn(), h, amount, ids.len()).await?;
    let cas: Vec<String> = (0..seats.len())
        .map(|i| format!("(id = ${} AND version = ${})", 2 + 2 * i, 3 + 2 * i))
        .collect();
    let sql = format!(
        "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1 WHERE {}",
        cas.join(" OR ")
    );
    let mut q = sqlx::query(&sql).bind(id);
    for s in &seats {
        q = q.bind(s.id).bind(s.version);
    }
    let changed = q.execute(tx.conn()).await?.rows_affected();
    if changed != seats.len() as u64 {
        tx.rollback().await?;
        return Err(Attempt::Retry("a seat's version changed"));
    }
    insert_hold_seats(tx.conn(), id, h.round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(placed(id, h.round_id, h.user_id, amount, h.expires_at, ids))
}

/// The seats to try for: the chosen ones, or for a quantity a random pick among a few times
/// more available seats than needed, so that concurrent buyers do not all race for the same
/// lowest seats.
async fn candidates(
    db: &Db,
    round_id: i64,
    request: &HoldRequest,
) -> Result<Vec<SeatRow>, Attempt> {
    let mut conn = db.pool.acquire().await?;
    let HoldRequest::Quantity(q) = request else {
        return choose(&mut conn, round_id, request, "").await;
    };
    let n = q.get() as usize;
    let mut candidates = read_available(&mut conn, round_id, (n * 8) as i64, "").await?;
    if candidates.len() < n {
        return Err(Attempt::Final(seats_unavailable()));
    }
    let mut rng = rand::thread_rng();
    for i in 0..n {
        let j = rng.gen_range(i..candidates.len());
        candidates.swap(i, j);
    }
    candidates.truncate(n);
    candidates.sort_unstable_by_key(|s| s.id);
    Ok(candidates)
}

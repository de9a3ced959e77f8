//! `pessimistic`: row locks (`SELECT … FOR UPDATE` on PostgreSQL, in id order; SQLite's
//! `BEGIN IMMEDIATE` takes the database-wide write lock), then check, then write, in one
//! transaction.

use super::rows::{choose, hold as placed, insert_hold, insert_hold_seats, mark_held, NewHold};
use super::{Attempt, Hold, HoldRequest};
use crate::store::{placeholders, Db};

/// One attempt: lock, check and write in one transaction.
pub(super) async fn hold(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
    lock_and_hold(db, h, request, false).await
}

/// Lock, check and write in one transaction; with `step_fence`, each seat's fencing token also
/// goes up by one (`fenced` deciding without its lock service, see `locked.rs`).
pub(super) async fn lock_and_hold(
    db: &Db,
    h: NewHold,
    request: &HoldRequest,
    step_fence: bool,
) -> Result<Hold, Attempt> {
    let mut tx = db.begin_write().await?;
    let seats = match choose(tx.conn(), h.round_id, request, db.for_update()).await {
        Ok(seats) => seats,
        Err(e) => {
            tx.rollback().await?;
            if let HoldRequest::Quantity(q) = request {
                // Under READ COMMITTED a locked row that changed while we waited drops out of
                // a `LIMIT … FOR UPDATE` result; start over if seats may remain.
                let left = crate::store::catalog::availability(db, h.round_id)
                    .await?
                    .map_or(0, |a| a.available);
                if left >= i64::from(q.get()) {
                    return Err(Attempt::Retry("locked rows changed while waiting"));
                }
            }
            return Err(e);
        }
    };
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let id = insert_hold(tx.conn(), h, amount, ids.len()).await?;
    if step_fence {
        let sql = format!(
            "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1,
                    fence = fence + 1
             WHERE id IN ({})",
            placeholders(2, ids.len())
        );
        let mut q = sqlx::query(&sql).bind(id);
        for seat in &ids {
            q = q.bind(*seat);
        }
        q.execute(tx.conn()).await?;
    } else {
        mark_held(tx.conn(), id, &ids, false).await?;
    }
    insert_hold_seats(tx.conn(), id, h.round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(placed(id, h.round_id, h.user_id, amount, h.expires_at, ids))
}

//! `pessimistic`: row locks (`SELECT … FOR UPDATE` on PostgreSQL, in id order; SQLite's
//! `BEGIN IMMEDIATE` takes the database-wide write lock), then check, then write, in one
//! transaction.

use super::rows::{choose, hold as placed, insert_hold, insert_hold_seats, mark_held, NewHold};
use super::{Attempt, Hold, HoldRequest};
use crate::store::Db;

/// One attempt: lock, check and write in one transaction.
pub(super) async fn hold(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
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
    mark_held(tx.conn(), id, &ids, false).await?;
    insert_hold_seats(tx.conn(), id, h.round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(placed(id, h.round_id, h.user_id, amount, h.expires_at, ids))
}

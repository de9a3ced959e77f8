//! `naive`: read, check, write — each its own autocommitted statement. Oversells by design:
//! two requests can both read a seat free and both write it.

use super::rows::{choose, hold as placed, insert_hold, insert_hold_seats, mark_held, NewHold};
use super::{Attempt, Hold, HoldRequest};
use crate::store::Db;

/// One attempt: read the seats, check them, then write, with nothing in between.
pub(super) async fn hold(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
    let mut conn = db.pool.acquire().await?;
    let seats = choose(&mut conn, h.round_id, request, "").await?;
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let id = insert_hold(&mut conn, h, amount, ids.len()).await?;
    mark_held(&mut conn, id, &ids, false).await?;
    insert_hold_seats(&mut conn, id, h.round_id, &ids, false).await?;
    Ok(placed(id, h.round_id, h.user_id, amount, h.expires_at, ids))
}

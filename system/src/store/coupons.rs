//! Coupons: an admin creates a code with a quota and a discount; buyers claim it first come,
//! first served, at most once each; a claim is spent by one booking. Claims go through the
//! same strategies as holds (see [`super::holds`]): `naive` reads the count and writes it
//! back (lost updates: more claims than quota, and a user may claim twice), `optimistic`
//! compare-and-sets the coupon's version, `pessimistic` locks the coupon row, `atomic`
//! increments with `claimed < quota` in the condition and relies on a unique index for
//! "one per user". `redis-lock` and `fenced` lock the coupon (see [`crate::locks`]), read and
//! check, then increment; `fenced` records its token when it reads (`SET fence = $token WHERE
//! fence < $token`) and increments only `WHERE fence = $token`, so a holder whose lock expired
//! while it stalled, and whose coupon a newer holder has read since, cannot claim past the quota.
//! When the lock service does not answer, `fenced` lets the database decide: the coupon row
//! locked, checked, and incremented with `fence = fence + 1`, which refuses a lock holder that
//! read the coupon before (as for holds, see `holds::locked`).

use sqlx::Row;

use super::Db;
use crate::domain::Strategy;
use crate::error::{is_retryable, is_unique_violation, ApiError, Result};
use crate::locks::{Grant, Locks};

/// A stored coupon.
#[derive(Debug, Clone)]
pub struct Coupon {
    /// Id.
    pub id: i64,
    /// Upper-case code.
    pub code: String,
    /// Claims allowed.
    pub quota: i64,
    /// Claims counted on the coupon row (the naive strategy can under-count).
    pub claimed: i64,
    /// Discount, percent.
    pub discount_percent: i64,
    version: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Coupon, sqlx::Error> {
    Ok(Coupon {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        quota: row.try_get("quota")?,
        claimed: row.try_get("claimed")?,
        discount_percent: row.try_get("discount_percent")?,
        version: row.try_get("version")?,
    })
}

/// Creates a coupon; 409 `coupon_exists` when the code is taken.
pub async fn create(
    db: &Db,
    code: &str,
    quota: i64,
    discount_percent: i64,
    now: i64,
) -> Result<Coupon> {
    let row = sqlx::query(
        "INSERT INTO coupons (code, quota, claimed, discount_percent, version, created_at)
         VALUES ($1, $2, 0, $3, 0, $4)
         RETURNING id, code, quota, claimed, discount_percent, version",
    )
    .bind(code)
    .bind(quota)
    .bind(discount_percent)
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("coupon_exists", "a coupon with this code exists")
        } else {
            e.into()
        }
    })?;
    Ok(from_row(&row)?)
}

/// The coupon with this (normalised) code.
pub async fn by_code(db: &Db, code: &str) -> Result<Option<Coupon>> {
    let row = sqlx::query(
        "SELECT id, code, quota, claimed, discount_percent, version FROM coupons WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// A successful claim.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Claim id.
    pub id: i64,
    /// The coupon.
    pub coupon: Coupon,
    /// Attempts thrown away and retried.
    pub retries: u32,
}

fn sold_out() -> ApiError {
    ApiError::conflict("sold_out", "the coupon's quota is used up")
}

fn already_claimed() -> ApiError {
    ApiError::conflict("already_claimed", "you have claimed this coupon already")
}

enum Attempt {
    Final(ApiError),
    Retry,
}

impl From<super::BeginError> for Attempt {
    fn from(e: super::BeginError) -> Self {
        match e {
            super::BeginError::Down => Attempt::Final(ApiError::database_unavailable()),
            super::BeginError::Sql(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            Attempt::Retry
        } else if is_unique_violation(&e) {
            Attempt::Final(already_claimed())
        } else {
            Attempt::Final(e.into())
        }
    }
}

/// Claims coupon `code` for `user_id` with `strategy`; 404 unknown code, 409 `sold_out` or
/// `already_claimed`, 409 `contention` when optimistic attempts run out.
#[tracing::instrument(name = "db.coupons.claim", skip_all, fields(otel.kind = "client", db.system = db.backend.as_str()))]
pub async fn claim(
    db: &Db,
    locks: &Locks,
    strategy: Strategy,
    max_attempts: u32,
    code: &str,
    user_id: i64,
    now: i64,
) -> Result<Claim> {
    let coupon = by_code(db, code)
        .await?
        .ok_or_else(|| ApiError::not_found("coupon"))?;
    let mut retries = 0;
    loop {
        let attempt = match strategy {
            Strategy::Naive => naive(db, &coupon, user_id, now).await,
            Strategy::Optimistic => optimistic(db, &coupon, user_id, now).await,
            Strategy::Pessimistic => pessimistic(db, &coupon, user_id, now).await,
            Strategy::Atomic => atomic(db, &coupon, user_id, now).await,
            Strategy::RedisLock | Strategy::Fenced => {
                lock_based(db, locks, strategy, &coupon, user_id, now).await
            }
        };
        match attempt {
            Ok(id) => {
                return Ok(Claim {
                    id,
                    coupon: coupon.clone(),
                    retries,
                })
            }
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Retry) => {
                retries += 1;
                if retries >= max_attempts.max(1) {
                    return Err(ApiError::conflict(
                        "contention",
                        format!("gave up after {retries} attempts; retry the request"),
                    ));
                }
                let ms = rand::random::<u64>() % (1 << retries.min(5)) + 1;
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
        }
    }
}

async fn has_claim(
    conn: &mut sqlx::AnyConnection,
    coupon_id: i64,
    user_id: i64,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT id FROM coupon_claims WHERE coupon_id = $1 AND user_id = $2 LIMIT 1")
            .bind(coupon_id)
            .bind(user_id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Inserts the claim and its `coupon.claimed` outbox event (same connection, so the same
/// transaction when there is one).
async fn insert_claim(
    conn: &mut sqlx::AnyConnection,
    coupon_id: i64,
    user_id: i64,
    guard: bool,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let id = insert_claim_row(&mut *conn, coupon_id, user_id, guard, now).await?;
    let event = super::outbox::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        kind: "coupon.claimed".into(),
        user_id,
        round_id: None,
        booking_id: None,
        coupon_id: Some(coupon_id),
        seats: 0,
        amount: 0,
        previous_status: None,
        at: now,
    };
    super::outbox::record(conn, &event).await?;
    Ok(id)
}

async fn insert_claim_row(
    conn: &mut sqlx::AnyConnection,
    coupon_id: i64,
    user_id: i64,
    guard: bool,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO coupon_claims (coupon_id, user_id, guard_user, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(coupon_id)
    .bind(user_id)
    .bind(if guard { Some(user_id) } else { None })
    .bind(now)
    .fetch_one(conn)
    .await?
    .try_get("id")
}

async fn read(conn: &mut sqlx::AnyConnection, id: i64, lock: &str) -> Result<Coupon, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT id, code, quota, claimed, discount_percent, version FROM coupons WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_one(conn)
    .await?;
    from_row(&row)
}

/// How long `naive` works between reading the count and writing it (see [`naive`]).
const NAIVE_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

async fn naive(db: &Db, coupon: &Coupon, user_id: i64, now: i64) -> Result<i64, Attempt> {
    let mut conn = db.pool.acquire().await?;
    let c = read(&mut conn, coupon.id, "").await?;
    if c.claimed >= c.quota {
        return Err(Attempt::Final(sold_out()));
    }
    if has_claim(&mut conn, coupon.id, user_id).await? {
        return Err(Attempt::Final(already_claimed()));
    }
    // The work a real handler does between its check and its write (a fraud check, a call
    // to another service). Without it the race this strategy exists to show depends on the
    // scheduler: on a fast embedded stack 150 claimants once all ran one after another and
    // `naive` granted exactly its quota. With it, claims that overlap read the same count.
    tokio::time::sleep(NAIVE_WINDOW).await;
    sqlx::query("UPDATE coupons SET claimed = $1 WHERE id = $2")
        .bind(c.claimed + 1)
        .bind(coupon.id)
        .execute(&mut *conn)
        .await?;
    Ok(insert_claim(&mut conn, coupon.id, user_id, false, now).await?)
}

async fn optimistic(db: &Db, coupon: &Coupon, user_id: i64, now: i64) -> Result<i64, Attempt> {
    let c = {
        let mut conn = db.pool.acquire().await?;
        let c = read(&mut conn, coupon.id, "").await?;
        if has_claim(&mut conn, coupon.id, user_id).await? {
            return Err(Attempt::Final(already_claimed()));
        }
        c
    };
    if c.claimed >= c.quota {
        return Err(Attempt::Final(sold_out()));
    }
    let mut tx = db.begin_write().await?;
    let n = sqlx::query("UPDATE coupons SET claimed = claimed + 1, version = version + 1 WHERE id = $1 AND version = $2")
        .bind(coupon.id)
        .bind(c.version)
        .execute(tx.conn())
        .await?
        .rows_affected();
    if n != 1 {
        tx.rollback().await?;
        return Err(Attempt::Retry);
    }
    let id = insert_claim(tx.conn(), coupon.id, user_id, false, now).await?;
    tx.commit().await?;
    Ok(id)
}

async fn pessimistic(db: &Db, coupon: &Coupon, user_id: i64, now: i64) -> Result<i64, Attempt> {
    let mut tx = db.begin_write().await?;
    let c = read(tx.conn(), coupon.id, db.for_update()).await?;
    if has_claim(tx.conn(), coupon.id, user_id).await? {
        tx.rollback().await?;
        return Err(Attempt::Final(already_claimed()));
    }
    if c.claimed >= c.quota {
        tx.rollback().await?;
        return Err(Attempt::Final(sold_out()));
    }
    sqlx::query("UPDATE coupons SET claimed = claimed + 1, version = version + 1 WHERE id = $1")
        .bind(coupon.id)
        .execute(tx.conn())
        .await?;
    let id = insert_claim(tx.conn(), coupon.id, user_id, false, now).await?;
    tx.commit().await?;
    Ok(id)
}

async fn atomic(db: &Db, coupon: &Coupon, user_id: i64, now: i64) -> Result<i64, Attempt> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE coupons SET claimed = claimed + 1, version = version + 1 WHERE id = $1 AND claimed < quota",
    )
    .bind(coupon.id)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if n != 1 {
        tx.rollback().await?;
        return Err(Attempt::Final(sold_out()));
    }
    // The unique index (coupon_id, guard_user) turns a second claim into already_claimed,
    // and the rollback gives the quota unit back.
    match insert_claim(tx.conn(), coupon.id, user_id, true, now).await {
        Ok(id) => {
            tx.commit().await?;
            Ok(id)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

/// `fenced` without the lock service: `pessimistic`, and the coupon's fence one step on so
/// that a lock holder that read it before cannot write after.
async fn fenced_by_database(
    db: &Db,
    coupon: &Coupon,
    user_id: i64,
    now: i64,
) -> Result<i64, Attempt> {
    let mut tx = db.begin_write().await?;
    let c = read(tx.conn(), coupon.id, db.for_update()).await?;
    if has_claim(tx.conn(), coupon.id, user_id).await? {
        tx.rollback().await?;
        return Err(Attempt::Final(already_claimed()));
    }
    if c.claimed >= c.quota {
        tx.rollback().await?;
        return Err(Attempt::Final(sold_out()));
    }
    sqlx::query(
        "UPDATE coupons SET claimed = claimed + 1, version = version + 1, fence = fence + 1
         WHERE id = $1",
    )
    .bind(coupon.id)
    .execute(tx.conn())
    .await?;
    let id = insert_claim(tx.conn(), coupon.id, user_id, false, now).await?;
    tx.commit().await?;
    Ok(id)
}

async fn lock_based(
    db: &Db,
    locks: &Locks,
    strategy: Strategy,
    coupon: &Coupon,
    user_id: i64,
    now: i64,
) -> Result<i64, Attempt> {
    let resource = format!("coupon:{}", coupon.id);
    let lease = if strategy == Strategy::Fenced {
        match locks
            .acquire_or_database(&resource)
            .await
            .map_err(Attempt::Final)?
        {
            Grant::Lease(lease) => lease,
            Grant::Database => return fenced_by_database(db, coupon, user_id, now).await,
        }
    } else {
        locks.acquire(&resource).await.map_err(Attempt::Final)?
    };
    let result = async {
        {
            let mut conn = db.pool.acquire().await?;
            let c = if strategy == Strategy::Fenced {
                // The fenced read records the token (see `holds`): an older holder's write
                // below then fails.
                let row = sqlx::query(
                    "UPDATE coupons SET fence = $2 WHERE id = $1 AND fence < $2
                     RETURNING id, code, quota, claimed, discount_percent, version",
                )
                .bind(coupon.id)
                .bind(lease.fence)
                .fetch_optional(&mut *conn)
                .await?;
                match row {
                    Some(row) => from_row(&row)?,
                    None => return Err(Attempt::Final(super::holds::lock_expired())),
                }
            } else {
                read(&mut conn, coupon.id, "").await?
            };
            if has_claim(&mut conn, coupon.id, user_id).await? {
                return Err(Attempt::Final(already_claimed()));
            }
            if c.claimed >= c.quota {
                return Err(Attempt::Final(sold_out()));
            }
        }
        locks.injected_pause().await;
        let mut tx = db.begin_write().await?;
        let n = if strategy == Strategy::Fenced {
            sqlx::query(
                "UPDATE coupons SET claimed = claimed + 1, version = version + 1
                 WHERE id = $1 AND fence = $2",
            )
            .bind(coupon.id)
            .bind(lease.fence)
            .execute(tx.conn())
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE coupons SET claimed = claimed + 1, version = version + 1 WHERE id = $1",
            )
            .bind(coupon.id)
            .execute(tx.conn())
            .await?
            .rows_affected()
        };
        if n != 1 {
            tx.rollback().await?;
            return Err(Attempt::Final(super::holds::lock_expired()));
        }
        let id = insert_claim(tx.conn(), coupon.id, user_id, false, now).await?;
        tx.commit().await?;
        Ok(id)
    }
    .await;
    locks.release(&lease).await;
    result
}

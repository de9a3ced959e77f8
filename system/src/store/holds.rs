//! Holds and the concurrency strategies that decide who gets a seat.
//!
//! Every strategy does the same three writes — a `holds` row, the seats marked `held`, and a
//! `hold_seats` row per seat — and differs in how it makes sure that no other hold took the
//! same seat in between:
//!
//! | strategy | how | guarantees | how it fails |
//! |---|---|---|---|
//! | `naive` | read the seats, check they are free, then write, each step its own statement | nothing under concurrency: two requests can both see a seat free and both "win" it | oversells (two live holds on one seat); the audit counts it |
//! | `optimistic` | read seats with their `version`, then one compare-and-set `UPDATE … WHERE version = $v` per seat inside a transaction; retry the whole attempt (bounded, with jittered backoff) when a CAS misses | never sells a seat twice | under heavy contention attempts run out: 409 `contention` even though seats may remain |
//! | `pessimistic` | `SELECT … FOR UPDATE` (PostgreSQL; rows locked in id order so two multi-seat holds cannot deadlock) or `BEGIN IMMEDIATE` (SQLite, a database-wide write lock), check, write | never sells a seat twice | waiters queue on the lock: latency grows with contention; a long transaction blocks everyone behind it |
//! | `atomic` | one conditional `UPDATE … WHERE status = 'available'` that must touch every requested seat, plus a unique index on live `hold_seats` as the last guard | never sells a seat twice, and the index would catch a bug in the update | none known; a best-available hold skips rows another transaction has locked (`SKIP LOCKED`) |
//! | `redis-lock` | a lease lock on the round (`SET NX PX` in Redis, or the in-process table; see [`crate::locks`]), then read, check and the same writes as `pessimistic` but with no row locks; released by compare-and-delete | never sells a seat twice *while every holder finishes within the lock's TTL* | a holder that stalls past the TTL (GC pause, stopped VM) loses the lock without knowing; the next holder sees the seats free and takes them, then the stalled one writes over it: the seat is sold twice. Waiters poll: 409 `contention` after `--lock-wait-ms`; Redis down: 503 `lock_unavailable` |
//! | `fenced` | the same lock, which also hands out a fencing token (a per-round counter, `INCR`). The read records the token on the seats it reads (`UPDATE seats SET fence = $token WHERE fence < $token … RETURNING status`), and the write goes through only `WHERE fence = $token` and must touch every seat | never sells a seat twice, even when a holder stalls past the TTL: the database rejects the write of a holder whose seats a newer token has read since | the stalled holder's hold fails with 409 `lock_expired` (nothing written); waiting and Redis outages as `redis-lock` |
//!
//! Why `fenced` stamps its reads and does not just write `WHERE fence < $token`: the newer
//! holder may read *before* the stalled one writes and write *after* it. Both writes would
//! carry a token above the row's, both pass, and the seat is sold twice. Recording the token at
//! read time makes "a newer holder has looked at this row" visible to the older one's write.
//!
//! The lock-based strategies lock the whole round, not seats: a best-available hold does not
//! know its seats before it holds the lock. All holds of a round queue on one lock, so they
//! measure a distributed lock's cost, not seat-level parallelism.
//!
//! On SQLite (one write lock for the whole database) `atomic` does two more things, so that
//! the write lock is spent only on holds that can succeed, and on many of them at once:
//! a hold that cannot succeed (unknown round or seats, seats taken, too few left) is answered
//! from one read, without the write path (in WAL mode readers do not wait for the writer; a
//! refusal from a committed snapshot is a correct answer at that moment); the others are
//! queued to one writer task that decides every hold waiting at that moment in one
//! transaction (group commit, see `hold_batch`), with the same conditional update and index.
//!
//! Only `atomic` writes `hold_seats.guard`; the others leave it NULL so that each strategy
//! stands on its own logic and the tests measure that logic, not the index.

use std::time::Duration;

use rand::Rng;
use sqlx::{AnyConnection, Row};

use super::hold_batch::{Job, Outcome};
use super::{placeholders, Backend, Db};
use crate::domain::{Quantity, SeatIds, Strategy};
use crate::error::{is_retryable, is_unique_violation, ApiError, Result};
use crate::locks::{Lease, Locks};

/// What a hold asks for.
#[derive(Debug, Clone)]
pub enum HoldRequest {
    /// These seats, all or nothing.
    Seats(SeatIds),
    /// This many seats, best available (lowest ids first).
    Quantity(Quantity),
}

/// A stored hold.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Id.
    pub id: i64,
    /// Round.
    pub round_id: i64,
    /// Owner.
    pub user_id: i64,
    /// `active`, `released`, `expired` or `booked`.
    pub status: String,
    /// Sum of the seats' prices, minor units.
    pub amount: i64,
    /// Expiry, epoch ms.
    pub expires_at: i64,
    /// The seats, ascending.
    pub seat_ids: Vec<i64>,
}

/// A hold that was placed, and what it cost to place it.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The hold.
    pub hold: Hold,
    /// Attempts that were thrown away and retried (optimistic CAS misses, deadlocks).
    pub retries: u32,
}

/// Tunables of the strategies.
#[derive(Debug, Clone, Copy)]
pub struct StrategyOptions {
    /// The strategy.
    pub strategy: Strategy,
    /// Whole attempts before giving up (optimistic CAS misses; retryable database errors for
    /// every strategy).
    pub max_attempts: u32,
}

pub(super) fn unknown_seats() -> ApiError {
    ApiError::unprocessable("unknown_seats", "some seat_ids are not seats of this round")
}

pub(super) fn seats_unavailable() -> ApiError {
    ApiError::conflict(
        "seats_unavailable",
        "some of the requested seats are not available",
    )
}

/// Places a hold for `user_id` on `round_id` using the configured strategy (`locks` serves
/// `redis-lock` and `fenced`).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "db.holds.place", skip_all, fields(otel.kind = "client", db.system = db.backend.as_str(), strategy = opts.strategy.as_str()))]
pub async fn place(
    db: &Db,
    opts: StrategyOptions,
    locks: &Locks,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Placed> {
    // Atomic on PostgreSQL learns that a round is missing from its empty result (one round
    // trip less on the hot path); atomic on SQLite answers from a read what cannot succeed and
    // queues the rest to the group-commit writer; the others check first.
    match (opts.strategy, db.backend) {
        (Strategy::Atomic, Backend::Postgres) => {}
        (Strategy::Atomic, Backend::Sqlite) => {
            refuse_hopeless(db, round_id, request).await?;
            let job = HoldJob {
                round_id,
                user_id,
                request,
                now,
                expires_at,
            };
            if let Some(placed) = group_commit(db, job).await? {
                return Ok(placed);
            }
            // The batch failed as a whole (nothing written): place this hold on its own.
        }
        _ => {
            if super::catalog::round(db, round_id).await?.is_none() {
                return Err(ApiError::not_found("round"));
            }
        }
    }
    let attempts = opts.max_attempts.max(1);
    let mut retries = 0;
    loop {
        let attempt = match opts.strategy {
            Strategy::Naive => naive(db, round_id, user_id, request, now, expires_at).await,
            Strategy::Optimistic => {
                optimistic(db, round_id, user_id, request, now, expires_at).await
            }
            Strategy::Pessimistic => {
                pessimistic(db, round_id, user_id, request, now, expires_at).await
            }
            Strategy::Atomic if db.backend == Backend::Postgres => {
                atomic_postgres(db, round_id, user_id, request, now, expires_at).await
            }
            Strategy::Atomic => atomic(db, round_id, user_id, request, now, expires_at).await,
            Strategy::RedisLock | Strategy::Fenced => {
                let target = LockTarget {
                    round_id,
                    user_id,
                    now,
                    expires_at,
                    strategy: opts.strategy,
                };
                lock_based(db, locks, target, request).await
            }
        };
        match attempt {
            Ok(hold) => return Ok(Placed { hold, retries }),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Retry(why)) => {
                retries += 1;
                if retries >= attempts {
                    return Err(ApiError::conflict(
                        "contention",
                        format!("gave up after {retries} attempts ({why}); retry the request"),
                    ));
                }
                backoff(retries).await;
            }
        }
    }
}

/// A hold for the group-commit writer.
struct HoldJob<'a> {
    round_id: i64,
    user_id: i64,
    request: &'a HoldRequest,
    now: i64,
    expires_at: i64,
}

/// Places a hold through the SQLite group-commit writer. `None` when the writer could not
/// decide it (its batch failed as a whole, or the writer is gone): nothing was written.
async fn group_commit(db: &Db, h: HoldJob<'_>) -> Result<Option<Placed>> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        round_id: h.round_id,
        user_id: h.user_id,
        request: h.request.clone(),
        now: h.now,
        expires_at: h.expires_at,
        reply,
    };
    if db.hold_queue().send(job).is_err() {
        return Ok(None);
    }
    match answer.await {
        Ok(Outcome::Placed(hold)) => Ok(Some(Placed { hold, retries: 0 })),
        Ok(Outcome::Refused(e)) => Err(e),
        Ok(Outcome::Alone) | Err(_) => Ok(None),
    }
}

/// Answers from one read, without the write path, a hold that cannot succeed: 404 for an
/// unknown round, 422 for seats that are not the round's, 409 when chosen seats are taken or
/// fewer seats than asked are left. A refusal read from a committed snapshot is a correct
/// answer at that moment; a hold that passes is decided under the write lock.
async fn refuse_hopeless(db: &Db, round_id: i64, request: &HoldRequest) -> Result<()> {
    let (wanted, known, free, rounds) = match request {
        HoldRequest::Seats(ids) => {
            let ids = ids.as_slice();
            let sql = format!(
                "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds, COUNT(*) AS known,
                        COALESCE(SUM(CASE WHEN status = 'available' THEN 1 ELSE 0 END), 0) AS free
                 FROM seats WHERE round_id = $1 AND id IN ({})",
                placeholders(2, ids.len())
            );
            let mut q = sqlx::query(&sql).bind(round_id);
            for id in ids {
                q = q.bind(*id);
            }
            let row = q.fetch_one(&db.pool).await?;
            let wanted = ids.len() as i64;
            let known: i64 = row.try_get("known")?;
            (
                wanted,
                known,
                row.try_get::<i64, _>("free")?,
                row.try_get::<i64, _>("rounds")?,
            )
        }
        HoldRequest::Quantity(q) => {
            let wanted = i64::from(q.get());
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds,
                        (SELECT COUNT(*) FROM (SELECT 1 FROM seats
                           WHERE round_id = $1 AND status = 'available' LIMIT $2)) AS free",
            )
            .bind(round_id)
            .bind(wanted)
            .fetch_one(&db.pool)
            .await?;
            (
                wanted,
                wanted,
                row.try_get::<i64, _>("free")?,
                row.try_get::<i64, _>("rounds")?,
            )
        }
    };
    if rounds == 0 {
        return Err(ApiError::not_found("round"));
    }
    if known != wanted {
        return Err(unknown_seats());
    }
    if free < wanted {
        return Err(seats_unavailable());
    }
    Ok(())
}

/// The outcome of one attempt: a final answer, or a reason to start over.
enum Attempt {
    Final(ApiError),
    Retry(&'static str),
}

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            Attempt::Retry("database asked to retry")
        } else if is_unique_violation(&e) {
            Attempt::Final(seats_unavailable())
        } else {
            Attempt::Final(e.into())
        }
    }
}

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        Attempt::Final(e)
    }
}

/// Jittered exponential backoff: 1–2 ms, 2–4 ms, … capped at 50 ms.
async fn backoff(attempt: u32) {
    let base = 1u64 << attempt.min(5);
    let ms = rand::thread_rng().gen_range(base..=base * 2).min(50);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A seat as read before deciding.
#[derive(Debug, Clone, Copy)]
struct SeatRow {
    id: i64,
    price: i64,
    status_available: bool,
    version: i64,
}

fn seat_row(row: &sqlx::any::AnyRow) -> Result<SeatRow, sqlx::Error> {
    Ok(SeatRow {
        id: row.try_get("id")?,
        price: row.try_get("price")?,
        status_available: row.try_get::<String, _>("status")? == "available",
        version: row.try_get("version")?,
    })
}

/// Reads the requested seats of the round (with `lock`, a row-lock suffix). 422 when some of
/// them are not seats of this round.
async fn read_seats(
    conn: &mut AnyConnection,
    round_id: i64,
    ids: &[i64],
    lock: &str,
) -> Result<Vec<SeatRow>, Attempt> {
    let sql = format!(
        "SELECT id, price, status, version FROM seats WHERE round_id = $1 AND id IN ({}) ORDER BY id{lock}",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(round_id);
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(conn).await?;
    let seats = rows.iter().map(seat_row).collect::<Result<Vec<_>, _>>()?;
    if seats.len() != ids.len() {
        return Err(Attempt::Final(ApiError::unprocessable(
            "unknown_seats",
            "some seat_ids are not seats of this round",
        )));
    }
    Ok(seats)
}

/// Reads up to `n` available seats of the round, lowest ids first.
async fn read_available(
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
async fn choose(
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
struct NewHold {
    round_id: i64,
    user_id: i64,
    strategy: Strategy,
    now: i64,
    expires_at: i64,
}

async fn insert_hold(
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

async fn insert_hold_seats(
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
async fn mark_held(
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

pub(super) fn hold(
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

/// Read, check, write — each its own autocommitted statement. Oversells by design.
async fn naive(
    db: &Db,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Hold, Attempt> {
    let mut conn = db.pool.acquire().await?;
    let seats = choose(&mut conn, round_id, request, "").await?;
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let id = insert_hold(
        &mut conn,
        NewHold {
            round_id,
            user_id,
            strategy: Strategy::Naive,
            now,
            expires_at,
        },
        amount,
        ids.len(),
    )
    .await?;
    mark_held(&mut conn, id, &ids, false).await?;
    insert_hold_seats(&mut conn, id, round_id, &ids, false).await?;
    Ok(hold(id, round_id, user_id, amount, expires_at, ids))
}

/// Version compare-and-set inside a transaction; a miss means start over.
async fn optimistic(
    db: &Db,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Hold, Attempt> {
    let seats = {
        let mut conn = db.pool.acquire().await?;
        match request {
            HoldRequest::Seats(_) => choose(&mut conn, round_id, request, "").await?,
            HoldRequest::Quantity(q) => {
                // Read a few times more candidates than needed and pick among them at random,
                // so that concurrent buyers do not all race for the same lowest seats.
                let n = q.get() as usize;
                let mut candidates =
                    read_available(&mut conn, round_id, (n * 8) as i64, "").await?;
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
                candidates
            }
        }
    };
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let mut tx = db.begin_write().await?;
    let id = insert_hold(
        tx.conn(),
        NewHold {
            round_id,
            user_id,
            strategy: Strategy::Optimistic,
            now,
            expires_at,
        },
        amount,
        ids.len(),
    )
    .await?;
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
    insert_hold_seats(tx.conn(), id, round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(hold(id, round_id, user_id, amount, expires_at, ids))
}

/// What a lock-based hold is about.
#[derive(Debug, Clone, Copy)]
struct LockTarget {
    round_id: i64,
    user_id: i64,
    now: i64,
    expires_at: i64,
    strategy: Strategy,
}

/// `redis-lock` and `fenced`: lock the round, read and check, write; release.
async fn lock_based(
    db: &Db,
    locks: &Locks,
    t: LockTarget,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    let lease = locks.acquire(&format!("round:{}", t.round_id)).await?;
    let result = lock_based_locked(db, locks, &lease, t, request).await;
    locks.release(&lease).await;
    result
}

async fn lock_based_locked(
    db: &Db,
    locks: &Locks,
    lease: &Lease,
    t: LockTarget,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    let fence = (t.strategy == Strategy::Fenced).then_some(lease.fence);
    let seats = {
        let mut conn = db.pool.acquire().await?;
        match request {
            HoldRequest::Seats(ids) => {
                let seats = match fence {
                    Some(token) => {
                        stamp_seats(&mut conn, t.round_id, Some(ids.as_slice()), 0, token).await?
                    }
                    None => read_seats(&mut conn, t.round_id, ids.as_slice(), "").await?,
                };
                if seats.len() != ids.as_slice().len() {
                    // Fenced: a seat of the round that a newer holder has stamped, or not a
                    // seat of this round at all; tell them apart.
                    let known = read_seats(&mut conn, t.round_id, ids.as_slice(), "").await?;
                    if known.len() != ids.as_slice().len() {
                        return Err(Attempt::Final(ApiError::unprocessable(
                            "unknown_seats",
                            "some seat_ids are not seats of this round",
                        )));
                    }
                    return Err(Attempt::Final(lock_expired()));
                }
                if seats.iter().any(|s| !s.status_available) {
                    return Err(Attempt::Final(seats_unavailable()));
                }
                seats
            }
            HoldRequest::Quantity(q) => {
                let n = i64::from(q.get());
                let seats = match fence {
                    Some(token) => stamp_seats(&mut conn, t.round_id, None, n, token).await?,
                    None => read_available(&mut conn, t.round_id, n, "").await?,
                };
                if seats.len() < q.get() as usize {
                    return Err(Attempt::Final(seats_unavailable()));
                }
                seats
            }
        }
    };
    // Where a stalled holder stalls: after deciding, before writing.
    locks.injected_pause().await;
    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
    let amount = seats.iter().map(|s| s.price).sum();
    let mut tx = db.begin_write().await?;
    let id = insert_hold(
        tx.conn(),
        NewHold {
            round_id: t.round_id,
            user_id: t.user_id,
            strategy: t.strategy,
            now: t.now,
            expires_at: t.expires_at,
        },
        amount,
        ids.len(),
    )
    .await?;
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
    insert_hold_seats(tx.conn(), id, t.round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(hold(id, t.round_id, t.user_id, amount, t.expires_at, ids))
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
                "UPDATE seats SET fence = $2 WHERE round_id = $1 AND fence < $2 AND id IN ({})
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

/// Row locks, then check, then write, in one transaction.
async fn pessimistic(
    db: &Db,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Hold, Attempt> {
    let mut tx = db.begin_write().await?;
    let seats = match choose(tx.conn(), round_id, request, db.for_update()).await {
        Ok(seats) => seats,
        Err(e) => {
            tx.rollback().await?;
            if let HoldRequest::Quantity(q) = request {
                // Under READ COMMITTED a locked row that changed while we waited drops out of
                // a `LIMIT … FOR UPDATE` result; start over if seats may remain.
                let left = super::catalog::availability(db, round_id)
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
    let id = insert_hold(
        tx.conn(),
        NewHold {
            round_id,
            user_id,
            strategy: Strategy::Pessimistic,
            now,
            expires_at,
        },
        amount,
        ids.len(),
    )
    .await?;
    mark_held(tx.conn(), id, &ids, false).await?;
    insert_hold_seats(tx.conn(), id, round_id, &ids, false).await?;
    tx.commit().await?;
    Ok(hold(id, round_id, user_id, amount, expires_at, ids))
}

/// Why an atomic hold took nothing: the round is missing (404), some chosen seats are not
/// the round's (422), or they are taken (409). Only runs on the failure path.
async fn explain_atomic_failure(db: &Db, round_id: i64, request: &HoldRequest) -> Attempt {
    // One round trip: does the round exist, and how many of the chosen seats are its own?
    let (sql, ids): (String, &[i64]) = match request {
        HoldRequest::Seats(ids) => (
            format!(
                "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds,
                        (SELECT COUNT(*) FROM seats WHERE round_id = $1 AND id IN ({})) AS known",
                placeholders(2, ids.as_slice().len())
            ),
            ids.as_slice(),
        ),
        HoldRequest::Quantity(_) => (
            "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds, CAST(0 AS BIGINT) AS known".to_owned(),
            &[],
        ),
    };
    let mut q = sqlx::query(&sql).bind(round_id);
    for id in ids {
        q = q.bind(*id);
    }
    let row = match q.fetch_one(&db.pool).await {
        Ok(row) => row,
        Err(e) => return e.into(),
    };
    let rounds: i64 = row.try_get("rounds").unwrap_or(0);
    let known: i64 = row.try_get("known").unwrap_or(0);
    if rounds == 0 {
        return Attempt::Final(ApiError::not_found("round"));
    }
    if known != ids.len() as i64 {
        return Attempt::Final(ApiError::unprocessable(
            "unknown_seats",
            "some seat_ids are not seats of this round",
        ));
    }
    Attempt::Final(seats_unavailable())
}

/// The atomic strategy on PostgreSQL in one statement (one round trip, autocommit): lock the
/// wanted available seats, insert the hold only if all of them were found, mark them held and
/// record the claims, with data-modifying CTEs. Rows another transaction has locked are
/// skipped for best-available holds and waited for (then re-checked) for chosen seats.
async fn atomic_postgres(
    db: &Db,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Hold, Attempt> {
    let (picked, wanted) = match request {
        HoldRequest::Seats(ids) => (
            format!(
                "SELECT id, price FROM seats WHERE round_id = $2 AND status = 'available' AND id IN ({})
                 ORDER BY id FOR UPDATE",
                placeholders(6, ids.as_slice().len())
            ),
            ids.as_slice().len() as i64,
        ),
        HoldRequest::Quantity(q) => (
            "SELECT id, price FROM seats WHERE round_id = $2 AND status = 'available'
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
                .to_owned(),
            i64::from(q.get()),
        ),
    };
    let sql = format!(
        "WITH picked AS ({picked}),
         h AS (
             INSERT INTO holds (round_id, user_id, status, amount, seat_count, strategy, created_at, expires_at)
             SELECT $2, $1, 'active', COALESCE(SUM(price), 0), COUNT(*), 'atomic', $4, $5 FROM picked
             HAVING COUNT(*) = $3
             RETURNING id),
         upd AS (
             UPDATE seats s SET status = 'held', hold_id = h.id, booking_id = NULL, version = s.version + 1
             FROM h, picked WHERE s.id = picked.id AND s.status = 'available'
             RETURNING s.id, s.price),
         claims AS (
             INSERT INTO hold_seats (hold_id, seat_id, round_id, live, guard)
             SELECT h.id, upd.id, $2, 1, upd.id FROM h, upd)
         SELECT h.id AS hold_id, upd.id AS seat_id, upd.price AS price FROM h, upd ORDER BY upd.id"
    );
    let mut q = sqlx::query(&sql)
        .bind(user_id)
        .bind(round_id)
        .bind(wanted)
        .bind(now)
        .bind(expires_at);
    if let HoldRequest::Seats(ids) = request {
        for seat in ids.as_slice() {
            q = q.bind(*seat);
        }
    }
    let rows = q.fetch_all(&db.pool).await?;
    if rows.is_empty() {
        return Err(explain_atomic_failure(db, round_id, request).await);
    }
    let id: i64 = rows[0].try_get("hold_id")?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut amount = 0;
    for row in &rows {
        ids.push(row.try_get::<i64, _>("seat_id")?);
        amount += row.try_get::<i64, _>("price")?;
    }
    debug_assert_eq!(ids.len() as i64, wanted);
    Ok(hold(id, round_id, user_id, amount, expires_at, ids))
}

/// One conditional update that must take every seat, guarded by the unique index.
async fn atomic(
    db: &Db,
    round_id: i64,
    user_id: i64,
    request: &HoldRequest,
    now: i64,
    expires_at: i64,
) -> Result<Hold, Attempt> {
    let mut tx = db.begin_write().await?;
    let id = insert_hold(
        tx.conn(),
        NewHold {
            round_id,
            user_id,
            strategy: Strategy::Atomic,
            now,
            expires_at,
        },
        0,
        0,
    )
    .await?;
    let (sql, wanted) = match request {
        HoldRequest::Seats(ids) => (
            format!(
                "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
                 WHERE round_id = $2 AND status = 'available' AND id IN ({}) RETURNING id, price",
                placeholders(3, ids.as_slice().len())
            ),
            ids.as_slice().len(),
        ),
        HoldRequest::Quantity(q) => {
            let skip = if db.backend == Backend::Postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            (
                format!(
                    "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
                     WHERE status = 'available' AND id IN (
                         SELECT id FROM seats WHERE round_id = $2 AND status = 'available'
                         ORDER BY id LIMIT $3{skip})
                     RETURNING id, price"
                ),
                q.get() as usize,
            )
        }
    };
    let mut q = sqlx::query(&sql).bind(id).bind(round_id);
    match request {
        HoldRequest::Seats(ids) => {
            for seat in ids.as_slice() {
                q = q.bind(*seat);
            }
        }
        HoldRequest::Quantity(n) => q = q.bind(i64::from(n.get())),
    }
    let rows = q.fetch_all(tx.conn()).await?;
    if rows.len() != wanted {
        tx.rollback().await?;
        return Err(explain_atomic_failure(db, round_id, request).await);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut amount = 0i64;
    for row in &rows {
        ids.push(row.try_get::<i64, _>("id")?);
        amount += row.try_get::<i64, _>("price")?;
    }
    sqlx::query("UPDATE holds SET amount = $1, seat_count = $2 WHERE id = $3")
        .bind(amount)
        .bind(ids.len() as i64)
        .bind(id)
        .execute(tx.conn())
        .await?;
    insert_hold_seats(tx.conn(), id, round_id, &ids, true).await?;
    tx.commit().await?;
    Ok(hold(id, round_id, user_id, amount, expires_at, ids))
}

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

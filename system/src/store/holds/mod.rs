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
//! | `fenced` | the same lock, which also hands out a fencing token (a per-round counter, `INCR`). The read records the token on the seats it reads (`UPDATE seats SET fence = $token WHERE fence < $token … RETURNING status`), and the write goes through only `WHERE fence = $token` and must touch every seat | never sells a seat twice, even when a holder stalls past the TTL: the database rejects the write of a holder whose seats a newer token has read since | the stalled holder's hold fails with 409 `lock_expired` (nothing written); waiting as `redis-lock`. When Redis fails or hangs it does not wait: the database decides (row locks, and `fence = fence + 1` on the seats it takes, which refuses a lock holder that stamped them before) |
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
//! On PostgreSQL `atomic` holds are grouped too: writer tasks place every hold waiting at that
//! moment with one statement per round (see `hold_batch::postgres`), and what a batch cannot
//! decide is placed alone by the one-statement hold.
//!
//! Only `atomic` writes `hold_seats.guard`; the others leave it NULL so that each strategy
//! stands on its own logic and the tests measure that logic, not the index.//!
//! # Layout
//! - `rows`: the reads and writes every strategy shares (seat rows, the hold row, its claims).
//! - one file per strategy family: `naive`, `optimistic`, `pessimistic`, `locked`
//!   (`redis-lock` and `fenced`), `atomic` (both backends, and on SQLite the refusal read and
//!   the hand-over to the group-commit writer, `super::hold_batch`).
//! - `lifecycle`: reading and releasing a hold.

mod atomic;
mod lifecycle;
mod locked;
mod naive;
mod optimistic;
mod pessimistic;
mod rows;

use std::time::Duration;

use rand::Rng;

use super::{Backend, Db};
use crate::domain::{Quantity, SeatIds, Strategy};
use crate::error::{is_retryable, is_unique_violation, ApiError, Result};
use crate::locks::Locks;
use rows::NewHold;

pub use lifecycle::{get, release, release_seats};
pub(crate) use lifecycle::{seat_ids, seat_ids_inline, seat_list, seat_list_sql};
pub(crate) use locked::lock_expired;
pub(super) use rows::hold;

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

/// 422: some requested seats are not seats of the round.
pub(super) fn unknown_seats() -> ApiError {
    ApiError::unprocessable("unknown_seats", "some seat_ids are not seats of this round")
}

/// 409: some requested seats are taken, or fewer seats than asked are left.
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
    let h = NewHold {
        round_id,
        user_id,
        strategy: opts.strategy,
        now,
        expires_at,
    };
    // Atomic on PostgreSQL goes to the group-commit writers, whose statement (or the single
    // hold's, for what a batch cannot decide) learns that a round is missing from its result;
    // atomic on SQLite answers from a read what cannot succeed and queues the rest to its
    // group-commit writer; the others check first.
    match (opts.strategy, db.backend) {
        (Strategy::Atomic, Backend::Postgres) => {
            if let Some(placed) = atomic::group_commit(db, h, request).await? {
                return Ok(placed);
            }
            // The batch could not decide this hold (or failed as a whole, writing nothing):
            // place it on its own.
        }
        (Strategy::Atomic, Backend::Sqlite) => {
            atomic::refuse_hopeless(db, round_id, request).await?;
            if let Some(placed) = atomic::group_commit(db, h, request).await? {
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
        match attempt(db, locks, h, request).await {
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

/// One attempt of `h.strategy`.
async fn attempt(
    db: &Db,
    locks: &Locks,
    h: NewHold,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    match h.strategy {
        Strategy::Naive => naive::hold(db, h, request).await,
        Strategy::Optimistic => optimistic::hold(db, h, request).await,
        Strategy::Pessimistic => pessimistic::hold(db, h, request).await,
        Strategy::Atomic if db.backend == Backend::Postgres => {
            atomic::hold_postgres(db, h, request).await
        }
        Strategy::Atomic => atomic::hold(db, h, request).await,
        Strategy::RedisLock | Strategy::Fenced => locked::hold(db, locks, h, request).await,
    }
}

/// The outcome of one attempt: a final answer, or a reason to start over.
enum Attempt {
    Final(ApiError),
    Retry(&'static str),
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

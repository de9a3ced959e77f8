//! `atomic`: one conditional `UPDATE … WHERE status = 'available'` that must take every
//! requested seat, and the unique index on live `hold_seats.guard` as the last guard. Holds go
//! to the group-commit writers ([`group_commit`]): on PostgreSQL at once, and what a batch
//! cannot decide is placed alone by one statement ([`hold_postgres`]); on SQLite after a read
//! has refused what cannot succeed ([`refuse_hopeless`]), falling back to [`hold`] on its own.

use sqlx::Row;

use super::rows::{hold as placed, insert_hold, insert_hold_seats, NewHold};
use super::{seats_unavailable, unknown_seats, Attempt, Hold, HoldRequest, Placed};
use crate::error::{ApiError, Result};
use crate::store::hold_batch::{Job, Outcome};
use crate::store::{placeholders, Backend, Db};

/// Places a hold through the group-commit writers. `None` when they could not decide it (its
/// batch failed as a whole, the batch left it to be placed alone, or the writers are gone):
/// nothing was written for it.
pub(super) async fn group_commit(
    db: &Db,
    h: NewHold,
    request: &HoldRequest,
) -> Result<Option<Placed>> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        round_id: h.round_id,
        user_id: h.user_id,
        request: request.clone(),
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
pub(super) async fn refuse_hopeless(db: &Db, round_id: i64, request: &HoldRequest) -> Result<()> {
    let inline = db
        .inline()
        .and_then(|reads| reads.read(|conn| hopeless_counts(conn, round_id, request)));
    let (wanted, known, free, rounds) = match (inline, request) {
        (Some(counts), _) => counts,
        (None, request) => hopeless_counts_pooled(db, round_id, request).await?,
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

/// The refusal read's counts — (wanted, known, free, rounds) — read on the calling thread.
fn hopeless_counts(
    conn: &rusqlite::Connection,
    round_id: i64,
    request: &HoldRequest,
) -> rusqlite::Result<(i64, i64, i64, i64)> {
    match request {
        HoldRequest::Seats(ids) => {
            let ids = ids.as_slice();
            let mut stmt = conn.prepare_cached(&seats_sql(ids.len()))?;
            let params = std::iter::once(&round_id).chain(ids);
            stmt.query_row(rusqlite::params_from_iter(params), |row| {
                Ok((ids.len() as i64, row.get(1)?, row.get(2)?, row.get(0)?))
            })
        }
        HoldRequest::Quantity(q) => {
            let wanted = i64::from(q.get());
            let mut stmt = conn.prepare_cached(QUANTITY_SQL)?;
            stmt.query_row((round_id, wanted), |row| {
                Ok((wanted, wanted, row.get(1)?, row.get(0)?))
            })
        }
    }
}

/// The refusal read of chosen seats: does the round exist, how many of the seats are its own,
/// and how many of those are free.
///
/// `+round_id` keeps SQLite's planner off the covering index `seats_round_status`: with it,
/// counting walked every seat of the round (100,000 index entries per hold in a large sale)
/// instead of looking the chosen seats up by id.
///
/// The texts for up to 16 seats are formatted once, not on every hold.
fn seats_sql(seats: usize) -> std::borrow::Cow<'static, str> {
    const FORMATTED_ONCE: usize = 16;
    static TEXTS: [std::sync::OnceLock<String>; FORMATTED_ONCE] =
        [const { std::sync::OnceLock::new() }; FORMATTED_ONCE];
    match TEXTS.get(seats) {
        Some(text) => text.get_or_init(|| format_seats_sql(seats)).as_str().into(),
        None => format_seats_sql(seats).into(),
    }
}

fn format_seats_sql(seats: usize) -> String {
    format!(
        "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds, COUNT(*) AS known,
                COALESCE(SUM(CASE WHEN status = 'available' THEN 1 ELSE 0 END), 0) AS free
         FROM seats WHERE +round_id = $1 AND id IN ({})",
        placeholders(2, seats)
    )
}

/// The refusal read of a quantity: does the round exist, and are that many seats free.
const QUANTITY_SQL: &str = "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds,
        (SELECT COUNT(*) FROM (SELECT 1 FROM seats
           WHERE round_id = $1 AND status = 'available' LIMIT $2)) AS free";

/// [`hopeless_counts`] through the pool.
async fn hopeless_counts_pooled(
    db: &Db,
    round_id: i64,
    request: &HoldRequest,
) -> Result<(i64, i64, i64, i64)> {
    Ok(match request {
        HoldRequest::Seats(ids) => {
            let ids = ids.as_slice();
            let sql = seats_sql(ids.len());
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
            let row = sqlx::query(QUANTITY_SQL)
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
    })
}

/// Why an atomic hold took nothing: the round is missing (404), some chosen seats are not
/// the round's (422), or they are taken (409). Only runs on the failure path.
async fn explain_atomic_failure(db: &Db, round_id: i64, request: &HoldRequest) -> Attempt {
    // One round trip: does the round exist, and how many of the chosen seats are its own?
    let (sql, ids): (String, &[i64]) = match request {
        HoldRequest::Seats(ids) => (
            format!(
                "SELECT (SELECT COUNT(*) FROM rounds WHERE id = $1) AS rounds,
                        (SELECT COUNT(*) FROM seats WHERE +round_id = $1 AND id IN ({})) AS known",
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
        return Attempt::Final(unknown_seats());
    }
    Attempt::Final(seats_unavailable())
}

/// The atomic strategy on PostgreSQL in one statement (one round trip, autocommit): lock the
/// wanted available seats, insert the hold only if all of them were found, mark them held and
/// record the claims, with data-modifying CTEs. Rows another transaction has locked are
/// skipped for best-available holds and waited for (then re-checked) for chosen seats.
pub(super) async fn hold_postgres(
    db: &Db,
    h: NewHold,
    request: &HoldRequest,
) -> Result<Hold, Attempt> {
    let HoldRequest::Quantity(_) = request else {
        return hold_postgres_from(db, h, request, 0).await;
    };
    // Best available: start where the last searches found free seats (see `SeatHints`), and
    // from the first seat when that finds too few.
    let hints = db.seat_hints();
    let start = hints.start(h.round_id);
    let placed = match hold_postgres_from(db, h, request, start).await {
        Err(Attempt::Final(e)) if start > 0 && e.code == "seats_unavailable" => {
            hints.forget(h.round_id);
            hold_postgres_from(db, h, request, 0).await
        }
        other => other,
    };
    if let Ok(hold) = &placed {
        if let Some(lowest) = hold.seat_ids.iter().min() {
            hints.advance(h.round_id, start, *lowest);
        }
    }
    placed
}

/// The chosen seats a PostgreSQL hold locks (`$2` the round, `$6…` the seats).
///
/// `+round_id` keeps the planner on the primary key. PostgreSQL plans a prepared statement
/// generically after five runs; with `round_id = $2` its generic plan walked the index
/// `seats_round_status` over every available seat of the round and filtered them by id:
/// 30–37 ms per hold of 2–4 chosen seats in a 100,000-seat round (`pg_stat_statements`),
/// and most of the database's CPU under load.
fn chosen_seats_sql(seats: usize) -> String {
    format!(
        "SELECT id, price FROM seats WHERE +round_id = $2 AND status = 'available' AND id IN ({})
         ORDER BY id FOR UPDATE",
        placeholders(6, seats)
    )
}

/// How many of the chosen seats are the round's (see [`chosen_seats_sql`]).
fn chosen_known_sql(seats: usize) -> String {
    format!(
        "(SELECT COUNT(*) FROM seats WHERE +round_id = $2 AND id IN ({}))",
        placeholders(6, seats)
    )
}

/// [`hold_postgres`] looking only at seats from id `start` up (best available; chosen seats
/// ignore it).
async fn hold_postgres_from(
    db: &Db,
    h: NewHold,
    request: &HoldRequest,
    start: i64,
) -> Result<Hold, Attempt> {
    let NewHold {
        round_id,
        user_id,
        now,
        expires_at,
        ..
    } = h;
    let (picked, wanted) = match request {
        HoldRequest::Seats(ids) => (
            chosen_seats_sql(ids.as_slice().len()),
            ids.as_slice().len() as i64,
        ),
        HoldRequest::Quantity(q) => (
            "SELECT id, price FROM seats WHERE round_id = $2 AND status = 'available' AND id >= $6
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
                .to_owned(),
            i64::from(q.get()),
        ),
    };
    // On failure the same statement says why, from the same snapshot: whether the round
    // exists and, for chosen seats, how many of them are the round's. One round trip, where a
    // second query used to explain every refusal (most holds of a flash sale).
    let known = match request {
        HoldRequest::Seats(ids) => chosen_known_sql(ids.as_slice().len()),
        HoldRequest::Quantity(_) => "CAST(0 AS BIGINT)".to_owned(),
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
         SELECT h.id AS hold_id, upd.id AS seat_id, upd.price AS price,
                CAST(1 AS BIGINT) AS rounds, CAST(0 AS BIGINT) AS known
         FROM h, upd
         UNION ALL
         SELECT NULL, NULL, NULL, (SELECT COUNT(*) FROM rounds WHERE id = $2), {known}
         WHERE NOT EXISTS (SELECT 1 FROM h)
         ORDER BY seat_id"
    );
    let mut q = sqlx::query(&sql)
        .bind(user_id)
        .bind(round_id)
        .bind(wanted)
        .bind(now)
        .bind(expires_at);
    match request {
        HoldRequest::Seats(ids) => {
            for seat in ids.as_slice() {
                q = q.bind(*seat);
            }
        }
        HoldRequest::Quantity(_) => q = q.bind(start),
    }
    let rows = {
        let mut conn = db.acquire_write().await?;
        q.fetch_all(&mut *conn).await?
    };
    let Some(first) = rows.first() else {
        return Err(Attempt::Final(ApiError::internal(
            "the hold statement returned no row",
        )));
    };
    let Some(id) = first.try_get::<Option<i64>, _>("hold_id")? else {
        // Nothing was written: why not.
        let rounds: i64 = first.try_get("rounds")?;
        let known: i64 = first.try_get("known")?;
        return Err(Attempt::Final(if rounds == 0 {
            ApiError::not_found("round")
        } else if matches!(request, HoldRequest::Seats(ids) if known != ids.as_slice().len() as i64)
        {
            unknown_seats()
        } else {
            seats_unavailable()
        }));
    };
    let mut ids = Vec::with_capacity(rows.len());
    let mut amount = 0;
    for row in &rows {
        ids.push(row.try_get::<i64, _>("seat_id")?);
        amount += row.try_get::<i64, _>("price")?;
    }
    debug_assert_eq!(ids.len() as i64, wanted);
    Ok(placed(id, round_id, user_id, amount, expires_at, ids))
}

/// One conditional update that must take every seat, guarded by the unique index.
pub(super) async fn hold(db: &Db, h: NewHold, request: &HoldRequest) -> Result<Hold, Attempt> {
    let NewHold {
        round_id,
        user_id,
        expires_at,
        ..
    } = h;
    let mut tx = db.begin_write().await?;
    let id = insert_hold(tx.conn(), h, 0, 0).await?;
    let (sql, wanted) = match request {
        HoldRequest::Seats(ids) => (
            format!(
                "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
                 WHERE +round_id = $2 AND status = 'available' AND id IN ({}) RETURNING id, price",
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
    Ok(placed(id, round_id, user_id, amount, expires_at, ids))
}

#[cfg(test)]
mod tests {
    use super::{chosen_known_sql, chosen_seats_sql};

    /// The generic plan of a chosen-seat hold (what PostgreSQL runs after a prepared statement's
    /// fifth execution) looks the seats up by primary key, not by walking the round's seats.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chosen_seats_are_looked_up_by_id_in_postgres_generic_plans() {
        let pg = compose::LocalPostgres::start()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL for tests: {e:#}"));
        let url = pg.create_database().await.unwrap();
        let db = crate::store::Db::connect(&url, 2).await.unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        for sql in [
            "INSERT INTO venues (name, capacity, created_at) VALUES ('v', 20000, 0)",
            "INSERT INTO events (title, venue_id, created_at) VALUES ('e', 1, 0)",
            "INSERT INTO rounds (event_id, starts_at, capacity, prices, created_at) VALUES (1, 0, 20000, '{}', 0)",
            "INSERT INTO seats (round_id, label, section, row_label, number, tier, price)
             SELECT 1, 'S' || n, 'S', 'R', n, 'std', 1000 FROM generate_series(1, 20000) AS n",
            "ANALYZE seats",
            "SET plan_cache_mode = force_generic_plan",
        ] {
            sqlx::query(sql).execute(&mut *conn).await.unwrap();
        }
        for seats in [1, 2, 4] {
            for (name, body) in [
                ("pick", chosen_seats_sql(seats)),
                ("known", format!("SELECT {}", chosen_known_sql(seats))),
            ] {
                // $1 and $3..$5 are the hold's other parameters (unused here, typed).
                let types = vec!["bigint"; 5 + seats].join(", ");
                sqlx::query(&format!("PREPARE {name}{seats} ({types}) AS {body}"))
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                let args = std::iter::once("1".to_owned())
                    .chain(["1", "1", "0", "0"].map(str::to_owned))
                    .chain((0..seats).map(|i| (10_000 + i).to_string()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let plan: Vec<String> =
                    sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}{seats} ({args})"))
                        .fetch_all(&mut *conn)
                        .await
                        .unwrap();
                let plan = plan.join("\n");
                assert!(
                    plan.contains("seats_pkey") && !plan.contains("seats_round_status"),
                    "the {name} of {seats} chosen seats does not look them up by id:\n{plan}"
                );
            }
        }
    }
}

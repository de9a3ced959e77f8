//! Group commit of `atomic` holds on SQLite (the single-writer principle).
//!
//! SQLite has one write lock per database. Holds that queue for it one by one spend their
//! time waiting: each hand-over wakes one task, which runs its statements one round trip at a
//! time while everyone behind it waits. Instead, holds that can still succeed (a read has
//! already answered the hopeless ones, see [`super::holds`]) go to one writer task, which
//! takes every hold waiting at that moment, decides them in arrival order inside one
//! `BEGIN IMMEDIATE` transaction, writes the winners in bulk and commits once.
//!
//! The guarantees are the `atomic` strategy's: the seats are read under the write lock, each
//! winner's seats are taken by a conditional `UPDATE … WHERE status = 'available'` that must
//! touch every one of them, and the unique index on live `hold_seats.guard` is the last guard.
//! If the database disagrees with a decision (an update touched fewer rows, the index fired,
//! a statement failed), the whole batch is rolled back and each of its holds is placed on its
//! own instead: the database stays the arbiter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use super::holds::{hold, seats_unavailable, unknown_seats, Hold, HoldRequest};
use super::{placeholders, Writer};
use crate::domain::Strategy;
use crate::error::ApiError;

/// Most holds decided in one transaction, and the seats they may ask for at most (beyond
/// one hold's): bounds of the statements' parameter counts.
const MAX_BATCH: usize = 64;
const MAX_SEATS: usize = 1000;

/// A hold waiting for the writer.
#[derive(Debug)]
pub(crate) struct Job {
    pub round_id: i64,
    pub user_id: i64,
    pub request: HoldRequest,
    pub now: i64,
    pub expires_at: i64,
    pub reply: oneshot::Sender<Outcome>,
}

/// The writer's answer to one hold.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Placed and committed.
    Placed(Hold),
    /// Refused under the write lock (409 taken, 422 not the round's seats); nothing written.
    Refused(ApiError),
    /// The batch failed as a whole and wrote nothing: place this hold on its own.
    Alone,
}

/// Starts the writer task; holds are sent to the returned queue. The task ends when every
/// sender is gone.
pub(crate) fn spawn(writer: Arc<Writer>) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(writer, rx));
    tx
}

fn seat_count(job: &Job) -> usize {
    match &job.request {
        HoldRequest::Seats(ids) => ids.as_slice().len(),
        HoldRequest::Quantity(q) => q.get() as usize,
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Job>, jobs: &mut Vec<Job>) {
    let mut seats: usize = jobs.iter().map(seat_count).sum();
    while jobs.len() < MAX_BATCH && seats < MAX_SEATS {
        match rx.try_recv() {
            Ok(job) => {
                seats += seat_count(&job);
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
}

async fn run(writer: Arc<Writer>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        drain(&mut rx, &mut jobs);
        let mut tx = match writer.begin(false).await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, "hold writer: no write transaction; placing holds one by one");
                answer_alone(jobs);
                continue;
            }
        };
        // Holds that arrived while the write lock was busy join this batch.
        drain(&mut rx, &mut jobs);
        let outcomes = match decide_and_write(tx.conn(), &jobs).await {
            Ok(outcomes) => {
                let finished = if outcomes.iter().any(|o| matches!(o, Outcome::Placed(_))) {
                    tx.commit().await
                } else {
                    tx.rollback().await
                };
                match finished {
                    Ok(()) => Some(outcomes),
                    Err(e) => {
                        tracing::warn!(error = %e, "hold batch did not commit; placing its holds one by one");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "hold batch rolled back; placing its holds one by one");
                let _ = tx.rollback().await;
                None
            }
        };
        match outcomes {
            Some(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            None => answer_alone(jobs),
        }
    }
}

fn answer_alone(jobs: Vec<Job>) {
    for job in jobs {
        let _ = job.reply.send(Outcome::Alone);
    }
}

/// Why a batch was given up.
#[derive(Debug)]
enum BatchError {
    Db(sqlx::Error),
    /// A conditional update took fewer seats than the batch decided.
    Disagreed,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Db(e) => e.fmt(f),
            BatchError::Disagreed => {
                f.write_str("a conditional update did not take every seat the batch decided")
            }
        }
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        BatchError::Db(e)
    }
}

/// A seat as read under the write lock: price, and whether it is available.
type SeatState = (i64, bool);

/// Decides every job of the batch in arrival order from reads under the write lock, then
/// writes the winners: one multi-row insert of holds, one conditional update per winner, one
/// multi-row insert of claims.
async fn decide_and_write(
    conn: &mut AnyConnection,
    jobs: &[Job],
) -> Result<Vec<Outcome>, BatchError> {
    let mut by_round: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_round.entry(job.round_id).or_default().push(i);
    }
    let mut decided: Vec<Result<(Vec<i64>, i64), ApiError>> =
        jobs.iter().map(|_| Err(seats_unavailable())).collect();
    for (&round_id, members) in &by_round {
        let mut chosen: Vec<i64> = Vec::new();
        let mut quantity = 0i64;
        for &i in members {
            match &jobs[i].request {
                HoldRequest::Seats(ids) => chosen.extend_from_slice(ids.as_slice()),
                HoldRequest::Quantity(q) => quantity += i64::from(q.get()),
            }
        }
        chosen.sort_unstable();
        chosen.dedup();
        let mut seats: HashMap<i64, SeatState> = HashMap::with_capacity(chosen.len());
        if !chosen.is_empty() {
            let sql = format!(
                "SELECT id, price, status FROM seats WHERE round_id = $1 AND id IN ({})",
                placeholders(2, chosen.len())
            );
            let mut q = sqlx::query(&sql).bind(round_id);
            for id in &chosen {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let available = row.try_get::<String, _>("status")? == "available";
                seats.insert(row.try_get("id")?, (row.try_get("price")?, available));
            }
        }
        // Best-available candidates, lowest ids first: enough for every quantity even if
        // chosen seats of this batch take some of them first.
        let mut candidates: Vec<(i64, i64)> = Vec::new();
        if quantity > 0 {
            let rows = sqlx::query(
                "SELECT id, price FROM seats WHERE round_id = $1 AND status = 'available'
                 ORDER BY id LIMIT $2",
            )
            .bind(round_id)
            .bind(quantity + chosen.len() as i64)
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                candidates.push((row.try_get("id")?, row.try_get("price")?));
            }
        }
        let mut taken: HashSet<i64> = HashSet::new();
        for &i in members {
            decided[i] = match &jobs[i].request {
                HoldRequest::Seats(ids) => {
                    let ids = ids.as_slice();
                    let mut amount = 0;
                    let mut verdict = Ok(());
                    for id in ids {
                        match seats.get(id) {
                            None => {
                                verdict = Err(unknown_seats());
                                break;
                            }
                            Some(&(price, available)) => {
                                if !available || taken.contains(id) {
                                    verdict = Err(seats_unavailable());
                                }
                                amount += price;
                            }
                        }
                    }
                    verdict.map(|()| {
                        taken.extend(ids.iter().copied());
                        (ids.to_vec(), amount)
                    })
                }
                HoldRequest::Quantity(q) => {
                    let n = q.get() as usize;
                    let picked: Vec<(i64, i64)> = candidates
                        .iter()
                        .filter(|(id, _)| !taken.contains(id))
                        .take(n)
                        .copied()
                        .collect();
                    if picked.len() < n {
                        Err(seats_unavailable())
                    } else {
                        taken.extend(picked.iter().map(|s| s.0));
                        Ok((
                            picked.iter().map(|s| s.0).collect(),
                            picked.iter().map(|s| s.1).sum(),
                        ))
                    }
                }
            };
        }
    }
    let winners: Vec<usize> = (0..jobs.len()).filter(|&i| decided[i].is_ok()).collect();
    let mut hold_ids = vec![0i64; jobs.len()];
    if !winners.is_empty() {
        // Ids are given, not generated, so that the claims can be written in bulk: under the
        // write lock nobody else inserts holds.
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM holds")
            .fetch_one(&mut *conn)
            .await?
            .try_get("last")?;
        const HOLD_COLUMNS: usize = 7;
        let rows: Vec<String> = (0..winners.len())
            .map(|k| {
                let p = k * HOLD_COLUMNS;
                format!(
                    "(${}, ${}, ${}, 'active', ${}, ${}, '{}', ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    Strategy::Atomic.as_str(),
                    p + 6,
                    p + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO holds (id, round_id, user_id, status, amount, seat_count, strategy, created_at, expires_at)
             VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (k, &i) in winners.iter().enumerate() {
            let job = &jobs[i];
            let (seats, amount) = decided[i].as_ref().expect("a winner");
            hold_ids[i] = last + 1 + k as i64;
            q = q
                .bind(hold_ids[i])
                .bind(job.round_id)
                .bind(job.user_id)
                .bind(*amount)
                .bind(seats.len() as i64)
                .bind(job.now)
                .bind(job.expires_at);
        }
        q.execute(&mut *conn).await?;
        for &i in &winners {
            let (seats, _) = decided[i].as_ref().expect("a winner");
            let sql = format!(
                "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
                 WHERE round_id = $2 AND status = 'available' AND id IN ({})",
                placeholders(3, seats.len())
            );
            let mut q = sqlx::query(&sql).bind(hold_ids[i]).bind(jobs[i].round_id);
            for id in seats {
                q = q.bind(*id);
            }
            if q.execute(&mut *conn).await?.rows_affected() != seats.len() as u64 {
                return Err(BatchError::Disagreed);
            }
        }
        let mut claims: Vec<(i64, i64, i64)> = Vec::new();
        for &i in &winners {
            let (seats, _) = decided[i].as_ref().expect("a winner");
            claims.extend(seats.iter().map(|s| (hold_ids[i], *s, jobs[i].round_id)));
        }
        let rows: Vec<String> = (0..claims.len())
            .map(|k| {
                format!(
                    "(${}, ${}, ${}, 1, ${})",
                    3 * k + 1,
                    3 * k + 2,
                    3 * k + 3,
                    3 * k + 2
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO hold_seats (hold_id, seat_id, round_id, live, guard) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (hold_id, seat, round) in &claims {
            q = q.bind(*hold_id).bind(*seat).bind(*round);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(jobs
        .iter()
        .zip(decided)
        .zip(hold_ids)
        .map(|((job, d), id)| match d {
            Ok((seats, amount)) => Outcome::Placed(hold(
                id,
                job.round_id,
                job.user_id,
                amount,
                job.expires_at,
                seats,
            )),
            Err(e) => Outcome::Refused(e),
        })
        .collect())
}

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
//!
//! A batch runs as one inline transaction (`super::inline`): its reads and writes go to
//! SQLite from the writer task's thread without yielding, so the write lock is held for the
//! statements' time only. Without an inline writer (an in-memory database) holds are placed
//! one by one.
//!
//! PostgreSQL has its own writers ([`postgres`]): the same queue and outcomes, decided by the
//! database inside one statement per round.

pub(crate) mod postgres;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rusqlite::params_from_iter;
use tokio::sync::{mpsc, oneshot};

use super::holds::{hold, seats_unavailable, unknown_seats, Hold, HoldRequest};
use super::inline::InlineWriter;
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
    /// The answer to give: refused under the write lock or the rows' locks (409 taken, 422 not
    /// the round's seats; nothing written), or on PostgreSQL a 503 when the batch's commit went
    /// unanswered (it may have taken effect).
    Refused(ApiError),
    /// Nothing was written for this hold and the batch did not decide it (its batch failed as
    /// a whole, or on PostgreSQL it needs the single path's answer): place it on its own.
    Alone,
}

/// Starts the writer task; holds are sent to the returned queue. The task ends when every
/// sender is gone.
pub(crate) fn spawn(
    writer: Arc<Writer>,
    inline: Option<Arc<InlineWriter>>,
) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(writer, inline, rx));
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

async fn run(
    writer: Arc<Writer>,
    inline: Option<Arc<InlineWriter>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        drain(&mut rx, &mut jobs);
        // A batch is one inline transaction (see `super::inline`); without an inline writer
        // (an in-memory database) each hold is placed on its own.
        let (Some(inline), Some(lock)) = (&inline, &writer.sqlite_lock) else {
            answer_alone(jobs);
            continue;
        };
        let waiting = std::time::Instant::now();
        let turn = lock.lock().await;
        writer.observe_acquire(waiting);
        // Holds that arrived while the write lock was busy join this batch.
        drain(&mut rx, &mut jobs);
        writer.observe_batch(jobs.len());
        let outcomes = inline.transaction(|tx| decide_and_write(tx, &jobs));
        drop(turn);
        match outcomes {
            Some(Ok(outcomes)) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "hold batch rolled back; placing its holds one by one");
                answer_alone(jobs);
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
    Db(rusqlite::Error),
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

impl From<rusqlite::Error> for BatchError {
    fn from(e: rusqlite::Error) -> Self {
        BatchError::Db(e)
    }
}

/// A seat as read under the write lock: price, and whether it is available.
type SeatState = (i64, bool);

/// Decides every job of the batch in arrival order from reads under the write lock, then
/// writes the winners: one multi-row insert of holds, one conditional update per winner, one
/// multi-row insert of claims. Runs inside the batch's inline transaction: an error (or a
/// disagreement) rolls the whole batch back.
fn decide_and_write(
    tx: &rusqlite::Transaction<'_>,
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
                "SELECT id, price, status FROM seats WHERE +round_id = $1 AND id IN ({})",
                placeholders(2, chosen.len())
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(
                std::iter::once(&round_id).chain(chosen.iter()),
            ))?;
            while let Some(row) = rows.next()? {
                let available = row.get::<_, String>("status")? == "available";
                seats.insert(row.get("id")?, (row.get("price")?, available));
            }
        }
        // Best-available candidates, lowest ids first: enough for every quantity even if
        // chosen seats of this batch take some of them first.
        let mut candidates: Vec<(i64, i64)> = Vec::new();
        if quantity > 0 {
            let mut stmt = tx.prepare_cached(
                "SELECT id, price FROM seats WHERE round_id = $1 AND status = 'available'
                 ORDER BY id LIMIT $2",
            )?;
            let rows = stmt.query_map((round_id, quantity + chosen.len() as i64), |row| {
                Ok((row.get("id")?, row.get("price")?))
            })?;
            for row in rows {
                candidates.push(row?);
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
        let last: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) AS last FROM holds")?
            .query_row([], |row| row.get("last"))?;
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
        let mut params: Vec<i64> = Vec::with_capacity(winners.len() * HOLD_COLUMNS);
        for (k, &i) in winners.iter().enumerate() {
            let job = &jobs[i];
            let (seats, amount) = decided[i].as_ref().expect("a winner");
            hold_ids[i] = last + 1 + k as i64;
            params.extend([
                hold_ids[i],
                job.round_id,
                job.user_id,
                *amount,
                seats.len() as i64,
                job.now,
                job.expires_at,
            ]);
        }
        tx.prepare_cached(&sql)?
            .execute(params_from_iter(params.iter()))?;
        for &i in &winners {
            let (seats, _) = decided[i].as_ref().expect("a winner");
            let sql = format!(
                "UPDATE seats SET status = 'held', hold_id = $1, booking_id = NULL, version = version + 1
                 WHERE +round_id = $2 AND status = 'available' AND id IN ({})",
                placeholders(3, seats.len())
            );
            let params = [hold_ids[i], jobs[i].round_id];
            let updated = tx
                .prepare_cached(&sql)?
                .execute(params_from_iter(params.iter().chain(seats.iter())))?;
            if updated != seats.len() {
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
        let params = claims
            .iter()
            .flat_map(|&(hold, seat, round)| [hold, seat, round]);
        tx.prepare_cached(&sql)?.execute(params_from_iter(params))?;
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

//! Group commit of `atomic` holds on PostgreSQL.
//!
//! One hold alone is one statement and one commit (`holds::atomic::hold_postgres`). Under a
//! flash sale most of PostgreSQL's work per hold is the statement's and the commit's, not the
//! rows': pgbench ran the single-hold statement at 2,900–6,900 holds/s on this 2-core machine
//! and the same writes for 8–32 holds per statement at 19,700–21,200 holds/s. So holds go to
//! [`WRITERS`] writer tasks; each takes every hold waiting at that moment and places them with
//! one statement per round and kind of request, each autocommitted on the writer's own
//! connection ([`OwnConnection`]): one round trip per statement. While one writer waits on its
//! commit, the other collects the next batch. A hold that arrives while no
//! batch is in flight is placed at once, alone. (Four or three writers placed fewer holds than
//! two: smaller batches, more commits.)
//!
//! The guarantees are the `atomic` strategy's, decided by the database in the statement:
//! - best available: the seats are locked with `FOR UPDATE SKIP LOCKED`, and the requests
//!   of the batch take them in arrival order, each all of its seats or none;
//! - chosen seats: the seats are locked with `FOR UPDATE` (in id order, so batches and single
//!   holds cannot deadlock) and re-checked after any wait. A request wins if every seat it
//!   wants was found available and no earlier request of the batch wants one of them;
//! - every winner's seats are taken by a conditional `UPDATE … WHERE status = 'available'`.
//!   If it takes fewer seats than decided, the statement fails on purpose and writes nothing;
//! - the unique index on live `hold_seats.guard` is the last guard.
//!
//! What the batch cannot decide alone goes back to be placed on its own ([`Outcome::Alone`]),
//! by the same single-hold statement as before:
//! - a request whose seats are not all the round's (422, or 404 for a missing round);
//! - one that lost only to a batch-mate that itself lost;
//! - best-available requests past the seats found (the search started at the round's hint).
//!
//! Every hold of a statement the server refused goes back the same way (it rolled back: nothing
//! was written), and so does every hold of a batch that found no connection. If the statement's
//! answer never comes (the connection lost), the holds may stand, so each gets 503
//! `database_interrupted` instead of being placed twice.
//!
//! The statements take their lists as comma-separated text, unnested in the database: the
//! pool is `Any`, which binds no arrays, and one text per list keeps one statement text (and
//! one prepared statement) whatever the batch's size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::{mpsc, Mutex};

use super::{drain, Job, Outcome};
use crate::error::{ApiError, DATABASE_INTERRUPTED};
use crate::store::holds::{hold, seats_unavailable, HoldRequest};
use crate::store::{SeatHints, Writer, PING_AFTER_TROUBLE, PING_IF_IDLE_FOR};

/// Writer tasks: one commits while another collects the next batch.
const WRITERS: usize = 2;

/// Starts the writer tasks; holds are sent to the returned queue. The tasks end when every
/// sender is gone.
pub(crate) fn spawn(writer: Arc<Writer>, hints: Arc<SeatHints>) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..WRITERS {
        tokio::spawn(run(writer.clone(), hints.clone(), rx.clone()));
    }
    tx
}

async fn run(
    writer: Arc<Writer>,
    hints: Arc<SeatHints>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
) {
    let mut own = OwnConnection::default();
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut jobs = vec![first];
            drain(&mut rx, &mut jobs);
            jobs
        };
        place(&writer, &mut own, &hints, jobs).await;
    }
}

/// A writer's own connection, taken out of the pool for good ([`PoolConnection::detach`]), so
/// a batch is one round trip: its statement, autocommitted. Through the pool a batch took four
/// (`BEGIN` with the plan setting, the statement, `COMMIT`, and the ping with which sqlx tests
/// every connection coming back to the pool); in `cargo bench -p boxoffice --bench holds` at 8
/// clients `BEGIN` alone was 180 µs of a 1.5 ms batch. The pool may so open two connections
/// beyond its `max_connections`.
///
/// The statements are prepared once per connection, but with PostgreSQL's default plan cache
/// mode they were planned again for every call (the custom plan, which knows the lists'
/// lengths, always looked cheaper than the generic one): 0.83 ms of planning for 0.37 ms of
/// execution per call (`pg_stat_statements` with `track_planning`, in the holds bench). The
/// generic plan is the right one at any length (primary-key look-ups and one index range), so
/// the connection asks for it for its whole session; no other statement runs on it.
///
/// Like the pool, it is pinged before use only where it may have died: idle a while, or just
/// after the database failed a health probe.
///
/// [`PoolConnection::detach`]: sqlx::pool::PoolConnection::detach
#[derive(Default)]
struct OwnConnection {
    conn: Option<sqlx::AnyConnection>,
    used: Option<Instant>,
}

impl OwnConnection {
    /// The connection, opened (or replaced) as needed. `None` when the database is found
    /// unreachable or no connection can be had: nothing was sent.
    async fn get(&mut self, writer: &Writer) -> Option<&mut sqlx::AnyConnection> {
        use sqlx::{Connection as _, Executor as _};
        if !writer.health.is_up() {
            return None;
        }
        let doubtful = self.used.is_none_or(|t| t.elapsed() >= PING_IF_IDLE_FOR)
            || writer.health.troubled_within(PING_AFTER_TROUBLE);
        if doubtful {
            if let Some(conn) = &mut self.conn {
                if conn.ping().await.is_err() {
                    self.conn = None;
                }
            }
        }
        if self.conn.is_none() {
            let mut conn = writer.acquire(false, Instant::now()).await.ok()?.detach();
            conn.execute("SET plan_cache_mode = force_generic_plan")
                .await
                .ok()?;
            self.conn = Some(conn);
        }
        self.used = Some(Instant::now());
        self.conn.as_mut()
    }
}

/// Places a batch: one statement per round and kind of request, chosen seats first (a
/// best-available request takes what is left; any order of concurrent requests is a valid one).
async fn place(writer: &Writer, own: &mut OwnConnection, hints: &SeatHints, jobs: Vec<Job>) {
    let mut groups: BTreeMap<(i64, bool), Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let best_available = matches!(job.request, HoldRequest::Quantity(_));
        groups
            .entry((job.round_id, best_available))
            .or_default()
            .push(job);
    }
    writer.observe_batch(groups.values().map(Vec::len).sum());
    for ((round_id, best), jobs) in groups {
        let Some(conn) = own.get(writer).await else {
            // The single-hold path gives each its own answer (503 while the database is down).
            for job in jobs {
                let _ = job.reply.send(Outcome::Alone);
            }
            continue;
        };
        let decided = if best {
            best_available(conn, hints, round_id, &jobs).await
        } else {
            chosen_seats(conn, round_id, &jobs).await
        };
        let outcomes = match decided {
            Ok(outcomes) => outcomes,
            Err(Failed::NothingWritten(e)) => {
                tracing::warn!(error = %e, holds = jobs.len(), "hold batch failed (nothing written); placing its holds one by one");
                jobs.iter().map(|_| Outcome::Alone).collect()
            }
            Err(Failed::Unknown(e)) => {
                // The statement's answer never came (or could not be read): the holds may
                // stand. Placing them again could hold seats twice for one buyer, so each gets
                // the error (503 `database_interrupted`, "it may have taken effect").
                tracing::warn!(error = %e, holds = jobs.len(), "hold batch's answer lost");
                own.conn = None;
                let answer = ApiError::unavailable(
                    DATABASE_INTERRUPTED,
                    format!("the database failed while the request ran: {e}"),
                );
                jobs.iter()
                    .map(|_| Outcome::Refused(answer.clone()))
                    .collect()
            }
        };
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }
}

/// Why a batch's statement placed nothing known.
enum Failed {
    /// The server refused the statement: it rolled back, nothing written.
    NothingWritten(sqlx::Error),
    /// The statement was sent and its answer did not come back, or could not be read.
    Unknown(sqlx::Error),
}

/// Sorts a statement's error: an answer from the server means its transaction rolled back.
fn failed(e: sqlx::Error) -> Failed {
    match e {
        e @ sqlx::Error::Database(_) => Failed::NothingWritten(e),
        e => Failed::Unknown(e),
    }
}

fn csv(values: impl Iterator<Item = i64>) -> String {
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&v.to_string());
    }
    out
}

/// The end of both statements: the holds, the seats marked held and the claims, from the
/// `assign` rows (hold id, user, times, seat, price), and a column that makes the statement
/// fail (so that it writes nothing) if the conditional update took fewer seats than assigned.
/// The failing cast's operand is not a constant, so the planner cannot fold it away early.
const WRITE_ASSIGNED: &str = "
    h AS (
        INSERT INTO holds (id, round_id, user_id, status, amount, seat_count, strategy, created_at, expires_at)
        SELECT hold_id, $1, user_id, 'active', SUM(price), COUNT(*), 'atomic', created_at, expires_at
        FROM assign GROUP BY hold_id, user_id, created_at, expires_at
        RETURNING id),
    upd AS (
        UPDATE seats s SET status = 'held', hold_id = a.hold_id, booking_id = NULL, version = s.version + 1
        FROM assign a WHERE s.id = a.seat_id AND s.status = 'available'
        RETURNING s.id),
    claims AS (
        INSERT INTO hold_seats (hold_id, seat_id, round_id, live, guard)
        SELECT hold_id, seat_id, $1, 1, seat_id FROM assign),
    checked AS (
        SELECT CASE WHEN (SELECT COUNT(*) FROM upd) = (SELECT COUNT(*) FROM assign) THEN CAST(0 AS BIGINT)
               ELSE CAST('hold batch: the update took ' || (SELECT COUNT(*) FROM upd) || ' of '
                         || (SELECT COUNT(*) FROM assign) || ' seats' AS BIGINT) END AS ok)";

/// Best-available requests of one round ($1), searching from seat id $2 up. $3…$6: users,
/// quantities, creation and expiry times, in arrival order.
const BEST_AVAILABLE_SQL: &str = "
WITH req AS (
    SELECT r.ord, r.user_id, r.qty, r.created_at, r.expires_at,
           CAST(SUM(r.qty) OVER (ORDER BY r.ord) AS BIGINT) AS upto
    FROM unnest(CAST(string_to_array($3, ',') AS BIGINT[]), CAST(string_to_array($4, ',') AS BIGINT[]),
                CAST(string_to_array($5, ',') AS BIGINT[]), CAST(string_to_array($6, ',') AS BIGINT[]))
         WITH ORDINALITY AS r(user_id, qty, created_at, expires_at, ord)),
picked AS (
    SELECT p.id, p.price, row_number() OVER (ORDER BY p.id) AS n FROM (
        SELECT id, price FROM seats WHERE round_id = $1 AND status = 'available' AND id >= $2
        ORDER BY id LIMIT (SELECT CAST(SUM(qty) AS BIGINT) FROM req) FOR UPDATE SKIP LOCKED) p),
won AS (
    SELECT req.ord, req.user_id, req.qty, req.upto, req.created_at, req.expires_at,
           nextval('holds_id_seq') AS hold_id
    FROM req WHERE req.upto <= (SELECT COUNT(*) FROM picked)),
assign AS (
    SELECT won.ord, won.hold_id, won.user_id, won.created_at, won.expires_at,
           picked.id AS seat_id, picked.price
    FROM won JOIN picked ON picked.n > won.upto - won.qty AND picked.n <= won.upto),
{WRITE_ASSIGNED}
SELECT a.ord, a.hold_id, a.seat_id, a.price, checked.ok
FROM assign a, checked ORDER BY a.ord, a.seat_id";

/// Chosen-seat requests of one round ($1). $2…$4: users, creation and expiry times, in
/// arrival order; $5, $6: which request (1-based) wants which seat.
const CHOSEN_SEATS_SQL: &str = "
WITH req AS (
    SELECT r.ord, r.user_id, r.created_at, r.expires_at
    FROM unnest(CAST(string_to_array($2, ',') AS BIGINT[]), CAST(string_to_array($3, ',') AS BIGINT[]),
                CAST(string_to_array($4, ',') AS BIGINT[]))
         WITH ORDINALITY AS r(user_id, created_at, expires_at, ord)),
want AS (
    SELECT w.ord, w.seat
    FROM unnest(CAST(string_to_array($5, ',') AS BIGINT[]), CAST(string_to_array($6, ',') AS BIGINT[])) AS w(ord, seat)),
known AS (
    SELECT id FROM seats WHERE +round_id = $1 AND id = ANY (CAST(string_to_array($6, ',') AS BIGINT[]))),
locked AS (
    SELECT id, price FROM seats
    WHERE +round_id = $1 AND status = 'available' AND id = ANY (CAST(string_to_array($6, ',') AS BIGINT[]))
    ORDER BY id FOR UPDATE),
won AS (
    SELECT req.ord, req.user_id, req.created_at, req.expires_at, nextval('holds_id_seq') AS hold_id
    FROM req
    WHERE NOT EXISTS (SELECT 1 FROM want w WHERE w.ord = req.ord AND w.seat NOT IN (SELECT id FROM locked))
      AND NOT EXISTS (SELECT 1 FROM want w JOIN want e ON e.seat = w.seat AND e.ord < w.ord
                      WHERE w.ord = req.ord)),
assign AS (
    SELECT won.ord, won.hold_id, won.user_id, won.created_at, won.expires_at,
           l.id AS seat_id, l.price
    FROM won JOIN want w ON w.ord = won.ord JOIN locked l ON l.id = w.seat),
{WRITE_ASSIGNED}
SELECT w.ord, a.hold_id, w.seat AS seat_id, COALESCE(l.price, 0) AS price,
       CAST(CASE WHEN k.id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS known,
       CAST(CASE WHEN l.id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS available,
       checked.ok
FROM want w
LEFT JOIN assign a ON a.ord = w.ord AND a.seat_id = w.seat
LEFT JOIN locked l ON l.id = w.seat
LEFT JOIN known k ON k.id = w.seat
CROSS JOIN checked
ORDER BY w.ord, w.seat";

fn sql(template: &str) -> String {
    template.replace("{WRITE_ASSIGNED}", WRITE_ASSIGNED)
}

static BEST_AVAILABLE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sql(BEST_AVAILABLE_SQL));
static CHOSEN_SEATS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sql(CHOSEN_SEATS_SQL));

/// A placed hold's rows, gathered by request (0-based arrival order).
#[derive(Default)]
struct Placed {
    hold_id: i64,
    seats: Vec<i64>,
    amount: i64,
}

fn placed_hold(job: &Job, p: Placed) -> Outcome {
    Outcome::Placed(hold(
        p.hold_id,
        job.round_id,
        job.user_id,
        p.amount,
        job.expires_at,
        p.seats,
    ))
}

/// Reads a row's 1-based request number as an index into the batch.
fn ord(row: &AnyRow, jobs: usize) -> Result<usize, sqlx::Error> {
    let ord: i64 = row.try_get("ord")?;
    usize::try_from(ord - 1)
        .ok()
        .filter(|&i| i < jobs)
        .ok_or_else(|| sqlx::Error::Protocol(format!("hold batch: request {ord} out of range")))
}

async fn best_available(
    conn: &mut sqlx::AnyConnection,
    hints: &SeatHints,
    round_id: i64,
    jobs: &[Job],
) -> Result<Vec<Outcome>, Failed> {
    let quantity = |job: &Job| match &job.request {
        HoldRequest::Quantity(q) => i64::from(q.get()),
        HoldRequest::Seats(ids) => ids.as_slice().len() as i64,
    };
    let start = hints.start(round_id);
    let rows = sqlx::query(BEST_AVAILABLE.as_str())
        .bind(round_id)
        .bind(start)
        .bind(csv(jobs.iter().map(|j| j.user_id)))
        .bind(csv(jobs.iter().map(quantity)))
        .bind(csv(jobs.iter().map(|j| j.now)))
        .bind(csv(jobs.iter().map(|j| j.expires_at)))
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
    // Committed: a row that cannot be read leaves the holds unknown.
    let read = || -> Result<HashMap<usize, Placed>, sqlx::Error> {
        let mut placed: HashMap<usize, Placed> = HashMap::new();
        for row in &rows {
            let p = placed.entry(ord(row, jobs.len())?).or_default();
            p.hold_id = row.try_get("hold_id")?;
            p.seats.push(row.try_get("seat_id")?);
            p.amount += row.try_get::<i64, _>("price")?;
        }
        Ok(placed)
    };
    let mut placed = read().map_err(Failed::Unknown)?;
    if let Some(lowest) = placed.values().flat_map(|p| p.seats.iter()).min() {
        hints.advance(round_id, start, *lowest);
    }
    if placed.len() < jobs.len() && start > 0 {
        // Too few seats from the hint up: the ones left are placed alone, from the first seat.
        hints.forget(round_id);
    }
    Ok(jobs
        .iter()
        .enumerate()
        .map(|(i, job)| match placed.remove(&i) {
            Some(p) => placed_hold(job, p),
            None => Outcome::Alone,
        })
        .collect())
}

async fn chosen_seats(
    conn: &mut sqlx::AnyConnection,
    round_id: i64,
    jobs: &[Job],
) -> Result<Vec<Outcome>, Failed> {
    let wanted: Vec<(i64, i64)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, job)| match &job.request {
            HoldRequest::Seats(ids) => ids.as_slice().iter().map(|&s| (i as i64 + 1, s)).collect(),
            HoldRequest::Quantity(_) => Vec::new(),
        })
        .collect();
    let rows = sqlx::query(CHOSEN_SEATS.as_str())
        .bind(round_id)
        .bind(csv(jobs.iter().map(|j| j.user_id)))
        .bind(csv(jobs.iter().map(|j| j.now)))
        .bind(csv(jobs.iter().map(|j| j.expires_at)))
        .bind(csv(wanted.iter().map(|w| w.0)))
        .bind(csv(wanted.iter().map(|w| w.1)))
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
    #[derive(Default)]
    struct Seen {
        placed: Placed,
        won: bool,
        unknown: bool,
        taken: bool,
        seats: Vec<i64>,
    }
    // Committed: a row that cannot be read leaves the holds unknown.
    let read = || -> Result<Vec<Seen>, sqlx::Error> {
        let mut seen: Vec<Seen> = jobs.iter().map(|_| Seen::default()).collect();
        for row in &rows {
            let s = &mut seen[ord(row, jobs.len())?];
            let seat: i64 = row.try_get("seat_id")?;
            s.seats.push(seat);
            if let Some(hold_id) = row.try_get::<Option<i64>, _>("hold_id")? {
                s.won = true;
                s.placed.hold_id = hold_id;
                s.placed.seats.push(seat);
                s.placed.amount += row.try_get::<i64, _>("price")?;
            }
            s.unknown |= row.try_get::<i64, _>("known")? == 0;
            s.taken |= row.try_get::<i64, _>("available")? == 0;
        }
        Ok(seen)
    };
    let seen = read().map_err(Failed::Unknown)?;
    let won_seats: HashSet<i64> = seen
        .iter()
        .filter(|s| s.won)
        .flat_map(|s| s.seats.iter().copied())
        .collect();
    Ok(jobs
        .iter()
        .zip(seen)
        .map(|(job, s)| {
            if s.won {
                placed_hold(job, s.placed)
            } else if s.unknown {
                // Not the round's seats, or no such round: the single path says which.
                Outcome::Alone
            } else if s.taken || s.seats.iter().any(|seat| won_seats.contains(seat)) {
                // Held or sold when locked, or given to an earlier hold of this batch.
                Outcome::Refused(seats_unavailable())
            } else {
                // It lost only to a batch-mate that lost too.
                Outcome::Alone
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Quantity, SeatIds};
    use crate::store::Db;
    use tokio::sync::oneshot;

    fn job(round_id: i64, request: HoldRequest) -> (Job, oneshot::Receiver<Outcome>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            round_id,
            user_id: 1,
            request,
            now: 1_000,
            expires_at: 61_000,
            reply,
        };
        (job, answer)
    }

    fn seats(ids: &[i64]) -> HoldRequest {
        HoldRequest::Seats(SeatIds::parse(ids, 10).unwrap())
    }

    fn quantity(n: i64) -> HoldRequest {
        HoldRequest::Quantity(Quantity::parse(n, 10).unwrap())
    }

    /// What one batch decides, against a real PostgreSQL: each kind of request of the module's
    /// docs in one batch, and the rows it leaves.
    #[tokio::test]
    async fn one_batch_decides_every_kind_of_request_as_the_database_finds_the_seats() {
        let url = compose::fresh_postgres_database()
            .await
            .expect("PostgreSQL for tests (apt-get install -y postgresql)");
        let db = Db::connect(&url, 4).await.unwrap();
        let batches = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
            "batches",
            "holds per batch",
        ))
        .unwrap();
        db.observe_hold_batches(batches.clone());
        for sql in [
            "INSERT INTO users (email, name, password_hash, created_at) VALUES ('a@example.com', 'a', 'x', 0)",
            "INSERT INTO venues (name, capacity, created_at) VALUES ('v', 8, 0)",
            "INSERT INTO events (title, venue_id, created_at) VALUES ('e', 1, 0)",
            "INSERT INTO rounds (event_id, starts_at, capacity, prices, created_at) VALUES (1, 0, 6, '{}', 0), (1, 0, 2, '{}', 0)",
            "INSERT INTO seats (round_id, label, section, row_label, number, tier, price)
             SELECT CASE WHEN g <= 6 THEN 1 ELSE 2 END, 'S' || g, 'S', 'R', g, 'std', 1000 * g
             FROM generate_series(1, 8) g",
            // Seat 6 is held already.
            "UPDATE seats SET status = 'held' WHERE id = 6",
        ] {
            sqlx::query(sql).execute(&db.pool).await.unwrap();
        }
        let requests = [
            (1, seats(&[1, 2])), // placed
            (1, seats(&[2, 3])), // seat 2 goes to the first request: refused
            (1, seats(&[3])),    // lost only to a batch-mate that lost: alone
            (1, seats(&[6])),    // held: refused
            (1, seats(&[7])),    // another round's seat: alone (the single path says 422)
            (1, quantity(2)),    // seats 3 and 4, after the chosen seats
            (1, quantity(5)),    // one seat is left: alone
            (999, quantity(1)),  // no such round: alone (the single path says 404)
        ];
        let (jobs, answers): (Vec<_>, Vec<_>) =
            requests.into_iter().map(|(r, q)| job(r, q)).unzip();
        place(
            &db.writer,
            &mut OwnConnection::default(),
            &db.seat_hints,
            jobs,
        )
        .await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(match answer.await.unwrap() {
                Outcome::Placed(h) => format!("placed {:?} {}", h.seat_ids, h.amount),
                Outcome::Refused(e) => format!("refused {}", e.code),
                Outcome::Alone => "alone".to_owned(),
            });
        }
        assert_eq!(
            (batches.get_sample_count(), batches.get_sample_sum()),
            (1, 8.0)
        );
        assert_eq!(
            got,
            [
                "placed [1, 2] 3000",
                "refused seats_unavailable",
                "alone",
                "refused seats_unavailable",
                "alone",
                "placed [3, 4] 7000",
                "alone",
                "alone",
            ]
        );
        let rows: Vec<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT id, status, hold_id FROM seats ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        let held: Vec<i64> = rows.iter().filter(|r| r.1 == "held").map(|r| r.0).collect();
        assert_eq!(held, [1, 2, 3, 4, 6]);
        let claims: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT h.seat_count, h.amount, COUNT(c.seat_id)
             FROM holds h JOIN hold_seats c ON c.hold_id = h.id AND c.live = 1 AND c.guard = c.seat_id
             GROUP BY h.id ORDER BY h.id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(claims, [(2, 3000, 2), (2, 7000, 2)]);
        // Each placed seat points at its hold.
        assert!(rows.iter().filter(|r| r.0 <= 4).all(|r| r.2.is_some()));
    }
}

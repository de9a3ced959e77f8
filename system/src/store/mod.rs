//! The database: PostgreSQL or SQLite through sqlx's `Any` driver, so that each query is
//! written once (both accept `$1` placeholders and `RETURNING`). Where the dialects differ
//! (row locks, `SKIP LOCKED`, how a write transaction starts) the code asks [`Db::backend`].
//!
//! On an SQLite file (the embedded stack) the hottest reads and write transactions also run
//! inline through rusqlite, with the same SQL text (`inline.rs`); everything else, and every
//! fallback, goes through sqlx.
//!
//! On PostgreSQL the hottest writes are one autocommitted statement each, with data-modifying
//! CTEs instead of a transaction's round trips: an `atomic` hold (`holds/atomic.rs`), a booking
//! without a coupon, which reads its hold itself, and a payment's confirmation (`bookings.rs`).
//! A row read with its seats brings them in the same round trip (`holds::seat_list_sql!`), the
//! ledger records a consumer's batch with one `INSERT`, and a pooled connection is pinged
//! before use only when it may have died (see [`Db::connect`]'s pool options).
//!
//! Times are epoch milliseconds and money is minor units, both `BIGINT`, because the `Any`
//! driver carries only plain integers, floats and text across both backends.
//!
//! One file per aggregate: [`users`], [`catalog`] (venues, events, rounds, seats), [`holds`]
//! (the concurrency strategies), [`bookings`] (bookings and payments), [`coupons`], and
//! [`audit`], which reads invariants straight from the tables; [`outbox`] holds the events
//! written with each state change and the ledger's projection.

pub mod audit;
pub mod bookings;
pub mod catalog;
mod checkpoint;
pub mod coupons;
pub mod health;
mod hold_batch;
pub mod holds;
pub(crate) mod inline;
pub mod outbox;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

/// A pooled connection idle this long is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// For this long after the database failed a health probe, every pooled connection is pinged
/// before it is handed out (and replaced if the ping fails).
const PING_AFTER_TROUBLE: Duration = Duration::from_secs(10);

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (the real stacks).
    Postgres,
    /// SQLite (the embedded stack).
    Sqlite,
}

impl Backend {
    /// `postgres` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The backend a connection talks to.
    pub fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// A subquery over the elements of the JSON array bound as parameter `$n` (one column;
/// `BIGINT` when `ints`), for `IN (…)` or `INSERT … SELECT` over a list of any length with
/// one statement text. With a placeholder per element each length was a statement of its own,
/// and sqlx keeps 100 prepared statements per connection: the outbox's, the ledger's and the
/// notifier's batches (1 to 500 rows) kept evicting them, and a statement not in the cache
/// costs a parse round trip and a plan. Bind the list with [`json_list`].
pub(crate) fn json_elements(backend: Backend, n: usize, ints: bool) -> String {
    match (backend, ints) {
        (Backend::Postgres, true) => {
            format!(
                "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(${n} AS json))"
            )
        }
        (Backend::Postgres, false) => {
            format!("SELECT value FROM json_array_elements_text(CAST(${n} AS json))")
        }
        (Backend::Sqlite, _) => format!("SELECT value FROM json_each(${n})"),
    }
}

/// `column` is one of the elements of the JSON array bound at `$n` (read as `BIGINT` when
/// `ints`): a predicate for `WHERE`, one statement text for a list of any length.
///
/// On PostgreSQL this is `= ANY(ARRAY(…))`, not `IN (SELECT …)`: the planner cannot see the
/// array's length and guesses 100 rows for the function, so `IN` was planned as a hash semi
/// join over a sequential scan of the table while the table was small, and the prepared
/// statement kept that plan as the table grew (the relay's `mark_sent` took 7.7 ms on a
/// 50,000-row outbox, half a core at 400 buyers/s). An array is an index condition whatever
/// the table's size.
pub(crate) fn json_in(backend: Backend, column: &str, n: usize, ints: bool) -> String {
    match backend {
        Backend::Postgres => format!("{column} = ANY(ARRAY({}))", json_elements(backend, n, ints)),
        Backend::Sqlite => format!("{column} IN ({})", json_elements(backend, n, ints)),
    }
}

/// `items` as the JSON array [`json_elements`] reads.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A connection pool and what it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    /// The pool. On SQLite it serves reads (and the `naive` strategy's autocommitted
    /// statements); write transactions have a connection of their own (see [`Db::begin_write`]).
    pub pool: AnyPool,
    /// The backend behind it.
    pub backend: Backend,
    /// Where write transactions start.
    writer: Arc<Writer>,
    /// The queue of the group-commit writers of `atomic` holds (started on first use; they
    /// stop when the last clone of this `Db` is dropped).
    hold_queue: Arc<OnceLock<tokio::sync::mpsc::UnboundedSender<hold_batch::Job>>>,
    /// Whether the database answers (see [`health`]).
    health: health::DbHealth,
    /// Where best-available searches of each round start (see [`SeatHints`]).
    seat_hints: Arc<SeatHints>,
    /// How the health watcher connects (PostgreSQL only).
    probe: Option<AnyConnectOptions>,
    /// Synchronous reads of the hottest queries (a file-backed SQLite database only).
    inline: Option<Arc<inline::InlineReads>>,
    /// Write transactions run without yielding (a file-backed SQLite database only).
    inline_writer: Option<Arc<inline::InlineWriter>>,
    /// Checkpoints the WAL off the write path (a file-backed SQLite database only).
    _checkpointer: Option<checkpoint::Checkpointer>,
}

/// Where a best-available search of a round starts (PostgreSQL `atomic` holds).
///
/// Best available takes the lowest free seat ids. A search from the round's first seat walks
/// every seat already held or sold, in id order, before it finds a free one: a hold late in a
/// 100,000-seat sale filtered out thousands of rows (and `FOR UPDATE SKIP LOCKED` had to
/// look at each). Each search that placed a hold proves that the seats below the lowest one
/// it took were taken (or locked by a concurrent hold) at that moment, so the next search
/// starts there. Seats released below that point (an expired or released hold, a concurrent
/// hold that failed) are found again by the next search from the first seat: one every
/// [`SeatHints::FRESH_FOR`], and at once whenever a search from the hint finds too few. The
/// database still decides every hold; a hint only chooses where to look first.
#[derive(Debug, Default)]
pub(crate) struct SeatHints(std::sync::Mutex<std::collections::HashMap<i64, SeatHint>>);

#[derive(Debug, Clone, Copy)]
struct SeatHint {
    /// The lowest seat id a search may need to look at.
    from: i64,
    /// When the last search from the round's first seat set it.
    since: std::time::Instant,
}

impl SeatHints {
    /// How long a hint stands before a search starts from the first seat again.
    pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);

    /// Where the next search of `round` starts (0: from its first seat).
    pub(crate) fn start(&self, round: i64) -> i64 {
        let hints = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match hints.get(&round) {
            Some(h) if h.since.elapsed() < Self::FRESH_FOR => h.from,
            _ => 0,
        }
    }

    /// A search that started at `started` took seats from `lowest` up: later searches may
    /// start at `lowest`.
    pub(crate) fn advance(&self, round: i64, started: i64, lowest: i64) {
        let mut hints = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match hints.get_mut(&round) {
            Some(h) if started > 0 || h.since.elapsed() < Self::FRESH_FOR => {
                h.from = h.from.max(lowest);
            }
            _ if started == 0 => {
                hints.insert(
                    round,
                    SeatHint {
                        from: lowest,
                        since: now,
                    },
                );
            }
            _ => {}
        }
    }

    /// A search from the hint found too few seats: the next one starts from the first seat.
    pub(crate) fn forget(&self, round: i64) {
        let mut hints = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hints.remove(&round);
    }
}

/// Where write transactions start: the pool they take a connection from and, on SQLite, the
/// in-process queue in front of the database's only write lock.
#[derive(Debug)]
pub(crate) struct Writer {
    /// PostgreSQL: the shared pool. SQLite: a pool of one connection used only for write
    /// transactions, so that a writer holding the write lock never queues for a connection
    /// behind readers (in WAL mode readers do not block the writer, nor it them).
    pool: AnyPool,
    /// SQLite allows one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler (which sleeps in growing steps) keeps latency flat under contention.
    sqlite_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Where [`Writer::begin`] records how long it waited for a pooled connection (set once
    /// by the application).
    acquire_seconds: OnceLock<prometheus::Histogram>,
    /// Where the group-commit writers record how many holds each batch decided (set once by
    /// the application).
    batch_holds: OnceLock<prometheus::Histogram>,
    /// Writers waiting for a connection give up when the database is found unreachable.
    health: health::DbHealth,
}

/// The SQLite URL of the embedded database inside `data_dir`.
pub fn embedded_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("boxoffice.db").display()
    )
}

impl Db {
    /// Connects (creating an SQLite file if needed) and runs the embedded migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use postgres://… or sqlite://…");
        };
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_owned()
        };
        let options = AnyConnectOptions::from_str(&url).context("Failed to parse database URL")?;
        let health = health::DbHealth::default();
        let pool_options = || {
            let alive = health.clone();
            let troubled = health.clone();
            AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection coming back to the pool and, by default, again
                // when it is taken out: with the statement, three round trips for one. The
                // ping on release stays; the one on acquire runs only where the connection
                // may have died since: idle a while, or the database just failed a probe (a
                // restart or a failover cut every pooled connection).
                .test_before_acquire(false)
                .before_acquire(move |conn, meta| {
                    let ping = meta.idle_for >= PING_IF_IDLE_FOR
                        || troubled.troubled_within(PING_AFTER_TROUBLE);
                    Box::pin(async move {
                        if ping {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                // A connection back in the pool finished its work: the database answers (a
                // sign of life the health watcher weighs against a slow probe).
                .after_release(move |_conn, _meta| {
                    alive.answered();
                    Box::pin(async { Ok(true) })
                })
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 30000",
                                "PRAGMA foreign_keys = ON",
                                // A large sale's seats outgrow SQLite's default 2 MiB page
                                // cache per connection (each miss is a read() and a copy).
                                "PRAGMA cache_size = -16384",
                                // Checkpoints run off the write path (see `checkpoint`).
                                checkpoint::NO_AUTOCHECKPOINT,
                            ] {
                                conn.execute(pragma).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let failed = || format!("Failed to connect to the {} database", backend.as_str());
        let pool = pool_options()
            .max_connections(max_connections.max(1))
            .connect_with(options.clone())
            .await
            .with_context(failed)?;
        let probe = (backend == Backend::Postgres).then(|| options.clone());
        // Every write to SQLite queues here, and so does the checkpointer's restart of the WAL.
        let sqlite_lock: checkpoint::WriterLock = Arc::default();
        let writer = match backend {
            Backend::Postgres => Writer {
                pool: pool.clone(),
                sqlite_lock: None,
                acquire_seconds: OnceLock::new(),
                batch_holds: OnceLock::new(),
                health: health.clone(),
            },
            Backend::Sqlite => Writer {
                pool: pool_options()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .with_context(failed)?,
                sqlite_lock: Some(sqlite_lock.clone()),
                acquire_seconds: OnceLock::new(),
                batch_holds: OnceLock::new(),
                health: health.clone(),
            },
        };
        let db = Db {
            pool,
            backend,
            writer: Arc::new(writer),
            hold_queue: Arc::default(),
            health,
            seat_hints: Arc::default(),
            probe,
            inline: None,
            inline_writer: None,
            _checkpointer: None,
        };
        let db = match backend {
            Backend::Sqlite => match inline::InlineReads::for_url(&url) {
                Some(reads) => Db {
                    _checkpointer: Some(
                        checkpoint::Checkpointer::start(reads.path(), sqlite_lock.clone())
                            .context("starting the SQLite checkpointer")?,
                    ),
                    inline_writer: Some(Arc::new(inline::InlineWriter::beside(&reads))),
                    inline: Some(Arc::new(reads)),
                    ..db
                },
                None => db,
            },
            Backend::Postgres => db,
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Whether the database answers, as the health watcher last saw it.
    pub fn health(&self) -> &health::DbHealth {
        &self.health
    }

    /// Starts the health watcher (PostgreSQL only; SQLite is a local file), which records
    /// reachability in `gauge` and stops when `stop` turns true.
    pub fn watch_health(
        &self,
        gauge: prometheus::IntGauge,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let options = self.probe.clone()?;
        Some(tokio::spawn(
            self.health.clone().watch(options, gauge, stop),
        ))
    }

    /// Records the connection waits of write transactions in `histogram` from now on (the
    /// first call wins).
    pub fn observe_acquire(&self, histogram: prometheus::Histogram) {
        let _ = self.writer.acquire_seconds.set(histogram);
    }

    /// Records the size of every group commit of `atomic` holds in `histogram` from now on
    /// (the first call wins).
    pub fn observe_hold_batches(&self, histogram: prometheus::Histogram) {
        let _ = self.writer.batch_holds.set(histogram);
    }

    /// Closes the pools (waiting for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.pool.close().await;
    }

    /// Where best-available searches of each round start.
    pub(crate) fn seat_hints(&self) -> &SeatHints {
        &self.seat_hints
    }

    /// Synchronous reads on the calling thread, where the database allows them (see
    /// [`inline`]).
    pub(crate) fn inline(&self) -> Option<&inline::InlineReads> {
        self.inline.as_deref()
    }

    /// Runs `work` as one write transaction without yielding between its statements (SQLite
    /// files; see [`inline`]): after the in-process write lock, `BEGIN IMMEDIATE`, `work`,
    /// then `COMMIT` if it returned `Ok` (else `ROLLBACK`). `None` when the database is not
    /// one (or its connection cannot be opened): nothing ran, use [`Db::begin_write`].
    pub(crate) async fn write_inline<T, E: From<rusqlite::Error>>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        let writer = self.inline_writer.as_ref()?;
        let lock = self.writer.sqlite_lock.as_ref()?;
        let waiting = std::time::Instant::now();
        let _turn = lock.lock().await;
        self.writer.observe_acquire(waiting);
        writer.transaction(work)
    }

    /// The queue of the group-commit writers of `atomic` holds, started on first use (see
    /// [`hold_batch`] for SQLite and [`hold_batch::postgres`] for PostgreSQL).
    pub(crate) fn hold_queue(&self) -> &tokio::sync::mpsc::UnboundedSender<hold_batch::Job> {
        self.hold_queue.get_or_init(|| match self.backend {
            Backend::Sqlite => hold_batch::spawn(self.writer.clone(), self.inline_writer.clone()),
            Backend::Postgres => {
                hold_batch::postgres::spawn(self.writer.clone(), self.seat_hints.clone())
            }
        })
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => &PG_MIGRATOR,
            Backend::Sqlite => &SQLITE_MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .context("Failed to run database migrations")
    }

    /// Starts a write transaction. On PostgreSQL a plain `BEGIN` (read committed); on SQLite
    /// `BEGIN IMMEDIATE` after taking the in-process writer lock, so that a transaction that
    /// reads before it writes never fails to upgrade its lock.
    ///
    /// While the database is found unreachable it fails with [`BeginError::Down`] before
    /// starting anything, which the API answers as a definite refusal (503
    /// `database_unavailable`). So a request must call it only for its first write: one that
    /// has already changed something uses [`Db::begin_write_patient`].
    pub async fn begin_write(&self) -> Result<WriteTx, BeginError> {
        self.writer.begin(false).await
    }

    /// A pooled connection for a request's first write when it is one autocommitted statement
    /// (PostgreSQL's `atomic` hold): like [`Db::begin_write`], it fails with
    /// [`BeginError::Down`] before sending anything while the database is found unreachable.
    /// PostgreSQL only: SQLite's writes go through [`Db::begin_write`] and its writer lock.
    pub async fn acquire_write(&self) -> Result<PoolConnection<Any>, BeginError> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        self.writer.acquire(false, std::time::Instant::now()).await
    }

    /// [`Db::acquire_write`] for a caller that has already changed something outside the
    /// database and must record it (see [`Db::begin_write_patient`]). PostgreSQL only.
    pub async fn acquire_write_patient(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        self.writer
            .acquire(true, std::time::Instant::now())
            .await
            .map_err(sqlx::Error::from)
    }

    /// [`Db::begin_write`] for a caller that has already changed something outside the
    /// database (captured or refunded a payment) and must record it: it waits for a
    /// connection up to the pool's timeout even while the database is found unreachable,
    /// instead of failing fast, so a short outage does not strand a capture.
    pub async fn begin_write_patient(&self) -> Result<WriteTx, sqlx::Error> {
        self.writer.begin(true).await.map_err(sqlx::Error::from)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await
    }

    /// ` FOR UPDATE` on PostgreSQL, nothing on SQLite (whose write transactions already hold
    /// the database's only write lock).
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

impl Writer {
    /// A pooled connection for a write. Unless `patient`, a database that stops answering
    /// fails the wait at once ([`BeginError::Down`]), not after the pool's acquire timeout.
    /// Records how long a write waited for its connection since `waiting`.
    pub(crate) fn observe_acquire(&self, waiting: std::time::Instant) {
        if let Some(h) = self.acquire_seconds.get() {
            h.observe(waiting.elapsed().as_secs_f64());
        }
    }

    /// Records one group commit of `batch` holds.
    pub(crate) fn observe_batch(&self, batch: usize) {
        if let Some(h) = self.batch_holds.get() {
            h.observe(batch as f64);
        }
    }

    /// A pooled connection for a write, waited for since `waiting` (on SQLite that includes
    /// the turn at the write lock, in front of the only write connection).
    async fn acquire(
        &self,
        patient: bool,
        waiting: std::time::Instant,
    ) -> Result<PoolConnection<Any>, BeginError> {
        let conn = if patient {
            self.pool.acquire().await?
        } else {
            if !self.health.is_up() {
                return Err(BeginError::Down);
            }
            tokio::select! {
                biased;
                conn = self.pool.acquire() => conn?,
                () = self.health.down() => return Err(BeginError::Down),
            }
        };
        self.observe_acquire(waiting);
        Ok(conn)
    }

    /// See [`Db::begin_write`].
    pub(crate) async fn begin(&self, patient: bool) -> Result<WriteTx, BeginError> {
        let waiting = std::time::Instant::now();
        let guard = match &self.sqlite_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let mut conn = self.acquire(patient, waiting).await?;
        let begin = if guard.is_some() {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.execute(begin).await?;
        Ok(WriteTx {
            conn: Some(conn),
            _writer: guard,
            health: self.health.clone(),
        })
    }
}

/// Why a write transaction did not start.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    /// The health watcher finds the database unreachable: refused before anything started,
    /// so nothing changed.
    #[error("the database is unreachable: the transaction was not started")]
    Down,
    /// The pool or the database failed (a pool timeout, a broken connection, `BEGIN` refused).
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl From<BeginError> for sqlx::Error {
    fn from(e: BeginError) -> Self {
        match e {
            BeginError::Down => sqlx::Error::PoolTimedOut,
            BeginError::Sql(e) => e,
        }
    }
}

/// A write transaction on a pooled connection. Commit or roll back explicitly; dropped
/// unfinished (an early `?` return), the connection is closed instead of going back to the
/// pool with a transaction open, which rolls it back.
#[derive(Debug)]
pub struct WriteTx {
    conn: Option<PoolConnection<Any>>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Told of each commit (the database answers).
    health: health::DbHealth,
}

impl WriteTx {
    /// The connection, to run queries on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("transaction already finished")
    }

    /// Commits.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("transaction already finished");
        match conn.execute("COMMIT").await {
            Ok(_) => {
                self.health.committed();
                Ok(())
            }
            Err(e) => {
                conn.close_on_drop();
                Err(e)
            }
        }
    }

    /// Rolls back.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("transaction already finished");
        match conn.execute("ROLLBACK").await {
            Ok(_) => Ok(()),
            Err(e) => {
                conn.close_on_drop();
                Err(e)
            }
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// Builds `$first, $first+1, …` placeholders for an `IN (…)` list of `n` values.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

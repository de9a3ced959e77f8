//! The database: PostgreSQL or SQLite through sqlx's `Any` driver, so that each query is
//! written once (both accept `$1` placeholders and `RETURNING`). Where the dialects differ
//! (row locks, `SKIP LOCKED`, how a write transaction starts) the code asks [`Db::backend`].
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
pub mod coupons;
mod hold_batch;
pub mod holds;
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
    /// The queue of the SQLite group-commit writer of `atomic` holds (started on first use;
    /// it stops when the last clone of this `Db` is dropped).
    hold_queue: Arc<OnceLock<tokio::sync::mpsc::UnboundedSender<hold_batch::Job>>>,
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
        let pool_options = || {
            AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 30000",
                                "PRAGMA foreign_keys = ON",
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
        let writer = match backend {
            Backend::Postgres => Writer {
                pool: pool.clone(),
                sqlite_lock: None,
                acquire_seconds: OnceLock::new(),
            },
            Backend::Sqlite => Writer {
                pool: pool_options()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .with_context(failed)?,
                sqlite_lock: Some(Arc::new(tokio::sync::Mutex::new(()))),
                acquire_seconds: OnceLock::new(),
            },
        };
        let db = Db {
            pool,
            backend,
            writer: Arc::new(writer),
            hold_queue: Arc::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Records the connection waits of write transactions in `histogram` from now on (the
    /// first call wins).
    pub fn observe_acquire(&self, histogram: prometheus::Histogram) {
        let _ = self.writer.acquire_seconds.set(histogram);
    }

    /// Closes the pools (waiting for connections in use to come back).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.pool.close().await;
    }

    /// The queue of the group-commit writer of `atomic` holds on SQLite, started on first use.
    pub(crate) fn hold_queue(&self) -> &tokio::sync::mpsc::UnboundedSender<hold_batch::Job> {
        self.hold_queue
            .get_or_init(|| hold_batch::spawn(self.writer.clone()))
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
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        self.writer.begin().await
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
    /// See [`Db::begin_write`].
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let guard = match &self.sqlite_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let waiting = std::time::Instant::now();
        let mut conn = self.pool.acquire().await?;
        if let Some(h) = self.acquire_seconds.get() {
            h.observe(waiting.elapsed().as_secs_f64());
        }
        let begin = if guard.is_some() {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.execute(begin).await?;
        Ok(WriteTx {
            conn: Some(conn),
            _writer: guard,
        })
    }
}

/// A write transaction on a pooled connection. Commit or roll back explicitly; dropped
/// unfinished (an early `?` return), the connection is closed instead of going back to the
/// pool with a transaction open, which rolls it back.
#[derive(Debug)]
pub struct WriteTx {
    conn: Option<PoolConnection<Any>>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
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
            Ok(_) => Ok(()),
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

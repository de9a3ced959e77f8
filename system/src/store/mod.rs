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
pub mod holds;
pub mod outbox;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
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
    /// The pool.
    pub pool: AnyPool,
    /// The backend behind it.
    pub backend: Backend,
    /// SQLite allows one writer at a time; queueing writers here instead of in SQLite's busy
    /// handler (which sleeps in growing steps) keeps latency flat under contention.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// Where [`Db::begin_write`] records how long it waited for a pooled connection (set
    /// once by the application; shared by clones).
    acquire_seconds: Arc<std::sync::OnceLock<prometheus::Histogram>>,
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
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
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
            .connect_with(options)
            .await
            .with_context(|| format!("Failed to connect to the {} database", backend.as_str()))?;
        let db = Db {
            pool,
            backend,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            acquire_seconds: Arc::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Records the connection waits of write transactions in `histogram` from now on (the
    /// first call wins).
    pub fn observe_acquire(&self, histogram: prometheus::Histogram) {
        let _ = self.acquire_seconds.set(histogram);
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
        let guard = match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let waiting = std::time::Instant::now();
        let mut conn = self.pool.acquire().await?;
        if let Some(h) = self.acquire_seconds.get() {
            h.observe(waiting.elapsed().as_secs_f64());
        }
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        conn.execute(begin).await?;
        Ok(WriteTx {
            conn: Some(conn),
            _writer: guard,
        })
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

//! Reads of the embedded SQLite database on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every statement is a
//! message to that thread and a wake-up back, two context switches or more. Under a flash
//! sale's burst on 2 cores those hand-offs were most of the box office's CPU (half the samples
//! in the kernel's scheduler, a fifth in sqlx's worker threads), for reads that SQLite answers
//! in microseconds. The hottest reads (the refusal read of a hold that cannot succeed) run
//! here instead: a short synchronous read on the task's own thread, on a read-only
//! connection taken from a small idle list. In WAL mode a reader never waits for the writer,
//! so the read does not block the runtime for longer than the read itself.
//!
//! Anything unexpected (the file cannot be opened, a busy database, a failed statement) makes
//! [`InlineReads::read`] return `None`, and the caller runs the same query through sqlx,
//! which reports errors the usual way.
//!
//! The hottest write transactions (making a booking, confirming a paid one) run the same way
//! on [`InlineWriter`]'s connection: a writer takes the database's in-process write lock
//! (the queue every SQLite writer joins), then runs `BEGIN IMMEDIATE`, its statements and
//! `COMMIT` without yielding. Through sqlx, each statement of a transaction was a hand-off to
//! the connection's thread and back, and between two statements the task holding the write
//! lock waited for its turn on a busy runtime while every other writer waited for it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::Row as _;

/// A row's columns by name, on either driver, so that one function maps a table's row
/// whether sqlx or an inline read fetched it.
pub(crate) trait Columns {
    /// The driver's error.
    type Error;
    /// A non-null integer.
    fn int(&self, name: &str) -> Result<i64, Self::Error>;
    /// A nullable integer.
    fn opt_int(&self, name: &str) -> Result<Option<i64>, Self::Error>;
    /// Non-null text.
    fn text(&self, name: &str) -> Result<String, Self::Error>;
    /// Nullable text.
    fn opt_text(&self, name: &str) -> Result<Option<String>, Self::Error>;
}

impl Columns for sqlx::any::AnyRow {
    type Error = sqlx::Error;
    fn int(&self, name: &str) -> Result<i64, sqlx::Error> {
        self.try_get(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(name)
    }
    fn text(&self, name: &str) -> Result<String, sqlx::Error> {
        self.try_get(name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(name)
    }
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, name: &str) -> rusqlite::Result<i64> {
        self.get(name)
    }
    fn opt_int(&self, name: &str) -> rusqlite::Result<Option<i64>> {
        self.get(name)
    }
    fn text(&self, name: &str) -> rusqlite::Result<String> {
        self.get(name)
    }
    fn opt_text(&self, name: &str) -> rusqlite::Result<Option<String>> {
        self.get(name)
    }
}

/// Idle read-only connections to one SQLite file.
#[derive(Debug)]
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// Idle connections kept (one per runtime thread is enough; more are opened on demand
    /// and closed after use).
    const IDLE: usize = 8;
    /// The longest a read waits for a lock before it gives up and sqlx runs it instead.
    const BUSY: Duration = Duration::from_millis(20);

    /// Inline reads of the database file named by an sqlx SQLite URL (`sqlite://PATH?…` or
    /// `sqlite:PATH`); `None` for an in-memory database, which another connection cannot see.
    pub(crate) fn for_url(url: &str) -> Option<InlineReads> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
            return None;
        }
        Some(InlineReads {
            path: PathBuf::from(path),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on an idle connection (opening one if none is idle). `None` when the
    /// connection could not be opened or `read` failed: run the query through sqlx instead.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "inline read: cannot open the database");
                    return None;
                }
            },
        };
        match read(&conn) {
            Ok(value) => {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < Self::IDLE {
                        idle.push(conn);
                    }
                }
                Some(value)
            }
            Err(e) => {
                tracing::debug!(error = %e, "inline read failed; running it through the pool");
                None
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Self::BUSY)?;
        conn.pragma_update(None, "cache_size", -16_384)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

/// One read-write connection to an SQLite file for write transactions run without yielding
/// (opened on first use; see the module's documentation).
#[derive(Debug)]
pub(crate) struct InlineWriter {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl InlineWriter {
    /// A writer of the file `reads` reads.
    pub(crate) fn beside(reads: &InlineReads) -> InlineWriter {
        InlineWriter {
            path: reads.path.clone(),
            conn: Mutex::new(None),
        }
    }

    /// Runs `work` in an immediate transaction, committed when it returns `Ok` and rolled back
    /// otherwise. The caller holds the database's write lock. `None` when the connection
    /// cannot be opened: nothing ran, use the sqlx path.
    pub(crate) fn transaction<T, E: From<rusqlite::Error>>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Option<Result<T, E>> {
        let mut slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            match self.open() {
                Ok(conn) => *slot = Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "inline writer: cannot open the database");
                    return None;
                }
            }
        }
        let conn = slot.as_mut()?;
        let run = || {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        Some(run())
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The same settings as the pool's connections (see `Db::connect`).
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;",
        )?;
        conn.execute_batch(super::checkpoint::NO_AUTOCHECKPOINT)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_are_read_inline() {
        assert!(InlineReads::for_url("sqlite::memory:").is_none());
        assert!(InlineReads::for_url("sqlite://:memory:").is_none());
        assert!(InlineReads::for_url("sqlite://x.db?mode=memory&cache=shared").is_none());
        assert!(InlineReads::for_url("postgres://localhost/db").is_none());
        let reads = InlineReads::for_url("sqlite:///tmp/a/boxoffice.db?mode=rwc").unwrap();
        assert_eq!(reads.path, PathBuf::from("/tmp/a/boxoffice.db"));
        let reads = InlineReads::for_url("sqlite:rel.db").unwrap();
        assert_eq!(reads.path, PathBuf::from("rel.db"));
    }

    #[test]
    fn reads_see_what_another_connection_committed_and_failures_say_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        let reads = InlineReads::for_url(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
        let read = |c: &Connection| c.query_row("SELECT SUM(v) FROM t", [], |r| r.get::<_, i64>(0));
        assert_eq!(reads.read(read), Some(7));
        writer.execute("INSERT INTO t VALUES (5)", []).unwrap();
        assert_eq!(
            reads.read(read),
            Some(12),
            "a reused connection sees the new commit"
        );
        assert_eq!(reads.idle.lock().unwrap().len(), 1);
        assert_eq!(
            reads.read(|c| c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0))),
            None
        );
        let missing = InlineReads::for_url("sqlite:///nonexistent/dir/x.db").unwrap();
        assert_eq!(missing.read(read), None);
    }

    #[test]
    fn an_inline_write_commits_on_ok_and_rolls_back_on_err() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
            .unwrap();
        let reads = InlineReads::for_url(&format!("sqlite://{}", path.display())).unwrap();
        let writer = InlineWriter::beside(&reads);
        let kept: Option<rusqlite::Result<usize>> =
            writer.transaction(|tx| tx.execute("INSERT INTO t VALUES (1)", []));
        assert_eq!(kept.unwrap().unwrap(), 1);
        let undone: Option<Result<(), crate::error::ApiError>> = writer.transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (2)", [])?;
            Err(crate::error::ApiError::conflict("refused", "after writing"))
        });
        assert_eq!(undone.unwrap().unwrap_err().code, "refused");
        let sum = reads.read(|c| c.query_row("SELECT SUM(v) FROM t", [], |r| r.get::<_, i64>(0)));
        assert_eq!(sum, Some(1), "the refused transaction wrote nothing");
    }

    #[tokio::test]
    async fn the_embedded_database_is_read_inline() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::connect(&crate::store::embedded_url(dir.path()), 2)
            .await
            .unwrap();
        let reads = db
            .inline()
            .expect("a file-backed SQLite database is read inline");
        let migrations = reads.read(|c| {
            c.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        assert!(migrations.is_some_and(|n| n >= 3), "{migrations:?}");
        db.close().await;
    }
}

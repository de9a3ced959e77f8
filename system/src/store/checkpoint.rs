//! SQLite checkpoints off the write path.
//!
//! In WAL mode with `synchronous = NORMAL` a commit does not wait for the disk; a checkpoint
//! does: it syncs the WAL, copies its pages into the database file and syncs that. SQLite
//! runs one by itself in the connection whose commit takes the WAL past 1,000 pages, so now
//! and then a write is followed by two `fsync`s while every other write waits behind the one
//! writer. An `fsync` is usually milliseconds, but on a busy or virtual disk it sometimes
//! takes seconds (0.47, 0.57 and 3.1 s in one 45-second capacity run on the lab's 2-core
//! machine, each a stall of every hold while the reads went on).
//!
//! So every connection runs with `wal_autocheckpoint = 0` ([`NO_AUTOCHECKPOINT`]), and a
//! thread of its own checkpoints every [`INTERVAL`] with `PASSIVE`, which waits for no reader
//! and no writer. A slow disk now delays that thread only; the WAL grows meanwhile, and the
//! next write after a complete checkpoint starts it again from the beginning. The thread ends
//! when the last [`Checkpointer`] handle (each clone of the `Db`) is dropped.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// The pragma every connection to a file-backed database runs: no checkpoint in a commit.
pub(crate) const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0";

/// How often the checkpointer runs. At the lab's highest write rates the WAL grows by a few
/// MiB a second; SQLite's own threshold is 4 MiB.
const INTERVAL: Duration = Duration::from_millis(250);

/// A checkpoint that took longer than this is logged (the disk's `fsync` was slow).
const SLOW: Duration = Duration::from_millis(100);

/// The handle that keeps the checkpointer thread running (its clones share the channel the
/// thread waits on; the last one dropped disconnects it).
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    _alive: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path` (already in WAL mode).
    pub(crate) fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let (tx, rx) = mpsc::channel::<()>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(path, rx))?;
        Ok(Checkpointer { _alive: tx })
    }
}

fn run(path: PathBuf, rx: mpsc::Receiver<()>) {
    let conn = match open(&path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the SQLite checkpointer could not open the database; the WAL will grow until the box office stops");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(INTERVAL) {
        let start = Instant::now();
        match checkpoint(&conn) {
            Ok((wal_pages, copied)) => {
                let took = start.elapsed();
                if took >= SLOW {
                    tracing::warn!(
                        duration_ms = took.as_millis() as u64,
                        wal_pages,
                        copied,
                        "slow SQLite checkpoint (the disk's fsync); writes went on"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed; retrying"),
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(NO_AUTOCHECKPOINT)?;
    Ok(conn)
}

/// One passive checkpoint: the WAL's pages, and how many of them are now in the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits never checkpoint (on the pool's connections nor the inline ones), and the
    /// checkpointer keeps the WAL from growing with every commit: without it, 10 MiB written
    /// leave a WAL of 10 MiB.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_never_checkpoint_and_the_checkpointer_keeps_the_wal_small() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxoffice.db");
        let db = crate::store::Db::connect(&format!("sqlite://{}", file.display()), 4)
            .await
            .unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(auto, 0, "a pool connection checkpoints in its commits");
        let auto: i64 = db
            .write_inline(|tx| tx.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)))
            .await
            .expect("a file has an inline writer")
            .unwrap();
        assert_eq!(auto, 0, "the inline writer checkpoints in its commits");

        sqlx::raw_sql("CREATE TABLE filler (v BLOB)")
            .execute(&db.pool)
            .await
            .unwrap();
        const WRITES: usize = 40;
        const SIZE: usize = 256 * 1024;
        let wal = dir.path().join("boxoffice.db-wal");
        let mut largest = 0;
        for _ in 0..WRITES {
            sqlx::query("INSERT INTO filler (v) VALUES (zeroblob($1))")
                .bind(SIZE as i64)
                .execute(&db.pool)
                .await
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            tokio::time::sleep(INTERVAL / 5).await;
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM filler")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(rows, WRITES as i64);
        let written = (WRITES * SIZE) as u64;
        assert!(
            largest < written / 2,
            "the WAL grew to {largest} bytes for {written} written: nothing checkpointed it"
        );
    }
}

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
//!
//! A passive checkpoint copies the frames the WAL held when it began. Under a steady stream of
//! writes (a hold every millisecond in a capacity run, or any writes closer together than one
//! checkpoint's `fsync`s) a commit lands during every pass, no pass ever finds the WAL fully
//! copied, and so the WAL never restarts: it grows for as long as the load lasts. Measured:
//! the embedded `capacity` scenario (40 s, up to 1,225 requests/s) left a WAL of 240,000 to
//! 245,000 pages (about 950 MiB, 5 runs), growing all the way, and 12,500–17,400 with
//! the restart below; in the last test below (run for 4 s), 52 MiB of commits left
//! an 80 MiB WAL (3 of 3 runs). So when a pass finds that the WAL has not restarted for
//! [`RESTART_AFTER_PAGES`], it takes the box office's own writer lock (the one every SQLite
//! write queues on) and checkpoints again: no commit can overtake that one, so it copies the
//! rest, and the next commit starts the WAL from the beginning. Passive checkpoints catch up
//! first, until what is left is a short tail; writes wait in the lock's queue (no SQLite busy
//! handler sleeping in growing steps) for that tail and the `fsync`s only; the pause is logged
//! when slow.
//!
//! The price, measured on the same capacity run: hold p99 over the whole run went from 5–8 ms
//! (4 runs without restarts) to 14–43 ms (5 runs with them, at 8,192 and at 32,768 pages
//! alike), more than the pauses alone explain; a WAL that keeps its size is worth it (a soak
//! would fill the disk), and what else the restart costs is still to be profiled.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// The lock every write to the SQLite database queues on (the store's writer lock).
pub(crate) type WriterLock = Arc<tokio::sync::Mutex<()>>;

/// The pragma every connection to a file-backed database runs: no checkpoint in a commit.
pub(crate) const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0";

/// How often the checkpointer runs. At the lab's highest write rates (a capacity run's last
/// step) the WAL grows by about 8,000 pages (32 MiB) a second; SQLite's own threshold is 1,000.
const INTERVAL: Duration = Duration::from_millis(250);

/// A WAL that has not restarted for this many pages (32 MiB at SQLite's 4 KiB page) is
/// restarted under the writer lock: about once a second at the highest write rates, and never
/// while the passive checkpoints keep up (the default flash sale's WAL peaks near 7,100 pages).
/// Each restart pauses writes for 3–39 ms on the lab's 2-core machine in a capacity run's last
/// step: the tail is tens of pages, the time is the two `fsync`s.
const RESTART_AFTER_PAGES: i64 = 8192;

/// Before restarting the WAL under the writer lock, the checkpointer runs up to this many
/// passive checkpoints, until one copies no more than [`SHORT_TAIL_PAGES`] (what was written
/// during the one before): the writers then wait for a short tail and the `fsync`s only.
const CATCH_UP_PASSES: usize = 8;
const SHORT_TAIL_PAGES: i64 = 256;

/// A checkpoint that took longer than this is logged (the disk's `fsync` was slow).
const SLOW: Duration = Duration::from_millis(100);

/// When the checkpointer runs and when it restarts the WAL.
#[derive(Debug, Clone, Copy)]
struct Policy {
    interval: Duration,
    restart_after_pages: i64,
}

/// The box office's policy.
const POLICY: Policy = Policy {
    interval: INTERVAL,
    restart_after_pages: RESTART_AFTER_PAGES,
};

/// The handle that keeps the checkpointer thread running (its clones share the channel the
/// thread waits on; the last one dropped disconnects it).
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    _alive: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path` (already in WAL mode), whose writes
    /// all queue on `writers`.
    pub(crate) fn start(path: &Path, writers: WriterLock) -> std::io::Result<Checkpointer> {
        Checkpointer::start_with(path, writers, POLICY)
    }

    fn start_with(
        path: &Path,
        writers: WriterLock,
        policy: Policy,
    ) -> std::io::Result<Checkpointer> {
        let (tx, rx) = mpsc::channel::<()>();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(path, rx, writers, policy))?;
        Ok(Checkpointer { _alive: tx })
    }
}

fn run(path: PathBuf, rx: mpsc::Receiver<()>, writers: WriterLock, policy: Policy) {
    let conn = match open(&path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the SQLite checkpointer could not open the database; the WAL will grow until the box office stops");
            return;
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(policy.interval) {
        match pass(&conn, &writers, policy.restart_after_pages) {
            Ok(Pass::Passive {
                wal_pages,
                copied,
                took,
            }) => {
                if took >= SLOW {
                    tracing::warn!(
                        duration_ms = took.as_millis() as u64,
                        wal_pages,
                        copied,
                        "slow SQLite checkpoint (the disk's fsync); writes went on"
                    );
                }
            }
            Ok(Pass::Restarted {
                wal_pages,
                complete,
                paused,
            }) => {
                let paused_ms = paused.as_millis() as u64;
                if !complete {
                    tracing::warn!(
                        duration_ms = paused_ms,
                        wal_pages,
                        "a reader held the SQLite WAL back from restarting; retrying next pass"
                    );
                } else if paused >= SLOW {
                    tracing::warn!(
                        duration_ms = paused_ms,
                        wal_pages,
                        "restarting the SQLite WAL paused writes (the disk's fsync was slow)"
                    );
                } else {
                    tracing::debug!(
                        duration_ms = paused_ms,
                        wal_pages,
                        "the SQLite WAL restarts (writes overtook every passive checkpoint)"
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

/// What one pass of the checkpointer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// A passive checkpoint: the WAL's pages since it last restarted, how many of them are now
    /// in the database, and how long it took (no writer waited).
    Passive {
        wal_pages: i64,
        copied: i64,
        took: Duration,
    },
    /// The WAL had not restarted for the policy's pages: after passive checkpoints, one more
    /// under the writer lock, which paused writes for `paused`. `complete` says it copied
    /// every frame, so the next commit restarts the WAL; a reader on an old snapshot can hold
    /// it back (the next pass tries again).
    Restarted {
        wal_pages: i64,
        complete: bool,
        paused: Duration,
    },
}

/// One pass: a passive checkpoint, followed by another under the writer lock when the WAL
/// has not restarted for `restart_after_pages`.
fn pass(
    conn: &Connection,
    writers: &WriterLock,
    restart_after_pages: i64,
) -> rusqlite::Result<Pass> {
    let start = Instant::now();
    let (_, wal_pages, copied) = checkpoint(conn)?;
    if wal_pages < restart_after_pages {
        return Ok(Pass::Passive {
            wal_pages,
            copied,
            took: start.elapsed(),
        });
    }
    // Catch up first without the lock: each passive checkpoint copies what was written during
    // the one before, so the tail left for the writers to wait on is short.
    let mut before = copied;
    for _ in 0..CATCH_UP_PASSES {
        let (_, log, now) = checkpoint(conn)?;
        if log < wal_pages {
            // A pass caught up between two commits, and the second restarted the WAL itself.
            return Ok(Pass::Passive {
                wal_pages: log,
                copied: now,
                took: start.elapsed(),
            });
        }
        let caught = now - before;
        before = now;
        if caught <= SHORT_TAIL_PAGES {
            break;
        }
    }
    let _no_writer = writers.blocking_lock();
    let start = Instant::now();
    let (busy, log, copied) = checkpoint(conn)?;
    Ok(Pass::Restarted {
        wal_pages,
        complete: busy == 0 && copied == log,
        paused: start.elapsed(),
    })
}

/// One passive checkpoint: whether a lock stopped it, the WAL's pages, and how many of them are
/// now in the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "INSERT INTO filler (v) VALUES (zeroblob(?1))";

    /// A database in WAL mode whose commits do not checkpoint, as the box office opens it.
    fn wal_database(file: &Path) -> Connection {
        let conn = Connection::open(file).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE filler (v BLOB);",
        )
        .unwrap();
        conn.execute_batch(NO_AUTOCHECKPOINT).unwrap();
        conn
    }

    fn write(conn: &Connection, bytes: usize) {
        conn.execute(BLOB, [bytes as i64]).unwrap();
    }

    /// Commits never checkpoint (on the pool's connections nor the inline writer), and the
    /// box office's checkpointer copies what they wrote into the database file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_never_checkpoint_and_the_checkpointer_does() {
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
        const SIZE: u64 = 4 * 1024 * 1024;
        sqlx::query(BLOB)
            .bind(SIZE as i64)
            .execute(&db.pool)
            .await
            .unwrap();
        // The checkpointer's next pass (every 250 ms) copies the blob into the file.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let len = std::fs::metadata(&file).unwrap().len();
            if len >= SIZE {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "20 s after a 4 MiB commit the database file holds {len} bytes: nothing checkpointed the WAL"
            );
            tokio::time::sleep(INTERVAL / 5).await;
        }
    }

    /// A pass is passive while the WAL has restarted within the policy's pages. Past them, it
    /// checkpoints again under the writer lock, waiting for the writer that holds it, and copies
    /// every frame, that writer's too: the next commit writes the WAL from its beginning. A
    /// reader on an old snapshot holds that back, and the pass says so instead of waiting.
    #[test]
    fn past_the_policy_a_pass_waits_for_the_writer_and_leaves_the_wal_to_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxoffice.db");
        let writer = wal_database(&file);
        let writers = WriterLock::default();
        let checkpointer = open(&file).unwrap();
        let frames_now = || match pass(&checkpointer, &writers, i64::MAX).unwrap() {
            Pass::Passive { wal_pages, .. } => wal_pages,
            restarted => panic!("an unreachable policy restarted the WAL: {restarted:?}"),
        };

        write(&writer, 1024 * 1024);
        match pass(&checkpointer, &writers, 1024).unwrap() {
            Pass::Passive {
                wal_pages, copied, ..
            } => {
                assert!(wal_pages >= 256, "1 MiB is {wal_pages} pages");
                assert_eq!(copied, wal_pages, "no writer or reader held the pass back");
            }
            restarted => panic!("a WAL under the policy's pages was restarted: {restarted:?}"),
        }

        // A writer holds the lock through two commits, 300 ms apart.
        let (took_lock, lock_taken) = mpsc::channel();
        let held = {
            let writers = writers.clone();
            let file = file.clone();
            std::thread::spawn(move || {
                let conn = Connection::open(&file).unwrap();
                conn.execute_batch(NO_AUTOCHECKPOINT).unwrap();
                let _turn = writers.blocking_lock();
                took_lock.send(()).unwrap();
                write(&conn, 2 * 1024 * 1024);
                std::thread::sleep(Duration::from_millis(300));
                write(&conn, 4096);
            })
        };
        lock_taken.recv().unwrap();
        let start = Instant::now();
        let outcome = pass(&checkpointer, &writers, 1).unwrap();
        let waited = start.elapsed();
        held.join().unwrap();
        match outcome {
            Pass::Restarted { complete, .. } => {
                assert!(
                    complete,
                    "nothing but the writer held the pass back: {outcome:?}"
                )
            }
            passive => panic!("a WAL past the policy's pages was not restarted: {passive:?}"),
        }
        assert!(
            waited >= Duration::from_millis(250),
            "the pass did not wait for the writer holding the lock ({waited:?})"
        );
        write(&writer, 4096);
        let after = frames_now();
        assert!(
            after <= 8,
            "the commit after a restarting pass appended to a WAL of {after} pages"
        );

        let mut reader = Connection::open(&file).unwrap();
        let snapshot = reader.transaction().unwrap();
        let rows: i64 = snapshot
            .query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 4);
        write(&writer, 1024 * 1024);
        let start = Instant::now();
        match pass(&checkpointer, &writers, 128).unwrap() {
            Pass::Restarted { complete, .. } => {
                assert!(
                    !complete,
                    "a reader on an old snapshot did not hold the restart back"
                )
            }
            passive => panic!("a WAL past the policy's pages was not restarted: {passive:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the pass waited {:?} for a reader",
            start.elapsed()
        );
        drop(snapshot);
    }

    /// Under a steady stream of commits, closer together than a checkpoint's `fsync`s, the
    /// passive checkpoints are overtaken every time and the WAL would grow with every commit
    /// (80 MiB for 52 MiB written without the restart); the restart keeps it within the
    /// policy's pages plus what is written in about one interval.
    #[test]
    fn a_steady_stream_of_commits_cannot_grow_the_wal_past_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxoffice.db");
        let writer = wal_database(&file);
        let writers = WriterLock::default();
        const LIMIT: i64 = 256; // 1 MiB
        let _checkpointer = Checkpointer::start_with(
            &file,
            writers.clone(),
            Policy {
                interval: INTERVAL,
                restart_after_pages: LIMIT,
            },
        )
        .unwrap();
        const SIZE: usize = 16 * 1024;
        let wal = dir.path().join("boxoffice.db-wal");
        let (mut written, mut largest) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            {
                let _turn = writers.blocking_lock();
                write(&writer, SIZE);
            }
            written += SIZE as u64;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!("{written} bytes written in 8 s; the WAL's largest: {largest} bytes");
        assert!(
            largest < written / 4,
            "the WAL grew to {largest} bytes for {written} written: the restart did not bound it"
        );
    }
}

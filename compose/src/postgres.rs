//! A real PostgreSQL server started from the binaries on this machine, for tests and lab runs.
//!
//! [`LocalPostgres::start`] runs `initdb` into a fresh temp dir (in RAM, `/dev/shm`, by default;
//! `BOXOFFICE_STACK_DIR` chooses another dir: see `homes.rs`), then starts `postgres` itself
//! (not `pg_ctl`, so we hold the postmaster's `Child`) on a free 127.0.0.1 port, with its unix
//! socket in the same temp dir, and polls `SELECT 1` until the server answers. As root, both run
//! as `nobody` because PostgreSQL refuses root. The server log is kept in the temp dir and its
//! tail goes into every start error. Dropping the value stops the server and removes the dir.
//!
//! ```text
//! /dev/shm/boxoffice-pg-<pid>-XXXXXX/   owned by the server's uid, mode 0700
//! ├── data/                             PGDATA (initdb --no-sync: rebuilt every time)
//! ├── .s.PGSQL.<port>                   unix socket (-k)
//! ├── initdb.log
//! └── postgres.log                      server stderr, appended across start attempts
//! ```
//!
//! It runs the installed binaries rather than `postgresql_embedded` or `pg-embed`, which download
//! PostgreSQL at test time: nothing is fetched here, and the lab holds the postmaster's `Child` for
//! its kill, pause and crash-recovery drills.

use std::env;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use chaos::process::Signal;
use sqlx::{Connection as _, PgConnection};

use crate::process::{self, Ending, Home, Identity, Server, Supervisor};

/// Settings every server gets unless the caller overrides them. Durability stays on so that
/// what the lab measures (and what a crash loses) is what production would see.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("max_connections", "300"),
    ("fsync", "on"),
    ("synchronous_commit", "on"),
];
/// The only address servers listen on.
const HOST: &str = "127.0.0.1";
/// Environment variable naming the directory that holds `initdb` and `postgres`.
const BIN_DIR_ENV: &str = "BOXOFFICE_PG_BIN";
/// Where Debian and Ubuntu install one `bin/` per major version.
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";
const INSTALL_HINT: &str = "install them with `apt-get install -y postgresql` (Debian/Ubuntu), \
     or set BOXOFFICE_PG_BIN to the directory that holds initdb and postgres";
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// Per connection attempt while waiting for readiness; the server may hang mid-startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Grace period of a fast shutdown in [`LocalPostgres::stop`] before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period of the immediate shutdown done by `Drop` before SIGKILL.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 40;
/// The temp dir of a server (and of a standby).
const TEMP_PREFIX: &str = "boxoffice-pg-";
/// The setting that says where dynamic shared memory segments live.
const DSM_TYPE: &str = "dynamic_shared_memory_type";
/// The server's log (stderr), in its temp dir, appended across starts.
const LOG: &str = "postgres.log";

/// A PostgreSQL server started as a child process in its own temp dir, on a free port.
///
/// User `postgres` with trust authentication; only 127.0.0.1 and a unix socket in the temp
/// dir. Every test should own a database: call [`LocalPostgres::create_database`].
/// Dropping stops the server (immediate shutdown, SIGKILL after 5 s) and removes the temp dir,
/// unless `BOXOFFICE_KEEP_STACK=1`, in which case the dir's path is printed to stderr.
#[derive(Debug)]
pub struct LocalPostgres {
    /// The postmaster, its temp dir and its port.
    server: Supervisor<Postgres>,
}

/// How the postmaster is run; kept for restarts and standbys.
#[derive(Debug)]
struct Postgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    /// The `-c` settings.
    settings: Vec<(String, String)>,
    /// The uid the server runs as (root cannot run PostgreSQL).
    identity: Option<Identity>,
}

impl Server for Postgres {
    const READY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Immediate shutdown: no checkpoint, but shared memory is released (SIGKILL would not).
    const DROP_STOP: (Signal, Duration) = (Signal::SIGQUIT, DROP_TIMEOUT);

    fn name(&self) -> &str {
        "PostgreSQL"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let mut command = pg_command(self.bin_dir.join("postgres"), home, self.identity);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(home)
            .arg("-c")
            .arg(format!("listen_addresses={HOST}"));
        for (name, value) in &self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        Ok(command)
    }

    /// `SELECT 1` over TCP; the server may hang mid-startup, hence a timeout per attempt.
    async fn probe(&self, port: u16) -> Result<(), String> {
        let url = format!("postgres://postgres@{HOST}:{port}/postgres");
        match tokio::time::timeout(CONNECT_TIMEOUT, select_one(&url)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("connect timed out after {CONNECT_TIMEOUT:?}")),
        }
    }
}

impl LocalPostgres {
    /// Runs `initdb` into a fresh temp dir and starts `postgres` on a free 127.0.0.1 port, then
    /// waits (up to 30 s) until it answers `SELECT 1`.
    ///
    /// Settings: `max_connections=300`, `fsync=on`, `synchronous_commit=on`. As root, the server
    /// runs as `nobody`. Fails, with the tail of the server log, when the binaries are missing,
    /// `initdb` fails, or the server does not become ready.
    pub async fn start() -> anyhow::Result<LocalPostgres> {
        Self::start_with(&[]).await
    }

    /// Like [`LocalPostgres::start`], with extra server settings passed as `-c name=value`
    /// (e.g. `("synchronous_commit", "off")`). A setting named here replaces the default of the
    /// same name. Names must be non-empty and must not contain `=`.
    pub async fn start_with(settings: &[(&str, &str)]) -> anyhow::Result<LocalPostgres> {
        let began = Instant::now();
        let mut settings = merge_settings(settings)?;
        let bin_dir = find_postgres_bin_dir()?;
        let identity = process::server_identity()?;
        let home = Home::temp(TEMP_PREFIX, identity)?;
        if home.in_ram() && !settings.iter().any(|(name, _)| name == DSM_TYPE) {
            // Dynamic shared memory as files in the data dir (on tmpfs, so as cheap as POSIX
            // shared memory): a killed server's segments then go with its home, instead of
            // staying in /dev/shm as `PostgreSQL.*` until a reboot.
            settings.push((DSM_TYPE.to_string(), "mmap".to_string()));
        }
        let data_dir = home.path().join("data");
        if let Err(error) = run_initdb(&bin_dir, home.path(), &data_dir, identity).await {
            // Honours BOXOFFICE_KEEP_STACK, so a failed start can be inspected.
            home.release("PostgreSQL");
            return Err(error);
        }
        let initialized = began.elapsed();
        let postgres = Postgres {
            bin_dir,
            data_dir,
            settings,
            identity,
        };
        let server = Supervisor::start(postgres, home, LOG).await?;
        tracing::info!(
            port = server.port(),
            pid = server.last_pid(),
            initdb_ms = initialized.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "PostgreSQL started"
        );
        Ok(LocalPostgres { server })
    }

    /// The TCP port the server listens on (on [`LocalPostgres::host`]).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// URL of database `db` for user `postgres` (trust auth, no password):
    /// `postgres://postgres@127.0.0.1:PORT/db`. The database must exist; `postgres` always does.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{HOST}:{}/{db}", self.port())
    }

    /// Creates an empty database with a unique random name (`test_<uuid>`) and returns its URL.
    /// Each test calls this to own its database; nothing ever drops it (the server is thrown
    /// away instead).
    #[tracing::instrument(skip(self), fields(port = self.port()))]
    pub async fn create_database(&self) -> anyhow::Result<String> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = PgConnection::connect(&self.url("postgres"))
            .await
            .with_context(|| format!("Failed to connect to PostgreSQL on port {}", self.port()))?;
        sqlx::raw_sql(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut connection)
            .await
            .with_context(|| format!("Failed to create database {name}"))?;
        connection.close().await.ok();
        Ok(self.url(&name))
    }

    /// The cluster's data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.server.server().data_dir
    }

    /// The server log (its stderr). Removed with the temp dir on drop unless
    /// `BOXOFFICE_KEEP_STACK=1`; copy it first if a report needs it.
    pub fn log_path(&self) -> PathBuf {
        self.server.log_path().to_path_buf()
    }

    /// Where `initdb`, `postgres`, `pgbench` and `psql` were found.
    pub fn bin_dir(&self) -> &Path {
        &self.server.server().bin_dir
    }

    /// The postmaster's pid (backends are its children); after a stop, the last one's.
    pub fn pid(&self) -> u32 {
        self.server.last_pid()
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions rolled back, checkpoint), waits
    /// up to 30 s, then SIGKILLs it; then removes the temp dir (unless `BOXOFFICE_KEEP_STACK=1`).
    /// Fails when the server had to be killed; a server that had already exited is not an error.
    pub async fn stop(self) -> anyhow::Result<()> {
        let ending = self
            .server
            .stop(Signal::SIGINT, STOP_TIMEOUT)
            .await
            .with_context(|| format!("Failed to stop PostgreSQL (pid {})", self.pid()));
        self.server.release_home();
        match ending? {
            Some(Ending::Killed) => bail!(
                "PostgreSQL (pid {}) ignored a fast shutdown for {} s and was killed",
                self.pid(),
                STOP_TIMEOUT.as_secs()
            ),
            Some(Ending::AlreadyExited(status)) => {
                tracing::warn!(pid = self.pid(), %status, "PostgreSQL had already exited before stop");
            }
            Some(Ending::Exited(_)) | None => {
                tracing::info!(pid = self.pid(), port = self.port(), "PostgreSQL stopped");
            }
        }
        Ok(())
    }

    /// Whether the postmaster is running (it may be paused).
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// Kills the postmaster with SIGKILL (a crash: no checkpoint, clients see their
    /// connections die). The data dir stays; [`LocalPostgres::start_again`] runs crash recovery.
    pub async fn kill(&self) -> anyhow::Result<()> {
        self.server.kill().await
    }

    /// Fast shutdown (SIGINT: sessions rolled back, checkpoint), keeping the data dir so that
    /// [`LocalPostgres::start_again`] brings the same cluster back on the same port.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        self.server.stop(Signal::SIGINT, STOP_TIMEOUT).await?;
        Ok(())
    }

    /// Starts the server again on its port after [`LocalPostgres::kill`] or
    /// [`LocalPostgres::shutdown`], and waits until it answers. A killed server's backends may
    /// hold its shared memory for a moment, so the start is retried for up to 10 s.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        self.server.start_again().await
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay open, nothing
    /// answers. [`LocalPostgres::resume`] thaws them.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.server.signal(Signal::SIGSTOP)
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.server.signal(Signal::SIGCONT)
    }

    /// Clones this server with `pg_basebackup -R` into a new temp dir and starts the clone as a
    /// streaming-replication hot standby on its own port. Call
    /// [`LocalPostgres::require_synchronous_standby`] afterwards for zero data loss on
    /// failover.
    pub async fn start_standby(&self) -> anyhow::Result<LocalPostgres> {
        let primary = self.server.server();
        let home = Home::temp(TEMP_PREFIX, primary.identity)?;
        let data_dir = home.path().join("data");
        if let Err(error) = self.base_backup(home.path(), &data_dir).await {
            home.release("PostgreSQL");
            return Err(error);
        }
        let standby = Postgres {
            bin_dir: primary.bin_dir.clone(),
            data_dir,
            settings: primary.settings.clone(),
            identity: primary.identity,
        };
        let server = Supervisor::start(standby, home, LOG).await?;
        tracing::info!(
            port = server.port(),
            pid = server.last_pid(),
            primary = self.port(),
            "PostgreSQL standby started"
        );
        Ok(LocalPostgres { server })
    }

    /// `pg_basebackup -R` of this server into `data_dir`, logged to `root/basebackup.log`.
    async fn base_backup(&self, root: &Path, data_dir: &Path) -> anyhow::Result<()> {
        let primary = self.server.server();
        let log_path = root.join("basebackup.log");
        let log = open_log(&log_path).context("Failed to create basebackup.log")?;
        let mut command = pg_command(
            primary.bin_dir.join("pg_basebackup"),
            root,
            primary.identity,
        );
        command
            .args(["-h", HOST, "-p", &self.port().to_string(), "-U", "postgres"])
            .arg("-D")
            .arg(data_dir)
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = process::spawn_tied(command)
            .await
            .context("Failed to spawn pg_basebackup")?;
        let status = process::wait_async(&mut child, INITDB_TIMEOUT)
            .await?
            .context("pg_basebackup did not finish in time")?;
        ensure!(
            status.success(),
            "pg_basebackup failed ({status})\n{}",
            log_tail(&log_path)
        );
        Ok(())
    }

    /// Makes every commit on this primary wait until a standby has it
    /// (`synchronous_standby_names = '*'`), so a promoted standby loses nothing acknowledged.
    pub async fn require_synchronous_standby(&self) -> anyhow::Result<()> {
        let pool = self.one_connection().await?;
        // Two statements: ALTER SYSTEM refuses the implicit transaction of a multi-statement query.
        for sql in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "SELECT pg_reload_conf()",
        ] {
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .context("Failed to require a synchronous standby")?;
        }
        pool.close().await;
        Ok(())
    }

    /// Whether this server is a standby (in recovery).
    pub async fn in_recovery(&self) -> anyhow::Result<bool> {
        let pool = self.one_connection().await?;
        let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok(recovering)
    }

    /// A pool of one connection to `postgres` (a pool, not a connection, keeps the futures
    /// that use it `Send` for any lifetime, which boxed fault futures need).
    async fn one_connection(&self) -> anyhow::Result<sqlx::PgPool> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await
            .with_context(|| format!("Failed to connect to PostgreSQL on port {}", self.port()))
    }

    /// Promotes a standby to primary and waits (up to 30 s) until it accepts writes.
    pub async fn promote(&self) -> anyhow::Result<()> {
        let pool = self.one_connection().await?;
        let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, 30)")
            .fetch_one(&pool)
            .await
            .context("Failed to promote the standby")?;
        pool.close().await;
        ensure!(promoted, "the standby was not promoted within 30 s");
        Ok(())
    }

    /// Immediate shutdown (SIGQUIT; SIGKILL after 5 s), reap, release the dir. Blocking and
    /// infallible: used by the shared server's exit hook.
    pub(crate) fn shut_down_now(&self) {
        self.server.shut_down_now();
    }
}

/// Locates the PostgreSQL server binaries: the directory in `$BOXOFFICE_PG_BIN`, else the
/// directory of an `initdb` on `PATH` (following symlinks), else the newest
/// `/usr/lib/postgresql/<version>/bin`. The directory must hold both `initdb` and `postgres`.
/// Fails with the command to install them when none is found.
pub fn find_postgres_bin_dir() -> anyhow::Result<PathBuf> {
    // An empty value counts as unset, as shells make `BOXOFFICE_PG_BIN= cargo test` easy to type.
    if let Some(dir) = env::var_os(BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        ensure!(
            has_server_binaries(&dir),
            "{BIN_DIR_ENV}={} does not hold executable `initdb` and `postgres`: point it at the \
             directory that does, or unset it and install PostgreSQL with \
             `apt-get install -y postgresql` (Debian/Ubuntu)",
            dir.display()
        );
        return Ok(dir);
    }
    if let Some(dir) = env::var_os("PATH").and_then(|path| bin_dir_on_path(&path)) {
        return Ok(dir);
    }
    if let Some(dir) = newest_debian_bin_dir() {
        return Ok(dir);
    }
    bail!(
        "PostgreSQL server binaries (initdb, postgres) not found in ${BIN_DIR_ENV}, on PATH or \
         in {DEBIAN_LIB_DIR}/*/bin; {INSTALL_HINT}"
    )
}

fn bin_dir_on_path(path: &OsStr) -> Option<PathBuf> {
    env::split_paths(path).find_map(|dir| {
        let initdb = dir.join("initdb");
        if !is_executable(&initdb) {
            return None;
        }
        // Resolve links first: a shared bin dir (/usr/local/bin, Homebrew) may link initdb and
        // postgres but not their siblings (pgbench, psql), which callers look for in bin_dir.
        let real = fs::canonicalize(&initdb).ok()?;
        if real == initdb && has_server_binaries(&dir) {
            return Some(dir);
        }
        let real_dir = real.parent()?;
        has_server_binaries(real_dir).then(|| real_dir.to_path_buf())
    })
}

fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir(DEBIAN_LIB_DIR)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Environment variable of extra server settings for every PostgreSQL the lab starts:
/// `name=value` pairs separated by commas or whitespace (for example
/// `BOXOFFICE_PG_SETTINGS="commit_delay=100 shared_preload_libraries=pg_stat_statements"`).
/// They replace the defaults; settings a caller passes replace them.
pub const SETTINGS_ENV: &str = "BOXOFFICE_PG_SETTINGS";

/// The pairs of a [`SETTINGS_ENV`] value.
fn env_settings(value: &str) -> anyhow::Result<Vec<(&str, &str)>> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| anyhow::anyhow!("{SETTINGS_ENV}: {pair:?} is not name=value"))
        })
        .collect()
}

fn merge_settings(extra: &[(&str, &str)]) -> anyhow::Result<Vec<(String, String)>> {
    let mut merged: Vec<(String, String)> = DEFAULT_SETTINGS
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let from_env = std::env::var(SETTINGS_ENV).unwrap_or_default();
    for (name, value) in env_settings(&from_env)?.iter().chain(extra) {
        ensure!(
            !name.is_empty() && !name.contains('='),
            "invalid PostgreSQL setting name {name:?}"
        );
        match merged.iter_mut().find(|(existing, _)| existing == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => merged.push((name.to_string(), value.to_string())),
        }
    }
    Ok(merged)
}

/// A command for one of the PostgreSQL binaries, run as `identity` with a predictable
/// environment (English messages, HOME inside the temp dir).
fn pg_command(program: PathBuf, root: &Path, identity: Option<Identity>) -> Command {
    let mut command = Command::new(program);
    command
        .env("LC_ALL", "C")
        .env("HOME", root)
        .env_remove("PGDATA")
        .current_dir(root);
    if let Some(Identity { uid, gid }) = identity {
        // std also clears supplementary groups when it changes uid as root.
        command.uid(uid).gid(gid);
    }
    command
}

async fn run_initdb(
    bin_dir: &Path,
    root: &Path,
    data_dir: &Path,
    identity: Option<Identity>,
) -> anyhow::Result<()> {
    let log_path = root.join("initdb.log");
    let log = open_log(&log_path).context("Failed to create initdb.log")?;
    let mut command = pg_command(bin_dir.join("initdb"), root, identity);
    command
        .arg("-D")
        .arg(data_dir)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut child = process::spawn_tied(command)
        .await
        .with_context(|| format!("Failed to spawn {}", bin_dir.join("initdb").display()))?;
    let status = match process::wait_async(&mut child, INITDB_TIMEOUT).await? {
        Some(status) => status,
        None => {
            let _ = process::terminate_blocking(&mut child, Signal::SIGKILL, Duration::ZERO);
            bail!(
                "initdb did not finish within {} s\n{}",
                INITDB_TIMEOUT.as_secs(),
                log_tail(&log_path)
            );
        }
    };
    ensure!(
        status.success(),
        "initdb failed ({status})\n{}",
        log_tail(&log_path)
    );
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

async fn select_one(url: &str) -> Result<(), sqlx::Error> {
    let mut connection = PgConnection::connect(url).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connection)
        .await?;
    debug_assert_eq!(one, 1);
    connection.close().await
}

/// The last lines of a log, framed for an error message.
fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            format!("--- last lines of {} ---\n{tail}", path.display())
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_settings_from_the_environment_are_name_value_pairs() {
        assert_eq!(
            env_settings("commit_delay=100, shared_preload_libraries=pg_stat_statements\tx=")
                .unwrap(),
            vec![
                ("commit_delay", "100"),
                ("shared_preload_libraries", "pg_stat_statements"),
                ("x", ""),
            ]
        );
        assert!(env_settings("").unwrap().is_empty());
        assert!(env_settings("commit_delay").is_err());
        assert!(env_settings("=1").is_err());
    }
}

//! A real Redis server (and, for failover drills, a replica watched by Sentinel) started from
//! the `redis-server` / `redis-sentinel` binaries on PATH, each in its own temp dir on a free
//! port, stopped on drop.
//!
//! Persistence is off (`--save '' --appendonly no`): the box office keeps only caches, locks
//! and pub/sub in Redis, so a restart that loses everything is the interesting case.
//! [`LocalRedis::kill`] and [`LocalRedis::restart`] let tests take Redis away and bring it back
//! on the same port, which is what a client's reconnect logic has to survive.
//!
//! ```text
//! /dev/shm/boxoffice-redis-<pid>-XXXXXX/
//! ├── redis.log        server log, appended across restarts
//! └── sentinel.conf    (failover drills only; Sentinel rewrites it)
//! ```
//!
//! Readiness checks and drills speak Redis's inline protocol over a fresh TCP connection
//! (`raw_command`) rather than through the `redis` crate: one blocking command with short timeouts
//! is all they need, with no reconnect or retry logic to hide a half-started or frozen server.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::sync::OnceCell;

use crate::process::{Home, Server, Supervisor};
use crate::sys;

const INSTALL_HINT: &str = "install it with `apt-get install -y redis-server redis-sentinel` \
     (Debian/Ubuntu), or put redis-server on PATH";

/// Finds `name` (`redis-server`, `redis-sentinel`) on PATH, or says how to install it.
pub fn find_redis_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("`{name}` is not on PATH: {INSTALL_HINT}")
}

/// One `redis-server` child process on 127.0.0.1.
#[derive(Debug)]
pub struct LocalRedis {
    /// The server, its temp dir (log; removed on drop unless `BOXOFFICE_KEEP_STACK=1`) and port.
    server: Supervisor<RedisServer>,
}

/// How `redis-server` is run: persistence off, logging into its temp dir.
#[derive(Debug)]
struct RedisServer {
    /// Extra `--flag value` arguments (e.g. `--replicaof`), reused by [`LocalRedis::restart`].
    extra: Vec<String>,
}

impl Server for RedisServer {
    const READY_TIMEOUT: Duration = Duration::from_secs(10);

    fn name(&self) -> &str {
        "Redis"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let mut cmd = Command::new(find_redis_binary("redis-server")?);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(home)
            .arg("--logfile")
            .arg(home.join(LOG))
            .args(&self.extra);
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        answers_ping(port)
    }
}

/// The Redis and Sentinel log, in the temp dir.
const LOG: &str = "redis.log";

/// Whether the server on `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> Result<(), String> {
    match raw_command(port, "PING") {
        Ok(reply) if reply.starts_with("+PONG") => Ok(()),
        Ok(reply) => Err(format!("PING answered {reply:?}")),
        Err(error) => Err(error.to_string()),
    }
}

impl LocalRedis {
    /// Starts a standalone server on a free port and waits until it answers `PING`.
    pub async fn start() -> anyhow::Result<LocalRedis> {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra command-line arguments (`["--replicaof", "127.0.0.1 6379"]`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<LocalRedis> {
        find_redis_binary("redis-server")?;
        let home = Home::temp("boxoffice-redis-", None)?;
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let server = Supervisor::start(RedisServer { extra }, home, LOG).await?;
        Ok(LocalRedis { server })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.server.log_path().to_path_buf()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.server.log_tail(n)
    }

    /// The server process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// Kills the server with SIGKILL (a crash: clients see their connections reset).
    pub async fn kill(&self) -> anyhow::Result<()> {
        self.server.kill().await
    }

    /// Starts the server again on the same port (killing it first if it runs). Its data is
    /// gone: persistence is off.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.server.restart().await
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers. Fails when it
    /// does not run.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.server.signal(chaos::process::Signal::SIGSTOP)
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.server.signal(chaos::process::Signal::SIGCONT)
    }

    /// Sends one command (inline protocol) and returns the raw reply, for drills.
    pub fn command(&self, cmd: &str) -> anyhow::Result<String> {
        raw_command(self.port(), cmd)
    }
}

/// One inline command over a fresh TCP connection; returns the first reply chunk.
fn raw_command(port: u16, cmd: &str) -> anyhow::Result<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A primary, a replica and one Sentinel watching them (quorum 1), for failover drills:
/// kill the primary and Sentinel promotes the replica within a few seconds.
#[derive(Debug)]
pub struct RedisFailover {
    /// The primary at start.
    pub primary: LocalRedis,
    /// Its replica.
    pub replica: LocalRedis,
    sentinel: Supervisor<Sentinel>,
}

/// The name Sentinel knows the primary by.
pub const SENTINEL_MASTER_NAME: &str = "boxoffice";

/// How `redis-sentinel` is run: watching one primary, configured in its temp dir.
#[derive(Debug)]
struct Sentinel {
    primary_port: u16,
}

impl Server for Sentinel {
    const READY_TIMEOUT: Duration = Duration::from_secs(10);

    fn name(&self) -> &str {
        "Redis Sentinel"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let conf = home.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/{SENTINEL_LOG}\n\
                 sentinel monitor {SENTINEL_MASTER_NAME} 127.0.0.1 {p} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER_NAME} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER_NAME} 5000\n",
                dir = home.display(),
                p = self.primary_port
            ),
        )
        .context("Failed to write sentinel.conf")?;
        let mut cmd = Command::new(find_redis_binary("redis-sentinel")?);
        cmd.arg(&conf);
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        answers_ping(port)
    }
}

/// Sentinel's log, in its temp dir.
const SENTINEL_LOG: &str = "sentinel.log";

impl RedisFailover {
    /// Starts primary, replica and Sentinel (down-after 1 s, failover timeout 5 s).
    pub async fn start() -> anyhow::Result<RedisFailover> {
        find_redis_binary("redis-sentinel")?;
        let primary = LocalRedis::start().await?;
        let replicaof = format!("127.0.0.1 {}", primary.port());
        let replica = LocalRedis::start_with(&["--replicaof", &replicaof]).await?;
        let sentinel = Sentinel {
            primary_port: primary.port(),
        };
        let home = Home::temp("boxoffice-sentinel-", None)?;
        let sentinel = Supervisor::start(sentinel, home, SENTINEL_LOG).await?;
        Ok(RedisFailover {
            primary,
            replica,
            sentinel,
        })
    }

    /// Sentinel's port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel.port()
    }

    /// The port Sentinel currently names as primary.
    pub fn current_primary_port(&self) -> anyhow::Result<u16> {
        let reply = raw_command(
            self.sentinel_port(),
            &format!("SENTINEL get-master-addr-by-name {SENTINEL_MASTER_NAME}"),
        )?;
        reply
            .lines()
            .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("unexpected Sentinel reply {reply:?}"))
    }
}

static SHARED: OnceCell<LocalRedis> = OnceCell::const_new();

/// The Redis server shared by all tests of this process, started on first call. Tests share
/// it safely by using their own key prefix ([`fresh_redis_prefix`]).
pub async fn shared_redis() -> anyhow::Result<&'static LocalRedis> {
    SHARED
        .get_or_try_init(|| async {
            let server = LocalRedis::start().await?;
            sys::at_exit(stop_shared_at_exit)?;
            Ok(server)
        })
        .await
}

/// A key prefix no other test uses.
pub fn fresh_redis_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Statics are never dropped, so the shared server is stopped here instead.
extern "C" fn stop_shared_at_exit() {
    if let Some(redis) = SHARED.get() {
        redis.server.shut_down_now();
    }
}

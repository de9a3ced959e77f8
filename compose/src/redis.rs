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
//! /tmp/boxoffice-redis-XXXXXX/
//! ├── redis.log        server log, appended across restarts
//! └── sentinel.conf    (failover drills only; Sentinel rewrites it)
//! ```

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::net::free_port;
use crate::process::tail;
use crate::process::{self};
use crate::sys;
use chaos::process::Signal;

const INSTALL_HINT: &str = "install it with `apt-get install -y redis-server redis-sentinel` \
     (Debian/Ubuntu), or put redis-server on PATH";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
const BIND_ATTEMPTS: u32 = 5;

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
    /// The server; `None` while killed.
    child: Mutex<Option<Child>>,
    /// Owns the temp dir (log); removed on drop unless `BOXOFFICE_KEEP_STACK=1`.
    dir: Mutex<Option<TempDir>>,
    root: PathBuf,
    port: u16,
    /// Extra `--flag value` arguments (e.g. `--replicaof`), reused by [`LocalRedis::restart`].
    extra: Vec<String>,
}

impl LocalRedis {
    /// Starts a standalone server on a free port and waits until it answers `PING`.
    pub async fn start() -> anyhow::Result<LocalRedis> {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra command-line arguments (`["--replicaof", "127.0.0.1 6379"]`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<LocalRedis> {
        find_redis_binary("redis-server")?;
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-redis-")
            .tempdir()
            .context("Failed to create a temp dir for Redis")?;
        let root = dir.path().to_path_buf();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port().context("Failed to find a free port for Redis")?;
            match spawn_server(&root, port, &extra).await {
                Ok(child) => {
                    tracing::info!(port, dir = %root.display(), "Redis started");
                    return Ok(LocalRedis {
                        child: Mutex::new(Some(child)),
                        dir: Mutex::new(Some(dir)),
                        root,
                        port,
                        extra,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server log.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("redis.log")
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// The server process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().expect("lock").as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (a crash: clients see their connections reset).
    pub async fn kill(&self) -> anyhow::Result<()> {
        Ok(process::stop_slot(&self.child, Signal::SIGKILL, STOP_GRACE).await?)
    }

    /// Starts the server again on the same port (killing it first if it runs). Its data is
    /// gone: persistence is off.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.kill().await?;
        let mut last = None;
        // The port was ours a moment ago; it may linger briefly after the kill.
        for _ in 0..20 {
            match spawn_server(&self.root, self.port, &self.extra).await {
                Ok(child) => {
                    *self.child.lock().expect("lock") = Some(child);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.expect("at least one attempt"))
    }

    /// Sends one command (inline protocol) and returns the raw reply, for drills.
    pub fn command(&self, cmd: &str) -> anyhow::Result<String> {
        raw_command(self.port, cmd)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = process::terminate_blocking(&mut child, Signal::SIGINT, STOP_GRACE);
        }
        if let Some(dir) = self.dir.lock().ok().and_then(|mut d| d.take()) {
            keep_or_remove(dir);
        }
    }
}

fn keep_or_remove(dir: TempDir) {
    if std::env::var("BOXOFFICE_KEEP_STACK").as_deref() == Ok("1") {
        eprintln!("compose: kept {}", dir.keep().display());
    }
}

async fn spawn_server(root: &Path, port: u16, extra: &[String]) -> anyhow::Result<Child> {
    let log = root.join("redis.log");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(root)
        .arg("--logfile")
        .arg(&log)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = process::spawn_tied(cmd)
        .await
        .with_context(|| format!("Failed to start redis-server: {INSTALL_HINT}"))?;
    wait_ready(child, port, &log).await
}

async fn wait_ready(mut child: Child, port: u16, log: &Path) -> anyhow::Result<Child> {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "redis on port {port} exited with {status}; log tail:\n{}",
                tail(log, 20)
            );
        }
        if raw_command(port, "PING").is_ok_and(|r| r.starts_with("+PONG")) {
            return Ok(child);
        }
        if began.elapsed() > READY_TIMEOUT {
            let _ = process::terminate_async(&mut child, Signal::SIGKILL, STOP_GRACE).await;
            bail!(
                "redis on port {port} did not answer PING within {READY_TIMEOUT:?}; log tail:\n{}",
                tail(log, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    sentinel: Mutex<Option<Child>>,
    sentinel_port: u16,
    _dir: TempDir,
}

/// The name Sentinel knows the primary by.
pub const SENTINEL_MASTER_NAME: &str = "boxoffice";

impl RedisFailover {
    /// Starts primary, replica and Sentinel (down-after 1 s, failover timeout 5 s).
    pub async fn start() -> anyhow::Result<RedisFailover> {
        find_redis_binary("redis-sentinel")?;
        let primary = LocalRedis::start().await?;
        let replicaof = format!("127.0.0.1 {}", primary.port());
        let replica = LocalRedis::start_with(&["--replicaof", &replicaof]).await?;
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-sentinel-")
            .tempdir()?;
        let port = free_port()?;
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {SENTINEL_MASTER_NAME} 127.0.0.1 {p} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER_NAME} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER_NAME} 5000\n",
                dir = dir.path().display(),
                p = primary.port()
            ),
        )?;
        let mut cmd = Command::new("redis-sentinel");
        cmd.arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = process::spawn_tied(cmd)
            .await
            .with_context(|| format!("Failed to start redis-sentinel: {INSTALL_HINT}"))?;
        let child = wait_ready(child, port, &dir.path().join("sentinel.log")).await?;
        Ok(RedisFailover {
            primary,
            replica,
            sentinel: Mutex::new(Some(child)),
            sentinel_port: port,
            _dir: dir,
        })
    }

    /// Sentinel's port.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// The port Sentinel currently names as primary.
    pub fn current_primary_port(&self) -> anyhow::Result<u16> {
        let reply = raw_command(
            self.sentinel_port,
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

impl Drop for RedisFailover {
    fn drop(&mut self) {
        if let Some(mut child) = self.sentinel.lock().ok().and_then(|mut c| c.take()) {
            let _ = process::terminate_blocking(&mut child, Signal::SIGINT, STOP_GRACE);
        }
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

extern "C" fn stop_shared_at_exit() {
    if let Some(server) = SHARED.get() {
        if let Some(mut child) = server.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = process::terminate_blocking(&mut child, Signal::SIGKILL, STOP_GRACE);
        }
    }
}

//! A Kafka-protocol broker for the local stack: the `tansu` binary (an Apache-Kafka-compatible
//! broker written in Rust) as a child process in its own temp dir, on a free port, stopped on
//! drop, its output kept in `tansu.log`.
//!
//! Storage is memory (fast, lost on restart) or SQLite (`tansu.db` in the temp dir, so
//! [`LocalKafka::restart`] keeps topics, messages and committed offsets, as a broker restart
//! should). tansu does not create topics on demand: create them with
//! [`LocalKafka::create_topic`] or an admin client (the box office does at start).
//!
//! tansu is not packaged; install it once with
//! `cargo install --locked tansu@0.6.0 --features dynostore,libsql,postgres` (15–20 min).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tempfile::TempDir;

use crate::net::free_port;
use crate::process;
use crate::process::tail;
use chaos::process::Signal;

const INSTALL_HINT: &str = "install it with \
     `cargo install --locked tansu@0.6.0 --features dynostore,libsql,postgres` \
     (takes 15-20 minutes), or set BOXOFFICE_TANSU to its path";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a [`LocalKafka`] keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStorage {
    /// In memory: lost when the broker stops.
    Memory,
    /// An SQLite file in the temp dir: survives [`LocalKafka::restart`].
    Sqlite,
}

/// The `tansu` binary: `BOXOFFICE_TANSU`, else PATH, else `~/.cargo/bin`, else an error that
/// says how to install it.
pub fn find_tansu() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("BOXOFFICE_TANSU") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "BOXOFFICE_TANSU={} is not a file; {INSTALL_HINT}",
            p.display()
        );
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(|h| PathBuf::from(h).join("bin"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
    for dir in std::env::split_paths(&path).chain(cargo_bin) {
        let candidate = dir.join("tansu");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("the `tansu` Kafka broker is not on PATH nor in ~/.cargo/bin: {INSTALL_HINT}")
}

/// One tansu broker on 127.0.0.1.
#[derive(Debug)]
pub struct LocalKafka {
    child: Mutex<Option<Child>>,
    dir: Mutex<Option<TempDir>>,
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    storage: KafkaStorage,
    /// The address clients are told to connect to (`host:port`), when it is not the broker's
    /// own: a fault proxy in front of it.
    advertised: Option<String>,
}

impl LocalKafka {
    /// Starts a broker with `storage` on a free port and waits until it accepts connections.
    pub async fn start(storage: KafkaStorage) -> anyhow::Result<LocalKafka> {
        Self::start_advertising(storage, None).await
    }

    /// Like [`LocalKafka::start`], but the broker tells clients to reach it at `advertised`
    /// (`host:port`) — the address of a fault proxy in front of it — so that every connection a
    /// client makes after the bootstrap also goes through the proxy.
    pub async fn start_advertising(
        storage: KafkaStorage,
        advertised: Option<String>,
    ) -> anyhow::Result<LocalKafka> {
        let bin = find_tansu()?;
        let dir = tempfile::Builder::new()
            .prefix("boxoffice-kafka-")
            .tempdir()
            .context("Failed to create a temp dir for tansu")?;
        let root = dir.path().to_path_buf();
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(&bin, &root, port, storage, advertised.as_deref()).await {
                Ok(child) => {
                    tracing::info!(port, dir = %root.display(), "tansu started");
                    return Ok(LocalKafka {
                        child: Mutex::new(Some(child)),
                        dir: Mutex::new(Some(dir)),
                        root,
                        bin,
                        port,
                        storage,
                        advertised,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("tansu.log")
    }

    /// Its storage.
    pub fn storage(&self) -> KafkaStorage {
        self.storage
    }

    /// Creates a topic with the tansu CLI.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(&self.bin)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .await
            .context("Failed to run `tansu topic create`")?;
        if !out.status.success() {
            bail!(
                "`tansu topic create {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The broker process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().expect("lock").as_ref().map(Child::id)
    }

    /// Kills the broker with SIGKILL.
    pub async fn kill(&self) -> anyhow::Result<()> {
        Ok(process::stop_slot(&self.child, Signal::SIGKILL, STOP_GRACE).await?)
    }

    /// Starts the broker again on the same port and storage (killing it first if it runs).
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.kill().await?;
        let mut last = None;
        for _ in 0..20 {
            let advertised = self.advertised.as_deref();
            match spawn(&self.bin, &self.root, self.port, self.storage, advertised).await {
                Ok(child) => {
                    *self.child.lock().expect("lock") = Some(child);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last.expect("at least one attempt"))
    }
}

impl Drop for LocalKafka {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = process::terminate_blocking(&mut child, Signal::SIGINT, STOP_GRACE);
        }
        if let Some(dir) = self.dir.lock().ok().and_then(|mut d| d.take()) {
            if std::env::var("BOXOFFICE_KEEP_STACK").as_deref() == Ok("1") {
                eprintln!("compose: kept {}", dir.keep().display());
            }
        }
    }
}

async fn spawn(
    bin: &Path,
    root: &Path,
    port: u16,
    storage: KafkaStorage,
    advertised: Option<&str>,
) -> anyhow::Result<Child> {
    let log_path = root.join("tansu.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised_url = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
    // tansu takes an SQLite path relative to its working directory.
    let engine = match storage {
        KafkaStorage::Memory => "memory://tansu/".to_owned(),
        KafkaStorage::Sqlite => "sqlite://tansu.db".to_owned(),
    };
    let mut cmd = Command::new(bin);
    cmd.current_dir(root)
        .arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &advertised_url])
        .args(["--storage-engine", &engine])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut child = process::spawn_tied(cmd)
        .await
        .with_context(|| format!("Failed to start {}: {INSTALL_HINT}", bin.display()))?;
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "tansu on port {port} exited with {status}; log tail:\n{}",
                tail(&log_path, 20)
            );
        }
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return Ok(child);
        }
        if began.elapsed() > READY_TIMEOUT {
            let _ = process::terminate_async(&mut child, Signal::SIGKILL, STOP_GRACE).await;
            bail!(
                "tansu on port {port} did not listen within {READY_TIMEOUT:?}; log tail:\n{}",
                tail(&log_path, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

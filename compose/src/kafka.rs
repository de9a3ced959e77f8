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
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::process::{Home, Server, Supervisor};

const INSTALL_HINT: &str = "install it with \
     `cargo install --locked tansu@0.6.0 --features dynostore,libsql,postgres` \
     (takes 15-20 minutes), or set BOXOFFICE_TANSU to its path";
/// The broker's log (stdout and stderr), in its temp dir.
const LOG: &str = "tansu.log";

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
    /// The broker, its temp dir and port.
    server: Supervisor<Tansu>,
}

/// How the broker is run.
#[derive(Debug)]
struct Tansu {
    bin: PathBuf,
    storage: KafkaStorage,
    /// The address clients are told to connect to (`host:port`), when it is not the broker's
    /// own: a fault proxy in front of it.
    advertised: Option<String>,
}

impl Server for Tansu {
    const READY_TIMEOUT: Duration = Duration::from_secs(20);

    fn name(&self) -> &str {
        "tansu"
    }

    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command> {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = self
            .advertised
            .as_ref()
            .map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        // tansu takes an SQLite path relative to its working directory.
        let engine = match self.storage {
            KafkaStorage::Memory => "memory://tansu/",
            KafkaStorage::Sqlite => "sqlite://tansu.db",
        };
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(home)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &advertised_url])
            .args(["--storage-engine", engine]);
        Ok(cmd)
    }

    async fn probe(&self, port: u16) -> Result<(), String> {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .map(drop)
            .map_err(|e| e.to_string())
    }
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
        let tansu = Tansu {
            bin: find_tansu()?,
            storage,
            advertised,
        };
        let home = Home::temp("boxoffice-kafka-", None)?;
        let server = Supervisor::start(tansu, home, LOG)
            .await
            .with_context(|| format!("tansu did not start; {INSTALL_HINT}"))?;
        Ok(LocalKafka { server })
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// The broker's log (stdout and stderr, appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.server.log_path().to_path_buf()
    }

    /// Its storage.
    pub fn storage(&self) -> KafkaStorage {
        self.server.server().storage
    }

    /// Creates a topic with the tansu CLI.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(&self.server.server().bin)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.bootstrap()))
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
        self.server.pid()
    }

    /// Kills the broker with SIGKILL.
    pub async fn kill(&self) -> anyhow::Result<()> {
        self.server.kill().await
    }

    /// Starts the broker again on the same port and storage (killing it first if it runs).
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.server.restart().await
    }

    /// Freezes the broker (SIGSTOP). Fails when it does not run.
    pub(crate) fn pause(&self) -> anyhow::Result<()> {
        self.server.signal(chaos::process::Signal::SIGSTOP)
    }

    /// Thaws a paused broker (SIGCONT). Fails when it does not run.
    pub(crate) fn resume(&self) -> anyhow::Result<()> {
        self.server.signal(chaos::process::Signal::SIGCONT)
    }
}

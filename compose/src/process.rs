//! Child processes that cannot outlive the lab, run as an unprivileged user when we are root.
//!
//! Every server the crate starts is spawned by one dedicated thread that lives until the process
//! ends, with `PR_SET_PDEATHSIG=SIGKILL` set in the child: the kernel kills the child when its
//! spawning *thread* exits, so spawning from short-lived test or tokio threads would kill servers
//! early, while spawning from this thread kills them exactly when the process dies, even on a
//! crash or `kill -9`. Waiting and signalling happen from any thread through the `Child`.
//!
//! On top of that, [`Supervisor`] runs one server (PostgreSQL, Redis, Sentinel, tansu,
//! Prometheus, Alertmanager, a box-office instance) the same way for all of them: a home dir
//! ([`Home`]), a free port (retried when another process takes it first), the child with its
//! output appended to one log, a readiness probe, kill / stop / start again on the same port,
//! pause and resume, and a stop on drop. What differs per server is a [`Server`]: its command
//! and its probe.
//!
//! Hand-written rather than built on a process crate (`process-wrap`, `command-group`): those
//! manage process groups, while the lab needs the tie to the parent's death set from a long-lived
//! spawner thread, readiness probes, and restarts on the same port.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tempfile::TempDir;

use crate::{homes, sys};
use chaos::process::{self as signal, Signal};

/// How often we poll a child for its exit; short, because shutdowns usually take milliseconds.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The unprivileged user servers run as when we are root (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The identity to run servers as: `None` when we are not root (servers then run as us),
/// otherwise user `nobody` with its primary group (`nogroup` on Debian).
pub(crate) fn server_identity() -> anyhow::Result<Option<Identity>> {
    if !sys::is_root() {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("Failed to read /etc/passwd")?;
    let nobody = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 4 && fields[0] == "nobody");
    let Some(fields) = nobody else {
        bail!("running as root, but there is no user `nobody` in /etc/passwd to run servers as");
    };
    let uid = fields[2]
        .parse()
        .context("Failed to parse the uid of `nobody`")?;
    let gid = fields[3]
        .parse()
        .context("Failed to parse the gid of `nobody`")?;
    Ok(Some(Identity { uid, gid }))
}

type SpawnRequest = (Command, tokio::sync::oneshot::Sender<io::Result<Child>>);

/// The sending end of the spawner thread's queue. Never dropped, so the thread never exits.
static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);

/// Spawns `command` from the spawner thread, with the parent-death signal set (see the module
/// docs). The caller owns the returned `Child` and must reap it.
pub(crate) async fn spawn_tied(mut command: Command) -> io::Result<Child> {
    sys::die_with_parent(&mut command);
    let (reply, response) = tokio::sync::oneshot::channel();
    spawner()?
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    response
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

fn spawner() -> io::Result<mpsc::Sender<SpawnRequest>> {
    let mut slot = SPAWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(sender) = slot.as_ref() {
        return Ok(sender.clone());
    }
    let (sender, requests) = mpsc::channel::<SpawnRequest>();
    thread::Builder::new()
        .name("compose-spawner".into())
        .spawn(move || {
            for (mut command, reply) in requests {
                // The requester may have given up (its future was dropped); then the child is
                // dropped here too, and its PDEATHSIG still ties it to the process.
                let _ = reply.send(command.spawn());
            }
        })?;
    *slot = Some(sender.clone());
    Ok(sender)
}

/// Waits up to `timeout` for `child` to exit, without blocking the async runtime.
/// Returns `None` when it is still running.
pub(crate) async fn wait_async(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let ControlFlow::Break(ended) = poll_exit(child, deadline)? {
            return Ok(ended);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits up to `timeout` for `child` to exit, blocking the calling thread (for `Drop`).
/// Returns `None` when it is still running.
pub(crate) fn wait_blocking(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let ControlFlow::Break(ended) = poll_exit(child, deadline)? {
            return Ok(ended);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// One poll of a wait: `Break(Some(status))` once the child exited, `Break(None)` once the
/// deadline passed, `Continue` to poll again.
fn poll_exit(child: &mut Child, deadline: Instant) -> io::Result<ControlFlow<Option<ExitStatus>>> {
    if let Some(status) = child.try_wait()? {
        return Ok(ControlFlow::Break(Some(status)));
    }
    if Instant::now() >= deadline {
        return Ok(ControlFlow::Break(None));
    }
    Ok(ControlFlow::Continue(()))
}

/// How a terminated child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It had already exited before we asked.
    AlreadyExited(ExitStatus),
    /// It exited after the polite signal.
    Exited(ExitStatus),
    /// It ignored the polite signal for the whole grace period and was SIGKILLed.
    Killed,
}

/// Sends `signal`, waits up to `grace` for the child to exit, then SIGKILLs and reaps it.
/// Blocking: meant for `Drop` and exit hooks.
pub(crate) fn terminate_blocking(
    child: &mut Child,
    signal: Signal,
    grace: Duration,
) -> io::Result<Ending> {
    if let Some(ending) = begin_termination(child, signal)? {
        return Ok(ending);
    }
    match wait_blocking(child, grace)? {
        Some(status) => Ok(Ending::Exited(status)),
        None => kill_and_reap(child),
    }
}

/// Async twin of [`terminate_blocking`].
pub(crate) async fn terminate_async(
    child: &mut Child,
    signal: Signal,
    grace: Duration,
) -> io::Result<Ending> {
    if let Some(ending) = begin_termination(child, signal)? {
        return Ok(ending);
    }
    match wait_async(child, grace).await? {
        Some(status) => Ok(Ending::Exited(status)),
        None => kill_and_reap(child),
    }
}

/// Sends `signal` unless the child has already exited (then says so). A child that exits
/// between the check and the signal is a zombie until reaped, which the wait that follows does.
fn begin_termination(child: &mut Child, signal: Signal) -> io::Result<Option<Ending>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(Ending::AlreadyExited(status)));
    }
    match signal::send(child.id(), signal) {
        Err(error) if signal::is_gone(&error) => Ok(None),
        other => other.map(|()| None),
    }
}

fn kill_and_reap(child: &mut Child) -> io::Result<Ending> {
    child.kill()?;
    child.wait()?;
    Ok(Ending::Killed)
}

/// The last `n` lines of a log file (empty if it cannot be read), for error messages.
pub(crate) fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Environment variable that, set to `1`, keeps temp dirs (data and logs) after a stop.
const KEEP_ENV: &str = "BOXOFFICE_KEEP_STACK";
/// Another process may grab the free port between our probe and the server's bind.
const BIND_ATTEMPTS: u32 = 5;
/// How long [`Supervisor::start_again`] keeps trying: a killed server's port, or PostgreSQL's
/// shared memory, may linger for a moment.
const RESTART_PATIENCE: Duration = Duration::from_secs(10);
const RESTART_PAUSE: Duration = Duration::from_millis(200);
/// How often a starting server is probed.
const READY_POLL: Duration = Duration::from_millis(25);
const LOG_TAIL_LINES: usize = 40;

/// Where a supervised server keeps its files: a temp dir of its own, or a dir it shares (the
/// lab's instances log into the lab's dir).
#[derive(Debug)]
pub(crate) struct Home {
    /// The temp dir when the server owns it; released by [`Home::release`].
    dir: Option<TempDir>,
    path: PathBuf,
    in_ram: bool,
}

impl Home {
    /// A fresh 0700 temp dir `<prefix><pid>-XXXXXX` in [`homes::base`] (RAM by default), owned
    /// by `identity` when given. The first one a process makes sweeps that dir of the homes
    /// that killed runs left ([`homes::sweep_once`]).
    pub(crate) fn temp(prefix: &str, identity: Option<Identity>) -> anyhow::Result<Home> {
        let (dir, in_ram) = homes::make(prefix, identity)?;
        if let Some(Identity { uid, gid }) = identity {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).with_context(|| {
                format!("Failed to chown {} to {uid}:{gid}", dir.path().display())
            })?;
        }
        Ok(Home {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            in_ram,
        })
    }

    /// A dir that someone else owns and removes.
    pub(crate) fn shared(path: &Path) -> Home {
        Home {
            dir: None,
            path: path.to_path_buf(),
            in_ram: false,
        }
    }

    /// The dir.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the dir is in RAM (a tmpfs); `false` for a shared dir.
    pub(crate) fn in_ram(&self) -> bool {
        self.in_ram
    }

    /// Removes an owned temp dir, or keeps it and says where when `BOXOFFICE_KEEP_STACK=1`.
    pub(crate) fn release(self, what: &str) {
        let Some(dir) = self.dir else { return };
        if std::env::var_os(KEEP_ENV).is_some_and(|value| value == "1") {
            let path = dir.keep();
            // The sweep of later runs leaves a kept dir alone.
            if let Err(error) = homes::mark_kept(&path) {
                eprintln!(
                    "compose: failed to mark {} as kept: {error}",
                    path.display()
                );
            }
            eprintln!(
                "compose: {KEEP_ENV}=1, kept the {what} dir {}",
                path.display()
            );
        } else if let Err(error) = dir.close() {
            eprintln!("compose: failed to remove the {what} temp dir: {error}");
        }
    }
}

/// One kind of server a [`Supervisor`] runs: how to start it and how to tell it is ready.
pub(crate) trait Server: std::fmt::Debug + Send + Sync + 'static {
    /// How long a start may take to pass [`Server::probe`].
    const READY_TIMEOUT: Duration;
    /// How it is stopped when dropped (and when a start fails): this signal, then SIGKILL after
    /// the grace period.
    const DROP_STOP: (Signal, Duration) = (Signal::SIGINT, Duration::from_secs(5));

    /// Its name in logs and errors (`PostgreSQL`, `Redis`, `app-1`).
    fn name(&self) -> &str;

    /// The command that runs it on 127.0.0.1:`port` with `home` as its dir; the supervisor sets
    /// stdin to null and appends stdout and stderr to the log. May write files into `home`.
    fn command(&self, home: &Path, port: u16) -> anyhow::Result<Command>;

    /// Asks the server on `port` whether it is ready; `Err` says what it answered instead.
    fn probe(&self, port: u16) -> impl Future<Output = Result<(), String>> + Send;
}

/// A server running as a child process on a port of 127.0.0.1, from its [`Home`], logging to one
/// file there (appended across restarts). Stopped on drop, then its home released.
#[derive(Debug)]
pub(crate) struct Supervisor<S: Server> {
    server: S,
    /// The running child; `None` while killed or stopped. Behind a mutex because servers are
    /// shared (`&self`, even `&'static` for the test-shared ones) yet must be stopped and reaped.
    child: Mutex<Option<Child>>,
    /// `None` once released. Same mutex reasoning as `child`.
    home: Mutex<Option<Home>>,
    /// The home's path, kept apart so accessors can hand out `&Path`.
    root: PathBuf,
    log: PathBuf,
    port: u16,
    /// The pid of the last child started, kept after it stops (for messages and reports).
    last_pid: AtomicU32,
}

impl<S: Server> Supervisor<S> {
    /// Starts `server` from `home`, logging to `home/<log>`, on a free port (a new one when
    /// another process took it first, up to 5 times), and waits until its probe passes.
    /// On failure the home is released and the error carries the tail of the log.
    pub(crate) async fn start(server: S, home: Home, log: &str) -> anyhow::Result<Supervisor<S>> {
        let log = home.path().join(log);
        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = crate::net::free_port()
                .with_context(|| format!("Failed to find a free port for {}", server.name()));
            let started = match port {
                Ok(port) => spawn_ready(&server, home.path(), &log, port)
                    .await
                    .map(|child| (child, port)),
                Err(error) => Err(error),
            };
            match started {
                Ok(started) => break started,
                Err(error) if attempt < BIND_ATTEMPTS && error.is::<PortTaken>() => {
                    tracing::warn!(
                        server = server.name(),
                        "lost its port to another process; retrying"
                    );
                }
                Err(error) => {
                    home.release(server.name());
                    return Err(error);
                }
            }
        };
        tracing::info!(server = server.name(), port, pid = child.id(), dir = %home.path().display(), "started");
        Ok(Supervisor {
            last_pid: AtomicU32::new(child.id()),
            child: Mutex::new(Some(child)),
            root: home.path().to_path_buf(),
            home: Mutex::new(Some(home)),
            server,
            log,
            port,
        })
    }

    /// What runs.
    pub(crate) fn server(&self) -> &S {
        &self.server
    }

    /// The port it listens on (on 127.0.0.1), the same across restarts.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its home dir.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Its log.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of its log.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// The running child's pid; `None` while stopped.
    pub(crate) fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().map(Child::id)
    }

    /// The pid of the last child started, running or not.
    pub(crate) fn last_pid(&self) -> u32 {
        self.last_pid.load(Ordering::Relaxed)
    }

    /// Whether the child runs (it may be paused).
    pub(crate) fn is_running(&self) -> bool {
        lock(&self.child)
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the child: `signal`, then SIGKILL after `grace`; a paused child is thawed first,
    /// or it could not act on the signal. `None` when nothing ran.
    pub(crate) async fn stop(&self, signal: Signal, grace: Duration) -> io::Result<Option<Ending>> {
        let child = lock(&self.child).take();
        match child {
            Some(mut child) => {
                let _ = signal::send(child.id(), Signal::SIGCONT);
                Ok(Some(terminate_async(&mut child, signal, grace).await?))
            }
            None => Ok(None),
        }
    }

    /// SIGKILL: a crash. The home stays; [`Supervisor::start_again`] brings it back.
    pub(crate) async fn kill(&self) -> anyhow::Result<()> {
        self.stop(Signal::SIGKILL, Duration::ZERO).await?;
        Ok(())
    }

    /// Starts the server again on its port, unless it runs, and waits until it is ready;
    /// retried for up to 10 s, since the port (or shared memory) of a killed server may linger.
    pub(crate) async fn start_again(&self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + RESTART_PATIENCE;
        loop {
            match spawn_ready(&self.server, &self.root, &self.log, self.port).await {
                Ok(child) => {
                    self.last_pid.store(child.id(), Ordering::Relaxed);
                    *lock(&self.child) = Some(child);
                    tracing::info!(
                        server = self.server.name(),
                        port = self.port,
                        pid = self.last_pid(),
                        "started again"
                    );
                    return Ok(());
                }
                Err(error) if Instant::now() < deadline => {
                    tracing::debug!(server = self.server.name(), error = %format!("{error:#}"), "not back yet; retrying");
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Kills the server if it runs, then starts it again on its port ([`Supervisor::start_again`]).
    pub(crate) async fn restart(&self) -> anyhow::Result<()> {
        self.kill().await?;
        self.start_again().await
    }

    /// Sends `signal` to the running server and its children (PostgreSQL's backends): SIGSTOP
    /// freezes it as a whole, SIGCONT thaws it. Fails when it does not run.
    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.server.name()))?;
        for p in std::iter::once(pid).chain(children_of(pid)) {
            match signal::send(p, signal) {
                Err(e) if signal::is_gone(&e) => {}
                other => other
                    .with_context(|| format!("Failed to signal {} pid {p}", self.server.name()))?,
            }
        }
        Ok(())
    }

    /// Removes the home (or keeps it, see [`Home::release`]); the server must be stopped.
    pub(crate) fn release_home(&self) {
        if let Some(home) = lock(&self.home).take() {
            home.release(self.server.name());
        }
    }

    /// Stops the server ([`Server::DROP_STOP`]), reaps it and releases its home. Blocking and
    /// infallible, for `Drop` and exit hooks, which must never wait on a lock, hence `try_lock`.
    pub(crate) fn shut_down_now(&self) {
        if let Some(mut slot) = try_lock(&self.child) {
            if let Some(mut child) = slot.take() {
                let _ = signal::send(child.id(), Signal::SIGCONT);
                let (signal, grace) = S::DROP_STOP;
                if let Err(error) = terminate_blocking(&mut child, signal, grace) {
                    eprintln!(
                        "compose: failed to stop {} (pid {}): {error}",
                        self.server.name(),
                        child.id()
                    );
                }
            }
        }
        if let Some(mut slot) = try_lock(&self.home) {
            if let Some(home) = slot.take() {
                home.release(self.server.name());
            }
        }
    }
}

impl<S: Server> Drop for Supervisor<S> {
    fn drop(&mut self) {
        self.shut_down_now();
    }
}

/// A start that failed because another process took the port between our probe and the
/// server's bind (its log says so); another port will do.
#[derive(Debug)]
struct PortTaken(String);

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortTaken {}

/// Spawns the server on `port`, its output appended to `log`, and waits until its probe passes.
/// On failure the child is stopped and the error carries the tail of the log; it is a
/// [`PortTaken`] when the log says the port was in use.
async fn spawn_ready<S: Server>(
    server: &S,
    home: &Path,
    log: &Path,
    port: u16,
) -> anyhow::Result<Child> {
    let log_offset = fs::metadata(log).map_or(0, |meta| meta.len());
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("Failed to open {}", log.display()))?;
    let mut command = server.command(home, port)?;
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let program = command.get_program().to_owned();
    let mut child = spawn_tied(command).await.with_context(|| {
        format!(
            "Failed to start {} ({})",
            server.name(),
            Path::new(&program).display()
        )
    })?;
    let deadline = Instant::now() + S::READY_TIMEOUT;
    let reason = loop {
        match child.try_wait() {
            Ok(Some(status)) => break format!("it exited ({status})"),
            Ok(None) => {}
            Err(error) => break format!("could not check on it: {error}"),
        }
        let last = match server.probe(port).await {
            Ok(()) => return Ok(child),
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            break format!(
                "not ready within {:?} (last answer: {last})",
                S::READY_TIMEOUT
            );
        }
        tokio::time::sleep(READY_POLL).await;
    };
    let (signal, grace) = S::DROP_STOP;
    let _ = terminate_async(&mut child, signal, grace).await;
    let message = format!(
        "{} did not become ready on 127.0.0.1:{port}: {reason}\n--- last lines of {} ---\n{}",
        server.name(),
        log.display(),
        tail(log, LOG_TAIL_LINES)
    );
    if port_was_taken(log, log_offset) {
        return Err(PortTaken(message).into());
    }
    bail!(message)
}

/// Whether the server, since `offset` in its log, said its port was in use (PostgreSQL:
/// "could not bind"; Redis, tansu, Go and Rust servers: "address already in use").
fn port_was_taken(log: &Path, offset: u64) -> bool {
    let text = fs::read(log).unwrap_or_default();
    let recent =
        String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()).to_lowercase();
    recent.contains("could not bind") || recent.contains("address already in use")
}

/// Child pids of `pid`, read from /proc (empty when /proc is unreadable).
fn children_of(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Locks a mutex, ignoring poisoning: what it guards (a child, a dir) stays valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks a mutex unless another thread holds it.
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

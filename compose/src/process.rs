//! Child processes that cannot outlive the lab, run as an unprivileged user when we are root.
//!
//! Every server the crate starts is spawned by one dedicated thread that lives until the process
//! ends, with `PR_SET_PDEATHSIG=SIGKILL` set in the child: the kernel kills the child when its
//! spawning *thread* exits, so spawning from short-lived test or tokio threads would kill servers
//! early, while spawning from this thread kills them exactly when the process dies, even on a
//! crash or `kill -9`. Waiting and signalling happen from any thread through the `Child`.

use std::fs;
use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::sys;
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
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
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
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
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
    if let Some(status) = child.try_wait()? {
        return Ok(Ending::AlreadyExited(status));
    }
    signal_child(child, signal)?;
    if let Some(status) = wait_blocking(child, grace)? {
        return Ok(Ending::Exited(status));
    }
    kill_and_reap(child)
}

/// Async twin of [`terminate_blocking`].
pub(crate) async fn terminate_async(
    child: &mut Child,
    signal: Signal,
    grace: Duration,
) -> io::Result<Ending> {
    if let Some(status) = child.try_wait()? {
        return Ok(Ending::AlreadyExited(status));
    }
    signal_child(child, signal)?;
    if let Some(status) = wait_async(child, grace).await? {
        return Ok(Ending::Exited(status));
    }
    kill_and_reap(child)
}

fn signal_child(child: &Child, signal: Signal) -> io::Result<()> {
    match signal::send(child.id(), signal) {
        // Exited between try_wait and kill: it is a zombie until reaped, which the wait does.
        Err(error) if signal::is_gone(&error) => Ok(()),
        other => other,
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

/// Takes the child out of `slot` and stops it: `signal`, then SIGKILL after `grace`. A
/// paused (SIGSTOP-ed) child is thawed first, or it could not act on the signal. Nothing
/// happens when the slot is empty.
pub(crate) async fn stop_slot(
    slot: &std::sync::Mutex<Option<Child>>,
    signal: Signal,
    grace: Duration,
) -> io::Result<()> {
    let child = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(mut child) = child {
        let _ = signal::send(child.id(), Signal::SIGCONT);
        terminate_async(&mut child, signal, grace).await?;
    }
    Ok(())
}

//! Process faults by pid: kill (SIGKILL), pause (SIGSTOP — a long GC pause as the rest of the
//! system sees it: the socket stays open, the kernel still completes TCP handshakes into the
//! backlog, but nothing answers) and resume (SIGCONT).
//!
//! [`send`] is the workspace's one way to signal a process (compose stops and pauses its
//! servers with it too); it goes through the `nix` crate, so no `unsafe` is needed here.

use std::io;

use nix::unistd::Pid;

/// A signal to send with [`send`] (`Signal::SIGKILL`, `Signal::SIGSTOP`, …).
pub use nix::sys::signal::Signal;

/// A process fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessFault {
    /// SIGKILL: the process dies at once, without cleanup.
    Kill,
    /// SIGSTOP: the process is frozen until resumed.
    Pause,
    /// SIGCONT: a paused process runs again.
    Resume,
    /// SIGTERM: a polite stop.
    Terminate,
}

impl ProcessFault {
    /// The signal that causes this fault.
    pub fn signal(self) -> Signal {
        match self {
            ProcessFault::Kill => Signal::SIGKILL,
            ProcessFault::Pause => Signal::SIGSTOP,
            ProcessFault::Resume => Signal::SIGCONT,
            ProcessFault::Terminate => Signal::SIGTERM,
        }
    }
}

/// Sends `signal` to `pid`. Fails with `ESRCH` if there is no such process (a caller that only
/// wants it gone can test [`is_gone`]) and `EPERM` if it belongs to another user. Refuses pids
/// ≤ 1, which would signal a process group, every process, or init.
pub fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid).ok().filter(|p| *p > 1).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        )
    })?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(io::Error::from)
}

/// Whether `error` from [`send`] says the process no longer exists (`ESRCH`).
pub fn is_gone(error: &io::Error) -> bool {
    error.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32)
}

/// Sends the fault's signal to `pid` (see [`send`]).
pub fn apply(pid: u32, fault: ProcessFault) -> io::Result<()> {
    send(pid, fault.signal())
}

/// SIGKILL `pid`.
pub fn kill(pid: u32) -> io::Result<()> {
    apply(pid, ProcessFault::Kill)
}

/// SIGSTOP `pid`, then waits (up to 1 s, where `/proc` exists) until the kernel reports it
/// stopped: `kill(2)` returns before every thread has stopped, and a thread still running
/// could answer one more request.
pub fn pause(pid: u32) -> io::Result<()> {
    apply(pid, ProcessFault::Pause)?;
    wait_for_state(pid, |s| matches!(s, 'T' | 't'));
    Ok(())
}

/// SIGCONT `pid`, then waits (up to 1 s, where `/proc` exists) until it is no longer stopped.
pub fn resume(pid: u32) -> io::Result<()> {
    apply(pid, ProcessFault::Resume)?;
    wait_for_state(pid, |s| !matches!(s, 'T' | 't'));
    Ok(())
}

/// The process state letter from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, …); `None` where
/// there is no `/proc` or no such process.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; the state follows it.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_for_state(pid: u32, done: impl Fn(char) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while let Some(s) = state(pid) {
        if done(s) || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_child_is_reported_stopped_and_a_resumed_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        pause(pid).unwrap();
        assert_eq!(state(pid), Some('T'));
        resume(pid).unwrap();
        assert_ne!(state(pid), Some('T'));
        kill(pid).unwrap();
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn signalling_pid_0_or_1_is_refused() {
        assert_eq!(kill(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(kill(1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}

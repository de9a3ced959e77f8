//! The few libc calls the crate needs, kept in one small module because they are `unsafe`.
//!
//! Everything else in the crate is safe code built on these: whether we run as root (servers
//! must then drop to an unprivileged uid), sending a signal to a child, tying a child's life to
//! ours with `PR_SET_PDEATHSIG`, and registering an exit hook for the shared server.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A signal we send to a server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT: PostgreSQL's "fast" shutdown (roll back sessions, checkpoint, exit).
    Interrupt,
    /// SIGQUIT: PostgreSQL's "immediate" shutdown (no checkpoint, but shared memory is released).
    Quit,
    /// SIGKILL: the last resort; works on a stopped (SIGSTOP-ed) process too.
    Kill,
    /// SIGSTOP: freeze (a long GC pause, as the rest of the system sees it).
    Stop,
    /// SIGCONT: thaw a frozen process.
    Continue,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Interrupt => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Continue => libc::SIGCONT,
        }
    }
}

/// True when the effective uid is 0 (PostgreSQL refuses to run then).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to process `pid`. `ESRCH` (already gone) is reported as an error; callers that
/// only want the process dead treat it as success.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill only reads its two integer arguments; pid is a positive child pid, never 0 or
    // -1, so it cannot signal a whole process group.
    let rc = unsafe { libc::kill(pid, signal.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the command's child receive SIGKILL when the thread that spawns it exits.
///
/// The kernel clears the parent-death signal on a credential change, and std applies
/// `Command::uid`/`gid` *before* running `pre_exec` closures, so setting it here survives the
/// privilege drop. Because the signal fires when the spawning *thread* exits, callers spawn from
/// a thread that lives as long as the process (see `process.rs`).
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: reads our own pid before fork; getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (prctl, getppid, raise); it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would kill us.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// Registers `hook` to run when the process exits normally (`exit`, or returning from `main`,
/// which is how the test harness ends). It does not run on a crash or a fatal signal.
pub(crate) fn at_exit(hook: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `hook` is a plain function with the C ABI that atexit expects; it lives for the
    // whole program.
    let rc = unsafe { libc::atexit(hook) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit refused the hook"))
    }
}

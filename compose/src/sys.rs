//! The few libc calls the crate needs, kept in one small module because they are `unsafe`.
//!
//! Everything else in the crate is safe code built on these: whether we run as root (servers
//! must then drop to an unprivileged uid), tying a child's life to ours with `PR_SET_PDEATHSIG`,
//! and registering an exit hook for the shared server. Signals go through
//! [`chaos::process::send`], the workspace's one signal helper.
//!
//! These stay on `libc` rather than `nix`: `pre_exec` is `unsafe` whatever wraps the calls inside
//! it, and `nix` has no `atexit`.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// True when the effective uid is 0 (PostgreSQL refuses to run then).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
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

//! Where the lab's servers keep their files, and the clean-up of what killed runs left there.
//!
//! A server's home is a fresh temp dir, removed when the server stops. By default it goes in
//! RAM (`/dev/shm`, when that is a tmpfs with [`RAM_MIN_FREE`] available), else in the temp dir:
//!
//! - The data is thrown away after every run, so surviving a machine crash buys it nothing, and
//!   the drills kill processes, never the machine: a killed PostgreSQL recovers from its WAL on
//!   tmpfs exactly as it does on a disk.
//! - On a disk, PostgreSQL's `fsync` on every commit waits on the device. On a shared VM one of
//!   those sometimes takes a second, and then the disk, not the box office, decides the p99.
//!
//! `BOXOFFICE_STACK_DIR=<dir>` puts the homes in `<dir>` instead (say, a disk to measure with
//! its `fsync`). As root, whose servers run as `nobody`, the default disk dir is `/tmp`, whose
//! parents any uid can traverse, rather than `$TMPDIR`, which might not be.
//!
//! Each home is named `<prefix><pid>-XXXXXX` after the process that made it. A process killed
//! before it could remove its homes (a test run interrupted, a `kill -9`) leaves them behind,
//! and in RAM they would hold memory until a reboot; so the first home a process makes sweeps
//! its dir of the `boxoffice-*` homes whose process has ended, except those kept on purpose
//! (`BOXOFFICE_KEEP_STACK=1` marks them with [`KEPT_MARK`]).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use tempfile::TempDir;

use nix::sys::statfs::{statfs, TMPFS_MAGIC};
use nix::unistd::{access, AccessFlags};

use crate::process::Identity;

/// Environment variable naming the dir the servers' homes go in.
pub const STACK_DIR_ENV: &str = "BOXOFFICE_STACK_DIR";
/// The RAM-backed dir tried first.
const RAM_DIR: &str = "/dev/shm";
/// `/dev/shm` is used only with this much available: a container's is often 64 MiB, and a
/// capacity run's WAL alone can pass 1 GiB before a checkpoint recycles it.
const RAM_MIN_FREE: u64 = 2 << 30;
/// The name every home (and the lab's dir) starts with; the sweep looks at nothing else.
const FAMILY: &str = "boxoffice-";
/// A file in a home that `BOXOFFICE_KEEP_STACK=1` kept: the sweep leaves it alone.
const KEPT_MARK: &str = ".kept";

/// Where homes go, and whether that is RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    pub(crate) path: PathBuf,
    /// A tmpfs: writes and `fsync` never wait on a device.
    pub(crate) in_ram: bool,
}

/// The dir the homes of servers running as `identity` go in (see the module docs).
pub(crate) fn base(identity: Option<Identity>) -> Base {
    choose(std::env::var_os(STACK_DIR_ENV), identity)
}

/// [`base`] with the variable's value given.
fn choose(chosen: Option<OsString>, identity: Option<Identity>) -> Base {
    if let Some(dir) = chosen.filter(|dir| !dir.is_empty()) {
        let path = PathBuf::from(dir);
        let in_ram = filesystem(&path).is_ok_and(|fs| fs.tmpfs);
        return Base { path, in_ram };
    }
    let ram = Path::new(RAM_DIR);
    if filesystem(ram).is_ok_and(|fs| fs.tmpfs && fs.available >= RAM_MIN_FREE) && writable(ram) {
        return Base {
            path: ram.to_path_buf(),
            in_ram: true,
        };
    }
    let path = match identity {
        Some(_) => PathBuf::from("/tmp"),
        None => std::env::temp_dir(),
    };
    let in_ram = filesystem(&path).is_ok_and(|fs| fs.tmpfs);
    Base { path, in_ram }
}

/// What [`filesystem`] reports of the filesystem holding a path.
#[derive(Debug, Clone, Copy)]
struct Filesystem {
    /// It is a tmpfs (RAM).
    tmpfs: bool,
    /// Bytes available to an unprivileged user.
    available: u64,
}

/// `statfs(2)` of `path`.
fn filesystem(path: &Path) -> nix::Result<Filesystem> {
    let stat = statfs(path)?;
    Ok(Filesystem {
        tmpfs: stat.filesystem_type() == TMPFS_MAGIC,
        available: stat
            .blocks_available()
            .saturating_mul(stat.block_size() as u64),
    })
}

/// Whether we may create files in `dir`.
fn writable(dir: &Path) -> bool {
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// A fresh 0700 temp dir `<prefix><pid>-XXXXXX` in [`base`] for `identity`, and whether it is
/// in RAM.
pub(crate) fn make(prefix: &str, identity: Option<Identity>) -> anyhow::Result<(TempDir, bool)> {
    let base = base(identity);
    Ok((make_in(&base.path, prefix)?, base.in_ram))
}

/// A fresh 0700 temp dir `<prefix><pid>-XXXXXX` in `dir`. The first one a process makes in a
/// dir sweeps that dir ([`sweep_once`]).
pub(crate) fn make_in(dir: &Path, prefix: &str) -> anyhow::Result<TempDir> {
    sweep_once(dir);
    tempfile::Builder::new()
        .prefix(&owned_prefix(prefix))
        .tempdir_in(dir)
        .with_context(|| {
            format!(
                "Failed to create a temp dir in {} (set {STACK_DIR_ENV} to choose another)",
                dir.display()
            )
        })
}

/// Marks a dir that `BOXOFFICE_KEEP_STACK=1` keeps, so that later sweeps leave it alone.
pub(crate) fn mark_kept(dir: &Path) -> std::io::Result<()> {
    fs::write(dir.join(KEPT_MARK), b"")
}

/// The prefix of a home this process makes: `<prefix><pid>-`.
fn owned_prefix(prefix: &str) -> String {
    format!("{prefix}{}-", std::process::id())
}

/// Sweeps `dir` once per process (see the module docs); later calls for the same dir return at
/// once. Returns how many homes it removed.
fn sweep_once(dir: &Path) -> usize {
    static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|poison| poison.into_inner());
        if swept.iter().any(|done| done == dir) {
            return 0;
        }
        swept.push(dir.to_path_buf());
    }
    let removed = sweep(dir);
    if removed > 0 {
        tracing::info!(
            dir = %dir.display(),
            removed,
            "removed the homes of lab processes that ended without removing them"
        );
    }
    removed
}

/// Removes from `dir` every `boxoffice-*` home whose process has ended and that was not kept.
fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(owner) = owner_of(&entry.file_name()) else {
            continue;
        };
        if owner == me || chaos::process::state(owner).is_some() {
            continue;
        }
        let path = entry.path();
        // Not a symlink, not a file: only a dir this naming scheme made.
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) || path.join(KEPT_MARK).exists() {
            continue;
        }
        if fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The pid in a home's name `boxoffice-<kind>-<pid>-XXXXXX`; `None` for any other name.
fn owner_of(name: &OsStr) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix(FAMILY)?;
    let mut parts = rest.rsplitn(3, '-');
    let random = parts.next()?;
    let pid = parts.next()?;
    let kind = parts.next()?;
    if kind.is_empty() || random.len() != 6 || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_home_named_after_its_process_has_an_owner() {
        assert_eq!(owner_of(OsStr::new("boxoffice-pg-4242-AbC123")), Some(4242));
        assert_eq!(
            owner_of(OsStr::new("boxoffice-prometheus-7-x_y-z1")),
            None,
            "a dash in the random part is not this scheme's"
        );
        assert_eq!(owner_of(OsStr::new("boxoffice-pg-AbC123")), None);
        assert_eq!(owner_of(OsStr::new("boxoffice--12-AbC123")), None);
        assert_eq!(owner_of(OsStr::new("boxoffice-pg-12a-AbC123")), None);
        assert_eq!(owner_of(OsStr::new("PostgreSQL.12345")), None);
        assert_eq!(owner_of(OsStr::new("other-pg-12-AbC123")), None);
    }

    #[test]
    fn the_sweep_removes_the_homes_of_ended_processes_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has ended: a child we reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let alive = std::os::unix::process::parent_id();
        let me = std::process::id();
        let make = |name: &str| {
            let path = dir.path().join(name);
            fs::create_dir(&path).unwrap();
            fs::write(path.join("data"), b"x").unwrap();
            path
        };
        let orphan = make(&format!("boxoffice-pg-{ended}-AbC123"));
        let kept = make(&format!("boxoffice-redis-{ended}-KkK123"));
        fs::write(kept.join(KEPT_MARK), b"").unwrap();
        let living = make(&format!("boxoffice-pg-{alive}-LiV123"));
        let mine = make(&format!("boxoffice-kafka-{me}-MiN123"));
        let old_style = make("boxoffice-pg-OlD123");
        let foreign = make(&format!("someone-pg-{ended}-FoR123"));
        let file = dir.path().join(format!("boxoffice-pg-{ended}-FiL123"));
        fs::write(&file, b"not a dir").unwrap();

        assert_eq!(sweep(dir.path()), 1);
        assert!(!orphan.exists(), "the ended process's home is removed");
        for path in [&kept, &living, &mine, &old_style, &foreign, &file] {
            assert!(path.exists(), "{} must stay", path.display());
        }
        assert_eq!(sweep_once(dir.path()), 0);
        make(&format!("boxoffice-pg-{ended}-AgA123"));
        assert_eq!(sweep_once(dir.path()), 0, "a dir is swept once per process");
    }

    #[test]
    fn a_chosen_dir_wins_and_ram_is_told_apart_from_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = choose(Some(dir.path().into()), None);
        assert_eq!(chosen.path, dir.path());
        assert_eq!(
            chosen.in_ram,
            filesystem(dir.path()).unwrap().tmpfs,
            "in_ram follows the dir's filesystem"
        );
        let ram = Path::new(RAM_DIR);
        let usable = filesystem(ram).is_ok_and(|fs| fs.tmpfs && fs.available >= RAM_MIN_FREE)
            && writable(ram);
        for unset in [None, Some(OsString::new())] {
            let default = choose(unset, None);
            if usable {
                assert_eq!(
                    default,
                    Base {
                        path: PathBuf::from(RAM_DIR),
                        in_ram: true
                    }
                );
            } else {
                assert_eq!(default.path, std::env::temp_dir());
            }
        }
        let identity = Some(Identity {
            uid: 65534,
            gid: 65534,
        });
        let expected = if usable { RAM_DIR } else { "/tmp" };
        assert_eq!(choose(None, identity).path, Path::new(expected));
    }
}

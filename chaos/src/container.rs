//! Container faults through the `docker` CLI (kill, pause, unpause, stop, start), for game
//! days on the docker-compose stack. Before acting it checks that a daemon answers, so on a
//! machine without Docker the user gets one clear sentence instead of a socket error.
//!
//! It shells out to the `docker` CLI rather than using a Docker API crate (bollard): five verbs and
//! a probe do not justify an API client in the `chaos` binary, and the CLI honours the user's
//! `DOCKER_HOST` and contexts.

use std::process::Command;
use std::time::Duration;

/// What can go wrong with a container fault.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No docker binary, or no daemon answering it.
    #[error("Docker is not available here ({0}); container targets need a running Docker daemon — use --pid for local processes or a proxy for network faults")]
    Unavailable(String),
    /// docker ran and failed.
    #[error("docker {action} {container} failed: {stderr}")]
    Failed {
        /// kill, pause, …
        action: String,
        /// Container name or id.
        container: String,
        /// What docker said.
        stderr: String,
    },
}

/// Container actions, named as the docker subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerAction {
    /// `docker kill` (SIGKILL).
    Kill,
    /// `docker pause` (cgroup freezer).
    Pause,
    /// `docker unpause`.
    Unpause,
    /// `docker stop`.
    Stop,
    /// `docker start`.
    Start,
}

impl ContainerAction {
    fn verb(self) -> &'static str {
        match self {
            ContainerAction::Kill => "kill",
            ContainerAction::Pause => "pause",
            ContainerAction::Unpause => "unpause",
            ContainerAction::Stop => "stop",
            ContainerAction::Start => "start",
        }
    }
}

/// Checks that `docker info` answers within 5 s. The workspace's one Docker probe: compose's
/// docker stack asks it too (`compose::docker::docker_available`).
pub fn docker_available() -> Result<(), ContainerError> {
    let mut child = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| ContainerError::Unavailable(format!("cannot run docker: {e}")))?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(_)) => {
                return Err(ContainerError::Unavailable(
                    "no Docker daemon answers".to_string(),
                ))
            }
            Ok(None) if start.elapsed() > Duration::from_secs(5) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ContainerError::Unavailable(
                    "the Docker daemon did not answer within 5 s".to_string(),
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(ContainerError::Unavailable(e.to_string())),
        }
    }
}

/// Applies `action` to `container` after checking Docker is there.
pub fn apply(container: &str, action: ContainerAction) -> Result<(), ContainerError> {
    docker_available()?;
    let out = Command::new("docker")
        .args([action.verb(), container])
        .output()
        .map_err(|e| ContainerError::Unavailable(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ContainerError::Failed {
            action: action.verb().to_string(),
            container: container.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

//! Fault schedules: what to break, when, and for how long — parsed from text
//! (`redis:kill@20s+10s,postgres:latency=200ms~50ms@40s+15s`) or from a TOML drill file in
//! `chaos/schedules/`, and executed against named [`FaultTarget`]s that a stack provides.
//!
//! A schedule is data, not code: the same text and seed give the same [`Schedule`] (start
//! times written `@20s~5s` are drawn from the seed), and the seed is handed on to the proxies so
//! toxicity and jitter replay too. [`run`] applies each fault at its offset, reverts it after
//! its duration, and returns what actually happened when, for the failover report.
//!
//! Grammar of one fault: `target:action[=args]@at[~spread][+duration]`, where `action` is one
//! of `kill` (SIGKILL, restart after the duration), `pause` (SIGSTOP/SIGCONT), `stop` (graceful
//! stop, start after), `failover` (stop the primary, let the replica take over), `down` (proxy
//! disabled), `partition` (proxy blackholed both ways: `timeout=0`), `latency=200ms~50ms`,
//! `bandwidth=100` (KB/s), `timeout=500ms`, `reset_peer=100ms`, `slicer=64~32`,
//! `limit_data=1000`, `slow_close=500ms`.
//!
//! # Layout
//!
//! - `grammar` — the schedule text and TOML drills → [`Schedule`].
//! - `targets` — the [`FaultTarget`] trait and the network targets: a local [`ProxyTarget`], a
//!   remote [`ApiProxyTarget`], a [`GroupTarget`].
//! - `executor` — [`run`]: applies and reverts each fault on time, records what happened.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::toxics::ToxicKind;

mod executor;
mod grammar;
mod targets;

pub use executor::{run, FaultRecord};
pub use grammar::{parse_action, parse_duration};
pub use targets::{ApiProxyTarget, FaultFuture, FaultTarget, GroupTarget, ProxyTarget};

/// Why a schedule could not be parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The text does not follow the grammar.
    #[error("invalid fault {fault:?}: {reason}")]
    Parse {
        /// The offending fault text.
        fault: String,
        /// What is wrong.
        reason: String,
    },
    /// A drill file could not be read or is not valid TOML.
    #[error("cannot load schedule {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No target by that name in the stack.
    #[error("no fault target named {0:?}")]
    UnknownTarget(String),
    /// The target does not support the action.
    #[error("target {target:?} does not support {action}")]
    Unsupported {
        /// Target name.
        target: String,
        /// The action.
        action: String,
    },
    /// Applying or reverting failed.
    #[error("{target}: {action} failed: {reason}")]
    Failed {
        /// Target name.
        target: String,
        /// The action.
        action: String,
        /// Why.
        reason: String,
    },
}

/// What to do to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL the process; revert = restart it.
    Kill,
    /// SIGSTOP; revert = SIGCONT.
    Pause,
    /// Graceful stop; revert = start.
    Stop,
    /// Stop the primary so a replica is promoted; revert = bring the old primary back as a
    /// replica.
    Failover,
    /// Proxy disabled (connections refused); revert = enabled.
    Down,
    /// Proxy blackholes both directions; revert = toxics removed.
    Partition,
    /// A network toxic on the target's proxy, downstream (server → client); revert = removed.
    Toxic {
        /// The toxic type and attributes.
        toxic: ToxicKind,
    },
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::Kill => f.write_str("kill"),
            FaultAction::Pause => f.write_str("pause"),
            FaultAction::Stop => f.write_str("stop"),
            FaultAction::Failover => f.write_str("failover"),
            FaultAction::Down => f.write_str("down"),
            FaultAction::Partition => f.write_str("partition"),
            FaultAction::Toxic { toxic } => {
                write!(f, "{}={}", toxic.type_name(), toxic.attributes())
            }
        }
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// A named component of the stack (`redis`, `postgres`, `app-1`, …).
    pub target: String,
    /// What to do.
    pub action: FaultAction,
    /// Offset from the start of the run.
    pub at: Duration,
    /// How long before reverting; `None` = never reverted during the run.
    pub duration: Option<Duration>,
}

/// A seeded list of faults, sorted by start time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Drill name, when loaded from a file.
    pub name: Option<String>,
    /// Seed of the start-time spreads, and of the proxies' random draws during the run.
    pub seed: u64,
    /// The faults.
    pub faults: Vec<ScheduledFault>,
}

impl Schedule {
    fn new(name: Option<String>, seed: u64, mut faults: Vec<ScheduledFault>) -> Schedule {
        faults.sort_by_key(|f| f.at);
        Schedule { name, seed, faults }
    }

    /// When the last fault ends (or starts, if it is never reverted).
    pub fn span(&self) -> Duration {
        self.faults
            .iter()
            .map(|f| f.at + f.duration.unwrap_or_default())
            .max()
            .unwrap_or_default()
    }
}

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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::proxy::Proxy;
use crate::toxics::{
    bandwidth, latency, limit_data, reset_peer, slicer, slow_close, timeout, Stream, ToxicKind,
    ToxicSpec,
};

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

/// Parses `200ms`, `20s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 500ms, 20s, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn ms_of(s: &str) -> Result<u64, String> {
    Ok(parse_duration(s)?.as_millis() as u64)
}

/// `a~b` → (a, Some(b)).
fn spread(s: &str) -> (&str, Option<&str>) {
    match s.split_once('~') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// Parses an action with its arguments (`kill`, `latency=200ms~50ms`, `bandwidth=100`, …).
pub fn parse_action(s: &str) -> Result<FaultAction, String> {
    let (name, args) = match s.split_once('=') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (s.trim(), None),
    };
    let need = |what: &str| args.ok_or_else(|| format!("{name} needs ={what}"));
    let toxic = |toxic| Ok(FaultAction::Toxic { toxic });
    match name {
        "kill" => Ok(FaultAction::Kill),
        "pause" => Ok(FaultAction::Pause),
        "stop" | "restart" => Ok(FaultAction::Stop),
        "failover" => Ok(FaultAction::Failover),
        "down" => Ok(FaultAction::Down),
        "partition" => Ok(FaultAction::Partition),
        "latency" => {
            let (l, j) = spread(need("LATENCY[~JITTER]")?);
            toxic(ToxicKind::Latency(latency::Config {
                latency: ms_of(l)?,
                jitter: j.map(ms_of).transpose()?.unwrap_or(0),
            }))
        }
        "bandwidth" => toxic(ToxicKind::Bandwidth(bandwidth::Config {
            rate: need("KB/s")?
                .trim_end_matches("kb")
                .trim_end_matches("KB")
                .parse()
                .map_err(|e| format!("bandwidth: {e}"))?,
        })),
        "timeout" => toxic(ToxicKind::Timeout(timeout::Config {
            timeout: args.map(ms_of).transpose()?.unwrap_or(0),
        })),
        "reset_peer" | "reset" => toxic(ToxicKind::ResetPeer(reset_peer::Config {
            timeout: args.map(ms_of).transpose()?.unwrap_or(0),
        })),
        "slow_close" => toxic(ToxicKind::SlowClose(slow_close::Config {
            delay: ms_of(need("DELAY")?)?,
        })),
        "limit_data" => toxic(ToxicKind::LimitData(limit_data::Config {
            bytes: need("BYTES")?
                .parse()
                .map_err(|e| format!("limit_data: {e}"))?,
        })),
        "slicer" => {
            let (avg, var) = spread(need("AVERAGE[~VARIATION]")?);
            let average_size: usize = avg.parse().map_err(|e| format!("slicer: {e}"))?;
            let size_variation: usize = var
                .map(str::parse)
                .transpose()
                .map_err(|e| format!("slicer: {e}"))?
                .unwrap_or(0);
            let cfg = slicer::Config {
                average_size,
                size_variation,
                delay: 0,
            };
            let kind =
                ToxicKind::from_parts("slicer", &serde_json::to_value(&cfg).unwrap_or_default())
                    .map_err(|e| e.to_string())?;
            toxic(kind)
        }
        other => Err(format!("unknown action {other:?}")),
    }
}

impl Schedule {
    /// Parses comma-separated faults. Start times with a spread (`@20s~5s`) are drawn
    /// uniformly from `[at - spread, at + spread]` with an RNG seeded by `seed`.
    pub fn parse(text: &str, seed: u64) -> Result<Schedule, ScheduleError> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut faults = Vec::new();
        for item in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            faults.push(
                parse_fault(item, &mut rng).map_err(|reason| ScheduleError::Parse {
                    fault: item.to_string(),
                    reason,
                })?,
            );
        }
        Ok(Schedule::new(None, seed, faults))
    }

    fn new(name: Option<String>, seed: u64, mut faults: Vec<ScheduledFault>) -> Schedule {
        faults.sort_by_key(|f| f.at);
        Schedule { name, seed, faults }
    }

    /// Parses a TOML drill:
    ///
    /// ```toml
    /// name = "redis-failover"
    /// seed = 1
    /// [[fault]]
    /// target = "redis"
    /// action = "failover"
    /// at = "20s"          # may be "20s~5s"
    /// duration = "30s"    # optional
    /// ```
    pub fn from_toml(text: &str) -> Result<Schedule, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: Option<String>,
            #[allow(dead_code)]
            description: Option<String>,
            #[serde(default)]
            seed: u64,
            #[serde(default)]
            fault: Vec<Fault>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fault {
            target: String,
            action: String,
            at: String,
            duration: Option<String>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut rng = SmallRng::seed_from_u64(file.seed);
        let faults = file
            .fault
            .into_iter()
            .map(|f| {
                let mut text = format!("{}:{}@{}", f.target, f.action, f.at);
                if let Some(d) = f.duration {
                    text.push('+');
                    text.push_str(&d);
                }
                parse_fault(&text, &mut rng).map_err(|e| format!("{text}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Schedule::new(file.name, file.seed, faults))
    }

    /// Loads a drill file.
    pub fn load(path: &Path) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Schedule::from_toml(&text).map_err(err)
    }

    /// `spec` is a drill name (looked up as `<dir>/<name>.toml`), a path to a TOML file, or
    /// schedule text.
    pub fn resolve(spec: &str, drills_dir: &Path, seed: u64) -> Result<Schedule, ScheduleError> {
        let named = drills_dir.join(format!("{spec}.toml"));
        if !spec.contains(':') && named.is_file() {
            return Schedule::load(&named);
        }
        let path = Path::new(spec);
        if spec.ends_with(".toml") || path.is_file() {
            return Schedule::load(path);
        }
        Schedule::parse(spec, seed)
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

fn parse_fault(text: &str, rng: &mut SmallRng) -> Result<ScheduledFault, String> {
    let (target, rest) = text
        .split_once(':')
        .ok_or("expected target:action@at[+duration]")?;
    let (action, when) = rest.rsplit_once('@').ok_or("missing @start (e.g. @20s)")?;
    let (at, duration) = match when.split_once('+') {
        Some((a, d)) => (a, Some(parse_duration(d)?)),
        None => (when, None),
    };
    let (at, jitter) = spread(at);
    let mut at = parse_duration(at)?;
    if let Some(j) = jitter {
        let j = parse_duration(j)?.as_millis() as i64;
        let offset = rng.gen_range(-j..=j);
        at = Duration::from_millis((at.as_millis() as i64 + offset).max(0) as u64);
    }
    let target = target.trim();
    if target.is_empty() {
        return Err("empty target".into());
    }
    Ok(ScheduledFault {
        target: target.to_string(),
        action: parse_action(action)?,
        at,
        duration,
    })
}

/// A boxed future, so [`FaultTarget`] can be used as a trait object.
pub type FaultFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ScheduleError>> + Send + 'a>>;

/// A named component a stack exposes to chaos (a dependency behind a proxy, a process, a
/// replicated pair). `apply` starts the fault, `revert` ends it; a target answers
/// [`ScheduleError::Unsupported`] for actions it cannot do.
pub trait FaultTarget: Send + Sync {
    /// Starts the fault.
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a>;
    /// Ends it.
    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a>;
}

impl fmt::Debug for dyn FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn FaultTarget")
    }
}

/// Network faults through a [`Proxy`]: `down`, `partition` and the toxics.
#[derive(Debug, Clone)]
pub struct ProxyTarget {
    proxy: Proxy,
}

impl ProxyTarget {
    /// A target for the proxy in front of a component.
    pub fn new(proxy: Proxy) -> Self {
        ProxyTarget { proxy }
    }

    /// The toxics a network action adds, named so that reverting removes exactly them
    /// (`down` adds none: it disables the proxy).
    pub fn toxics(action: &FaultAction) -> Vec<ToxicSpec> {
        match action {
            FaultAction::Partition => [Stream::Upstream, Stream::Downstream]
                .into_iter()
                .map(|s| {
                    ToxicSpec::new(ToxicKind::Timeout(timeout::Config { timeout: 0 }), s)
                        .named(format!("chaos_partition_{s}"))
                })
                .collect(),
            FaultAction::Toxic { toxic } => {
                let stream = Stream::Downstream;
                vec![ToxicSpec::new(toxic.clone(), stream)
                    .named(format!("chaos_{}_{stream}", toxic.type_name()))]
            }
            _ => Vec::new(),
        }
    }
}

impl FaultTarget for ProxyTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let failed = |e: crate::Error| ScheduleError::Failed {
                target: self.proxy.name().to_string(),
                action: action.to_string(),
                reason: e.to_string(),
            };
            match action {
                FaultAction::Down => {
                    self.proxy.disable().await;
                    Ok(())
                }
                FaultAction::Partition | FaultAction::Toxic { .. } => {
                    for t in Self::toxics(action) {
                        self.proxy.add_toxic(t).map_err(failed)?;
                    }
                    Ok(())
                }
                _ => Err(ScheduleError::Unsupported {
                    target: self.proxy.name().to_string(),
                    action: action.to_string(),
                }),
            }
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let failed = |e: crate::Error| ScheduleError::Failed {
                target: self.proxy.name().to_string(),
                action: action.to_string(),
                reason: e.to_string(),
            };
            match action {
                FaultAction::Down => self.proxy.enable().map_err(failed),
                FaultAction::Partition | FaultAction::Toxic { .. } => {
                    for t in Self::toxics(action) {
                        match self.proxy.remove_toxic(&t.name) {
                            Ok(()) | Err(crate::Error::ToxicNotFound) => {}
                            Err(e) => return Err(failed(e)),
                        }
                    }
                    Ok(())
                }
                _ => Err(ScheduleError::Unsupported {
                    target: self.proxy.name().to_string(),
                    action: action.to_string(),
                }),
            }
        })
    }
}

/// Network faults through a proxy of a remote Toxiproxy-compatible API (a deployed stack's
/// Toxiproxy, or another lab's `chaos` server): `down`, `partition` and the toxics.
#[derive(Debug, Clone)]
pub struct ApiProxyTarget {
    client: crate::client::ToxiproxyClient,
    proxy: String,
}

impl ApiProxyTarget {
    /// A target for the proxy named `proxy` behind the API `client` talks to.
    pub fn new(client: crate::client::ToxiproxyClient, proxy: impl Into<String>) -> Self {
        ApiProxyTarget {
            client,
            proxy: proxy.into(),
        }
    }

    /// Every proxy of the API as a target, by proxy name; proxies named `<base>-<n>`
    /// (`kafka-1`, `kafka-2`, `kafka-3`) are also reachable together as `<base>` unless a
    /// proxy has that name itself, so `kafka:down` takes every broker down.
    pub async fn all(
        client: &crate::client::ToxiproxyClient,
    ) -> crate::Result<HashMap<String, Arc<dyn FaultTarget>>> {
        let names: Vec<String> = client.proxies().await?.into_keys().collect();
        let mut targets: HashMap<String, Arc<dyn FaultTarget>> = names
            .iter()
            .map(|name| {
                let t: Arc<dyn FaultTarget> = Arc::new(ApiProxyTarget::new(client.clone(), name));
                (name.clone(), t)
            })
            .collect();
        let mut groups: HashMap<String, Vec<Arc<dyn FaultTarget>>> = HashMap::new();
        for name in &names {
            if let Some((base, n)) = name.rsplit_once('-') {
                if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
                    groups
                        .entry(base.to_owned())
                        .or_default()
                        .push(Arc::clone(&targets[name]));
                }
            }
        }
        for (base, members) in groups {
            targets
                .entry(base)
                .or_insert_with(|| Arc::new(GroupTarget { members }));
        }
        Ok(targets)
    }

    fn failed(&self, action: &FaultAction, e: crate::Error) -> ScheduleError {
        ScheduleError::Failed {
            target: self.proxy.clone(),
            action: action.to_string(),
            reason: e.to_string(),
        }
    }
}

impl FaultTarget for ApiProxyTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            match action {
                FaultAction::Down => self
                    .client
                    .disable(&self.proxy)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.failed(action, e)),
                FaultAction::Partition | FaultAction::Toxic { .. } => {
                    for t in ProxyTarget::toxics(action) {
                        self.client
                            .add_toxic(&self.proxy, &t)
                            .await
                            .map_err(|e| self.failed(action, e))?;
                    }
                    Ok(())
                }
                _ => Err(ScheduleError::Unsupported {
                    target: self.proxy.clone(),
                    action: action.to_string(),
                }),
            }
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            match action {
                FaultAction::Down => self
                    .client
                    .enable(&self.proxy)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.failed(action, e)),
                FaultAction::Partition | FaultAction::Toxic { .. } => {
                    for t in ProxyTarget::toxics(action) {
                        match self.client.remove_toxic(&self.proxy, &t.name).await {
                            Ok(()) | Err(crate::Error::ToxicNotFound) => {}
                            Err(e) => return Err(self.failed(action, e)),
                        }
                    }
                    Ok(())
                }
                _ => Err(ScheduleError::Unsupported {
                    target: self.proxy.clone(),
                    action: action.to_string(),
                }),
            }
        })
    }
}

/// Several targets as one: a fault applies to each member, in order (`kafka` = every broker).
pub struct GroupTarget {
    members: Vec<Arc<dyn FaultTarget>>,
}

impl GroupTarget {
    /// A group of `members`.
    pub fn new(members: Vec<Arc<dyn FaultTarget>>) -> Self {
        GroupTarget { members }
    }
}

impl fmt::Debug for GroupTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupTarget({} members)", self.members.len())
    }
}

impl FaultTarget for GroupTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            for m in &self.members {
                m.apply(action).await?;
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            // Revert every member even if one fails, and report the first failure.
            let mut first = Ok(());
            for m in &self.members {
                if let Err(e) = m.revert(action).await {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
            first
        })
    }
}

/// What happened to one fault during a run, as offsets from the run's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    /// The fault as scheduled.
    pub fault: ScheduledFault,
    /// When applying it began (none if applying failed).
    pub applied_at: Option<Duration>,
    /// When reverting it finished (the component is back).
    pub reverted_at: Option<Duration>,
    /// Why applying or reverting failed, if it did.
    pub error: Option<String>,
}

/// Runs `schedule` against `targets`, starting now: each fault is applied at its offset and
/// reverted after its duration. Faults run concurrently (overlapping windows are allowed).
/// Fails before doing anything if a target is missing.
pub async fn run(
    schedule: &Schedule,
    targets: &HashMap<String, Arc<dyn FaultTarget>>,
) -> Result<Vec<FaultRecord>, ScheduleError> {
    for f in &schedule.faults {
        if !targets.contains_key(&f.target) {
            return Err(ScheduleError::UnknownTarget(f.target.clone()));
        }
    }
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = schedule
        .faults
        .iter()
        .cloned()
        .map(|fault| {
            let target = Arc::clone(&targets[&fault.target]);
            tokio::spawn(async move {
                let mut record = FaultRecord {
                    fault: fault.clone(),
                    applied_at: None,
                    reverted_at: None,
                    error: None,
                };
                tokio::time::sleep_until(start + fault.at).await;
                tracing::info!(target = %fault.target, action = %fault.action, "fault applied");
                // The fault starts when applying it starts: a failover or a stop takes a
                // while, and clients feel it from its first step.
                let began = start.elapsed();
                if let Err(e) = target.apply(&fault.action).await {
                    record.error = Some(e.to_string());
                    return record;
                }
                record.applied_at = Some(began);
                if let Some(d) = fault.duration {
                    tokio::time::sleep_until(start + fault.at + d).await;
                    tracing::info!(target = %fault.target, action = %fault.action, "fault reverted");
                    match target.revert(&fault.action).await {
                        Ok(()) => record.reverted_at = Some(start.elapsed()),
                        Err(e) => record.error = Some(e.to_string()),
                    }
                }
                record
            })
        })
        .collect();
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(r) = t.await {
            records.push(r);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_issue_example_parses_into_two_faults() {
        let sched =
            Schedule::parse("redis:kill@20s+10s,postgres:latency=200ms~50ms@40s+15s", 7).unwrap();
        assert_eq!(sched.seed, 7);
        assert_eq!(
            sched.faults,
            vec![
                ScheduledFault {
                    target: "redis".into(),
                    action: FaultAction::Kill,
                    at: s(20),
                    duration: Some(s(10)),
                },
                ScheduledFault {
                    target: "postgres".into(),
                    action: FaultAction::Toxic {
                        toxic: ToxicKind::Latency(latency::Config {
                            latency: 200,
                            jitter: 50
                        })
                    },
                    at: s(40),
                    duration: Some(s(15)),
                },
            ]
        );
        assert_eq!(sched.span(), s(55));
    }

    #[test]
    fn faults_are_sorted_by_start_and_may_have_no_end() {
        let sched = Schedule::parse("app-1:pause@30s+5s, payments:down@5s", 0).unwrap();
        assert_eq!(sched.faults[0].target, "payments");
        assert_eq!(sched.faults[0].duration, None);
        assert_eq!(sched.faults[1].action, FaultAction::Pause);
    }

    #[test]
    fn every_action_of_the_grammar_parses() {
        for a in [
            "kill",
            "pause",
            "stop",
            "failover",
            "down",
            "partition",
            "latency=100ms",
            "bandwidth=100",
            "timeout=0",
            "timeout=2s",
            "reset_peer=100ms",
            "slicer=64~32",
            "limit_data=1000",
            "slow_close=500ms",
        ] {
            parse_action(a).unwrap_or_else(|e| panic!("{a}: {e}"));
        }
        assert!(parse_action("explode").is_err());
        assert!(parse_action("latency").is_err());
        assert!(parse_action("slicer=10~10").is_err());
    }

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), s(120));
        assert_eq!(parse_duration("3").unwrap(), s(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn malformed_faults_say_what_is_wrong() {
        for bad in ["redis", "redis:kill", ":kill@1s", "redis:kill@later"] {
            let e = Schedule::parse(bad, 0).unwrap_err();
            assert!(matches!(e, ScheduleError::Parse { .. }), "{bad}");
        }
    }

    #[test]
    fn a_start_spread_is_drawn_from_the_seed_and_replays() {
        let text = "redis:kill@20s~5s+1s,redis:pause@60s~10s";
        let a = Schedule::parse(text, 42).unwrap();
        assert_eq!(a, Schedule::parse(text, 42).unwrap());
        assert!(a.faults[0].at >= s(15) && a.faults[0].at <= s(25));
        let differs = (0..20).any(|seed| Schedule::parse(text, seed).unwrap() != a);
        assert!(differs);
    }

    #[test]
    fn the_ready_made_drills_all_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
        for name in [
            "redis-failover",
            "postgres-restart",
            "postgres-failover",
            "kafka-down",
            "payments-slow",
            "payments-down",
            "app-crash",
            "app-pause",
            "partition-db",
        ] {
            let sched = Schedule::resolve(name, &dir, 0).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sched.name.as_deref(), Some(name));
            assert!(!sched.faults.is_empty(), "{name}");
        }
        // Text still works through resolve.
        assert_eq!(
            Schedule::resolve("redis:kill@1s", &dir, 0)
                .unwrap()
                .faults
                .len(),
            1
        );
    }

    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    impl FaultTarget for Recorder {
        fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
            self.calls.lock().unwrap().push(format!("apply {action}"));
            Box::pin(async { Ok(()) })
        }
        fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
            self.calls.lock().unwrap().push(format!("revert {action}"));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn run_applies_and_reverts_each_fault_on_time() {
        let redis = Arc::new(Recorder::default());
        let mut targets: HashMap<String, Arc<dyn FaultTarget>> = HashMap::new();
        targets.insert("redis".into(), redis.clone());
        let sched = Schedule::parse("redis:kill@100ms+100ms,redis:pause@300ms", 0).unwrap();
        let records = run(&sched, &targets).await.unwrap();
        let ms = Duration::from_millis;
        let within =
            |d: Option<Duration>, want: u64| d.is_some_and(|d| d >= ms(want) && d < ms(want + 80));
        assert!(within(records[0].applied_at, 100), "{records:?}");
        assert!(within(records[0].reverted_at, 200), "{records:?}");
        assert!(within(records[1].applied_at, 300), "{records:?}");
        assert_eq!(records[1].reverted_at, None);
        assert_eq!(
            *redis.calls.lock().unwrap(),
            ["apply kill", "revert kill", "apply pause"]
        );
        let missing = Schedule::parse("kafka:down@1s", 0).unwrap();
        assert!(matches!(
            run(&missing, &targets).await,
            Err(ScheduleError::UnknownTarget(_))
        ));
    }
}

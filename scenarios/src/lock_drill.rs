//! Lock drills that do not depend on luck (`--while-locked`, used by `lock-vs-fencing`): the
//! chaos targets `app-N` and `redis` wrapped so that their fault starts only once a box-office
//! instance has just taken a `redis-lock`/`fenced` lock, read from its `/metrics` (the
//! `acquired` count grew, and acquired − released − lost > 0). Then:
//!
//! - `app-N:pause` SIGSTOPs the instance while one of its requests holds the lock between its
//!   checks and its writes (a stall the instances widen with `BOXOFFICE_FAULT_LOCK_PAUSE_MS`);
//!   a pause longer than the lease lets another instance take the lock and sell the same seats.
//! - `redis:failover` first makes the replica miss the acquisition, as asynchronous
//!   replication does when the primary dies right after acknowledging it: on the replica the
//!   lock key is deleted and its fencing counter set back by one, then the primary is killed
//!   and Sentinel promotes the replica — without the lock, and with the same token to hand out
//!   again.
//!
//! The fault lasts its scheduled duration from the moment it is applied: the wait for a holder
//! is added before the revert. With a strategy that takes no locks the faults apply at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos::schedule::{FaultAction, FaultFuture, FaultTarget, ScheduleError};

/// How long a fault waits for a lock holder before it applies anyway (with a warning: the
/// table's "leases lost" column then shows that the fault hit no holder).
const WAIT_FOR_HOLDER: Duration = Duration::from_secs(15);
/// How often the instances' counters are read while waiting.
const POLL: Duration = Duration::from_millis(5);
/// How long after seeing a fresh acquisition the fault lands: past the holder's reads (a few
/// ms), well inside its stall (700 ms and more in lock-vs-fencing), so that the holder has
/// read and stamped its seats and has only its writes left.
const SETTLE: Duration = Duration::from_millis(150);

/// A chaos target whose pause or failover waits for a lock holder.
pub struct WhileLocked {
    name: String,
    inner: Arc<dyn FaultTarget>,
    /// `/metrics` URLs of the instances whose locks count.
    watch: Vec<String>,
    /// Redis nodes (`host:port`), for a failover: the one that is a replica misses the lock.
    redis_nodes: Vec<String>,
    /// Whether the stack's strategy takes locks at all.
    locking: bool,
    /// How long the last apply waited for a holder (added before its revert).
    waited: Mutex<Duration>,
}

impl std::fmt::Debug for WhileLocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhileLocked")
            .field("name", &self.name)
            .field("watch", &self.watch)
            .finish()
    }
}

impl WhileLocked {
    /// Wraps `inner` (the target `name`), watching the instances at `watch` (base URLs).
    pub fn new(
        name: &str,
        inner: Arc<dyn FaultTarget>,
        watch: Vec<String>,
        redis_nodes: Vec<String>,
        locking: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            inner,
            watch: watch.into_iter().map(|u| format!("{u}/metrics")).collect(),
            redis_nodes,
            locking,
            waited: Mutex::new(Duration::ZERO),
        }
    }

    fn failed(&self, action: &FaultAction, reason: String) -> ScheduleError {
        ScheduleError::Failed {
            target: self.name.clone(),
            action: action.to_string(),
            reason,
        }
    }

    /// Waits until some watched instance has just taken a lock (its `acquired` count grew
    /// since the previous read and it holds one), so that the holder has most of its work
    /// ahead of it; false after [`WAIT_FOR_HOLDER`].
    async fn wait_for_holder(&self) -> bool {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap_or_default();
        let deadline = Instant::now() + WAIT_FOR_HOLDER;
        let mut seen: Vec<Option<f64>> = vec![None; self.watch.len()];
        while Instant::now() < deadline {
            for (url, seen) in self.watch.iter().zip(seen.iter_mut()) {
                let Ok(r) = http.get(url).send().await else {
                    continue;
                };
                let text = r.text().await.unwrap_or_default();
                let (acquired, held) = lock_counts(&text);
                if seen.is_some_and(|before| acquired > before) && held > 0.0 {
                    return true;
                }
                *seen = Some(acquired);
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    /// On the replica: the lock keys deleted and their fencing counters set back by one.
    async fn replica_misses_the_locks(&self) -> anyhow::Result<usize> {
        for node in &self.redis_nodes {
            let client = redis::Client::open(format!("redis://{node}/"))?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            let is_replica = matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"slave")
                || matches!(role.first(), Some(redis::Value::SimpleString(s)) if s == "slave");
            if !is_replica {
                continue;
            }
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("replica-read-only")
                .arg("no")
                .query_async::<()>(&mut conn)
                .await?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*:lock:*")
                .query_async(&mut conn)
                .await?;
            for key in &keys {
                let fence = key.replacen(":lock:", ":fence:", 1);
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await?;
                redis::cmd("DECR")
                    .arg(&fence)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            return Ok(keys.len());
        }
        anyhow::bail!("no Redis node reports the replica role")
    }
}

/// `--while-locked`: the local stack's `app-N` and `redis` targets wrapped.
pub fn wrap(
    targets: &mut std::collections::HashMap<String, Arc<dyn FaultTarget>>,
    lab: &compose::LocalLab,
    strategy: Option<boxoffice::Strategy>,
) {
    let locking = matches!(
        strategy,
        Some(boxoffice::Strategy::RedisLock | boxoffice::Strategy::Fenced)
    );
    let instances = lab.instance_urls();
    let redis_nodes: Vec<String> = lab
        .components()
        .into_iter()
        .filter(|c| c.kind == "redis")
        .map(|c| c.address)
        .collect();
    for (name, target) in targets.iter_mut() {
        let watch: Vec<String> = if name == "redis" {
            instances.iter().map(|(_, u)| u.clone()).collect()
        } else {
            match instances.iter().find(|(n, _)| n == name) {
                Some((_, u)) => vec![u.clone()],
                None => continue,
            }
        };
        *target = Arc::new(WhileLocked::new(
            name,
            Arc::clone(target),
            watch,
            redis_nodes.clone(),
            locking,
        ));
    }
}

/// Locks acquired so far, and held now, according to an instance's exposition.
pub fn lock_counts(text: &str) -> (f64, f64) {
    let counters: std::collections::BTreeMap<String, f64> =
        crate::counters::parse_counters(text).into_iter().collect();
    let n = |r: &str| {
        crate::counters::sum(
            &counters,
            "boxoffice_locks_total",
            &[&format!("result=\"{r}\"")],
        )
    };
    (n("acquired"), n("acquired") - n("released") - n("lost"))
}

impl FaultTarget for WhileLocked {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let drill = matches!(action, FaultAction::Pause | FaultAction::Failover);
            if drill && self.locking {
                let began = Instant::now();
                if self.wait_for_holder().await {
                    tokio::time::sleep(SETTLE).await;
                } else {
                    eprintln!(
                        "warning: {}: no lock holder within {WAIT_FOR_HOLDER:?}; {action} applied anyway",
                        self.name
                    );
                }
                if *action == FaultAction::Failover {
                    let n = self
                        .replica_misses_the_locks()
                        .await
                        .map_err(|e| self.failed(action, format!("{e:#}")))?;
                    tracing::info!(locks = n, "the Redis replica missed the held locks");
                }
                *self.waited.lock().expect("not poisoned") = began.elapsed();
            }
            self.inner.apply(action).await
        })
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(async move {
            let waited = std::mem::take(&mut *self.waited.lock().expect("not poisoned"));
            tokio::time::sleep(waited).await;
            self.inner.revert(action).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_between_its_acquisition_and_its_release() {
        let text = "boxoffice_locks_total{result=\"acquired\"} 5\n\
                    boxoffice_locks_total{result=\"released\"} 3\n\
                    boxoffice_locks_total{result=\"lost\"} 1\n";
        assert_eq!(lock_counts(text), (5.0, 1.0));
        assert_eq!(lock_counts(""), (0.0, 0.0));
    }
}

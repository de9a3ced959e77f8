//! Lease locks with fencing tokens, for the `redis-lock` and `fenced` strategies.
//!
//! A lock is a lease: it expires after its TTL whether or not its holder is done, so a holder
//! that stalls (GC pause, stopped VM, slow disk) can go on writing after someone else took the
//! lock. Every acquisition therefore also returns a *fencing token*, a number that grows with
//! every acquisition of the same resource. `redis-lock` ignores it (and is unsafe); `fenced`
//! sends it with its writes and the database refuses a write whose token is not above the
//! highest it has seen for that row (see [`crate::store::holds`]).
//!
//! Two implementations with the same semantics: [`RedisLocks`] (`SET key owner NX PX ttl`
//! plus `INCR` of a per-resource counter in one Lua script; released by a compare-and-delete
//! script, so a holder never deletes its successor's lock) and [`LocalLocks`] (a table in this
//! process, for the embedded stack and single-instance runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use redis::aio::ConnectionManager;

use crate::error::ApiError;
use crate::metrics::Metrics;

/// A granted lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is locked (`round:7`, `coupon:3`).
    pub resource: String,
    /// Random id of this acquisition; release only deletes a lock that still carries it.
    pub owner: String,
    /// Fencing token: strictly greater than every earlier token of the same resource (counters
    /// start from the clock in µs, so this holds across restarts of Redis or of the process
    /// as long as the clock does not go back).
    pub fence: i64,
    /// When it was granted (in this process), for the hold-time histogram.
    pub acquired_at: Instant,
}

/// Where locks live.
#[async_trait]
pub trait LockService: Send + Sync + std::fmt::Debug {
    /// Takes `resource` for `ttl` if nobody holds it; `None` when somebody does.
    async fn try_acquire(&self, resource: &str, ttl: Duration) -> anyhow::Result<Option<Lease>>;
    /// Gives the lock back if `lease` still owns it; `false` when it had expired (and maybe
    /// belongs to somebody else now, who keeps it).
    async fn release(&self, lease: &Lease) -> anyhow::Result<bool>;
}

// A missing counter (first use, or Redis restarted without persistence) starts from the
// server's clock in microseconds, so tokens stay above every token the database has already
// seen; otherwise a restart would reset tokens to 1 and every fenced write would be refused.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return redis.call('INCR', KEYS[2])
end
return false";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Locks in Redis under `prefix:lock:` (the lease) and `prefix:fence:` (the token counter,
/// which never expires: tokens must keep growing across leases).
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: String,
    acquire: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisLocks {
    /// Locks on `conn` under `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
        }
    }
}

#[async_trait]
impl LockService for RedisLocks {
    async fn try_acquire(&self, resource: &str, ttl: Duration) -> anyhow::Result<Option<Lease>> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = self.conn.clone();
        let fence: Option<i64> = self
            .acquire
            .key(format!("{}:lock:{resource}", self.prefix))
            .key(format!("{}:fence:{resource}", self.prefix))
            .arg(&owner)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(fence.map(|fence| Lease {
            resource: resource.to_owned(),
            owner,
            fence,
            acquired_at: Instant::now(),
        }))
    }

    async fn release(&self, lease: &Lease) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .release
            .key(format!("{}:lock:{}", self.prefix, lease.resource))
            .arg(&lease.owner)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}

/// Locks in this process: the same lease, TTL and fencing semantics as [`RedisLocks`].
#[derive(Debug, Default)]
pub struct LocalLocks {
    table: Mutex<LocalTable>,
}

#[derive(Debug, Default)]
struct LocalTable {
    /// resource → (owner, lease end).
    leases: HashMap<String, (String, Instant)>,
    /// resource → last token issued.
    fences: HashMap<String, i64>,
}

impl LocalLocks {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockService for LocalLocks {
    async fn try_acquire(&self, resource: &str, ttl: Duration) -> anyhow::Result<Option<Lease>> {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, until)) = t.leases.get(resource) {
            if *until > now {
                return Ok(None);
            }
        }
        let owner = uuid::Uuid::new_v4().simple().to_string();
        t.leases
            .insert(resource.to_owned(), (owner.clone(), now + ttl));
        // Same start as in Redis: the clock in µs, above any token of an earlier process.
        let fence = t
            .fences
            .entry(resource.to_owned())
            .or_insert_with(epoch_micros);
        *fence += 1;
        Ok(Some(Lease {
            resource: resource.to_owned(),
            owner,
            fence: *fence,
            acquired_at: now,
        }))
    }

    async fn release(&self, lease: &Lease) -> anyhow::Result<bool> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // Compare-and-delete, as in Redis: an expired lease that nobody took since is still
        // "ours" by owner id and deleted, like `GET == owner` then `DEL` would (the key's
        // expiry makes Redis forget it first; either way nobody else loses their lock).
        match t.leases.get(&lease.resource) {
            Some((owner, until)) if *owner == lease.owner => {
                let live = *until > Instant::now();
                t.leases.remove(&lease.resource);
                Ok(live)
            }
            _ => Ok(false),
        }
    }
}

/// The lock service with the box office's settings: TTL, how long to wait, and the injected
/// pause of a holder (fault injection for drills and tests).
#[derive(Debug, Clone)]
pub struct Locks {
    service: Arc<dyn LockService>,
    /// Lease lifetime.
    pub ttl: Duration,
    /// Longest wait for a lock before 409 `contention`.
    pub wait: Duration,
    /// Injected stall between a holder's checks and its writes.
    pub pause: Duration,
    metrics: Metrics,
}

impl Locks {
    /// Settings around `service`.
    pub fn new(
        service: Arc<dyn LockService>,
        ttl: Duration,
        wait: Duration,
        pause: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            service,
            ttl,
            wait,
            pause,
            metrics,
        }
    }

    fn count(&self, result: &str) {
        self.metrics.locks.with_label_values(&[result]).inc();
    }

    /// Takes `resource`, polling with jittered backoff up to [`Locks::wait`]. 409 `contention`
    /// when it stays taken; 503 `lock_unavailable` when the lock service fails.
    #[tracing::instrument(name = "lock.acquire", skip_all, fields(otel.kind = "client", resource = resource))]
    pub async fn acquire(&self, resource: &str) -> Result<Lease, ApiError> {
        let began = Instant::now();
        let deadline = began + self.wait;
        let waited = |result: &str| {
            self.metrics
                .lock_wait
                .with_label_values(&[result])
                .observe(began.elapsed().as_secs_f64());
        };
        let mut attempt = 0u32;
        loop {
            match self.service.try_acquire(resource, self.ttl).await {
                Ok(Some(lease)) => {
                    self.count("acquired");
                    waited("acquired");
                    return Ok(lease);
                }
                Ok(None) => {}
                Err(e) => {
                    self.count("error");
                    waited("error");
                    return Err(ApiError::unavailable(
                        "lock_unavailable",
                        format!("the lock service failed: {e}"),
                    ));
                }
            }
            if Instant::now() >= deadline {
                self.count("timeout");
                waited("timeout");
                return Err(ApiError::conflict(
                    "contention",
                    format!("{resource} stayed locked for {:?}; retry", self.wait),
                ));
            }
            attempt += 1;
            let cap = 1u64 << attempt.min(4);
            let ms = rand::thread_rng().gen_range(1..=cap);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Gives `lease` back; counts (and logs) a lease that had expired under its holder.
    pub async fn release(&self, lease: &Lease) {
        self.metrics
            .lock_hold
            .observe(lease.acquired_at.elapsed().as_secs_f64());
        match self.service.release(lease).await {
            Ok(true) => self.count("released"),
            Ok(false) => {
                self.count("lost");
                tracing::warn!(resource = %lease.resource, fence = lease.fence, "the lock expired before its holder finished");
            }
            Err(e) => {
                self.count("error");
                tracing::warn!(resource = %lease.resource, error = %e, "lock release failed; it expires by TTL");
            }
        }
    }

    /// The injected stall, if any.
    pub async fn injected_pause(&self) {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
    }
}

fn epoch_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_lock_is_exclusive_until_it_expires_and_tokens_keep_growing() {
        let locks = LocalLocks::new();
        let ttl = Duration::from_millis(50);
        let a = locks.try_acquire("r", ttl).await.unwrap().unwrap();
        assert!(locks.try_acquire("r", ttl).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let b = locks.try_acquire("r", ttl).await.unwrap().unwrap();
        assert!(b.fence > a.fence);
        assert!(!locks.release(&a).await.unwrap(), "a's lease was gone");
        assert!(
            locks.try_acquire("r", ttl).await.unwrap().is_none(),
            "b keeps it"
        );
        assert!(locks.release(&b).await.unwrap());
        let c = locks.try_acquire("r", ttl).await.unwrap().unwrap();
        assert!(c.fence > b.fence);
    }
}

//! Lease locks with fencing tokens, for the `redis-lock` and `fenced` strategies.
//!
//! A lock is a lease: it expires after its TTL whether or not its holder is done, so a holder
//! that stalls (GC pause, stopped VM, slow disk) can go on writing after someone else took the
//! lock. Every acquisition therefore also returns a *fencing token*, a number that grows with
//! every acquisition of the same resource. `redis-lock` ignores it (and is unsafe); `fenced`
//! sends it with its writes and the database refuses a write whose token is not the one it
//! last recorded for that row (see [`crate::store::holds`]).
//!
//! Two implementations with the same semantics: [`RedisLocks`] (`SET key owner NX PX ttl`
//! plus `INCR` of a per-resource counter in one Lua script; released by a compare-and-delete
//! script, so a holder never deletes its successor's lock) and [`LocalLocks`] (a table in this
//! process, for the embedded stack and single-instance runs).
//!
//! `fenced` does not wait for a failing or hung Redis (a failover, a pause, a partition): a
//! command gives up once Redis has answered nothing for [`REDIS_OP_TIMEOUT`], Redis is then
//! skipped for [`REDIS_SKIP_FOR`] by the lock service and the cache ([`RedisSkip`]), and [`Locks::acquire_or_database`] hands
//! the decision to the database ([`Grant::Database`]: row locks, and the row's fence moved on
//! so that a holder of an older Redis lock is refused, see `store::holds::locked`). Its safety
//! lives in the database, so it can. (Not a plain timeout: a burst of waiters polling one lock
//! queues commands on the connection, and those are slow but answered.) `redis-lock` has no
//! such arbiter: it waits for the connection's own timeout and keeps asking for
//! [`LOCK_SERVICE_GRACE`], then answers 503.
//!
//! An acquisition is idempotent per owner: asking again with the same owner id returns the
//! same lease, so a retry after a `SET` whose answer was lost does not wait for itself. An
//! owner given up on (a failed release, an acquisition whose answer never came) is released
//! in the background once Redis answers again, so a lock nobody uses does not block the
//! resource for its whole TTL.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use redis::aio::ConnectionManager;

use crate::cache::{RedisSkip, REDIS_OP_TIMEOUT, REDIS_SKIP_FOR};
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
    /// Whether its commands give up on a hung lock service (`fenced`, which can let the
    /// database decide) or wait for the connection's own timeout (`redis-lock`).
    pub fail_fast: bool,
}

/// What a `fenced` caller may go ahead with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The lock, with its fencing token.
    Lease(Lease),
    /// The lock service did not answer in time: the database arbitrates this one (row locks,
    /// and the rows' fence moved past every token a lock holder may be writing with).
    Database,
}

/// Where locks live.
#[async_trait]
pub trait LockService: Send + Sync + std::fmt::Debug {
    /// Takes `resource` for `ttl` for `owner` if nobody else holds it, and returns the fencing
    /// token; `None` when somebody else does. Asking again while `owner` holds it renews the
    /// lease and returns the same token. With `fail_fast`, a hung service fails within
    /// [`REDIS_OP_TIMEOUT`] and is then skipped for [`REDIS_SKIP_FOR`].
    async fn try_acquire(
        &self,
        resource: &str,
        owner: &str,
        ttl: Duration,
        fail_fast: bool,
    ) -> anyhow::Result<Option<i64>>;
    /// Gives the lock back if `owner` still owns it; `false` when it had expired (and maybe
    /// belongs to somebody else now, who keeps it). `fail_fast` as for `try_acquire`.
    async fn release(&self, resource: &str, owner: &str, fail_fast: bool) -> anyhow::Result<bool>;
    /// Releases `owner`'s lock on `resource` in the background, retrying until the service
    /// answers or `ttl` has passed (when the lease is gone anyway): after a failed release,
    /// or an acquisition whose answer never came. A no-op where releases cannot fail.
    fn release_later(&self, _resource: &str, _owner: &str, _ttl: Duration) {}
}

// Idempotent per owner: the lock already ours is renewed and its token (the counter, which
// nobody else can move while we hold the lock) returned. A missing counter (first use, or
// Redis restarted without persistence) starts from the server's clock in microseconds, so
// tokens stay above every token the database has already seen; otherwise a restart would
// reset tokens to 1 and every fenced write would be refused.
const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return redis.call('INCRBY', KEYS[2], 0)
end
if holder then
  return false
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
end
return redis.call('INCR', KEYS[2])";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A command that failed while Redis went on answering others: Redis is busy, not down, so
/// `fenced` asks again instead of letting the database decide.
#[derive(Debug, thiserror::Error)]
#[error("Redis is busy: {0}")]
pub struct Busy(redis::RedisError);

/// How often a background release asks again.
const RELEASE_RETRY: Duration = Duration::from_millis(200);

/// Locks in Redis under `prefix:lock:` (the lease) and `prefix:fence:` (the token counter,
/// which never expires: tokens must keep growing across leases). A command fails once Redis
/// has answered nothing for [`REDIS_OP_TIMEOUT`]; after a failure Redis is skipped for
/// [`REDIS_SKIP_FOR`].
#[derive(Clone)]
pub struct RedisLocks {
    conn: ConnectionManager,
    prefix: String,
    acquire: redis::Script,
    release: redis::Script,
    /// Skipped after a failure (its own, or the cache's on the same Redis).
    skip: RedisSkip,
    /// Commands answered so far: a waiting command tells a hung Redis (no answers) from a
    /// busy one (others answered meanwhile).
    answers: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisLocks {
    /// Locks on `conn` under `prefix`, skipping Redis while `skip` says so.
    pub fn new(conn: ConnectionManager, prefix: &str, skip: RedisSkip) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
            skip,
            answers: Arc::default(),
        }
    }

    /// Runs one command, unless Redis failed moments ago. It fails when Redis has answered
    /// none of this service's commands for [`REDIS_OP_TIMEOUT`] while it waited (a hung or
    /// unreachable Redis); a command queued behind others that are being answered (a burst of
    /// waiters polling one lock) keeps waiting, up to the connection's response timeout.
    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> anyhow::Result<T> {
        if self.skip.skipping() {
            anyhow::bail!("Redis failed less than {REDIS_SKIP_FOR:?} ago; lock service skipped");
        }
        let began = self.skip.began();
        tokio::pin!(command);
        let first = self.answers.load(Ordering::Relaxed);
        let mut answers = first;
        let failed = loop {
            match tokio::time::timeout(REDIS_OP_TIMEOUT, &mut command).await {
                Ok(Ok(v)) => {
                    self.answers.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                // Redis answered others while this one failed (the connection's response
                // timeout in a queue of waiters): this command failed, not Redis.
                Ok(Err(e)) if self.answers.load(Ordering::Relaxed) != first => {
                    return Err(anyhow::Error::new(Busy(e)));
                }
                Ok(Err(e)) => break anyhow::Error::from(e),
                Err(_) => {
                    let now_answers = self.answers.load(Ordering::Relaxed);
                    if now_answers == answers {
                        break anyhow::anyhow!("Redis answered nothing for {REDIS_OP_TIMEOUT:?}");
                    }
                    answers = now_answers;
                }
            }
        };
        if self.skip.failed(began) {
            tracing::warn!(error = %failed, "Redis lock service failing: skipped for {REDIS_SKIP_FOR:?}");
        }
        Err(failed)
    }

    fn lock_key(&self, resource: &str) -> String {
        format!("{}:lock:{resource}", self.prefix)
    }
}

#[async_trait]
impl LockService for RedisLocks {
    async fn try_acquire(
        &self,
        resource: &str,
        owner: &str,
        ttl: Duration,
        fail_fast: bool,
    ) -> anyhow::Result<Option<i64>> {
        let mut conn = self.conn.clone();
        let mut invocation = self.acquire.key(self.lock_key(resource));
        invocation
            .key(format!("{}:fence:{resource}", self.prefix))
            .arg(owner)
            .arg(ttl.as_millis().max(1) as u64);
        if !fail_fast {
            return Ok(invocation.invoke_async(&mut conn).await?);
        }
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    async fn release(&self, resource: &str, owner: &str, fail_fast: bool) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = self.release.key(self.lock_key(resource));
        invocation.arg(owner);
        let n: i64 = if fail_fast {
            self.bounded(invocation.invoke_async(&mut conn)).await?
        } else {
            invocation.invoke_async(&mut conn).await?
        };
        Ok(n == 1)
    }

    fn release_later(&self, resource: &str, owner: &str, ttl: Duration) {
        let this = self.clone();
        let (resource, owner) = (resource.to_owned(), owner.to_owned());
        let give_up = Instant::now() + ttl;
        tokio::spawn(async move {
            while Instant::now() < give_up {
                tokio::time::sleep(RELEASE_RETRY).await;
                if this.release(&resource, &owner, true).await.is_ok() {
                    tracing::debug!(resource, "a lock given up on was released");
                    return;
                }
            }
        });
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
    async fn try_acquire(
        &self,
        resource: &str,
        owner: &str,
        ttl: Duration,
        _fail_fast: bool,
    ) -> anyhow::Result<Option<i64>> {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((holder, until)) = t.leases.get(resource) {
            if *until > now {
                if holder != owner {
                    return Ok(None);
                }
                // Ours already: renewed, same token (nobody could take a new one meanwhile).
                t.leases
                    .insert(resource.to_owned(), (owner.to_owned(), now + ttl));
                return Ok(t.fences.get(resource).copied());
            }
        }
        t.leases
            .insert(resource.to_owned(), (owner.to_owned(), now + ttl));
        // Same start as in Redis: the clock in µs, above any token of an earlier process.
        let fence = t
            .fences
            .entry(resource.to_owned())
            .or_insert_with(epoch_micros);
        *fence += 1;
        Ok(Some(*fence))
    }

    async fn release(&self, resource: &str, owner: &str, _fail_fast: bool) -> anyhow::Result<bool> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        // Compare-and-delete, as in Redis: an expired lease that nobody took since is still
        // "ours" by owner id and deleted, like `GET == owner` then `DEL` would (the key's
        // expiry makes Redis forget it first; either way nobody else loses their lock).
        match t.leases.get(resource) {
            Some((holder, until)) if holder == owner => {
                let live = *until > Instant::now();
                t.leases.remove(resource);
                Ok(live)
            }
            _ => Ok(false),
        }
    }
}

/// How long [`Locks::acquire`] keeps retrying a failing lock service before it answers 503.
pub const LOCK_SERVICE_GRACE: Duration = Duration::from_secs(3);

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
    /// when it stays taken; 503 `lock_unavailable` when the lock service keeps failing for
    /// [`LOCK_SERVICE_GRACE`] (a Redis failover or restart is ridden out: the connection
    /// reconnects to the new primary within it).
    #[tracing::instrument(name = "lock.acquire", skip_all, fields(otel.kind = "client", resource = resource))]
    pub async fn acquire(&self, resource: &str) -> Result<Lease, ApiError> {
        match self.take(resource, false).await? {
            Grant::Lease(lease) => Ok(lease),
            Grant::Database => unreachable!("no database fallback was asked for"),
        }
    }

    /// [`Locks::acquire`] for a caller that can let the database decide (`fenced`): the first
    /// time the lock service fails or answers nothing for [`REDIS_OP_TIMEOUT`] (and, for
    /// [`REDIS_SKIP_FOR`] after that, at once) this answers [`Grant::Database`] instead of
    /// waiting for Redis. 409 `contention` when the lock stays taken for [`Locks::wait`].
    #[tracing::instrument(name = "lock.acquire", skip_all, fields(otel.kind = "client", resource = resource))]
    pub async fn acquire_or_database(&self, resource: &str) -> Result<Grant, ApiError> {
        self.take(resource, true).await
    }

    async fn take(&self, resource: &str, or_database: bool) -> Result<Grant, ApiError> {
        let began = Instant::now();
        let deadline = began + self.wait;
        let waited = |result: &str| {
            self.metrics
                .lock_wait
                .with_label_values(&[result])
                .observe(began.elapsed().as_secs_f64());
        };
        // One owner for every try of this acquisition: a retry after a lost answer finds the
        // lock its lost `SET` took, instead of waiting for it to expire.
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut attempt = 0u32;
        let mut failing_since: Option<Instant> = None;
        loop {
            match self
                .service
                .try_acquire(resource, &owner, self.ttl, or_database)
                .await
            {
                Ok(Some(fence)) => {
                    self.count("acquired");
                    waited("acquired");
                    return Ok(Grant::Lease(Lease {
                        resource: resource.to_owned(),
                        owner,
                        fence,
                        acquired_at: Instant::now(),
                        fail_fast: or_database,
                    }));
                }
                Ok(None) => failing_since = None,
                Err(e) => {
                    self.count("error");
                    if or_database && !e.is::<Busy>() {
                        // The lock may have been taken by a `SET` whose answer was lost:
                        // give it back as soon as the service answers.
                        self.service.release_later(resource, &owner, self.ttl);
                        self.count("database");
                        waited("database");
                        tracing::debug!(resource, error = %e, "lock service failing: the database arbitrates");
                        return Ok(Grant::Database);
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= LOCK_SERVICE_GRACE || Instant::now() >= deadline {
                        waited("error");
                        return Err(ApiError::unavailable(
                            "lock_unavailable",
                            format!("the lock service failed: {e}"),
                        ));
                    }
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
            // A failing service is asked again at a slower pace than a taken lock.
            let ms = if failing_since.is_some() { ms + 50 } else { ms };
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Gives `lease` back; counts (and logs) a lease that had expired under its holder. A
    /// release that fails is retried in the background (the lease expires by TTL otherwise).
    pub async fn release(&self, lease: &Lease) {
        let held = lease.acquired_at.elapsed();
        self.metrics.lock_hold.observe(held.as_secs_f64());
        if held >= self.ttl {
            // Granted (in this process) after the service started the lease's clock: a holder
            // that held it this long has lost it, whatever the service says now. A holder whose
            // own process was paused past the lease may find the service "silent" on waking
            // (nothing answered while it slept) and its release failing: it is still a lease
            // lost under its holder, not a service error. Nothing is left to give back: the
            // service only deletes a lock that still carries this owner.
            self.count("lost");
            tracing::warn!(resource = %lease.resource, fence = lease.fence, held_ms = held.as_millis() as u64, "the lock expired before its holder finished");
            return;
        }
        match self
            .service
            .release(&lease.resource, &lease.owner, lease.fail_fast)
            .await
        {
            Ok(true) => self.count("released"),
            Ok(false) => {
                self.count("lost");
                tracing::warn!(resource = %lease.resource, fence = lease.fence, "the lock expired before its holder finished");
            }
            Err(e) => {
                self.count("error");
                tracing::warn!(resource = %lease.resource, error = %e, "lock release failed; retried in the background");
                if lease.fail_fast {
                    let left = self.ttl.saturating_sub(lease.acquired_at.elapsed());
                    self.service
                        .release_later(&lease.resource, &lease.owner, left);
                }
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
        let a = locks
            .try_acquire("r", "a", ttl, false)
            .await
            .unwrap()
            .unwrap();
        assert!(locks
            .try_acquire("r", "x", ttl, false)
            .await
            .unwrap()
            .is_none());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let b = locks
            .try_acquire("r", "b", ttl, false)
            .await
            .unwrap()
            .unwrap();
        assert!(b > a);
        assert!(
            !locks.release("r", "a", false).await.unwrap(),
            "a's lease was gone"
        );
        assert!(
            locks
                .try_acquire("r", "x", ttl, false)
                .await
                .unwrap()
                .is_none(),
            "b keeps it"
        );
        assert!(locks.release("r", "b", false).await.unwrap());
        let c = locks
            .try_acquire("r", "c", ttl, false)
            .await
            .unwrap()
            .unwrap();
        assert!(c > b);
    }

    #[tokio::test]
    async fn asking_again_for_a_lock_one_holds_returns_the_same_token() {
        let locks = LocalLocks::new();
        let ttl = Duration::from_secs(30);
        let a = locks
            .try_acquire("r", "a", ttl, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            locks.try_acquire("r", "a", ttl, false).await.unwrap(),
            Some(a)
        );
        assert!(locks
            .try_acquire("r", "b", ttl, false)
            .await
            .unwrap()
            .is_none());
        assert!(locks.release("r", "a", false).await.unwrap());
        let b = locks
            .try_acquire("r", "b", ttl, false)
            .await
            .unwrap()
            .unwrap();
        assert!(b > a);
    }
}

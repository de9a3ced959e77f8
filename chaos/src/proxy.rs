//! The proxy plumbing: a TCP listener in front of one upstream, and for each client connection
//! two directions that read, run the bytes through the toxic [`Chain`] of that direction, and
//! write what the chain decided when it decided it.
//!
//! The toxics themselves are pure (see [`crate::toxics`]); everything here is I/O and time:
//!
//! ```text
//!  client ──▶ [read] ─▶ Chain(upstream toxics) ─▶ queue(at) ─▶ [write] ──▶ upstream server
//!  client ◀── [write] ◀─ queue(at) ◀─ Chain(downstream toxics) ◀─ [read] ◀── upstream server
//! ```
//!
//! Toxics are live: the proxy publishes its toxic list on a `watch` channel, and every open
//! connection re-syncs its chains when it changes, so adding a toxic affects existing
//! connections too (as in Toxiproxy). Disabling the proxy closes its listener (new connections
//! are refused) and drops every open connection; enabling binds the same address again.
//!
//! The proxy is this crate's own rather than a Toxiproxy binary or port (noxious): the local stack
//! runs it in-process with nothing to install, seeded so that a run replays, and instrumented with
//! [`crate::metrics`]; compatibility with Toxiproxy is kept at the HTTP API.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::error::{Error, Result};
use crate::metrics::{Metrics, ProxyMetrics};
use crate::toxics::{Action, Chain, Emit, Stream, ToxicSpec};

/// Read buffer per direction.
const READ_BUF: usize = 32 * 1024;
/// A direction stops reading while this many bytes wait in its queue (backpressure towards the
/// source, so a bandwidth toxic does not buffer a whole download in memory).
const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// A proxy as Toxiproxy's API creates it: `{name, listen, upstream, enabled}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Unique name (`postgres`, `redis`, …).
    pub name: String,
    /// `host:port` to listen on; port 0 picks a free port (the API then reports the real one).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `host:port` of the real service; resolved on each connection.
    pub upstream: String,
    /// Whether the proxy accepts connections. Defaults to true.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_listen() -> String {
    "127.0.0.1:0".to_string()
}
fn default_enabled() -> bool {
    true
}

impl ProxyConfig {
    /// An enabled proxy named `name` from `listen` to `upstream`.
    pub fn new(
        name: impl Into<String>,
        listen: impl Into<String>,
        upstream: impl Into<String>,
    ) -> Self {
        ProxyConfig {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
        }
    }
}

/// A proxy with its toxics, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// Name.
    pub name: String,
    /// The address listened on (the real port once bound).
    pub listen: String,
    /// The upstream address.
    pub upstream: String,
    /// Up or down.
    pub enabled: bool,
    /// Active toxics, in the order they were added.
    #[serde(default)]
    pub toxics: Vec<ToxicSpec>,
}

/// A partial update of a proxy (Toxiproxy's `POST /proxies/{name}`): absent fields keep their
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    /// New listen address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// New upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Up or down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Options that are not part of Toxiproxy's proxy JSON.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Seed of every random draw (toxicity, jitter, slices): same seed + same connection
    /// order = same faults.
    pub seed: u64,
    /// Where to count connections and bytes; a private registry when `None`.
    pub metrics: Option<Arc<Metrics>>,
}

/// A fault proxy: cheap to clone (all clones are the same proxy). Dropping the last clone
/// closes the listener and every connection.
#[derive(Debug, Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    state: Mutex<State>,
}

/// What the accept loop and the connections need; they hold this, not the [`Proxy`], so the
/// proxy can be dropped while they run.
#[derive(Debug)]
struct Shared {
    name: String,
    seed: u64,
    metrics: ProxyMetrics,
    toxics: watch::Sender<Arc<Vec<ToxicSpec>>>,
    conns: Mutex<Conns>,
    next_connection: AtomicU64,
    /// Where new connections go; an upstream change swaps it without closing the listener.
    upstream: Mutex<Arc<str>>,
}

#[derive(Debug, Default)]
struct Conns {
    /// Bumped on every stop, so an accept loop that lost the race with `disable` drops the
    /// connection it just accepted instead of registering it.
    generation: u64,
    tasks: HashMap<u64, AbortHandle>,
}

#[derive(Debug)]
struct State {
    listen: String,
    upstream: String,
    enabled: bool,
    /// The address actually bound, reused on re-enable so the port stays stable.
    bound: Option<SocketAddr>,
    accept: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Starts a proxy with seed 0 and private metrics. Must run inside a Tokio runtime.
    pub fn start(config: ProxyConfig) -> Result<Proxy> {
        Self::start_with(config, ProxyOptions::default())
    }

    /// Starts a proxy; it listens at once if `config.enabled`.
    pub fn start_with(config: ProxyConfig, options: ProxyOptions) -> Result<Proxy> {
        if config.name.is_empty() {
            return Err(Error::MissingField("name"));
        }
        if config.upstream.is_empty() {
            return Err(Error::MissingField("upstream"));
        }
        let metrics = options
            .metrics
            .unwrap_or_else(|| Arc::new(Metrics::new()))
            .for_proxy(&config.name);
        let (toxics, _) = watch::channel(Arc::new(Vec::new()));
        let proxy = Proxy {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    name: config.name,
                    seed: options.seed,
                    metrics,
                    toxics,
                    conns: Mutex::new(Conns::default()),
                    next_connection: AtomicU64::new(0),
                    upstream: Mutex::new(config.upstream.as_str().into()),
                }),
                state: Mutex::new(State {
                    listen: if config.listen.is_empty() {
                        default_listen()
                    } else {
                        config.listen
                    },
                    upstream: config.upstream,
                    enabled: false,
                    bound: None,
                    accept: None,
                }),
            }),
        };
        proxy.inner.shared.metrics.set_toxics(&[]);
        if config.enabled {
            proxy.enable()?;
        } else {
            proxy.inner.shared.metrics.set_enabled(false);
        }
        Ok(proxy)
    }

    /// The proxy's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The bound address, once the proxy has listened (kept while disabled).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.state).bound
    }

    /// The upstream address.
    pub fn upstream(&self) -> String {
        lock(&self.inner.state).upstream.clone()
    }

    /// True when accepting connections.
    pub fn enabled(&self) -> bool {
        lock(&self.inner.state).enabled
    }

    /// The proxy as the API shows it.
    pub fn info(&self) -> ProxyInfo {
        let state = lock(&self.inner.state);
        ProxyInfo {
            name: self.name().to_string(),
            listen: state.listen.clone(),
            upstream: state.upstream.clone(),
            enabled: state.enabled,
            toxics: self.toxics(),
        }
    }

    /// Brings the proxy up: binds (the same port as before, if it was bound) and accepts.
    /// A no-op when already up.
    pub fn enable(&self) -> Result<()> {
        let mut state = lock(&self.inner.state);
        if state.enabled {
            return Ok(());
        }
        let want = state
            .bound
            .map_or_else(|| state.listen.clone(), |a| a.to_string());
        let listener = bind(&want)?;
        let local = listener.local_addr()?;
        state.bound = Some(local);
        state.listen = local.to_string();
        let generation = lock(&self.inner.shared.conns).generation;
        let shared = Arc::clone(&self.inner.shared);
        *lock(&shared.upstream) = state.upstream.as_str().into();
        state.accept = Some(tokio::spawn(accept_loop(shared, listener, generation)));
        state.enabled = true;
        self.inner.shared.metrics.set_enabled(true);
        Ok(())
    }

    /// Takes the proxy down: stops listening (connections are refused once this returns) and
    /// drops every open connection. A no-op when already down.
    pub async fn disable(&self) {
        let accept = {
            let mut state = lock(&self.inner.state);
            if !state.enabled {
                return;
            }
            self.inner.shared.metrics.set_enabled(false);
            self.inner.stop(&mut state)
        };
        // The listener closes when the aborted accept task is dropped; wait for that so a
        // connect right after `disable` is refused rather than queued and reset.
        if let Some(task) = accept {
            let _ = task.await;
        }
    }

    /// Applies a partial update. Changing `listen` restarts the proxy on the new address;
    /// changing only `upstream` keeps the listener (so no other process can take the port
    /// meanwhile) and sends new connections to the new upstream. Either way the open
    /// connections are dropped, as Toxiproxy does.
    pub async fn update(&self, update: ProxyUpdate) -> Result<()> {
        let restart = {
            let mut state = lock(&self.inner.state);
            let mut relisten = false;
            if let Some(listen) = update.listen.filter(|l| *l != state.listen) {
                state.listen = listen;
                state.bound = None;
                relisten = true;
            }
            if let Some(upstream) = update.upstream.filter(|u| *u != state.upstream) {
                *lock(&self.inner.shared.upstream) = upstream.as_str().into();
                state.upstream = upstream;
                if state.enabled && !relisten {
                    for (_, task) in lock(&self.inner.shared.conns).tasks.drain() {
                        task.abort();
                    }
                }
            }
            relisten && state.enabled
        };
        if restart {
            self.disable().await;
        }
        match update.enabled {
            Some(false) => self.disable().await,
            Some(true) => self.enable()?,
            None if restart => self.enable()?,
            None => {}
        }
        Ok(())
    }

    /// Active toxics, in the order they were added.
    pub fn toxics(&self) -> Vec<ToxicSpec> {
        self.inner.shared.toxics.borrow().as_ref().clone()
    }

    /// One toxic by name.
    pub fn toxic(&self, name: &str) -> Result<ToxicSpec> {
        self.toxics()
            .into_iter()
            .find(|t| t.name == name)
            .ok_or(Error::ToxicNotFound)
    }

    /// Adds a toxic; it applies to new and open connections.
    pub fn add_toxic(&self, spec: ToxicSpec) -> Result<ToxicSpec> {
        self.modify_toxics(|toxics| {
            if toxics.iter().any(|t| t.name == spec.name) {
                return Err(Error::ToxicAlreadyExists);
            }
            toxics.push(spec.clone());
            Ok(spec.clone())
        })
    }

    /// Updates a toxic's attributes (keys absent from `attributes` keep their value) and,
    /// if given, its toxicity. Open connections restart the toxic with the new values.
    pub fn update_toxic(
        &self,
        name: &str,
        attributes: &serde_json::Value,
        toxicity: Option<f32>,
    ) -> Result<ToxicSpec> {
        self.modify_toxics(|toxics| {
            let t = toxics
                .iter_mut()
                .find(|t| t.name == name)
                .ok_or(Error::ToxicNotFound)?;
            t.kind = t.kind.patched(attributes)?;
            if let Some(x) = toxicity {
                if !(0.0..=1.0).contains(&x) {
                    return Err(Error::BadRequest(format!(
                        "toxicity must be within 0..1, got {x}"
                    )));
                }
                t.toxicity = x;
            }
            Ok(t.clone())
        })
    }

    /// Removes a toxic from new and open connections.
    pub fn remove_toxic(&self, name: &str) -> Result<()> {
        self.modify_toxics(|toxics| {
            let i = toxics
                .iter()
                .position(|t| t.name == name)
                .ok_or(Error::ToxicNotFound)?;
            toxics.remove(i);
            Ok(())
        })
    }

    /// Removes every toxic.
    pub fn reset_toxics(&self) {
        let _ = self.modify_toxics(|toxics| {
            toxics.clear();
            Ok(())
        });
    }

    /// Number of open client connections.
    pub fn connections(&self) -> usize {
        lock(&self.inner.shared.conns).tasks.len()
    }

    fn modify_toxics<T>(&self, f: impl FnOnce(&mut Vec<ToxicSpec>) -> Result<T>) -> Result<T> {
        let mut result = None;
        self.inner.shared.toxics.send_if_modified(|current| {
            let mut next = current.as_ref().clone();
            match f(&mut next) {
                Ok(v) => {
                    result = Some(Ok(v));
                    self.inner.shared.metrics.set_toxics(&next);
                    *current = Arc::new(next);
                    true
                }
                Err(e) => {
                    result = Some(Err(e));
                    false
                }
            }
        });
        result.unwrap_or(Err(Error::ToxicNotFound))
    }
}

impl Inner {
    /// Aborts the accept loop and every connection; returns the accept task to await.
    fn stop(&self, state: &mut State) -> Option<JoinHandle<()>> {
        let accept = state.accept.take();
        if let Some(task) = &accept {
            task.abort();
        }
        state.enabled = false;
        let mut conns = lock(&self.shared.conns);
        conns.generation += 1;
        for (_, task) in conns.tasks.drain() {
            task.abort();
        }
        accept
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let _ = self.stop(state);
        self.shared.metrics.forget();
    }
}

/// Binds with SO_REUSEADDR, so re-enabling a proxy succeeds while its old connections sit
/// in TIME_WAIT.
fn bind(addr: &str) -> Result<TcpListener> {
    let listen_err = |source| Error::Listen {
        addr: addr.to_string(),
        source,
    };
    let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(listen_err)?.collect();
    let sock_addr = resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| {
            listen_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "address resolved to nothing",
            ))
        })?;
    let socket = if sock_addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(listen_err)?;
    socket.set_reuseaddr(true).map_err(listen_err)?;
    socket.bind(sock_addr).map_err(listen_err)?;
    // As deep as the box office's own: a proxy must not drop the handshakes of a crowd that
    // the service behind it would have accepted.
    socket.listen(8192).map_err(listen_err)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, generation: u64) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(proxy = %shared.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let mut conns = lock(&shared.conns);
        if conns.generation != generation {
            return;
        }
        let upstream = Arc::clone(&lock(&shared.upstream));
        let task = tokio::spawn(handle_connection(Arc::clone(&shared), id, client, upstream));
        conns.tasks.insert(id, task.abort_handle());
    }
}

/// Unregisters a connection however its task ends (including abort).
struct ConnectionGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).tasks.remove(&self.id);
        self.shared.metrics.connection_closed(self.id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
}

async fn handle_connection(shared: Arc<Shared>, id: u64, client: TcpStream, upstream: Arc<str>) {
    shared.metrics.connection_opened(id);
    let _guard = ConnectionGuard {
        shared: Arc::clone(&shared),
        id,
    };
    let server = match TcpStream::connect(&*upstream).await {
        Ok(s) => s,
        Err(e) => {
            // Toxiproxy closes the client when the upstream is unreachable.
            tracing::debug!(proxy = %shared.name, upstream = %upstream, error = %e, "upstream unreachable");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = run_direction(&shared, id, Stream::Upstream, client_r, server_w);
    let down = run_direction(&shared, id, Stream::Downstream, server_r, client_w);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            end = &mut up, if !up_done => {
                if end == End::Reset { return; }
                up_done = true;
            }
            end = &mut down, if !down_done => {
                if end == End::Reset { return; }
                down_done = true;
            }
        }
    }
}

fn toxics_for(specs: &[ToxicSpec], stream: Stream) -> Vec<ToxicSpec> {
    specs
        .iter()
        .filter(|t| t.stream == stream)
        .cloned()
        .collect()
}

/// Pending emits of one direction, in order, with non-decreasing instants.
struct Queue {
    items: VecDeque<Emit>,
    bytes: usize,
    last: Instant,
}

impl Queue {
    fn push(&mut self, emits: Vec<Emit>) {
        for mut e in emits {
            e.at = e.at.max(self.last);
            self.last = e.at;
            if let Action::Data(d) = &e.action {
                self.bytes += d.len();
            }
            self.items.push_back(e);
        }
    }
}

/// Runs one direction until the chain closes or resets it, or the destination fails.
async fn run_direction(
    shared: &Shared,
    id: u64,
    stream: Stream,
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
) -> End {
    let mut toxics = shared.toxics.subscribe();
    let (received, sent) = shared.metrics.byte_counters(stream);
    let mut chain = Chain::new(shared.seed, id);
    let mut queue = Queue {
        items: VecDeque::new(),
        bytes: 0,
        last: Instant::now(),
    };
    let initial = toxics_for(&toxics.borrow_and_update(), stream);
    queue.push(chain.sync(&initial, Instant::now()));
    let mut buf = vec![0u8; READ_BUF];
    let mut source_open = true;
    loop {
        if source_open && chain.is_empty() && queue.items.is_empty() {
            // No toxic on this stream and nothing pending: plain forwarding until the toxics
            // change or the source ends.
            match forward(
                &mut toxics,
                &mut reader,
                &mut writer,
                &mut buf,
                &received,
                &sent,
            )
            .await
            {
                Forwarded::ToxicsChanged => {
                    let specs = toxics_for(&toxics.borrow_and_update(), stream);
                    queue.push(chain.sync(&specs, Instant::now()));
                }
                Forwarded::SourceEnded => {
                    source_open = false;
                    queue.push(chain.on_close(Instant::now()));
                }
                Forwarded::Gone => return End::Closed,
            }
            continue;
        }
        // Carry out everything that is due before waiting on anything.
        let now = Instant::now();
        while queue.items.front().is_some_and(|e| e.at <= now) {
            let Some(e) = queue.items.pop_front() else {
                break;
            };
            match e.action {
                Action::Data(d) => {
                    queue.bytes -= d.len();
                    if writer.write_all(&d).await.is_err() {
                        return End::Closed;
                    }
                    sent.inc_by(d.len() as u64);
                }
                Action::Close => {
                    let _ = writer.shutdown().await;
                    return End::Closed;
                }
                Action::Reset => {
                    let _ = writer.as_ref().set_zero_linger();
                    // Dropping a write half sends a FIN first; forget it so the socket's
                    // only close is the linger-0 one (an RST) when the read half drops.
                    writer.forget();
                    return End::Reset;
                }
            }
        }
        let next_write = queue.items.front().map(|e| e.at);
        let deadline = chain.deadline();
        tokio::select! {
            biased;
            changed = toxics.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
                let specs = toxics_for(&toxics.borrow_and_update(), stream);
                queue.push(chain.sync(&specs, Instant::now()));
            }
            () = sleep_until(next_write), if next_write.is_some() => {}
            () = sleep_until(deadline), if deadline.is_some() => {
                queue.push(chain.on_deadline(Instant::now()));
            }
            read = reader.read(&mut buf), if source_open && queue.bytes < MAX_QUEUED_BYTES => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => {
                        source_open = false;
                        queue.push(chain.on_close(now));
                    }
                    Ok(n) => {
                        received.inc_by(n as u64);
                        queue.push(chain.on_data(now, buf[..n].to_vec()));
                    }
                }
            }
        }
    }
}

/// Why [`forward`] stopped.
enum Forwarded {
    /// The proxy's toxics changed (the caller re-syncs its chain).
    ToxicsChanged,
    /// The source sent EOF or failed.
    SourceEnded,
    /// The destination failed, or the proxy is gone.
    Gone,
}

/// The path of a direction without toxics, which is nearly every byte the proxy carries:
/// read and write straight from one buffer, with one toxics subscription kept across chunks
/// instead of one per chunk, and no clock reads or queue bookkeeping. Returns when the toxics
/// change (checked before every read, so a toxic added mid-connection applies from the next
/// chunk on, as on the queued path) or the direction ends.
async fn forward(
    toxics: &mut watch::Receiver<Arc<Vec<ToxicSpec>>>,
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    buf: &mut [u8],
    received: &prometheus::IntCounter,
    sent: &prometheus::IntCounter,
) -> Forwarded {
    let changed = toxics.changed();
    tokio::pin!(changed);
    loop {
        tokio::select! {
            biased;
            changed = &mut changed => {
                return if changed.is_ok() { Forwarded::ToxicsChanged } else { Forwarded::Gone };
            }
            read = reader.read(buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return Forwarded::SourceEnded,
                    Ok(n) => n,
                };
                received.inc_by(n as u64);
                if writer.write_all(&buf[..n]).await.is_err() {
                    return Forwarded::Gone;
                }
                sent.inc_by(n as u64);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

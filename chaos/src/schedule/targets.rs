//! Fault targets: the [`FaultTarget`] trait a stack implements per component, and the network
//! targets every stack shares — a local [`ProxyTarget`], a proxy behind a remote Toxiproxy API
//! ([`ApiProxyTarget`]), and a [`GroupTarget`] of several.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{FaultAction, ScheduleError};
use crate::proxy::Proxy;
use crate::toxics::{timeout, Stream, ToxicKind, ToxicSpec};

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

impl NetworkSwitch for ProxyTarget {
    fn name(&self) -> &str {
        self.proxy.name()
    }

    async fn set_enabled(&self, enabled: bool) -> crate::Result<()> {
        if enabled {
            self.proxy.enable()
        } else {
            self.proxy.disable().await;
            Ok(())
        }
    }

    async fn add_toxic(&self, toxic: ToxicSpec) -> crate::Result<()> {
        self.proxy.add_toxic(toxic).map(|_| ())
    }

    async fn remove_toxic(&self, name: &str) -> crate::Result<()> {
        self.proxy.remove_toxic(name)
    }
}

impl FaultTarget for ProxyTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(network_fault(self, action, Phase::Apply))
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(network_fault(self, action, Phase::Revert))
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
}

impl NetworkSwitch for ApiProxyTarget {
    fn name(&self) -> &str {
        &self.proxy
    }

    async fn set_enabled(&self, enabled: bool) -> crate::Result<()> {
        let info = if enabled {
            self.client.enable(&self.proxy).await
        } else {
            self.client.disable(&self.proxy).await
        };
        info.map(|_| ())
    }

    async fn add_toxic(&self, toxic: ToxicSpec) -> crate::Result<()> {
        self.client.add_toxic(&self.proxy, &toxic).await.map(|_| ())
    }

    async fn remove_toxic(&self, name: &str) -> crate::Result<()> {
        self.client.remove_toxic(&self.proxy, name).await
    }
}

impl FaultTarget for ApiProxyTarget {
    fn apply<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(network_fault(self, action, Phase::Apply))
    }

    fn revert<'a>(&'a self, action: &'a FaultAction) -> FaultFuture<'a> {
        Box::pin(network_fault(self, action, Phase::Revert))
    }
}

/// Whether a fault starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Apply,
    Revert,
}

/// What a network fault needs from a proxy, wherever it runs: in this process
/// ([`ProxyTarget`]) or behind a Toxiproxy API ([`ApiProxyTarget`]).
trait NetworkSwitch: Sync {
    /// The proxy's name, for errors.
    fn name(&self) -> &str;
    /// Enables (accepts connections) or disables (refuses them) the proxy.
    fn set_enabled(&self, enabled: bool) -> impl Future<Output = crate::Result<()>> + Send;
    /// Adds a toxic.
    fn add_toxic(&self, toxic: ToxicSpec) -> impl Future<Output = crate::Result<()>> + Send;
    /// Removes the toxic called `name`.
    fn remove_toxic(&self, name: &str) -> impl Future<Output = crate::Result<()>> + Send;
}

/// Applies or reverts a network action (`down`, `partition`, a toxic) on `proxy`; reverting
/// a toxic that is already gone is not an error.
async fn network_fault(
    proxy: &impl NetworkSwitch,
    action: &FaultAction,
    phase: Phase,
) -> Result<(), ScheduleError> {
    let failed = |e: crate::Error| ScheduleError::Failed {
        target: proxy.name().to_string(),
        action: action.to_string(),
        reason: e.to_string(),
    };
    match action {
        FaultAction::Down => proxy
            .set_enabled(phase == Phase::Revert)
            .await
            .map_err(failed),
        FaultAction::Partition | FaultAction::Toxic { .. } => {
            for t in ProxyTarget::toxics(action) {
                let done = match phase {
                    Phase::Apply => proxy.add_toxic(t).await,
                    Phase::Revert => match proxy.remove_toxic(&t.name).await {
                        Err(crate::Error::ToxicNotFound) => Ok(()),
                        other => other,
                    },
                };
                done.map_err(failed)?;
            }
            Ok(())
        }
        _ => Err(ScheduleError::Unsupported {
            target: proxy.name().to_string(),
            action: action.to_string(),
        }),
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

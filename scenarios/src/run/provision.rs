//! Stage 2: provision and seed. The runner's live metrics start first (the local stack's
//! Prometheus scrapes them), then the stack ([`crate::stack`]), then the world the personas
//! buy from ([`crate::seed`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::api::Api;
use crate::error::{Error, Result};
use crate::live::LiveMetrics;
use crate::seed::{self, World};
use crate::stack::{Stack, StackSpec};

use super::plan::Plan;

/// A running stack with the runner's metrics beside it.
#[derive(Debug)]
pub struct Provisioned {
    /// The stack.
    pub stack: Stack,
    /// The runner's live metrics.
    pub live: Arc<LiveMetrics>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Provisioned {
    /// Stops the stack and the metrics server.
    pub async fn stop(self) {
        self.stack.stop().await;
        if let Some(task) = self.server {
            task.abort();
        }
    }
}

/// Starts the runner's metrics (when asked for, or on the local stack) and the stack.
pub async fn provision(plan: &Plan) -> Result<Provisioned> {
    let t = Instant::now();
    let live = Arc::new(LiveMetrics::new());
    let is_local = plan.cli.stack == StackSpec::Local;
    let listen = plan
        .cli
        .metrics_listen
        .or_else(|| is_local.then(|| SocketAddr::from(([127, 0, 0, 1], 0))));
    let mut server = None;
    let mut options = plan.stack.clone();
    if let Some(addr) = listen {
        let (bound, task) = live
            .serve(addr)
            .await
            .map_err(|e| Error::io(format!("serving the runner's metrics on {addr}"), e))?;
        plan.say(format!("runner metrics at http://{bound}/metrics"));
        server = Some((bound, task));
    }
    if is_local && !plan.cli.no_prometheus {
        options.prometheus = Some(compose::LabPrometheus {
            rule_files: alert_rule_files(),
            extra_targets: server
                .iter()
                .map(|(a, _)| compose::prometheus::ScrapeTarget::new("scenario", a.to_string()))
                .collect(),
        });
    }
    let stack = match Stack::start(&plan.cli.stack, &options).await {
        Ok(stack) => stack,
        Err(e) => {
            if let Some((_, task)) = server {
                task.abort();
            }
            return Err(e);
        }
    };
    plan.say(format!(
        "stack {} up at {} in {:.1}s",
        plan.cli.stack.name(),
        stack.base_url,
        t.elapsed().as_secs_f64()
    ));
    if let Some(lab) = stack.lab() {
        plan.say(match lab.wiring() {
            compose::Wiring::Proxied => {
                format!("fault proxies (Toxiproxy API) at {}", lab.chaos_api())
            }
            compose::Wiring::Direct => "wired direct: no fault proxy between the instances \
                 and their servers (--wiring proxied keeps them, to inject faults by hand)"
                .to_owned(),
        });
        if let Some(p) = lab.prometheus() {
            plan.say(format!("prometheus at {}", p.url()));
        }
    }
    Ok(Provisioned {
        stack,
        live,
        server: server.map(|(_, task)| task),
    })
}

/// Seeds the world the descriptor asks for (none for the probe).
pub async fn seed_world(plan: &Plan, api: &Api, stack: &Stack) -> Result<World> {
    if !plan.attack.seeds_world {
        return Ok(World::empty());
    }
    let t = Instant::now();
    let world = seed::seed(api, &stack.admin, &plan.seed_spec()).await?;
    plan.say(format!(
        "seeded {} users, {} round(s) of {} seats in {:.1}s",
        world.users.len(),
        world.rounds.len(),
        plan.seats,
        t.elapsed().as_secs_f64()
    ));
    if let Some(first) = world.rounds.first() {
        let more = match world.rounds.len() {
            1 => String::new(),
            n => format!(" (the first of {n} rounds)"),
        };
        plan.say(format!(
            "watch the sale live: {}{more}",
            seat_map_url(&stack.base_url, first.id)
        ));
    }
    Ok(world)
}

/// The buyer's page's seat map of `round` on the box office at `base_url`: opened during a
/// run, it shows the sale live (seats turning held and sold).
pub fn seat_map_url(base_url: &str, round: i64) -> String {
    format!("{}/#/rounds/{round}", base_url.trim_end_matches('/'))
}

/// The project's alert rules (alerts/rules/*.yml in the source tree).
pub fn alert_rule_files() -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("alerts")
        .join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Raises this process's limit on open files as far as it may (children, such as the local
/// stack's instances, inherit it): a run keeps a socket per virtual user in flight, two in
/// one process on the embedded stack (client and server side) and more on the local stack
/// (balancer, proxies), so 10,000 users need far more than the usual soft limit of 1,024 and
/// more than a hard limit of 20,000. Root may raise the hard limit (up to the kernel's
/// `fs.nr_open`, at most 2^20); anyone may raise the soft limit to the hard one. Returns the
/// limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard)
        .min(1 << 20);
    if ceiling > hard && setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling).is_ok() {
        return Ok(ceiling);
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// How many requests the runner may have in flight at once without running out of
/// descriptors, when that is fewer than `users`: the open-files limit, less 1,024 for
/// everything else, over the descriptors one request may hold in this process — 3 on the
/// embedded stack (client and server side, and a payment's call to the in-process provider:
/// measured, 2 per request ran out at 10,000 users), 4 on the local stack (client, the
/// balancer's two sides, a proxy's), 1 elsewhere.
pub fn connection_budget(stack: &StackSpec, users: usize) -> Option<usize> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    let per_request = match stack {
        StackSpec::Embedded => 3,
        StackSpec::Local => 4,
        _ => 1,
    };
    let budget = usize::try_from(soft.saturating_sub(1024) / per_request).ok()?;
    (users > budget).then_some(budget)
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`), where the OS says.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Descriptors this process has open now (sockets included), where the OS says.
pub fn open_files() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_rises_as_far_as_allowed_and_usage_is_read() {
        let limit = raise_open_files_limit().expect("getrlimit works here");
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        // The soft limit is now the hard one (raised too, when we may).
        assert_eq!((soft, limit), (hard, hard));
        assert!(soft >= 1024, "{soft}");
        let before = open_files().expect("/proc/self/fd");
        let _f: Vec<_> = (0..5).map(|_| tempfile::tempfile().unwrap()).collect();
        assert!(open_files().unwrap() >= before + 5);
        assert!(peak_rss_mib().unwrap() > 1.0);
    }

    #[test]
    fn the_seat_map_url_is_the_pages_round_route_on_the_stacks_base_url() {
        assert_eq!(
            seat_map_url("http://127.0.0.1:8080/", 7),
            "http://127.0.0.1:8080/#/rounds/7"
        );
        assert_eq!(
            seat_map_url("http://127.0.0.1:8080", 1),
            "http://127.0.0.1:8080/#/rounds/1"
        );
    }
}

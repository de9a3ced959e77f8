//! The `chaos` command line: run the standalone proxy server, drive any Toxiproxy-compatible
//! API (this crate's or a Toxiproxy container's) for game days, and apply process or
//! container faults. `src/bin/chaos.rs` only parses arguments and calls [`run`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::ToxiproxyClient;
use crate::container::{self, ContainerAction};
use crate::process::{self, ProcessFault};
use crate::proxy::ProxyConfig;
use crate::server::{ProxyServer, Registry};
use crate::toxics::{Stream, ToxicSpec, ToxicWire};

/// Fault injection for Box Office Lab.
#[derive(Debug, Parser)]
#[command(name = "chaos", version, about)]
pub struct Cli {
    /// Toxiproxy-compatible API to drive.
    #[arg(
        long,
        global = true,
        env = "CHAOS_API",
        default_value = "http://127.0.0.1:8474"
    )]
    pub api: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy server (no subcommand), or manage one proxy through the API.
    Proxy(ProxyCommand),
    /// List proxies and their toxics.
    List,
    /// Add, update or remove toxics.
    #[command(subcommand)]
    Toxic(ToxicCommand),
    /// Enable every proxy and remove every toxic.
    Reset,
    /// Kill, pause or resume a process (by pid) or a container (by name, needs Docker).
    Process(ProcessCommand),
    /// Parse a schedule (drill name, TOML file or text) and print its faults.
    Schedule {
        /// `redis-failover`, `path/to/drill.toml` or `redis:kill@20s+10s,…`.
        spec: String,
        /// Seed for start-time spreads in text schedules.
        #[arg(long, env = "CHAOS_SEED", default_value_t = 0)]
        seed: u64,
        /// Where drill files live.
        #[arg(long, env = "CHAOS_DRILLS", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/schedules"))]
        drills: PathBuf,
    },
}

/// `chaos proxy …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProxyCommand {
    /// Manage a proxy; without one, run the server.
    #[command(subcommand)]
    pub action: Option<ProxyAction>,
    /// Server options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Options of the standalone server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "CHAOS_LISTEN", default_value = "127.0.0.1:8474")]
    pub listen: SocketAddr,
    /// JSON file with an array of proxies (`[{name, listen, upstream, enabled?}]`), as
    /// Toxiproxy's `-config`.
    #[arg(long, env = "CHAOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seed of every random draw (toxicity, jitter, slices).
    #[arg(long, env = "CHAOS_SEED", default_value_t = 0)]
    pub seed: u64,
}

/// Proxy management through the API.
#[derive(Debug, Subcommand)]
pub enum ProxyAction {
    /// Create a proxy.
    Create {
        /// Name.
        name: String,
        /// Listen address.
        #[arg(long, env = "CHAOS_LISTEN")]
        listen: String,
        /// Upstream address.
        #[arg(long, env = "CHAOS_UPSTREAM")]
        upstream: String,
    },
    /// Delete a proxy.
    Delete {
        /// Name.
        name: String,
    },
    /// Take a proxy down: connections refused, open ones dropped.
    Disable {
        /// Name.
        name: String,
    },
    /// Bring a proxy back up.
    Enable {
        /// Name.
        name: String,
    },
}

/// `chaos toxic …`.
#[derive(Debug, Subcommand)]
pub enum ToxicCommand {
    /// Add a toxic to a proxy.
    Add {
        /// Proxy name.
        proxy: String,
        /// Toxic type: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data.
        #[arg(long = "type", short = 't', env = "CHAOS_TYPE")]
        kind: String,
        /// Toxic name (default `<type>_<stream>`).
        #[arg(long, short = 'n', env = "CHAOS_NAME")]
        name: Option<String>,
        /// Direction.
        #[arg(long, short = 's', env = "CHAOS_STREAM", value_enum, default_value_t = StreamArg::Downstream)]
        stream: StreamArg,
        /// Probability (0..1) that a connection is affected.
        #[arg(long, env = "CHAOS_TOXICITY", default_value_t = 1.0)]
        toxicity: f32,
        /// Attribute `key=value`, repeatable (`-a latency=200 -a jitter=50`; `CHAOS_ATTRIBUTE`
        /// holds one).
        #[arg(long = "attribute", short = 'a', env = "CHAOS_ATTRIBUTE", value_parser = parse_attribute)]
        attributes: Vec<(String, serde_json::Value)>,
    },
    /// Change a toxic's attributes or toxicity.
    Update {
        /// Proxy name.
        proxy: String,
        /// Toxic name.
        name: String,
        /// New toxicity.
        #[arg(long, env = "CHAOS_TOXICITY")]
        toxicity: Option<f32>,
        /// Attribute `key=value`, repeatable (`CHAOS_ATTRIBUTE` holds one).
        #[arg(long = "attribute", short = 'a', env = "CHAOS_ATTRIBUTE", value_parser = parse_attribute)]
        attributes: Vec<(String, serde_json::Value)>,
    },
    /// Remove a toxic.
    Remove {
        /// Proxy name.
        proxy: String,
        /// Toxic name.
        name: String,
    },
}

/// Direction on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StreamArg {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl From<StreamArg> for Stream {
    fn from(s: StreamArg) -> Self {
        match s {
            StreamArg::Upstream => Stream::Upstream,
            StreamArg::Downstream => Stream::Downstream,
        }
    }
}

/// `chaos process …`.
#[derive(Debug, Args)]
pub struct ProcessCommand {
    /// The fault.
    #[arg(value_enum)]
    pub action: ProcessAction,
    /// Target process.
    #[arg(
        long,
        env = "CHAOS_PID",
        required_unless_present_any = ["container", "component"],
        conflicts_with_all = ["container", "component"]
    )]
    pub pid: Option<u32>,
    /// Target container (needs a Docker daemon).
    #[arg(long, env = "CHAOS_CONTAINER", conflicts_with = "component")]
    pub container: Option<String>,
    /// Target component of a running local stack by name (`app-1`, `postgres`, `redis-a`…),
    /// looked up in the `stack.json` a `scenario --stack local` run writes.
    #[arg(long, env = "CHAOS_COMPONENT", requires = "stack_file")]
    pub component: Option<String>,
    /// The run's `stack.json` (components, pids, addresses).
    #[arg(long, env = "CHAOS_STACK_FILE", value_name = "PATH")]
    pub stack_file: Option<PathBuf>,
}

/// The pid of `name` in a local stack's `stack.json`.
pub fn component_pid(stack_file: &std::path::Path, name: &str) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(stack_file)
        .with_context(|| format!("Failed to read {}", stack_file.display()))?;
    let components: Vec<serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a stack.json", stack_file.display()))?;
    let found = components
        .iter()
        .find(|c| c["name"] == name)
        .with_context(|| {
            let names: Vec<&str> = components
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            format!(
                "no component {name:?} in {} (components: {})",
                stack_file.display(),
                names.join(", ")
            )
        })?;
    found["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .with_context(|| format!("component {name:?} has no running process"))
}

/// Process fault on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProcessAction {
    /// SIGKILL.
    Kill,
    /// SIGSTOP (a long GC pause).
    Pause,
    /// SIGCONT.
    Resume,
}

/// Parses `key=value`; the value is JSON when it parses as JSON (numbers, booleans), else a
/// string.
pub fn parse_attribute(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
    Ok((k.trim().to_string(), value))
}

fn attributes(pairs: Vec<(String, serde_json::Value)>) -> serde_json::Value {
    serde_json::Value::Object(pairs.into_iter().collect())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = ToxiproxyClient::new(&cli.api);
    match cli.command {
        Command::Proxy(ProxyCommand {
            action: None,
            serve,
        }) => serve_forever(serve).await,
        Command::Proxy(ProxyCommand {
            action: Some(action),
            ..
        }) => {
            let info = match action {
                ProxyAction::Create {
                    name,
                    listen,
                    upstream,
                } => client
                    .create_proxy(&ProxyConfig::new(name, listen, upstream))
                    .await
                    .context("Failed to create the proxy")?,
                ProxyAction::Delete { name } => {
                    client
                        .delete_proxy(&name)
                        .await
                        .with_context(|| format!("Failed to delete proxy {name}"))?;
                    println!("deleted {name}");
                    return Ok(());
                }
                ProxyAction::Disable { name } => client
                    .disable(&name)
                    .await
                    .with_context(|| format!("Failed to disable proxy {name}"))?,
                ProxyAction::Enable { name } => client
                    .enable(&name)
                    .await
                    .with_context(|| format!("Failed to enable proxy {name}"))?,
            };
            println!(
                "{} {} -> {} ({})",
                info.name,
                info.listen,
                info.upstream,
                if info.enabled { "enabled" } else { "disabled" }
            );
            Ok(())
        }
        Command::List => {
            let proxies = client
                .proxies()
                .await
                .with_context(|| format!("Failed to list proxies at {}", client.base_url()))?;
            println!(
                "{:<16} {:<22} {:<22} {:<8} toxics",
                "name", "listen", "upstream", "enabled"
            );
            for p in proxies.values() {
                let toxics: Vec<String> = p
                    .toxics
                    .iter()
                    .map(|t| {
                        format!(
                            "{}({} {} {} @{})",
                            t.name,
                            t.kind.type_name(),
                            t.stream,
                            t.kind.attributes(),
                            t.toxicity
                        )
                    })
                    .collect();
                println!(
                    "{:<16} {:<22} {:<22} {:<8} {}",
                    p.name,
                    p.listen,
                    p.upstream,
                    p.enabled,
                    toxics.join(", ")
                );
            }
            Ok(())
        }
        Command::Toxic(ToxicCommand::Add {
            proxy,
            kind,
            name,
            stream,
            toxicity,
            attributes: attrs,
        }) => {
            let spec = ToxicSpec::try_from(ToxicWire {
                name: name.unwrap_or_default(),
                kind,
                stream: Stream::from(stream).as_str().to_string(),
                toxicity,
                attributes: attributes(attrs),
            })
            .context("Invalid toxic")?;
            let t = client
                .add_toxic(&proxy, &spec)
                .await
                .with_context(|| format!("Failed to add the toxic to {proxy}"))?;
            println!("added {} to {proxy}", serde_json::to_string(&t)?);
            Ok(())
        }
        Command::Toxic(ToxicCommand::Update {
            proxy,
            name,
            toxicity,
            attributes: attrs,
        }) => {
            let t = client
                .update_toxic(&proxy, &name, attributes(attrs), toxicity)
                .await
                .with_context(|| format!("Failed to update toxic {name} on {proxy}"))?;
            println!("updated {}", serde_json::to_string(&t)?);
            Ok(())
        }
        Command::Toxic(ToxicCommand::Remove { proxy, name }) => {
            client
                .remove_toxic(&proxy, &name)
                .await
                .with_context(|| format!("Failed to remove toxic {name} from {proxy}"))?;
            println!("removed {name} from {proxy}");
            Ok(())
        }
        Command::Reset => {
            client.reset().await.context("Failed to reset")?;
            println!("reset: all proxies enabled, all toxics removed");
            Ok(())
        }
        Command::Process(cmd) => run_process(cmd),
        Command::Schedule { spec, seed, drills } => {
            let sched = crate::schedule::Schedule::resolve(&spec, &drills, seed)?;
            println!(
                "schedule {} (seed {}), {} fault(s), span {:?}",
                sched.name.as_deref().unwrap_or("<text>"),
                sched.seed,
                sched.faults.len(),
                sched.span()
            );
            for f in &sched.faults {
                let until = f
                    .duration
                    .map_or_else(|| "end of run".to_string(), |d| format!("{:?}", f.at + d));
                println!(
                    "  {:>8?} → {:<10} {:<10} {}",
                    f.at, until, f.target, f.action
                );
            }
            Ok(())
        }
    }
}

fn run_process(cmd: ProcessCommand) -> anyhow::Result<()> {
    let pid = match (&cmd.component, &cmd.stack_file) {
        (Some(name), Some(file)) => Some(component_pid(file, name)?),
        _ => cmd.pid,
    };
    match (pid, cmd.container) {
        (Some(pid), _) => {
            let fault = match cmd.action {
                ProcessAction::Kill => ProcessFault::Kill,
                ProcessAction::Pause => ProcessFault::Pause,
                ProcessAction::Resume => ProcessFault::Resume,
            };
            process::apply(pid, fault).with_context(|| format!("Failed to {fault:?} pid {pid}"))?;
            println!("{fault:?} pid {pid}");
            Ok(())
        }
        (None, Some(name)) => {
            let action = match cmd.action {
                ProcessAction::Kill => ContainerAction::Kill,
                ProcessAction::Pause => ContainerAction::Pause,
                ProcessAction::Resume => ContainerAction::Unpause,
            };
            container::apply(&name, action)?;
            println!("{action:?} container {name}");
            Ok(())
        }
        (None, None) => bail!("give --pid, --container or --component with --stack-file"),
    }
}

/// Runs the API server until Ctrl-C or SIGTERM. Prints `listening on http://ADDR` on stdout
/// once bound, so a parent process (or a test) can read the port when `--listen` used port 0.
pub async fn serve_forever(args: ServeArgs) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::new(args.seed));
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        let configs: Vec<ProxyConfig> = serde_json::from_str(&text).with_context(|| {
            format!(
                "Failed to parse {} as a JSON array of proxies",
                path.display()
            )
        })?;
        let n = configs.len();
        registry
            .populate(configs)
            .await
            .with_context(|| format!("Failed to start the proxies of {}", path.display()))?;
        tracing::info!(proxies = n, config = %path.display(), "populated proxies");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", args.listen))?;
    let (server, addr) = ProxyServer::serve(listener, registry)?;
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    wait_for_stop().await;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_component_of_a_local_stack_is_found_by_name_in_its_stack_json() {
        let path = std::env::temp_dir().join(format!("stack-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"[{"name":"postgres","kind":"postgresql primary","pid":4242,"address":"127.0.0.1:1","proxy":"127.0.0.1:2"},
                {"name":"payments","kind":"payment provider","pid":null,"address":"127.0.0.1:3","proxy":null}]"#,
        )
        .unwrap();
        assert_eq!(component_pid(&path, "postgres").unwrap(), 4242);
        let none = component_pid(&path, "payments").unwrap_err().to_string();
        assert!(none.contains("no running process"), "{none}");
        let missing = component_pid(&path, "app-9").unwrap_err().to_string();
        assert!(missing.contains("postgres, payments"), "{missing}");
        let _ = std::fs::remove_file(path);
        let cli = Cli::try_parse_from(["chaos", "process", "kill", "--component", "app-1"]);
        assert!(cli.is_err(), "--component needs --stack-file");
    }
    use super::*;

    #[test]
    fn attributes_parse_numbers_as_numbers_and_the_rest_as_strings() {
        assert_eq!(
            parse_attribute("latency=200").unwrap().1,
            serde_json::json!(200)
        );
        assert_eq!(
            parse_attribute("x=abc").unwrap().1,
            serde_json::json!("abc")
        );
        assert!(parse_attribute("novalue").is_err());
    }

    #[test]
    fn every_option_reads_a_chaos_environment_variable() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut usize) {
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let want = format!("CHAOS_{}", long.replace('-', "_").to_uppercase());
                assert_eq!(
                    arg.get_env().and_then(|e| e.to_str()),
                    Some(want.as_str()),
                    "{path} --{long}"
                );
                *seen += 1;
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut seen = 0;
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "chaos",
            &mut seen,
        );
        assert!(seen >= 18, "only {seen} options");
    }

    #[test]
    fn the_command_line_parses_the_documented_forms() {
        Cli::try_parse_from(["chaos", "proxy", "--listen", "127.0.0.1:8474"]).unwrap();
        Cli::try_parse_from(["chaos", "--api", "http://x:1", "proxy", "disable", "redis"]).unwrap();
        Cli::try_parse_from([
            "chaos",
            "toxic",
            "add",
            "redis",
            "--type",
            "latency",
            "--stream",
            "downstream",
            "--toxicity",
            "1",
            "-a",
            "latency=200",
            "-a",
            "jitter=50",
        ])
        .unwrap();
        Cli::try_parse_from(["chaos", "toxic", "remove", "redis", "latency_downstream"]).unwrap();
        Cli::try_parse_from(["chaos", "process", "pause", "--pid", "42"]).unwrap();
        Cli::try_parse_from(["chaos", "schedule", "redis-failover"]).unwrap();
        assert!(Cli::try_parse_from(["chaos", "process", "pause"]).is_err());
    }
}

//! Child runs: one `scenario` process per run, because Goose keeps global state and allows
//! one attack per process. The matrix runs one per cell, the benchmark one per leg; both
//! read the child's `report.json` back.
//!
//! The child binary is `$SCENARIO_EXE` when set (tests point it at the built binary), else
//! this process's own executable.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::stack::StackSpec;

fn exe() -> Result<PathBuf> {
    match std::env::var_os("SCENARIO_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().map_err(|e| Error::io("finding the scenario binary", e)),
    }
}

/// `--stack` as a child reads it.
pub fn stack_arg(spec: &StackSpec) -> String {
    match spec {
        StackSpec::Url(u) => format!("url={u}"),
        other => other.name().to_owned(),
    }
}

/// The parent's options every cell of a matrix inherits: the stack, seed, size, pacing,
/// faults, thresholds. `users`, `seats` and `p99_all_ms` are the matrix's (its defaults
/// apply): a cell is judged by the matrix's p99 limit unless the command line set one, not
/// by its base scenario's (a flash sale's default is tighter than a fault matrix's).
pub fn forwarded_args(cli: &Cli, users: usize, seats: usize, p99_all_ms: f64) -> Vec<String> {
    let mut args = vec![
        "--seed".to_owned(),
        cli.seed.to_string(),
        "-u".into(),
        users.to_string(),
        "--seats".into(),
        seats.to_string(),
        "--stack".into(),
        stack_arg(&cli.stack),
        "--strategy".into(),
        cli.strategy.as_str().into(),
        "--instances".into(),
        cli.instances.to_string(),
    ];
    let mut opt = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            args.extend([flag.to_owned(), v]);
        }
    };
    opt("--rate", cli.rate.map(|r| r.to_string()));
    opt(
        "--db-max-connections",
        cli.db_max_connections.map(|n| n.to_string()),
    );
    // The same faults for every cell: how each one holds up under them is the point.
    opt("--chaos", cli.chaos.clone());
    opt("--max-recovery", cli.max_recovery.map(|m| format!("{m}ms")));
    opt("-t", cli.goose.run_time.clone());
    opt("--prometheus-url", cli.prometheus_url.clone());
    opt(
        "--connections",
        cli.connections.map(|c| c.as_str().to_owned()),
    );
    opt(
        "--app-bin",
        cli.app_bin.as_ref().map(|p| p.display().to_string()),
    );
    if cli.standby {
        args.push("--standby".into());
    }
    for l in &cli.p99 {
        args.extend([
            "--p99".into(),
            format!("{}={}ms", l.transaction, l.limit_ms),
        ]);
    }
    if cli.p99.is_empty() {
        args.extend(["--p99".into(), format!("all={p99_all_ms}ms")]);
    }
    args
}

/// Runs `scenario <args> --out <out> -q` and reads the report it wrote.
pub async fn run(args: &[String], out: &Path) -> Result<reports::Report> {
    let exe = exe()?;
    let mut command = tokio::process::Command::new(&exe);
    // A child gets exactly the options its parent forwards, not the parent's SCENARIO_*.
    for (name, _) in std::env::vars_os() {
        if crate::config::is_option_env(&name) {
            command.env_remove(name);
        }
    }
    let status = command
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("-q")
        // The parent appends the one report of the run to the CI job summary.
        .env_remove(super::report::STEP_SUMMARY_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| Error::io(format!("running {}", exe.display()), e))?;
    let what = out
        .file_name()
        .map_or_else(|| out.display().to_string(), |n| n.to_string_lossy().into());
    let text = std::fs::read_to_string(out.join(reports::JSON_FILE)).map_err(|e| {
        Error::io(
            format!("reading the {what} report (child exit {status})"),
            e,
        )
    })?;
    reports::Report::from_json(&text)
        .map_err(|e| Error::api(format!("parsing the {what} report"), e))
}

//! `scenario`: run a load scenario against the box office, write the report, exit with the
//! verdict (0 pass, 1 run error, 2 usage, 3 threshold missed, 4 invariant broken, 5 failover
//! budget exceeded).

use clap::Parser;

/// mimalloc instead of glibc's malloc: under a flash sale's burst, glibc spent about a third
/// of the CPU in its arena locks, heap growth (`mprotect`) and first-touch page faults.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use scenarios::config::{self, Invocation};
use scenarios::ScenarioName;

fn main() {
    // A run holds a socket per virtual user in flight (three on the local stack): lift the
    // soft limit on open files to the hard one before anything opens them.
    if let Err(e) = scenarios::run::provision::raise_open_files_limit() {
        eprintln!("warning: could not raise the open-files limit: {e}");
    }
    if std::env::args().nth(1).as_deref() == Some(scenarios::stack::SERVE_APP) {
        // The local stack's box-office instances: this binary, serving one instance.
        let code = match tokio::runtime::Runtime::new() {
            Ok(rt) => match rt.block_on(scenarios::stack::serve_app()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            },
            Err(e) => {
                eprintln!("error: starting the async runtime: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    // The offline commands: no runtime, no stack.
    let offline = match std::env::args().nth(1).as_deref() {
        Some("compare") => Some(scenarios::compare::main(
            scenarios::cli::CompareCli::parse_from(std::env::args_os().skip(1)),
        )),
        Some("check") => Some(scenarios::recheck::main(
            scenarios::cli::CheckCli::parse_from(std::env::args_os().skip(1)),
        )),
        _ => None,
    };
    if let Some(result) = offline {
        std::process::exit(match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        });
    }
    // `--replay RUN_DIR`: the recorded command line first, the arguments given now after it.
    let argv = match scenarios::replay::expand(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    // The command line over SCENARIO_* variables over a --config file over the defaults.
    let mut cli = match config::parse_from(argv.clone()) {
        Ok(Invocation::Run(cli)) => *cli,
        Ok(Invocation::PrintConfig(text)) => {
            print!("{text}");
            return;
        }
        Err(e) => e.exit(),
    };
    cli.command = scenarios::replay::recordable(&argv);
    if cli.scenario == ScenarioName::List {
        print!("{}", scenarios::catalog::listing());
        return;
    }
    let quiet = cli.quiet();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(reports::exit_code::RUN_ERROR);
        }
    };
    let code = runtime.block_on(async {
        match scenarios::run(cli).await {
            Ok(outcome) => {
                if quiet {
                    println!(
                        "verdict: {} (exit {}) — {}",
                        reports::exit_code::describe(outcome.exit_code()),
                        outcome.exit_code(),
                        outcome.written.html.display()
                    );
                } else {
                    print!("{}", scenarios::summary_text(&outcome));
                }
                outcome.exit_code()
            }
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    });
    // Goose leaves its user tasks and Ctrl-C handler behind; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}

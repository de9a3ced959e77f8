//! The box office server: parse configuration, start logging, build, serve until Ctrl-C.

use boxoffice::{Application, Config};
use clap::Parser;

/// mimalloc instead of glibc's malloc: under a flash sale's burst, glibc spent about a third
/// of the CPU in its arena locks, heap growth (`mprotect`) and first-touch page faults.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    boxoffice::telemetry::init(config.log_format);
    let strategy = config.strategy;
    let app = Application::build(config).await?;
    let data = app.state().database_description();
    let payments = app.state().payments.base_url().to_owned();
    println!("boxoffice listening on http://{}", app.address());
    println!("  data:     {data}");
    println!("  payments: {payments}");
    println!("  strategy: {strategy}");
    println!("  API docs: http://{}/openapi.json", app.address());
    println!("  buyers:   http://{}/", app.address());
    if let Some(demo) = app.demo() {
        let verb = if demo.created { "seeded" } else { "found" };
        println!("  demo:     {verb} {} rounds", demo.rounds.len());
        for r in &demo.rounds {
            println!(
                "            round {:>3}  {:>5} seats  {}  http://{}/#/rounds/{}",
                r.id,
                r.capacity,
                r.event,
                app.address(),
                r.id
            );
        }
    }
    tracing::info!(address = %app.address(), %data, %strategy, "boxoffice started");
    app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    boxoffice::telemetry::shutdown();
    Ok(())
}

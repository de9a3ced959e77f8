//! The box office's background work as its own process: the outbox relay, the `ledger` and
//! `notifier` Kafka consumers and the reaper, with `/health/*` and `/metrics` on the listen
//! address. It is `boxoffice` with `--role worker` (the role is forced, whatever
//! `BOXOFFICE_ROLE` says), so the API instances can run with `BOXOFFICE_ROLE=api`.

use boxoffice::config::Role;
use boxoffice::{Application, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::parse();
    config.role = Role::Worker;
    boxoffice::telemetry::init(config.log_format);
    let app = Application::build(config).await?;
    let data = app.state().database_description();
    println!(
        "boxoffice worker on http://{} (health, metrics)",
        app.address()
    );
    println!("  data:     {data}");
    tracing::info!(address = %app.address(), %data, "boxoffice worker started");
    app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    boxoffice::telemetry::shutdown();
    Ok(())
}

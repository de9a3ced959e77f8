//! The box office server: parse configuration, start logging, build, serve until Ctrl-C.

use boxoffice::{Application, Config};
use clap::Parser;

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
    tracing::info!(address = %app.address(), %data, %strategy, "boxoffice started");
    app.run_until_stopped(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    boxoffice::telemetry::shutdown();
    Ok(())
}

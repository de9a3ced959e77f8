//! The simulated payment provider as its own process, so chaos can slow it down or kill it.

use boxoffice::payments::{provider, ProviderConfig, ProviderState};
use clap::Parser;

/// A simulated payment provider: captures, refunds, declines, latency, idempotency keys.
#[derive(Debug, Parser)]
#[command(name = "payment-provider", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PAYMENTS_LISTEN", default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Added latency per call, milliseconds.
    #[arg(long, env = "PAYMENTS_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency up to this many milliseconds.
    #[arg(long, env = "PAYMENTS_JITTER_MS", default_value_t = 0)]
    jitter_ms: u64,
    /// Share of charges declined (0.0–1.0).
    #[arg(long, env = "PAYMENTS_DECLINE_RATE", default_value_t = 0.0)]
    decline_rate: f64,
    /// Seed of the random draws.
    #[arg(long, env = "PAYMENTS_SEED", default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    boxoffice::telemetry::init(boxoffice::config::LogFormat::Auto);
    if !(0.0..=1.0).contains(&args.decline_rate) {
        anyhow::bail!("--decline-rate must be between 0 and 1");
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "payment-provider listening on http://{}",
        listener.local_addr()?
    );
    let state = ProviderState::new(ProviderConfig {
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        decline_rate: args.decline_rate,
        seed: args.seed,
    });
    provider::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

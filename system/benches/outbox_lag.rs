//! Benchmark: outbox → Kafka → ledger lag while booking confirmations are written at a steady
//! rate (1,000/s by default) on PostgreSQL, through a real Kafka-protocol broker (`tansu`,
//! memory storage; `BENCH_KAFKA=mock` uses librdkafka's mock cluster instead). Target: p99 lag
//! ≤ 1 s.
//!
//! The writer inserts `booking.confirmed` outbox rows straight through the store (each in its
//! own transaction, as a payment's would be), so the figure is the pipeline's lag — relay
//! poll, produce with acks=all, consume, apply and record — not the cost of the HTTP calls
//! that would precede it. Lag = `processed_events.processed_at − outbox.created_at`.
//!
//! Run: `cargo bench -p boxoffice --bench outbox_lag` (env `BENCH_SECS`, `BENCH_RATE`).

use std::sync::Arc;
use std::time::Duration;

use boxoffice::store::outbox::{self, Event};
use boxoffice::{AppState, Clock, Config, SystemClock};
use sqlx::Row;

/// The allocator the `boxoffice` binary runs with (`system/src/bin/boxoffice.rs`), so that the
/// benchmark measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_or("BENCH_SECS", 10);
    let rate = env_or("BENCH_RATE", 1000);
    let writers = 4u64;
    let url = compose::fresh_postgres_database().await?;
    let broker = if std::env::var("BENCH_KAFKA").as_deref() == Ok("mock") {
        None
    } else {
        Some(compose::LocalKafka::start(compose::KafkaStorage::Memory).await?)
    };
    let mut config = Config::for_tests(url);
    config.db_max_connections = 16;
    config.kafka_brokers = broker.as_ref().map(|b| b.bootstrap());
    config.kafka_prefix = format!("bench{}.", uuid::Uuid::new_v4().simple());
    let (state, _) = AppState::build(config, Arc::new(SystemClock)).await?;
    let relay = boxoffice::kafka::start_relay(&state).await?;
    let ledger = boxoffice::kafka::start_ledger(&state).await?;

    let per_writer = Duration::from_micros(1_000_000 * writers / rate);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_writer);
            let end = tokio::time::Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                let event = Event {
                    event_id: uuid::Uuid::new_v4().to_string(),
                    kind: "booking.confirmed".into(),
                    user_id: 1,
                    round_id: Some((w * 1000 + n % 10) as i64),
                    booking_id: Some((w * 1_000_000 + n) as i64),
                    coupon_id: None,
                    seats: 1,
                    amount: 1000,
                    previous_status: Some("pending_payment".into()),
                    at: SystemClock.now_ms(),
                };
                let mut tx = state.db.begin_write().await.unwrap();
                outbox::record(tx.conn(), &event).await.unwrap();
                tx.commit().await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut written = 0;
    for t in tasks {
        written += t.await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while (outbox::processed_count(&state.db, "ledger").await? as u64) < written {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the ledger did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = sqlx::query(
        "SELECT p.processed_at - o.created_at AS lag FROM processed_events p
         JOIN outbox o ON o.event_id = p.event_id WHERE p.consumer = 'ledger' ORDER BY 1",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let lags: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get::<i64, _>("lag"))
        .collect::<Result<_, _>>()?;
    let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
    println!(
        "broker: {}; {written} confirmations in {secs} s ({:.0}/s) by {writers} writers",
        if broker.is_some() {
            "tansu (memory)"
        } else {
            "mock cluster"
        },
        written as f64 / secs as f64
    );
    println!(
        "outbox → ledger lag: p50 {} ms, p99 {} ms, max {} ms (target p99 ≤ 1000 ms)",
        pct(0.50),
        pct(0.99),
        lags.last().copied().unwrap_or_default()
    );
    relay.stop().await;
    ledger.stop().await;
    Ok(())
}

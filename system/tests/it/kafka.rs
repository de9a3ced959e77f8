//! Outbox → Kafka → ledger, on librdkafka's in-process mock cluster and on a real
//! Kafka-protocol broker (`tansu`, started by `compose`), with the ledger consumer killed
//! mid-stream and the broker restarted: the ledger's totals end equal to the database's and
//! no event is applied twice.
//!
//! Nothing is skipped: without `tansu` the broker test fails and says how to install it.

use crate::support;

use std::time::Duration;

use crate::support::{Backend, TestApp};
use boxoffice::store::outbox;
use serde_json::{json, Value};

async fn app(backend: Backend, brokers: Option<String>) -> TestApp {
    TestApp::with_config(backend, |c| {
        c.kafka_brokers = brokers;
        c.kafka_prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
        c.kafka_partitions = 3;
        c.token_ttl_secs = 86_400;
    })
    .await
}

/// Books `seats` best-available seats and pays; returns the booking id.
async fn confirmed_booking(app: &TestApp, token: &str, round: i64, seats: i64) -> i64 {
    let (_, booking) = app.pending_booking(token, round, seats).await;
    let amount = app
        .get(&format!("/v1/bookings/{booking}"), Some(token))
        .await
        .expect(200)
        .body["amount"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/v1/bookings/{booking}/pay"),
        Some(token),
        json!({"amount": amount}),
    )
    .await
    .expect(200);
    booking
}

/// Booking number `n`: 1 to 3 seats, paid; every fourth one cancelled after payment.
async fn step(app: &TestApp, token: &str, round: i64, n: usize) {
    let b = confirmed_booking(app, token, round, 1 + (n % 3) as i64).await;
    if matches!(n % 4, 0) {
        app.post(&format!("/v1/bookings/{b}/cancel"), Some(token), json!({}))
            .await
            .expect(200);
    }
}

async fn sales(app: &TestApp, round: i64) -> Value {
    app.get(&format!("/v1/admin/rounds/{round}/sales"), Some(&app.admin))
        .await
        .expect(200)
        .body
}

/// Polls until the ledger equals the database and the outbox is drained.
async fn wait_until_the_ledger_caught_up(app: &TestApp, round: i64, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = sales(app, round).await;
        let backlog = outbox::backlog(&app.state.db).await.unwrap();
        if s["database"] == s["ledger"] && backlog == 0 {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the ledger did not catch up within {within:?}: {s} (outbox backlog {backlog})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn booking_events(app: &TestApp) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE topic = 'booking.events'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_matches_the_database_through_the_in_process_mock_cluster() {
    let app = app(Backend::Sqlite, None).await;
    let (_, token) = app.user("hana").await;
    let (_, round, _) = app.round(2, 10).await;
    let pipeline = app.start_kafka().await;
    for i in 0..6 {
        let b = confirmed_booking(&app, &token, round, 1 + i % 2).await;
        if i % 3 == 0 {
            app.post(&format!("/v1/bookings/{b}/cancel"), Some(&token), json!({}))
                .await
                .expect(200);
        }
    }
    app.pending_booking(&token, round, 1).await;
    let s = wait_until_the_ledger_caught_up(&app, round, Duration::from_secs(60)).await;
    assert_eq!(s["database"]["confirmed_bookings"], 4, "{s}");
    assert_eq!(
        outbox::processed_count(&app.state.db, "ledger")
            .await
            .unwrap(),
        booking_events(&app).await,
        "every booking event applied exactly once"
    );
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_to_ledger_is_exactly_once_in_effect_through_a_consumer_crash_and_a_broker_restart()
{
    let broker = compose::LocalKafka::start(compose::KafkaStorage::Sqlite)
        .await
        .unwrap_or_else(|e| panic!("Kafka broker for tests: {e:#}"));
    let app = app(Backend::Postgres, Some(broker.bootstrap())).await;
    let users = app.many_users("ledger", 4).await;
    let (_, round, _) = app.round(5, 20).await;
    let relay = boxoffice::kafka::start_relay(&app.state).await.unwrap();
    let ledger = boxoffice::kafka::start_ledger(&app.state).await.unwrap();
    let applied = |app: &TestApp| {
        app.state
            .metrics
            .events_consumed
            .with_label_values(&["ledger", "applied"])
            .get()
    };
    let mut n = 0;
    // Phase 1: bookings flow while the ledger runs; kill it once it has applied some.
    for _ in 0..10 {
        n += 1;
        step(&app, &users[n % users.len()].1, round, n).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while applied(&app) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger applied nothing; broker log: {}",
            broker.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ledger.kill().await;

    // Phase 2: more bookings while the ledger is dead.
    for _ in 0..10 {
        n += 1;
        step(&app, &users[n % users.len()].1, round, n).await;
    }
    let ledger = boxoffice::kafka::start_ledger(&app.state).await.unwrap();

    // Phase 3: the broker restarts while bookings keep coming.
    for i in 0..10 {
        if i == 3 {
            broker.restart().await.unwrap();
        }
        n += 1;
        step(&app, &users[n % users.len()].1, round, n).await;
    }

    let s = wait_until_the_ledger_caught_up(&app, round, Duration::from_secs(120)).await;
    let duplicates = app
        .state
        .metrics
        .events_consumed
        .with_label_values(&["ledger", "duplicate"])
        .get();
    eprintln!("ledger caught up: {s}; redelivered duplicates skipped: {duplicates}");
    assert!(s["database"]["confirmed_bookings"].as_i64().unwrap() > 0);
    assert_eq!(
        outbox::processed_count(&app.state.db, "ledger")
            .await
            .unwrap(),
        booking_events(&app).await,
        "every booking event applied exactly once"
    );
    ledger.stop().await;
    relay.stop().await;
}

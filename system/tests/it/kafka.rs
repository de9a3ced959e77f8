//! Outbox → Kafka → ledger, on librdkafka's in-process mock cluster and on a real
//! Kafka-protocol broker (`tansu`, started by `compose`), with the ledger consumer killed
//! mid-stream and the broker restarted: the ledger's totals end equal to the database's and
//! no event is applied twice.
//!
//! A broker may also acknowledge an event that the ledger's group then never receives (tansu
//! does when a group resumes inside a record batch): the ledger's reconciliation applies such
//! events from the outbox, without ever skipping an id whose transaction commits late.
//!
//! Nothing is skipped: without `tansu` the broker test fails and says how to install it.

use std::time::Duration;

use crate::support::{Backend, TestApp};
use boxoffice::store::outbox;
use boxoffice::Clock as _;
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
    app.pay(token, booking).await;
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

/// The one `i64` column `n` of the one row `sql` returns (with `$1` bound to `bind`).
async fn scalar(app: &TestApp, sql: &str, bind: Option<i64>) -> i64 {
    use sqlx::Row;
    let mut query = sqlx::query(sql);
    if let Some(value) = bind {
        query = query.bind(value);
    }
    query
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn booking_events(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) AS n FROM outbox WHERE topic = 'booking.events'";
    scalar(app, sql, None).await
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

/// A `booking.confirmed` event of `round` (one seat, 100), for the ledger alone.
fn confirmed_event(round: i64, booking: i64, at: i64) -> outbox::Event {
    outbox::Event {
        event_id: uuid::Uuid::new_v4().to_string(),
        kind: "booking.confirmed".into(),
        user_id: 1,
        round_id: Some(round),
        booking_id: Some(booking),
        coupon_id: None,
        seats: 1,
        amount: 100,
        previous_status: Some("pending_payment".into()),
        at,
    }
}

/// Writes `event` to the outbox on `tx` already marked sent at `at`: what the relay leaves
/// behind once the broker has acknowledged it.
async fn record_acknowledged(tx: &mut boxoffice::store::WriteTx, event: &outbox::Event, at: i64) {
    outbox::record(tx.conn(), event).await.unwrap();
    sqlx::query("UPDATE outbox SET sent_at = $1 WHERE event_id = $2")
        .bind(at)
        .bind(&event.event_id)
        .execute(tx.conn())
        .await
        .unwrap();
}

fn reconciled(app: &TestApp) -> u64 {
    app.state
        .metrics
        .events_consumed
        .with_label_values(&["ledger", "reconciled"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_never_skips_an_outbox_id_whose_transaction_commits_after_a_later_one() {
    use boxoffice::reconcile::Reconciler;
    let app = app(Backend::Postgres, None).await;
    let after = app.state.config.ledger_reconcile_after_ms;
    assert!(after > 0, "reconciliation is on by default");
    let round = 900_001;
    let t0 = app.clock.now_ms();
    let (late_event, early_event) = (confirmed_event(round, 1, t0), confirmed_event(round, 2, t0));
    // `late` takes its outbox id first and commits last; both rows are acknowledged by the
    // broker and never delivered (no consumer runs here).
    let mut late = app.state.db.begin_write().await.unwrap();
    record_acknowledged(&mut late, &late_event, t0).await;
    let mut early = app.state.db.begin_write().await.unwrap();
    record_acknowledged(&mut early, &early_event, t0).await;
    early.commit().await.unwrap();

    let mut reconciler = Reconciler::new();
    // Not yet due: the consumer has `after` ms to deliver them.
    let sweep = reconciler.run_once(&app.state, after).await.unwrap();
    assert_eq!(sweep.applied, 0, "{sweep:?}");
    app.clock.advance_ms(after as i64 + 1);
    // Due now, but `late`'s id is not visible yet: whatever the reconciliation does meanwhile,
    // it must not step past that id (an id-ordered reader that did would never see it).
    for _ in 0..3 {
        reconciler.run_once(&app.state, after).await.unwrap();
    }
    late.commit().await.unwrap();
    // Other tests' transactions on the shared server may hold the stable bound back a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let sweep = reconciler.run_once(&app.state, after).await.unwrap();
        let (bookings, seats, revenue) = outbox::ledger_sales(&app.state.db, round).await.unwrap();
        if bookings == 2 {
            assert_eq!((seats, revenue), (2, 200));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger has {bookings} of 2 acknowledged events: {sweep:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reconciled(&app), 2);
    // Once, not twice.
    let sweep = reconciler.run_once(&app.state, after).await.unwrap();
    assert_eq!(sweep.applied, 0, "{sweep:?}");
    let mut fresh = Reconciler::new();
    for _ in 0..3 {
        let sweep = fresh.run_once(&app.state, after).await.unwrap();
        assert_eq!(sweep.applied, 0, "{sweep:?}");
    }
    assert_eq!(
        outbox::ledger_sales(&app.state.db, round).await.unwrap(),
        (2, 2, 200)
    );
}

/// Booking events past outbox id `after` that the ledger has not applied.
async fn unapplied_booking_events_after(app: &TestApp, after: i64) -> i64 {
    let sql = "SELECT COUNT(*) AS n FROM outbox o
         WHERE o.id > $1 AND o.topic = 'booking.events' AND NOT EXISTS (
             SELECT 1 FROM processed_events p WHERE p.consumer = 'ledger' AND p.event_id = o.event_id)";
    scalar(app, sql, Some(after)).await
}

/// The number of unapplied booking events once it has not changed for 3 s (at most 60 s).
async fn settled_unapplied_booking_events(app: &TestApp) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = unapplied_booking_events_after(app, 0).await;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = unapplied_booking_events_after(app, 0).await;
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= Duration::from_secs(3) {
            return now as u64;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the number of undelivered events never settled (last {last})"
        );
    }
}

async fn last_outbox_id(app: &TestApp) -> i64 {
    scalar(app, "SELECT COALESCE(MAX(id), 0) AS n FROM outbox", None).await
}

/// What happened once in the app-pause drill (ledger 274 of 275). The relay publishes the rows
/// of one outbox poll together, so they land in one Kafka batch; the `ledger` consumer commits
/// after every message, so a committed offset often falls inside a batch; and when the
/// partition changes hands (a paused or killed instance, a rebalance), the next member resumes
/// at that offset. tansu then answers with the batches that *start* at or after it, never the
/// one that contains it: the rest of that batch is acknowledged, marked sent, and never
/// delivered to the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_a_broker_skips_when_a_partition_resumes_inside_a_batch_still_reach_the_ledger() {
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::Message as _;
    let broker = compose::LocalKafka::start(compose::KafkaStorage::Memory)
        .await
        .unwrap_or_else(|e| panic!("Kafka broker for tests: {e:#}"));
    let app = app(Backend::Postgres, Some(broker.bootstrap())).await;
    let users = app.many_users("handover", 3).await;
    let (_, round, _) = app.round(4, 10).await;
    // Bookings made while the relay is down: its first poll publishes them all at once.
    for n in 1..=4 {
        step(&app, &users[n % users.len()].1, round, n).await;
    }
    let relay = boxoffice::kafka::start_relay(&app.state).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while outbox::backlog(&app.state.db).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay published nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The member that owned the partition applies the first events and commits after each,
    // as the ledger does, then goes away (paused past its session, killed, rebalanced).
    let prefix = app.state.config.kafka_prefix.clone();
    {
        let member: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("group.id", format!("{prefix}ledger"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        member
            .subscribe(&[&format!("{prefix}booking.events")])
            .unwrap();
        for _ in 0..3 {
            let msg = tokio::time::timeout(Duration::from_secs(30), member.recv())
                .await
                .expect("the first member receives events")
                .unwrap();
            let event: outbox::Event = serde_json::from_slice(msg.payload().unwrap()).unwrap();
            outbox::apply_to_ledger(&app.state.db, &event, app.clock.now_ms())
                .await
                .unwrap();
            member.commit_message(&msg, CommitMode::Sync).unwrap();
        }
    }

    // The next member resumes at the committed offset; later events flow as usual.
    let ledger = boxoffice::kafka::start_ledger(&app.state).await.unwrap();
    let before_later = last_outbox_id(&app).await;
    step(&app, &users[0].1, round, 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while unapplied_booking_events_after(&app, before_later).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger never received the later events; broker log: {}",
            broker.log_path().display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Events of earlier batches may still be on their way to the new member (a CI run once
    // counted 6 undelivered, then Kafka delivered 2 of them): count the skipped ones only once
    // the number has held still for 3 s.
    let skipped = settled_unapplied_booking_events(&app).await;
    eprintln!("events the broker never delivered to the group: {skipped}");
    assert_eq!(
        reconciled(&app),
        0,
        "nothing is due before the grace period"
    );

    // Once they are overdue, the ledger applies them from the outbox.
    app.clock
        .advance_ms(app.state.config.ledger_reconcile_after_ms as i64 + 1);
    let s = wait_until_the_ledger_caught_up(&app, round, Duration::from_secs(30)).await;
    assert!(
        s["database"]["confirmed_bookings"].as_i64().unwrap() > 0,
        "{s}"
    );
    assert_eq!(reconciled(&app), skipped, "{s}");
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

/// The ledger applies what the consumer fetched in one transaction: an event twice in a batch,
/// or already applied before, counts once; a cancellation of a confirmed booking takes its
/// sale back; a second delivery of the whole batch changes nothing.
async fn a_batch_applies_each_event_once(backend: Backend) {
    let app = app(backend, None).await;
    let (round, other) = (700_001, 700_002);
    let t0 = app.clock.now_ms();
    let early = confirmed_event(round, 1, t0);
    assert!(outbox::apply_to_ledger(&app.state.db, &early, t0)
        .await
        .unwrap());
    let second = confirmed_event(round, 2, t0);
    let mut cancelled = confirmed_event(round, 2, t0);
    cancelled.kind = "booking.cancelled".into();
    cancelled.previous_status = Some("confirmed".into());
    let mut created = confirmed_event(other, 3, t0);
    created.kind = "booking.created".into();
    let batch = vec![
        early.clone(),
        second.clone(),
        confirmed_event(round, 3, t0),
        second.clone(),
        cancelled,
        confirmed_event(other, 4, t0),
        created,
    ];
    let fresh = outbox::apply_batch_to_ledger(&app.state.db, &batch, t0)
        .await
        .unwrap();
    assert_eq!(
        fresh, 5,
        "7 events, one applied before and one twice in the batch"
    );
    let totals = (
        outbox::ledger_sales(&app.state.db, round).await.unwrap(),
        outbox::ledger_sales(&app.state.db, other).await.unwrap(),
    );
    // round: bookings 1, 2 and 3 confirmed, 2 cancelled; other: 4 confirmed, 3 only created.
    assert_eq!(totals, ((2, 2, 200), (1, 1, 100)));
    assert_eq!(
        outbox::apply_batch_to_ledger(&app.state.db, &batch, t0)
            .await
            .unwrap(),
        0,
        "a redelivered batch is a duplicate"
    );
    assert_eq!(
        (
            outbox::ledger_sales(&app.state.db, round).await.unwrap(),
            outbox::ledger_sales(&app.state.db, other).await.unwrap(),
        ),
        totals
    );
    assert_eq!(
        outbox::processed_count(&app.state.db, "ledger")
            .await
            .unwrap(),
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_batch_applies_each_event_once_on_postgres() {
    a_batch_applies_each_event_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_batch_applies_each_event_once_on_sqlite() {
    a_batch_applies_each_event_once(Backend::Sqlite).await;
}

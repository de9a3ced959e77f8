//! The box office against a real Redis (a `redis-server` child from `compose`, one per test
//! binary, a fresh key prefix per test) and a real PostgreSQL: the availability cache is never
//! stale after a seat change, what a lock holder stalled past its TTL does under `redis-lock`
//! and under `fenced`, notifications crossing instances (through a real Kafka-protocol broker,
//! `tansu`), and surviving a Redis restart.
//!
//! Nothing here is skipped: without `redis-server` (or PostgreSQL) the tests fail and say
//! what to install.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{Backend, TestApp};
use boxoffice::reaper;
use boxoffice::Strategy;
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// Availability as served (possibly from the cache) equals the database's counts.
async fn assert_fresh(app: &TestApp, round: i64, step: &str) {
    // Twice: the first read may fill the cache, the second is served from it.
    for _ in 0..2 {
        let served = app.availability(round).await;
        let truth = app.audit(round).await;
        assert_eq!(
            (
                served["available"].as_i64(),
                served["held"].as_i64(),
                served["sold"].as_i64()
            ),
            (Some(truth.available), Some(truth.held), Some(truth.sold)),
            "stale availability after {step}: served {served}, database {truth:?}"
        );
    }
}

fn cache_count(app: &TestApp, cache: &str, result: &str) -> u64 {
    app.state
        .metrics
        .cache_requests
        .with_label_values(&[cache, result])
        .get()
}

async fn availability_is_never_stale_after_a_seat_change(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.hold_ttl_secs = 60;
        c.payment_ttl_secs = 120;
        c.token_ttl_secs = 86_400;
        // Long enough that only invalidation, never expiry, can make a read fresh.
        c.cache_ttl_ms = 600_000;
    })
    .await;
    let (_, token) = app.user("cleo").await;
    let (_, round, seats) = app.round(1, 10).await;
    assert_fresh(&app, round, "nothing").await;
    assert!(
        cache_count(&app, "availability", "hit") >= 1,
        "no cache hit"
    );

    let hold = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"seat_ids": [seats[0], seats[1]]}),
        )
        .await
        .expect(201)
        .id();
    assert_fresh(&app, round, "a hold").await;
    app.call(
        axum::http::Method::DELETE,
        &format!("/v1/holds/{hold}"),
        Some(&token),
        None,
    )
    .await
    .expect(204);
    assert_fresh(&app, round, "a release").await;

    let (_, booking) = app.pending_booking(&token, round, 3).await;
    assert_fresh(&app, round, "a booking").await;
    app.pay(&token, booking).await;
    assert_fresh(&app, round, "a payment").await;
    assert_eq!(app.availability(round).await["sold"], 3);
    app.post(
        &format!("/v1/bookings/{booking}/cancel"),
        Some(&token),
        json!({}),
    )
    .await
    .expect(200);
    assert_fresh(&app, round, "a cancellation").await;

    app.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(&token),
        json!({"quantity": 4}),
    )
    .await
    .expect(201);
    app.pending_booking(&token, round, 2).await;
    assert_fresh(&app, round, "a hold and a booking").await;
    app.clock.advance_ms(60_000);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (1, 0));
    assert_fresh(&app, round, "a hold's expiry").await;
    app.clock.advance_ms(60_000);
    assert_eq!(reaper::run_once(&app.state).await.unwrap(), (0, 1));
    assert_fresh(&app, round, "a booking's expiry").await;
    assert_eq!(app.availability(round).await["available"], 10);
}

#[tokio::test]
async fn availability_is_never_stale_after_a_seat_change_with_redis() {
    availability_is_never_stale_after_a_seat_change(Backend::PostgresRedis).await;
}

#[tokio::test]
async fn availability_is_never_stale_after_a_seat_change_with_the_in_process_cache() {
    availability_is_never_stale_after_a_seat_change(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_hold_through_one_instance_invalidates_the_availability_another_instance_cached() {
    let a = TestApp::with_config(Backend::PostgresRedis, |c| c.cache_ttl_ms = 600_000).await;
    let b = a.another_instance(|_| {}).await;
    let (_, token) = a.user("dora").await;
    let (_, round, _) = a.round(1, 5).await;
    assert_eq!(b.availability(round).await["available"], 5);
    assert_eq!(b.availability(round).await["available"], 5);
    assert!(cache_count(&b, "availability", "hit") >= 1);
    a.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(&token),
        json!({"quantity": 2}),
    )
    .await
    .expect(201);
    // B keeps what it read in memory (client-side caching); Redis pushes the invalidation of
    // A's change to B's connection as A deletes the entry, so B drops its copy within the
    // time that push takes to arrive, not the entry's TTL (10 minutes here).
    let t0 = std::time::Instant::now();
    let mut fresh = false;
    while t0.elapsed() < Duration::from_secs(1) {
        if b.availability(round).await["available"] == 3 {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        fresh,
        "instance B still served a stale count after {:?}",
        t0.elapsed()
    );
}

/// Two instances on one database and one Redis; A's lock holders stall 1.5 s, five times the
/// lock's TTL. A holds a seat (and stalls inside the lock); B asks for the same seat, gets the
/// lock once A's lease expires, and holds it. Then A wakes up and writes.
async fn a_holder_stalled_past_the_lock_ttl(strategy: Strategy) -> (Arc<TestApp>, i64, u16, u16) {
    let a = Arc::new(
        TestApp::with_config(Backend::PostgresRedis, |c| {
            c.strategy = strategy;
            c.lock_ttl_ms = 300;
            c.fault_lock_pause_ms = 1500;
        })
        .await,
    );
    let b = a.another_instance(|c| c.fault_lock_pause_ms = 0).await;
    let (_, round, seats) = a.round(1, 4).await;
    let users = a.many_users("stall", 2).await;
    let seat = seats[0];
    let stalled = {
        let a = a.clone();
        let token = users[0].1.clone();
        tokio::spawn(async move {
            a.post(
                &format!("/v1/rounds/{round}/holds"),
                Some(&token),
                json!({"seat_ids": [seat]}),
            )
            .await
        })
    };
    // B must ask only once A holds the lock.
    while a.state.metrics.locks.with_label_values(&["acquired"]).get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = b
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&users[1].1),
            json!({"seat_ids": [seat]}),
        )
        .await;
    assert_eq!(second.status.as_u16(), 201, "B: {:?}", second.body);
    let first = stalled.await.unwrap();
    (a, round, first.status.as_u16(), second.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lock_sells_a_seat_twice_when_a_holder_stalls_past_the_lock_ttl() {
    let (a, round, first, second) = a_holder_stalled_past_the_lock_ttl(Strategy::RedisLock).await;
    assert_eq!(
        (first, second),
        (201, 201),
        "both holders were told they won"
    );
    let audit = a.audit(round).await;
    assert_eq!(audit.oversold, 1, "one seat, two live holds: {audit:?}");
    assert_eq!(
        a.state.metrics.locks.with_label_values(&["lost"]).get(),
        1,
        "the stalled holder found its lock gone when releasing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_never_sells_a_seat_twice_when_a_holder_stalls_past_the_lock_ttl() {
    let (a, round, first, second) = a_holder_stalled_past_the_lock_ttl(Strategy::Fenced).await;
    assert_eq!(second, 201);
    assert_eq!(
        first, 409,
        "the stalled holder's late write must be refused"
    );
    let audit = a.audit(round).await;
    assert_eq!(audit.oversold, 0, "{audit:?}");
    assert_eq!(audit.held, 1);
    assert!(audit.is_consistent(), "{audit:?}");
}

/// One instance whose every holder stalls past the TTL: the second holder reads while the
/// first is stalled and writes after it. Writing `WHERE fence < token` alone would let both
/// through; fenced reads stamp their token, so the first holder's write is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_refuses_an_older_holder_even_when_the_newer_one_writes_last() {
    let app = Arc::new(
        TestApp::with_config(Backend::PostgresRedis, |c| {
            c.strategy = Strategy::Fenced;
            c.lock_ttl_ms = 200;
            c.fault_lock_pause_ms = 800;
        })
        .await,
    );
    let (_, round, seats) = app.round(1, 2).await;
    let users = app.many_users("late", 2).await;
    let mut tasks = Vec::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let app = app.clone();
        let token = token.clone();
        let seat = seats[0];
        tasks.push(tokio::spawn(async move {
            // The second starts once the first holds the lock.
            while app
                .state
                .metrics
                .locks
                .with_label_values(&["acquired"])
                .get()
                < i as u64
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            app.post(
                &format!("/v1/rounds/{round}/holds"),
                Some(&token),
                json!({"seat_ids": [seat]}),
            )
            .await
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        codes.push((r.status.as_u16(), r.code().to_owned()));
    }
    assert_eq!(
        codes,
        vec![(409, "lock_expired".to_owned()), (201, String::new())]
    );
    let audit = app.audit(round).await;
    assert_eq!(audit.oversold, 0, "{audit:?}");
}

/// A coupon with a quota of one, claimed by two users while A's holder stalls.
async fn a_coupon_claim_stalled_past_the_lock_ttl(strategy: Strategy) -> (u16, u16, i64) {
    let a = Arc::new(
        TestApp::with_config(Backend::PostgresRedis, |c| {
            c.strategy = strategy;
            c.lock_ttl_ms = 300;
            c.fault_lock_pause_ms = 1500;
        })
        .await,
    );
    let b = a.another_instance(|c| c.fault_lock_pause_ms = 0).await;
    a.post(
        "/v1/coupons",
        Some(&a.admin),
        json!({"code": "LAST", "quota": 1, "discount_percent": 50}),
    )
    .await
    .expect(201);
    let users = a.many_users("coupon-stall", 2).await;
    let stalled = {
        let a = a.clone();
        let token = users[0].1.clone();
        tokio::spawn(async move {
            a.post("/v1/coupons/LAST/claims", Some(&token), Value::Null)
                .await
        })
    };
    while a.state.metrics.locks.with_label_values(&["acquired"]).get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = b
        .post("/v1/coupons/LAST/claims", Some(&users[1].1), Value::Null)
        .await;
    let first = stalled.await.unwrap();
    let audit = boxoffice::store::audit::coupon(&a.state.db, "LAST")
        .await
        .unwrap()
        .unwrap();
    (first.status.as_u16(), second.status.as_u16(), audit.claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lock_claims_a_coupon_past_its_quota_when_a_holder_stalls() {
    let (first, second, claims) =
        a_coupon_claim_stalled_past_the_lock_ttl(Strategy::RedisLock).await;
    assert_eq!((first, second), (201, 201));
    assert_eq!(claims, 2, "two claims of a coupon with a quota of one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_never_claims_a_coupon_past_its_quota_when_a_holder_stalls() {
    let (first, second, claims) = a_coupon_claim_stalled_past_the_lock_ttl(Strategy::Fenced).await;
    assert_eq!((first, second), (409, 201));
    assert_eq!(claims, 1);
}

/// Reads SSE frames from a streaming body until one carries an event, or times out.
async fn next_event(body: &mut axum::body::Body, timeout: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = String::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .ok()??
            .ok()?;
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
            if buf.contains("\n\n") && buf.contains("data:") {
                return Some(buf);
            }
        }
    }
}

async fn open_stream(app: &TestApp, token: &str) -> axum::body::Body {
    use tower::ServiceExt;
    let req = axum::http::Request::get("/v1/me/notifications")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    res.into_body()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_confirmed_through_instance_a_is_pushed_to_its_owner_connected_to_instance_b() {
    let broker = compose::LocalKafka::start(compose::KafkaStorage::Memory)
        .await
        .unwrap_or_else(|e| panic!("Kafka broker for tests: {e:#}"));
    let a = TestApp::with_config(Backend::PostgresRedis, |c| {
        c.kafka_brokers = Some(broker.bootstrap());
        c.kafka_prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
        c.kafka_partitions = 2;
    })
    .await;
    let b = a.another_instance(|_| {}).await;
    // Both instances relay and consume, as in production: whichever notifier gets the
    // event publishes it to Redis, and B's stream hears it.
    let pipelines = [a.start_kafka().await, b.start_kafka().await];
    let (owner, token) = a.user("erin").await;
    let (_, other) = a.user("fred").await;
    let (_, round, _) = a.round(1, 4).await;
    let mut mine = open_stream(&b, &token).await;
    let mut theirs = open_stream(&b, &other).await;
    let (_, booking) = a.pending_booking(&token, round, 2).await;
    let amount = a
        .get(&format!("/v1/bookings/{booking}"), Some(&token))
        .await
        .body["amount"]
        .as_i64()
        .unwrap();
    a.post(
        &format!("/v1/bookings/{booking}/pay"),
        Some(&token),
        json!({"amount": amount}),
    )
    .await
    .expect(200);
    let event = next_event(&mut mine, Duration::from_secs(30))
        .await
        .expect("no notification reached instance B");
    assert!(event.contains("event: booking.confirmed"), "{event}");
    let data: Value = serde_json::from_str(
        event
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(data["booking_id"], booking);
    assert_eq!(data["user_id"], owner);
    assert!(
        next_event(&mut theirs, Duration::from_millis(300))
            .await
            .is_none(),
        "another user's stream got the notification"
    );
    for p in pipelines {
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_keeps_serving_through_a_redis_restart() {
    let redis = compose::LocalRedis::start()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests: {e:#}"));
    let app = TestApp::with_config(Backend::PostgresRedis, |c| {
        c.redis_url = Some(redis.url());
        c.strategy = Strategy::Fenced;
    })
    .await;
    let (_, token) = app.user("gus").await;
    let (_, round, _) = app.round(1, 6).await;
    let hold = |q: i64| {
        let app = &app;
        let token = token.clone();
        async move {
            app.post(
                &format!("/v1/rounds/{round}/holds"),
                Some(&token),
                json!({"quantity": q}),
            )
            .await
        }
    };
    hold(1).await.expect(201);
    redis.kill().await.unwrap();
    // Reads fall back to the database; so do `fenced` holds (the database arbitrates).
    assert_eq!(app.availability(round).await["held"], 1);
    hold(1).await.expect(201);
    assert!(
        app.state
            .metrics
            .locks
            .with_label_values(&["database"])
            .get()
            >= 1
    );
    redis.restart().await.unwrap();
    // The connection manager reconnects; the fencing counter restarts above old tokens.
    let mut last = None;
    for _ in 0..50 {
        let r = hold(1).await;
        if r.status.as_u16() == 201 {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last.expect("no hold succeeded after Redis came back");
    assert_eq!(app.availability(round).await["held"], 3);
    assert!(app.audit(round).await.is_consistent());
}

/// The longest a `fenced` hold may take while Redis hangs: one bounded lock command, then
/// the database. Before the database arbitrated, holds waited out the lock service's 3 s
/// grace and then answered 503.
const FENCED_WITHOUT_REDIS: Duration = Duration::from_millis(1000);

/// Two `fenced` instances on one database and their own Redis, which is then frozen (SIGSTOP:
/// connections stay open, nothing answers).
async fn two_fenced_instances_on_a_redis(
    redis: &compose::LocalRedis,
    pause_a_ms: u64,
) -> (Arc<TestApp>, Arc<TestApp>) {
    let a = Arc::new(
        TestApp::with_config(Backend::PostgresRedis, |c| {
            c.redis_url = Some(redis.url());
            c.strategy = Strategy::Fenced;
            c.fault_lock_pause_ms = pause_a_ms;
        })
        .await,
    );
    let b = Arc::new(a.another_instance(|c| c.fault_lock_pause_ms = 0).await);
    (a, b)
}

fn lock_count(app: &TestApp, result: &str) -> u64 {
    app.state.metrics.locks.with_label_values(&[result]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_holds_keep_answering_promptly_and_never_sell_a_seat_twice_while_redis_hangs() {
    use std::time::Instant;
    let redis = compose::LocalRedis::start()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests: {e:#}"));
    let (a, b) = two_fenced_instances_on_a_redis(&redis, 0).await;
    let (_, round, seats) = a.round(1, 8).await;
    let users = a.many_users("hung", 16).await;
    // Through Redis while it answers.
    a.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(&users[0].1),
        json!({"seat_ids": [seats[7]]}),
    )
    .await
    .expect(201);
    assert_eq!(lock_count(&a, "acquired"), 1);
    redis.pause().unwrap();
    // 15 buyers through both instances at once: four chosen seats (3–6) wanted by three
    // buyers each, and three best-available holds (which take the lowest seats, 0–2).
    let gate = Arc::new(tokio::sync::Barrier::new(15));
    let mut tasks = Vec::new();
    for (i, (_, token)) in users.iter().enumerate().skip(1) {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (gate, token) = (gate.clone(), token.clone());
        let body = if i <= 12 {
            json!({"seat_ids": [seats[3 + i % 4]]})
        } else {
            json!({"quantity": 1})
        };
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let t0 = Instant::now();
            let r = app
                .post(&format!("/v1/rounds/{round}/holds"), Some(&token), body)
                .await;
            (r.status.as_u16(), r.code().to_owned(), t0.elapsed())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    redis.resume().unwrap();
    for (status, code, took) in &answers {
        assert!(
            *status == 201 || (*status == 409 && code == "seats_unavailable"),
            "a hold answered {status} {code} while Redis hung: {answers:?}"
        );
        assert!(
            *took < FENCED_WITHOUT_REDIS,
            "a hold took {took:?} while Redis hung: {answers:?}"
        );
    }
    // Each chosen seat once (3 buyers each), and the 3 best-available holds: 7 seats.
    let won = answers.iter().filter(|(s, _, _)| *s == 201).count();
    assert_eq!(won, 7, "{answers:?}");
    let audit = a.audit(round).await;
    assert_eq!(audit.oversold, 0, "{audit:?}");
    assert_eq!(audit.held, 8, "{audit:?}");
    assert!(audit.is_consistent(), "{audit:?}");
    assert!(lock_count(&a, "database") >= 1 && lock_count(&b, "database") >= 1);
    // Redis answers again: once it has been skipped for its while, holds take the lock.
    let (_, round2, _) = a.round(1, 20).await;
    tokio::time::sleep(boxoffice::cache::REDIS_SKIP_FOR).await;
    let before = lock_count(&b, "acquired");
    let mut back = false;
    for _ in 0..20 {
        b.post(
            &format!("/v1/rounds/{round2}/holds"),
            Some(&users[1].1),
            json!({"quantity": 1}),
        )
        .await
        .expect(201);
        if lock_count(&b, "acquired") > before {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "no hold went through the Redis lock after Redis answered"
    );
}

/// A holds the Redis lock, has stamped its seat with its token and stalls before writing;
/// Redis then hangs, so B lets the database decide and takes the seat; A's late write must be
/// refused by the fence the database moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_refuses_a_lock_holder_whose_seat_the_database_gave_away_while_redis_hung() {
    use sqlx::Row;
    use std::time::Instant;
    let redis = compose::LocalRedis::start()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests: {e:#}"));
    let (a, b) = two_fenced_instances_on_a_redis(&redis, 1500).await;
    let (_, round, seats) = a.round(1, 2).await;
    let users = a.many_users("gave-away", 2).await;
    let seat = seats[0];
    let stalled = {
        let a = a.clone();
        let token = users[0].1.clone();
        tokio::spawn(async move {
            a.post(
                &format!("/v1/rounds/{round}/holds"),
                Some(&token),
                json!({"seat_ids": [seat]}),
            )
            .await
        })
    };
    // A has read the seat under its lock once the seat carries a fence.
    let mut stamped = false;
    for _ in 0..200 {
        let fence: i64 = sqlx::query("SELECT fence FROM seats WHERE id = $1")
            .bind(seat)
            .fetch_one(&a.state.db.pool)
            .await
            .unwrap()
            .try_get("fence")
            .unwrap();
        if fence != 0 {
            stamped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stamped, "A never read its seat");
    assert_eq!(lock_count(&a, "acquired"), 1);
    redis.pause().unwrap();
    let t0 = Instant::now();
    let second = b
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&users[1].1),
            json!({"seat_ids": [seat]}),
        )
        .await;
    let took = t0.elapsed();
    assert_eq!(second.status.as_u16(), 201, "B: {:?}", second.body);
    assert!(took < FENCED_WITHOUT_REDIS, "B waited {took:?}");
    assert_eq!(lock_count(&b, "database"), 1);
    let first = stalled.await.unwrap();
    redis.resume().unwrap();
    assert_eq!(
        (first.status.as_u16(), first.code()),
        (409, "lock_expired"),
        "the lock holder's late write must be refused"
    );
    let audit = a.audit(round).await;
    assert_eq!(audit.oversold, 0, "{audit:?}");
    assert_eq!(audit.held, 1, "{audit:?}");
    assert!(audit.is_consistent(), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_a_cache_read_one_short_timeout_then_nothing_until_it_answers() {
    use boxoffice::cache::{REDIS_OP_TIMEOUT, REDIS_SKIP_FOR};
    use std::time::Instant;
    let redis = compose::LocalRedis::start()
        .await
        .unwrap_or_else(|e| panic!("Redis for tests: {e:#}"));
    let app = TestApp::with_config(Backend::PostgresRedis, |c| {
        c.redis_url = Some(redis.url());
    })
    .await;
    let (_, round, _) = app.round(1, 6).await;
    let (_, unread, _) = app.round(1, 6).await;
    let before = app.availability(round).await;
    app.availability(round).await;
    let hits = cache_count(&app, "availability", "hit");
    assert!(hits >= 1);
    // SIGSTOP: the connection stays open and nothing answers (a pause, or a partition).
    redis.pause().unwrap();
    // An entry this instance read is kept in its memory (client-side caching) until Redis
    // says it changed, or its TTL runs out: no wait.
    let t0 = Instant::now();
    assert_eq!(app.availability(round).await, before);
    let kept = t0.elapsed();
    assert!(
        kept < Duration::from_millis(100),
        "a read of an entry kept in memory waited {kept:?}"
    );
    assert_eq!(cache_count(&app, "availability", "hit"), hits + 1);
    // An entry it never read asks Redis, which does not answer.
    let t0 = Instant::now();
    let unread_before = app.availability(unread).await;
    assert_eq!(unread_before["available"], 6, "read from the database");
    let first = t0.elapsed();
    assert!(
        first >= REDIS_OP_TIMEOUT && first < REDIS_OP_TIMEOUT + Duration::from_millis(500),
        "the first read waited {first:?}"
    );
    let t1 = Instant::now();
    for _ in 0..10 {
        assert_eq!(app.availability(round).await, before);
    }
    let each = t1.elapsed() / 10;
    assert!(
        each < Duration::from_millis(100),
        "later reads waited {each:?} each"
    );
    assert!(cache_count(&app, "availability", "error") >= 11);
    redis.resume().unwrap();
    tokio::time::sleep(REDIS_SKIP_FOR + Duration::from_millis(200)).await;
    // Back in use: a read is a hit again (the entry survived the pause).
    let mut hit_again = false;
    for _ in 0..20 {
        app.availability(round).await;
        if cache_count(&app, "availability", "hit") > hits + 1 {
            hit_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hit_again,
        "the cache was not used again after Redis answered"
    );
}

//! `GET /v1/rounds/{id}/seats/stream`, the buyer's page's live seat map: a snapshot first,
//! then every hold, release, expiry and sale of the round; across instances through Redis
//! pub/sub (real Redis and PostgreSQL), with the propagation delay measured.

use std::time::{Duration, Instant};

use crate::support::{Backend, TestApp};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// Reads Server-Sent Events from a response body, one whole event at a time.
struct Events {
    body: axum::body::Body,
    buf: String,
}

impl Events {
    async fn open(app: &TestApp, round: i64) -> Events {
        let req = axum::http::Request::get(format!("/v1/rounds/{round}/seats/stream"))
            .header("last-event-id", "0-0")
            .body(axum::body::Body::empty())
            .unwrap();
        let res = app.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            body: res.into_body(),
            buf: String::new(),
        }
    }

    /// The next event (name, id, data), or `None` after `timeout`.
    async fn next(&mut self, timeout: Duration) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    raw.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_owned())
                };
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    let id = field("id:").unwrap_or_default();
                    return Some((event, id, serde_json::from_str(&data).unwrap()));
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    async fn expect(&mut self, name: &str, timeout: Duration) -> Value {
        let (event, id, data) = self
            .next(timeout)
            .await
            .unwrap_or_else(|| panic!("no {name} event within {timeout:?}"));
        assert_eq!(event, name, "{data}");
        assert!(!id.is_empty(), "every event has an id");
        data
    }
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_stream_starts_with_a_snapshot_then_tells_every_hold_release_expiry_and_sale() {
    let app = TestApp::sqlite().await;
    let pipeline = app.start_kafka().await;
    let (_, token) = app.user("viewer").await;
    let (_, round, seats) = app.round(2, 4).await;
    let mut stream = Events::open(&app, round).await;
    let snap = stream.expect("snapshot", Duration::from_secs(5)).await;
    assert_eq!(snap["round_id"], round);
    assert_eq!((ids(&snap["held"]), ids(&snap["sold"])), (vec![], vec![]));

    // A hold of chosen seats, then its release.
    let hold = app
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"seat_ids": [seats[3], seats[1]]}),
        )
        .await
        .expect(201)
        .id();
    let held = stream.expect("held", Duration::from_secs(5)).await;
    assert_eq!(held["round_id"], round);
    assert_eq!(held["state"], "held");
    assert_eq!(ids(&held["seat_ids"]), vec![seats[1], seats[3]]);
    app.call(
        axum::http::Method::DELETE,
        &format!("/v1/holds/{hold}"),
        Some(&token),
        None,
    )
    .await
    .expect(204);
    let released = stream.expect("released", Duration::from_secs(5)).await;
    assert_eq!(ids(&released["seat_ids"]), vec![seats[1], seats[3]]);

    // A hold nobody books expires: the reaper tells the stream.
    app.post(
        &format!("/v1/rounds/{round}/holds"),
        Some(&token),
        json!({"seat_ids": [seats[5]]}),
    )
    .await
    .expect(201);
    stream.expect("held", Duration::from_secs(5)).await;
    app.clock
        .advance_ms(app.state.config.hold_ttl_secs as i64 * 1000 + 1);
    boxoffice::reaper::run_once(&app.state).await.unwrap();
    let expired = stream.expect("released", Duration::from_secs(5)).await;
    assert_eq!(ids(&expired["seat_ids"]), vec![seats[5]]);

    // A sale: through the outbox, Kafka (the mock cluster) and the notifier.
    let (_, booking) = app.pending_booking(&token, round, 2).await;
    let held = stream.expect("held", Duration::from_secs(5)).await;
    app.pay(&token, booking).await;
    let sold = stream.expect("sold", Duration::from_secs(10)).await;
    assert_eq!(sold["seat_ids"], held["seat_ids"]);

    // A viewer who (re)connects now starts from a snapshot with the sale in it.
    let mut again = Events::open(&app, round).await;
    let snap = again.expect("snapshot", Duration::from_secs(5)).await;
    assert_eq!(ids(&snap["sold"]), ids(&sold["seat_ids"]));
    assert_eq!(ids(&snap["held"]), Vec::<i64>::new());

    // Another round's changes are not on this stream.
    let (_, other, _) = app.round(1, 2).await;
    app.post(
        &format!("/v1/rounds/{other}/holds"),
        Some(&token),
        json!({"quantity": 1}),
    )
    .await
    .expect(201);
    assert!(stream.next(Duration::from_millis(300)).await.is_none());
    let m = &app.state.metrics;
    assert_eq!(m.seat_streams.get(), 2);
    assert_eq!(m.seat_changes.with_label_values(&["sold"]).get(), 1);
    assert_eq!(m.seat_changes.with_label_values(&["released"]).get(), 2);
    assert_eq!(
        m.seat_stream_events.with_label_values(&["snapshot"]).get(),
        2
    );
    drop((stream, again));
    assert_eq!(m.seat_streams.get(), 0);
    pipeline.stop().await;
}

#[tokio::test]
async fn a_seat_stream_of_an_unknown_round_or_a_bad_id_is_a_json_error() {
    let app = TestApp::sqlite().await;
    app.get("/v1/rounds/999/seats/stream", None)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/rounds/abc/seats/stream", None)
        .await
        .expect_error(400, "invalid_path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_taken_through_instance_a_shows_on_instance_bs_stream_within_a_second() {
    let a = TestApp::with_config(Backend::PostgresRedis, |c| {
        c.kafka_prefix = format!("t{}.", uuid::Uuid::new_v4().simple());
        c.kafka_partitions = 2;
    })
    .await;
    let b = a.another_instance(|_| {}).await;
    // Each instance relays and consumes (each on its own in-process mock broker): whichever
    // relays the sale, its notifier publishes to Redis and B's stream hears it.
    let pipelines = [a.start_kafka().await, b.start_kafka().await];
    let (_, token) = a.user("spectated").await;
    let (_, round, seats) = a.round(2, 10).await;
    let mut on_b = Events::open(&b, round).await;
    on_b.expect("snapshot", Duration::from_secs(5)).await;
    // Warm-up: a first sale reaches B once the consumer groups have their partitions (a group
    // join takes seconds); what follows measures the steady state.
    let (_, first) = a.pending_booking(&token, round, 1).await;
    on_b.expect("held", Duration::from_secs(1)).await;
    pay(&a, &token, first).await;
    on_b.expect("sold", Duration::from_secs(30)).await;

    let mut held_delays = Vec::new();
    for seat in &seats[1..6] {
        let t = Instant::now();
        a.post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&token),
            json!({"seat_ids": [seat]}),
        )
        .await
        .expect(201);
        let held = on_b.expect("held", Duration::from_secs(1)).await;
        held_delays.push(t.elapsed());
        assert_eq!(ids(&held["seat_ids"]), vec![*seat]);
    }
    let (_, booking) = a.pending_booking(&token, round, 1).await;
    on_b.expect("held", Duration::from_secs(1)).await;
    let t = Instant::now();
    pay(&a, &token, booking).await;
    let sold = on_b.expect("sold", Duration::from_secs(2)).await;
    let sold_delay = t.elapsed();
    assert_eq!(ids(&sold["seat_ids"]), vec![seats[6]]);
    held_delays.sort();
    eprintln!(
        "seat stream across instances (A → Redis → B): held in {:?} (median of {}, max {:?}); sold in {sold_delay:?} (pay, outbox, Kafka, notifier, Redis)",
        held_delays[held_delays.len() / 2],
        held_delays.len(),
        held_delays.last().unwrap()
    );
    assert!(held_delays.iter().all(|d| *d < Duration::from_secs(1)));
    assert!(
        sold_delay < Duration::from_secs(1),
        "sold after {sold_delay:?}"
    );
    assert_eq!(b.state.metrics.seat_streams.get(), 1);
    assert_eq!(
        a.state
            .metrics
            .seat_changes
            .with_label_values(&["held"])
            .get(),
        7
    );
    for p in pipelines {
        p.stop().await;
    }
}

async fn pay(app: &TestApp, token: &str, booking: i64) {
    let amount = app
        .get(&format!("/v1/bookings/{booking}"), Some(token))
        .await
        .body["amount"]
        .clone();
    app.post(
        &format!("/v1/bookings/{booking}/pay"),
        Some(token),
        json!({"amount": amount}),
    )
    .await
    .expect(200);
}

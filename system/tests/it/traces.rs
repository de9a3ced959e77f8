//! Traces checked on the wire: one trace id from a buyer's HTTP requests through the outbox
//! row and the Kafka message headers to the consumers' spans.
//!
//! The real `boxoffice` binary runs against a real Kafka-protocol broker (tansu) and exports
//! its spans over OTLP/HTTP to a receiver in this test that decodes the protobuf with
//! `opentelemetry-proto`. The buyer's client sends one W3C `traceparent` with the hold, the
//! booking and the payment (as a browser's or gateway's trace would), so every span those
//! requests cause belongs to its trace. The test then reads what each hop carries: the
//! spans received, the outbox rows in the database, and the messages' headers on the broker.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use serde_json::json;

use crate::logs::{a_round, otlp_receiver, BoxOffice, ADMIN};

/// OTLP span kinds.
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace id of a W3C `traceparent` (`00-<trace>-<span>-<flags>`).
fn trace_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_book_and_pay_carry_one_trace_id_through_the_outbox_and_kafka_to_the_consumers() {
    let broker = compose::LocalKafka::start(compose::KafkaStorage::Memory)
        .await
        .expect("the tansu broker (cargo install tansu, see .ci/run)");
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = tempfile::tempdir().unwrap();
    let (otlp, received) = otlp_receiver().await;
    let mut boxoffice = BoxOffice::start(
        dir.path(),
        &otlp,
        &[
            ("KAFKA_BROKERS", broker.bootstrap().as_str()),
            ("BOXOFFICE_KAFKA_PREFIX", prefix.as_str()),
            ("BOXOFFICE_KAFKA_PARTITIONS", "1"),
        ],
    )
    .await;

    let setup = boxoffice.client(None);
    let admin = setup.token(ADMIN.0, ADMIN.1).await;
    let round = a_round(&setup, &admin).await;
    let (s, b) = setup
        .post(
            "/v1/users",
            None,
            json!({"email": "traced@example.com", "password": "password-123", "name": "t"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let buyer = setup.token("traced@example.com", "password-123").await;

    let trace = hex(&rand::random::<[u8; 16]>());
    let parent = hex(&rand::random::<[u8; 8]>());
    let c = boxoffice.client(Some(format!("00-{trace}-{parent}-01")));
    let (s, hold) = c
        .post(
            &format!("/v1/rounds/{round}/holds"),
            Some(&buyer),
            json!({"quantity": 2}),
        )
        .await;
    assert_eq!(s, 201, "{hold}");
    let (s, booking) = c
        .post("/v1/bookings", Some(&buyer), json!({"hold_id": hold["id"]}))
        .await;
    assert_eq!(s, 201, "{booking}");
    let (s, paid) = c
        .post(
            &format!("/v1/bookings/{}/pay", booking["id"]),
            Some(&buyer),
            json!({"amount": booking["amount"]}),
        )
        .await;
    assert_eq!(s, 200, "{paid}");

    // The consumers have applied the trace's events once their spans have been exported; a
    // graceful stop then flushes whatever is still batched.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let consumed = received
            .spans()
            .iter()
            .filter(|s| s.trace_id == trace && s.kind == CONSUMER)
            .count();
        if consumed >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no consumer span of trace {trace} in 60 s: {:#?}",
            received.spans()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    boxoffice.stop().await;
    let spans = received.spans();
    let of_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace).collect();

    // 1. The HTTP server spans of the three requests.
    let server: Vec<&str> = of_trace
        .iter()
        .filter(|s| s.kind == SERVER)
        .map(|s| s.name.as_str())
        .collect();
    for route in ["holds", "bookings", "pay"] {
        assert!(
            server.iter().any(|n| n.contains(route)),
            "no server span for {route} in trace {trace}: {server:?}"
        );
    }
    // 2. The outbox rows the booking and the payment wrote carry the request's trace.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.path().join("data/boxoffice.db").display()
    ))
    .await
    .expect("the embedded database");
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    let traced_rows: Vec<&String> = payloads
        .iter()
        .filter(|p| {
            boxoffice::store::outbox::stored_trace(p)
                .get("traceparent")
                .and_then(|tp| trace_of(tp))
                == Some(trace.as_str())
        })
        .collect();
    assert!(
        traced_rows.len() >= 2,
        "outbox rows of trace {trace}: {traced_rows:?} of {payloads:#?}"
    );
    // 3. The relay's producer spans, children of the rows' trace.
    assert!(
        of_trace
            .iter()
            .any(|s| s.kind == PRODUCER && s.name == "outbox.publish"),
        "no outbox.publish span in trace {trace}: {of_trace:#?}"
    );
    // 4. The messages on the broker carry the trace in their headers.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("trace-test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topic = format!("{prefix}{}", boxoffice::store::outbox::BOOKING_TOPIC);
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut headers_of_trace = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while headers_of_trace < traced_rows.len() && Instant::now() < deadline {
        let Some(Ok(msg)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let carried = msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "traceparent")
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        if carried.as_deref().and_then(trace_of) == Some(trace.as_str()) {
            headers_of_trace += 1;
        }
    }
    assert_eq!(
        headers_of_trace,
        traced_rows.len(),
        "messages on {topic} whose traceparent header is trace {trace}"
    );
    // 5. The consumers' spans.
    let consumers: Vec<&str> = of_trace
        .iter()
        .filter(|s| s.kind == CONSUMER)
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        consumers.len() >= 2,
        "consumer spans of trace {trace}: {consumers:?}"
    );
}

//! Kafka: the outbox relay and the `ledger` and `notifier` consumers.
//!
//! ```text
//!  state change ─┐ same transaction
//!  outbox row  ◄─┘
//!      │ relay (idempotent producer, acks=all; sent_at set after the broker's ack)
//!      ▼
//!  <prefix>booking.events (key = round id) ──► group <prefix>ledger   ──► ledger_sales (+ processed_events, one transaction per fetched batch; offsets committed after)
//!  <prefix>coupon.events  (key = coupon id)└─► group <prefix>notifier ──► crate::notify (Redis pub/sub) ──► SSE streams
//!                                                                          (owners' notifications, rounds' seat streams)
//!
//!  outbox rows acknowledged but not received in time ──► the ledger worker's reconciliation ──► ledger_sales (same apply)
//! ```
//!
//! Several instances may run the pipeline against one database and broker: on PostgreSQL
//! their relays take disjoint outbox batches (`FOR UPDATE SKIP LOCKED`), and their consumers
//! share the groups, so each event is applied by one of them. The notifier records the ids of
//! the events it pushed too, so a redelivered event is not pushed twice. Both consumers take
//! what the client has already fetched as one batch: one look-up and one record per batch
//! instead of per event, and one offset commit per partition.
//!
//! Delivery is at least once end to end (a row published twice, a message redelivered after a
//! consumer dies before committing); the ledger turns that into exactly once *in effect* by
//! recording each event id in the same transaction as its effect. The broker's acknowledgement
//! is not taken as proof of delivery: a broker can acknowledge a message that a consumer group
//! then never receives (tansu skips the rest of a batch when a group resumes inside it; see
//! [`crate::reconcile`]), so the ledger worker also applies, from the outbox, booking events
//! acknowledged more than `--ledger-reconcile-after-ms` ago that it has not seen.
//!
//! With `--kafka-brokers` the topics are created at start when missing (some brokers, tansu
//! among them, do not create topics on demand); without, librdkafka's in-process
//! `MockCluster` stands in for the broker.
//!
//! Each part is a [`Worker`] that tests can stop (as a crash would: no goodbye) and start
//! again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use tokio::sync::{watch, OnceCell};
use tracing::Instrument as _;

use crate::metrics::Metrics;
use crate::notify::Notification;
use crate::state::AppState;
use crate::store::outbox::{self, Event, BOOKING_TOPIC, COUPON_TOPIC};
use crate::store::WriteTx;

/// Where the brokers are, resolved once per instance (starting the mock cluster if needed).
#[derive(Debug, Clone, Default)]
pub struct KafkaSettings {
    bootstrap: Arc<OnceCell<String>>,
    /// Keeps the mock cluster's thread alive while any clone lives.
    mock: Arc<OnceCell<MockGuard>>,
}

/// Dropping the last clone lets the mock cluster's thread end.
#[derive(Debug)]
struct MockGuard {
    _alive: std::sync::mpsc::Sender<()>,
}

impl KafkaSettings {
    /// The bootstrap servers: `--kafka-brokers`, or a mock cluster started on first call.
    /// Creates the topics when they are missing.
    pub async fn bootstrap(&self, state: &AppState) -> anyhow::Result<String> {
        self.bootstrap
            .get_or_try_init(|| async {
                let config = &state.config;
                match &config.kafka_brokers {
                    Some(brokers) => {
                        create_topics(
                            brokers,
                            &topics(&config.kafka_prefix),
                            config.kafka_partitions,
                        )
                        .await?;
                        Ok(brokers.clone())
                    }
                    None => self.start_mock(&topics(&config.kafka_prefix), config.kafka_partitions),
                }
            })
            .await
            .cloned()
    }

    fn start_mock(&self, topics: &[String], partitions: i32) -> anyhow::Result<String> {
        let (tx, rx) = std::sync::mpsc::channel::<anyhow::Result<String>>();
        let (alive, until_dropped) = std::sync::mpsc::channel::<()>();
        let topics = topics.to_vec();
        // The mock cluster lives on its own thread (it need not be Send), until every
        // KafkaSettings clone is gone.
        std::thread::Builder::new()
            .name("kafka-mock".into())
            .spawn(move || {
                let mock = match rdkafka::mocking::MockCluster::new(1) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("mock cluster: {e}")));
                        return;
                    }
                };
                for t in &topics {
                    if let Err(e) = mock.create_topic(t, partitions, 1) {
                        let _ = tx.send(Err(anyhow::anyhow!("mock topic {t}: {e}")));
                        return;
                    }
                }
                let _ = tx.send(Ok(mock.bootstrap_servers()));
                let _ = until_dropped.recv();
            })
            .context("Failed to start the mock Kafka cluster's thread")?;
        let bootstrap = rx
            .recv()
            .context("the mock Kafka cluster's thread died")??;
        let _ = self.mock.set(MockGuard { _alive: alive });
        tracing::info!(
            bootstrap,
            "no KAFKA_BROKERS: using librdkafka's mock cluster"
        );
        Ok(bootstrap)
    }
}

/// The real topic names: `[<prefix>booking.events, <prefix>coupon.events]`.
pub fn topics(prefix: &str) -> Vec<String> {
    vec![
        format!("{prefix}{BOOKING_TOPIC}"),
        format!("{prefix}{COUPON_TOPIC}"),
    ]
}

/// How often a failing relay checks that the broker still has the topics.
const TOPIC_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Shortest cycle of a relay whose batch was not full: it waits out the rest before claiming
/// again, so that a busy outbox goes out in fewer, larger batches. Each batch costs four
/// PostgreSQL round trips (`BEGIN`, claim, mark, `COMMIT`) and a produce request per
/// partition whatever its size; at 400 buyers/s the relays cycled ~120 times a second with
/// ~7 rows each. A full batch (500 rows) goes on at once. The relay lag grows by this much
/// at most.
const RELAY_MIN_CYCLE: Duration = Duration::from_millis(25);
/// Rows a relay claims at once.
const RELAY_BATCH: i64 = 500;

/// Creates `names` with `partitions` partitions each; existing topics are left alone. Returns
/// how many it created.
pub async fn create_topics(
    brokers: &str,
    names: &[String],
    partitions: i32,
) -> anyhow::Result<usize> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("Failed to create the Kafka admin client")?;
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .with_context(|| format!("Failed to create topics on {brokers}"))?;
    let mut created = 0;
    for r in results {
        match r {
            Ok(name) => {
                created += 1;
                tracing::info!(topic = name, "created topic");
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("Failed to create topic {name}: {code}"),
        }
    }
    Ok(created)
}

/// A running background task that can be stopped.
#[derive(Debug)]
pub struct Worker {
    name: &'static str,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Worker {
    fn spawn<F, Fut>(name: &'static str, f: F) -> Worker
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Worker {
            name,
            stop,
            handle: tokio::spawn(f(rx)),
        }
    }

    /// Asks the task to finish what it is doing and stop, and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            tracing::warn!(worker = self.name, error = %e, "worker ended badly");
        }
    }

    /// Kills the task wherever it is (a crash: an effect may be applied and its offset not
    /// committed).
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// The relay, the ledger and the notifier of one instance.
#[derive(Debug)]
pub struct Pipeline {
    /// Outbox → Kafka.
    pub relay: Worker,
    /// `booking.events` → `ledger_sales`.
    pub ledger: Worker,
    /// `booking.events` → notifications.
    pub notifier: Worker,
}

impl Pipeline {
    /// Starts all three (creating topics or the mock cluster first).
    pub async fn start(state: &AppState) -> anyhow::Result<Pipeline> {
        Ok(Pipeline {
            relay: start_relay(state).await?,
            ledger: start_ledger(state).await?,
            notifier: start_notifier(state).await?,
        })
    }

    /// Stops all three.
    pub async fn stop(self) {
        self.relay.stop().await;
        self.ledger.stop().await;
        self.notifier.stop().await;
    }
}

/// Starts the outbox relay.
pub async fn start_relay(state: &AppState) -> anyhow::Result<Worker> {
    let bootstrap = state.kafka.bootstrap(state).await?;
    let producer = relay_producer(&bootstrap)?;
    let state = state.clone();
    Ok(Worker::spawn("relay", move |stop| {
        relay(state, bootstrap, producer, stop)
    }))
}

/// The relay's idempotent producer.
fn relay_producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "10000")
        .create()
        .context("Failed to create the Kafka producer")
}

async fn relay(
    state: AppState,
    bootstrap: String,
    mut producer: FutureProducer,
    mut stop: watch::Receiver<bool>,
) {
    let prefix = state.config.kafka_prefix.clone();
    let mut topics_checked = std::time::Instant::now();
    loop {
        // An idempotent producer whose messages timed out (the broker unreachable for longer
        // than message.timeout.ms) may be fenced or otherwise fatally failed: every later send
        // fails at once. Only a new producer (a new producer id) can publish again; the rows
        // are still in the outbox, so nothing is lost.
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::warn!(?code, %reason, "relay: the producer failed fatally; creating a new one");
            match relay_producer(&bootstrap) {
                Ok(p) => producer = p,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: could not create a new producer");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        let cycle = tokio::time::Instant::now();
        let (mut tx, rows) = claim_batch(&state).await;
        if rows.is_empty() {
            if let Some(t) = tx.take() {
                let _ = t.rollback().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        // Enqueued in row order (join_all polls in order), so per-partition order holds.
        let sends = rows.iter().map(|r| publish(&state, &producer, &prefix, r));
        let results = futures::future::join_all(sends).await;
        let mut sent = Vec::with_capacity(results.len());
        let mut failed = 0u64;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(id) => sent.push(id),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = &first_error {
            // One line per batch, not per row: an outage fails whole batches.
            tracing::warn!(error = %e, failed, "relay: publish failed; will retry");
        }
        if first_error.as_ref().is_some_and(refuses_producer)
            && producer.client().fatal_error().is_none()
        {
            // The broker refuses this producer's identity even though librdkafka did not
            // flag it fatal (seen with tansu after timeouts): start over with a new one.
            tracing::warn!("relay: the broker fenced the producer; creating a new one");
            if let Ok(p) = relay_producer(&bootstrap) {
                producer = p;
            }
        }
        if first_error.is_some() && topics_checked.elapsed() >= TOPIC_CHECK_EVERY {
            // A broker that lost its data (restarted without durable storage, or replaced)
            // comes back without the topics, and a producer waits for a topic that nobody
            // creates until every message times out. The topics are recreated (existing ones
            // are left alone) and a new producer starts with fresh metadata; what the old
            // broker acknowledged and lost, the ledger's reconciliation applies from the outbox.
            topics_checked = std::time::Instant::now();
            let created = tokio::time::timeout(
                TOPIC_CHECK_EVERY,
                create_topics(&bootstrap, &topics(&prefix), state.config.kafka_partitions),
            )
            .await;
            match created {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::warn!(
                        topics = n,
                        "relay: the broker had lost its topics; recreated them"
                    );
                    if let Ok(p) = relay_producer(&bootstrap) {
                        producer = p;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "relay: could not check the topics")
                }
                Err(_) => tracing::warn!("relay: checking the topics timed out"),
            }
        }
        let now = state.clock.now_ms();
        let marked = match tx.take() {
            Some(mut t) => match outbox::mark_sent_on(t.conn(), &sent, now).await {
                Ok(()) => t.commit().await.map_err(Into::into),
                Err(e) => Err(e),
            },
            None => outbox::mark_sent(&state.db, &sent, now).await,
        };
        if let Err(e) = marked {
            // Published but not marked: they will be published again, which consumers absorb.
            tracing::warn!(error = %e.message, "relay could not mark rows sent");
        }
        state.metrics.outbox_published.inc_by(sent.len() as u64);
        state.metrics.outbox_publish_failures.inc_by(failed);
        let pause = if failed > 0 {
            Some(Duration::from_millis(500))
        } else if (rows.len() as i64) < RELAY_BATCH {
            Some(RELAY_MIN_CYCLE.saturating_sub(cycle.elapsed()))
        } else {
            None
        };
        if let Some(pause) = pause.filter(|p| !p.is_zero()) {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Reads the next batch of unpublished outbox rows ([`RELAY_BATCH`] at most; none when the
/// read fails).
/// PostgreSQL: the batch stays row-locked (SKIP LOCKED) in the returned transaction until it
/// is marked sent, so several instances' relays never publish the same rows at once. SQLite
/// (one instance) must not hold its only write lock while publishing: no transaction.
async fn claim_batch(state: &AppState) -> (Option<WriteTx>, Vec<outbox::Pending>) {
    let mut tx = None;
    let rows = match state.db.backend {
        crate::store::Backend::Postgres => match state.db.begin_write().await {
            Ok(mut t) => {
                let rows =
                    outbox::unsent_on(t.conn(), RELAY_BATCH, " FOR UPDATE SKIP LOCKED").await;
                tx = Some(t);
                rows
            }
            Err(e) => Err(e.into()),
        },
        crate::store::Backend::Sqlite => outbox::unsent(&state.db, RELAY_BATCH).await,
    };
    let rows = rows.unwrap_or_else(|e| {
        tracing::warn!(error = %e.message, "relay could not read the outbox");
        Vec::new()
    });
    (tx, rows)
}

/// Publishes one outbox row and waits for the broker's acknowledgement (10 s at most),
/// counting the produce duration and, when acknowledged, the relay lag. The row's id on
/// success.
fn publish<'a>(
    state: &'a AppState,
    producer: &'a FutureProducer,
    prefix: &str,
    r: &'a outbox::Pending,
) -> impl std::future::Future<Output = Result<i64, rdkafka::error::KafkaError>> + 'a {
    let topic = format!("{prefix}{}", r.topic);
    let metrics = &state.metrics;
    let clock = &state.clock;
    // One span per row, child of the request that wrote it (its trace context rides
    // in the payload), whose own context rides in the message headers.
    let span = tracing::info_span!(
        "outbox.publish",
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.destination.name = %topic,
    );
    let headers = if crate::telemetry::tracing_enabled() {
        crate::telemetry::adopt_stored_parent(&span, &outbox::stored_trace(&r.payload));
        crate::telemetry::inject_kafka_span(&span, OwnedHeaders::new())
    } else {
        OwnedHeaders::new()
    };
    async move {
        let began = std::time::Instant::now();
        let record = FutureRecord::to(&topic)
            .key(&r.key)
            .payload(&r.payload)
            .headers(headers);
        let sent = producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await;
        metrics
            .kafka_produce
            .with_label_values(&[r.topic.as_str()])
            .observe(began.elapsed().as_secs_f64());
        if sent.is_ok() {
            let lag_ms = (clock.now_ms() - r.created_at).max(0);
            metrics.outbox_relay_lag.observe(lag_ms as f64 / 1000.0);
        }
        sent.map(|_| r.id).map_err(|(e, _)| e)
    }
    .instrument(span)
}

/// Whether a publish error means the broker refuses this producer's identity.
fn refuses_producer(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e,
        rdkafka::error::KafkaError::MessageProduction(
            rdkafka::types::RDKafkaErrorCode::ProducerFenced
                | rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch
                | rdkafka::types::RDKafkaErrorCode::UnknownProducerId
                | rdkafka::types::RDKafkaErrorCode::OutOfOrderSequenceNumber
        )
    )
}

/// A consumer's librdkafka context: turns the statistics it emits every second into the
/// consumer-lag gauge (high watermark − position, summed over assigned partitions) and the
/// Kafka up gauge (some broker connection is `UP`).
struct LagContext {
    metrics: Metrics,
    consumer: &'static str,
}

impl ClientContext for LagContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        let lag: i64 = stats
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.metrics
            .consumer_lag
            .with_label_values(&[self.consumer])
            .set(lag);
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.metrics.dependency("kafka", up);
    }
}

impl ConsumerContext for LagContext {}

type LagConsumer = StreamConsumer<LagContext>;

fn consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    context: LagContext,
) -> anyhow::Result<LagConsumer> {
    let consumer: LagConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        // librdkafka lets a fetch wait up to 500 ms for data by default, and the broker
        // (tansu) holds it that long: half a second of lag for nothing at low rates.
        .set("fetch.wait.max.ms", "20")
        // A broker that lost its topics gets them back from the relay; a subscriber learns of
        // them at its next metadata refresh (5 minutes by default).
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("statistics.interval.ms", "1000")
        .create_with_context(context)
        .with_context(|| format!("Failed to create Kafka consumer {group}"))?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("Failed to subscribe {group} to {topic}"))?;
    Ok(consumer)
}

/// Starts the `ledger` consumer.
pub async fn start_ledger(state: &AppState) -> anyhow::Result<Worker> {
    let bootstrap = state.kafka.bootstrap(state).await?;
    let prefix = &state.config.kafka_prefix;
    let c = consumer(
        &bootstrap,
        &format!("{prefix}ledger"),
        &format!("{prefix}{BOOKING_TOPIC}"),
        LagContext {
            metrics: state.metrics.clone(),
            consumer: "ledger",
        },
    )?;
    let state = state.clone();
    let reconcile_after_ms = state.config.ledger_reconcile_after_ms;
    Ok(Worker::spawn("ledger", move |stop| async move {
        // The consumer is the fast way; the reconciliation catches what the broker
        // acknowledged and did not deliver in time. Both stop (or die) with the worker.
        let reconcile = crate::reconcile::run(state.clone(), reconcile_after_ms, stop.clone());
        let consume = consume_batches(state, c, stop, "ledger", |state, events, now| async move {
            outbox::apply_batch_to_ledger(&state.db, &events, now).await
        });
        tokio::join!(consume, reconcile);
    }))
}

/// Starts the `notifier` consumer.
pub async fn start_notifier(state: &AppState) -> anyhow::Result<Worker> {
    let bootstrap = state.kafka.bootstrap(state).await?;
    let prefix = &state.config.kafka_prefix;
    let c = consumer(
        &bootstrap,
        &format!("{prefix}notifier"),
        &format!("{prefix}{BOOKING_TOPIC}"),
        LagContext {
            metrics: state.metrics.clone(),
            consumer: "notifier",
        },
    )?;
    let state = state.clone();
    Ok(Worker::spawn("notifier", move |stop| {
        consume_batches(
            state,
            c,
            stop,
            "notifier",
            |state, events, now| async move { notify_batch(&state, &events, now).await },
        )
    }))
}

/// Pushes a batch of booking events to their owners' streams and their rounds' seat streams,
/// each once: a confirmation, cancellation or expiry not recorded in `processed_events` is
/// published, then every published one recorded, in one statement. (A redelivered event is
/// not pushed twice, unless a crash fell between the publish and the record.) Other events
/// have no effect here and are neither looked up nor recorded. The bookings' seats come back
/// in one read. Returns how many events were fresh.
async fn notify_batch(state: &AppState, events: &[Event], now: i64) -> crate::error::Result<usize> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let acting: Vec<&Event> = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "booking.confirmed" | "booking.cancelled" | "booking.expired"
            )
        })
        .filter(|e| seen.insert(e.event_id.as_str()))
        .collect();
    let idle = events.len() - acting.len();
    let ids: Vec<&str> = acting.iter().map(|e| e.event_id.as_str()).collect();
    let done = outbox::processed_among(&state.db, "notifier", &ids).await?;
    let fresh: Vec<&Event> = acting
        .into_iter()
        .filter(|e| !done.contains(&e.event_id))
        .collect();
    let booking_ids: Vec<i64> = fresh.iter().filter_map(|e| e.booking_id).collect();
    let bookings = crate::store::bookings::get_many(&state.db, &booking_ids).await?;
    for event in &fresh {
        state
            .notifier
            .publish(Notification {
                kind: event.kind.clone(),
                user_id: event.user_id,
                booking_id: event.booking_id.unwrap_or_default(),
                round_id: event.round_id.unwrap_or_default(),
                at: event.at,
            })
            .await;
        publish_seats(state, event, &bookings);
    }
    let fresh_ids: Vec<&str> = fresh.iter().map(|e| e.event_id.as_str()).collect();
    outbox::record_processed_many(&state.db, "notifier", &fresh_ids, now).await?;
    Ok(idle + fresh.len())
}

/// The seats of a confirmed (`sold`), cancelled or expired (`released`) booking (found in
/// `bookings`), to the seat streams of its round.
fn publish_seats(
    state: &AppState,
    event: &Event,
    bookings: &std::collections::HashMap<i64, crate::store::bookings::Booking>,
) {
    use crate::notify::SeatState;
    let to = match event.kind.as_str() {
        "booking.confirmed" => SeatState::Sold,
        "booking.cancelled" | "booking.expired" => SeatState::Released,
        _ => return,
    };
    if let Some(b) = event.booking_id.and_then(|id| bookings.get(&id)) {
        state.publish_seats(b.round_id, to, b.seat_ids.clone());
    }
}

/// Most events a consumer applies at once.
const CONSUMER_BATCH: usize = 256;

/// A consumer's loop (the ledger's and the notifier's): receives an event, takes every further
/// event already fetched (up to [`CONSUMER_BATCH`]), applies them with `apply` (retrying until
/// it works or the worker stops; it returns how many were fresh, the rest being duplicates),
/// then commits the last offset of each partition. Each event keeps its own consumer span, a
/// child of the trace in its headers, spanning the batch that applied it.
async fn consume_batches<F, Fut>(
    state: AppState,
    consumer: LagConsumer,
    mut stop: watch::Receiver<bool>,
    name: &'static str,
    apply: F,
) where
    F: Fn(AppState, Vec<Event>, i64) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<usize>>,
{
    use futures::FutureExt as _;
    loop {
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = stop.changed() => return,
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut messages = vec![first];
        while messages.len() < CONSUMER_BATCH {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) => {
                    tracing::warn!(consumer = name, error = %e, "receive failed");
                    break;
                }
                None => break,
            }
        }
        let mut events = Vec::with_capacity(messages.len());
        let mut spans = Vec::with_capacity(messages.len());
        for msg in &messages {
            match msg
                .payload()
                .and_then(|p| serde_json::from_slice::<Event>(p).ok())
            {
                None => tracing::warn!(
                    consumer = name,
                    offset = msg.offset(),
                    "unreadable event skipped"
                ),
                Some(event) => {
                    let span = tracing::info_span!(
                        "kafka.consume",
                        otel.name = %format!("{name} {}", event.kind),
                        otel.kind = "consumer",
                        messaging.system = "kafka",
                        messaging.consumer.group.name = name,
                        messaging.batch.message_count = messages.len(),
                        event.action = %event.kind,
                    );
                    crate::telemetry::adopt_kafka_parent(&span, msg.headers());
                    spans.push(span);
                    events.push(event);
                }
            }
        }
        if let Some(span) = spans.first().cloned() {
            loop {
                let now = state.clock.now_ms();
                let applied = apply(state.clone(), events.clone(), now)
                    .instrument(span.clone())
                    .await;
                match applied {
                    Ok(fresh) => {
                        let consumed = &state.metrics.events_consumed;
                        consumed
                            .with_label_values(&[name, "applied"])
                            .inc_by(fresh as u64);
                        consumed
                            .with_label_values(&[name, "duplicate"])
                            .inc_by((events.len() - fresh) as u64);
                        let now = state.clock.now_ms();
                        for event in &events {
                            state
                                .metrics
                                .event_lag
                                .with_label_values(&[name])
                                .observe((now - event.at).max(0) as f64 / 1000.0);
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(consumer = name, error = %e.message, events = events.len(), "applying events failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
        }
        drop(spans);
        // After the effect: a crash before this line redelivers the batch, which the
        // effect's idempotence absorbs. The last message of each partition commits it.
        let mut last = std::collections::BTreeMap::new();
        for msg in &messages {
            last.insert(msg.partition(), msg);
        }
        for msg in last.into_values() {
            if let Err(e) = consumer.commit_message(msg, CommitMode::Async) {
                tracing::warn!(consumer = name, error = %e, "offset commit failed");
            }
        }
    }
}

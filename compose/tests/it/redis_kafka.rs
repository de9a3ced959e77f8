//! The local stack's Redis (standalone, and primary + replica + Sentinel) and Kafka-protocol
//! broker (tansu): they start from the binaries on this machine, answer, survive `kill` +
//! `restart` on the same port, and fail with an install hint when a binary is missing.

use std::time::{Duration, Instant};

use compose::{KafkaStorage, LocalKafka, LocalRedis, RedisFailover};

#[tokio::test]
async fn a_local_redis_answers_and_comes_back_on_the_same_port_after_a_kill() {
    let redis = LocalRedis::start()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(redis.command("PING").unwrap().starts_with("+PONG"));
    assert!(redis.command("SET k v").unwrap().starts_with("+OK"));
    let port = redis.port();
    redis.kill().await.unwrap();
    assert!(redis.command("PING").is_err(), "still answering after kill");
    redis.restart().await.unwrap();
    assert_eq!(redis.port(), port);
    assert!(redis.command("PING").unwrap().starts_with("+PONG"));
    assert!(
        redis.command("GET k").unwrap().starts_with("$-1"),
        "persistence is off: a restart forgets"
    );
    assert!(redis.log_path().exists());
}

#[tokio::test]
async fn sentinel_promotes_the_replica_when_the_primary_dies() {
    let drill = RedisFailover::start()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(drill.current_primary_port().unwrap(), drill.primary.port());
    drill.primary.kill().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if drill.current_primary_port().ok() == Some(drill.replica.port()) {
            break;
        }
        assert!(Instant::now() < deadline, "Sentinel did not fail over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(drill
        .replica
        .command("INFO replication")
        .unwrap()
        .contains("role:master"));
}

#[tokio::test]
async fn a_local_kafka_broker_keeps_its_topics_across_a_restart_with_sqlite_storage() {
    let kafka = LocalKafka::start(KafkaStorage::Sqlite)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    kafka.create_topic("drill.events", 3).await.unwrap();
    kafka.restart().await.unwrap();
    // Creating it again fails: the broker still knows it.
    assert!(kafka.create_topic("drill.events", 3).await.is_err());
    assert!(kafka.log_path().exists());
}

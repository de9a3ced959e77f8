#!/bin/bash
# Creates the box office's topics (names: system/src/kafka.rs and store/outbox.rs) on the
# three-broker cluster, replicated three times with min.insync.replicas=2 (the producer uses
# acks=all). Idempotent: existing topics are left alone. The box office would create missing
# topics itself, but with the broker defaults; this job makes the replication explicit.
set -euo pipefail
: "${KAFKA_BOOTSTRAP:?}"
PREFIX="${KAFKA_TOPIC_PREFIX:-}"
PARTITIONS="${KAFKA_PARTITIONS:-6}"
TOPICS=(booking.events coupon.events)

for attempt in $(seq 1 30); do
  if /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --list > /dev/null 2>&1; then
    break
  fi
  echo "kafka-init: cluster not ready (attempt $attempt)"; sleep 2
done

for topic in "${TOPICS[@]}"; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists \
    --topic "${PREFIX}${topic}" --partitions "$PARTITIONS" --replication-factor 3 \
    --config min.insync.replicas=2
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
  --topic "${PREFIX}booking.events"
echo "kafka-init: topics ready"

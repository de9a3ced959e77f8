#!/bin/sh
# Sentinel rewrites its config file, so it is written at start into a writable place.
# One Sentinel (quorum 1) is enough for the lab's failover drills; production wants three.
set -eu
MASTER="${SENTINEL_MASTER_NAME:-boxoffice}"
DOWN_AFTER="${SENTINEL_DOWN_AFTER_MS:-5000}"
CONF=/tmp/sentinel.conf
cat > "$CONF" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel monitor ${MASTER} redis 6379 1
sentinel down-after-milliseconds ${MASTER} ${DOWN_AFTER}
sentinel failover-timeout ${MASTER} 30000
sentinel parallel-syncs ${MASTER} 1
CONF
exec redis-sentinel "$CONF"

#!/bin/bash
# The streaming standby: on first start, clone the primary with pg_basebackup (-R writes
# standby.signal and primary_conninfo, -S uses the slot made by primary-init.sh), then run
# postgres as a hot standby. Promote it in a failover drill:
#   docker compose -f compose/docker-compose.yml exec postgres-standby pg_ctl promote -D /var/lib/postgresql/data
set -euo pipefail
: "${PRIMARY_HOST:?}" "${REPLICATION_USER:?}" "${REPLICATION_PASSWORD:?}" "${PGDATA:?}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "standby: waiting for the primary at ${PRIMARY_HOST}:5432"
  until pg_isready -h "$PRIMARY_HOST" -p 5432 -q; do sleep 1; done
  find "$PGDATA" -mindepth 1 -delete
  echo "standby: cloning the primary"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    -h "$PRIMARY_HOST" -p 5432 -U "$REPLICATION_USER" \
    -D "$PGDATA" -X stream -R -S standby_1 --checkpoint=fast
  chmod 0700 "$PGDATA"
fi

exec postgres -c hot_standby=on -c listen_addresses='*'

#!/bin/sh
# Imports every dashboards/kibana/*.ndjson into Kibana (overwriting objects with the same id).
# Fails (non-zero) when an import is rejected, so `docker compose ps -a` shows it.
set -eu
KIBANA_URL="${KIBANA_URL:-http://kibana:5601}"
found=0
for f in /saved-objects/*.ndjson; do
  [ -e "$f" ] || continue
  found=1
  echo "kibana-init: importing $f"
  out=$(curl -fsS -X POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: true' --form "file=@$f")
  echo "$out"
  case "$out" in
    *'"success":true'*) ;;
    *) echo "kibana-init: import of $f failed" >&2; exit 1 ;;
  esac
done
[ "$found" = 1 ] || echo "kibana-init: no saved objects in /saved-objects (dashboards/kibana/*.ndjson)"

#!/usr/bin/env bash
# run.sh - `make run`: services, migrations, a development token, then
# `herald serve` in the foreground. Ctrl-C stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${HERALD_BIN:-$ROOT/build/herald}

started=0
cleanup() {
  if [ "$started" = 1 ]; then
    echo "herald: stopping the private PostgreSQL and Redis" >&2
    tools/services.sh stop
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tools/services.sh start
started=1
eval "$(tools/services.sh env)"

"$BIN" migrate
TOKEN=$("$BIN" token --sub dev --scopes send,read,admin --ttl 86400)
LISTEN=${HERALD_LISTEN:-127.0.0.1:8080}
cat >&2 <<TXT

  Herald is starting on http://$LISTEN  (development token below, valid 24 h)

    curl -s http://$LISTEN/api/crm/health
    curl -s -H "Authorization: Bearer $TOKEN" http://$LISTEN/api/crm/auth/me

TXT
# Not exec: the trap must run to stop the services after Ctrl-C.
"$BIN" serve &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 130' INT TERM
wait $child

#!/usr/bin/env bash
# bench-http.sh - the HTTP layer under load: a JWT-verified JSON endpoint
# (/api/crm/auth/me) and the health probe (one PostgreSQL and one Redis round
# trip per request). wrk runs on the same machine, so both share the cores.
#   tools/bench-http.sh [seconds] [connections]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${1:-10}
CONNS=${2:-64}
PORT=${HERALD_BENCH_PORT:-8097}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
tools/services.sh start
eval "$(tools/services.sh env)"
build/herald migrate >/dev/null 2>&1
build/herald serve --listen "127.0.0.1:$PORT" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/api/crm/health" && break; sleep 0.1; done
TOKEN=$(build/herald token --sub bench --scopes read --ttl 3600 2>/dev/null)
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
for target in "auth/me" "health"; do
  echo "== GET /api/crm/$target: wrk -t2 -c$CONNS -d${SECS}s"
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/api/crm/$target" | grep -E "Requests/sec|^ +(50|90|99)%"
done
echo "== herald after the run: $(ps -o rss= -p $pid) KiB resident, $(ps -o cputime= -p $pid) CPU"

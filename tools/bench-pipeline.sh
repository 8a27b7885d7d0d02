#!/usr/bin/env bash
# bench-pipeline.sh - `make bench`: the whole send path under load. One
# `herald serve` (its own database, the SMTP driver into tests/fakes/smtp_sink.py
# with --discard), driven by wrk with POST /api/crm/communications:
#   1. at a steady rate (~1,000 requests/s: 10 connections, 10 ms between requests)
#   2. at maximum rate (32 connections, no pause)
# Prints accepted/s, delivered/s, API latency p50/p95/p99 (wrk), accept-to-sent
# p50/p95 (from the database: sent_at - created_at), peak memory and CPU per 1,000.
#   tools/bench-pipeline.sh [seconds]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${1:-15}
BIN=${HERALD_BIN:-$ROOT/build/herald}
PORT=${HERALD_BENCH_PORT:-8098}
TMP=$(mktemp -d)
DB=herald_bench_$$
pids=()
tools/services.sh start >/dev/null
eval "$(tools/services.sh env)"
ADMIN=${HERALD_DATABASE_URL%/*}/postgres
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -X -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

psql -X -q -d "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null
export HERALD_DATABASE_URL=${HERALD_DATABASE_URL%/*}/$DB
"$BIN" migrate >/dev/null 2>&1
/usr/bin/python3 tests/fakes/smtp_sink.py --port 0 --ready-file "$TMP/smtp" --discard >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$TMP/smtp" ] && break; sleep 0.1; done
export HERALD_VAR_DIR="$TMP/var" HERALD_LOG_LEVEL=warn HERALD_EMAIL_DRIVER=smtp HERALD_SMTP_STARTTLS=off
# the send path is measured, not the per-subject API limit (50/s by default)
export HERALD_LIMIT_API_RATE=${HERALD_LIMIT_API_RATE:-1000000} HERALD_LIMIT_API_BURST=${HERALD_LIMIT_API_BURST:-1000000}
export HERALD_SMTP_URL="smtp://127.0.0.1:$(sed -n 1p "$TMP/smtp")"
"$BIN" serve --listen "127.0.0.1:$PORT" 2>"$TMP/serve.log" &
hpid=$!
pids+=($hpid)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/api/crm/health" && break; sleep 0.1; done
TOKEN=$("$BIN" token --sub bench --scopes send,read --ttl 3600 2>/dev/null)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"client_id":"bench","name":"Bench Client","email":"bench@example.com"}' \
  "http://127.0.0.1:$PORT/api/crm/preferences"

cat > "$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = '{"plan_id":"bench","client_id":"bench","message_type":"welcome","urgency":"critical","context":{"event_type":"wedding","event_date":"2027-06-14","plan_url":"https://example.com/p/bench"}}'
local pause = tonumber(os.getenv("BENCH_PAUSE_MS") or "0")
function delay() return pause end
LUA

cpu_of() { awk '{print $14 + $15}' "/proc/$hpid/stat"; }
report() { # label
  local settled
  for _ in $(seq 1 120); do
    settled=$(psql -X -qtA -d "$HERALD_DATABASE_URL" -c "SELECT count(*) FROM crm_jobs")
    [ "$settled" = 0 ] && break
    sleep 0.5
  done
  psql -X -qtA -F ' ' -d "$HERALD_DATABASE_URL" -c "
    SELECT count(*),
           round(count(*) / greatest(extract(epoch from max(sent_at) - min(created_at)), 0.001)),
           round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch from sent_at - created_at))::numeric, 1),
           round(1000 * percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch from sent_at - created_at))::numeric, 1),
           round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch from sending_at - created_at))::numeric, 1),
           round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch from sent_at - sending_at))::numeric, 1)
      FROM crm_communications WHERE status = 'sent' AND plan_id = 'bench'" |
    while read -r n rate p50 p95 wait50 send50; do
      echo "   $1: $n sent; delivered/s $rate (first accept to last send); accept-to-sent p50 ${p50} ms, p95 ${p95} ms"
      echo "   $1: of which accept-to-handed-over p50 ${wait50} ms, handed-over-to-sent-recorded p50 ${send50} ms"
    done
  psql -X -q -d "$HERALD_DATABASE_URL" -c "DELETE FROM crm_communications WHERE plan_id = 'bench'" >/dev/null
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); each run ${SECS}s"
for run in "steady 10 10" "max 32 0"; do
  set -- $run
  c0=$(cpu_of)
  echo "== $1 rate: wrk -t2 -c$2 -d${SECS}s, ${3} ms between requests per connection"
  BENCH_PAUSE_MS=$3 wrk -t2 -c"$2" -d"${SECS}s" --latency -s "$TMP/post.lua" \
    "http://127.0.0.1:$PORT/api/crm/communications" | tee "$TMP/wrk.txt" |
    grep -E "Requests/sec|^ +(50|90|99)%|Non-2xx"
  report "$1"
  c1=$(cpu_of)
  n=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
  echo "   herald cpu $(( (c1 - c0) )) ticks for $n messages = $(awk -v t=$((c1 - c0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.3f", t/hz*1000/n}') s per 1000"
done
echo "== herald peak memory: $(awk '/VmHWM/ {print $2, $3}' /proc/$hpid/status)"

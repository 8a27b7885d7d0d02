#!/usr/bin/env bash
# bench-analytics.sh - `make bench-analytics`: GET /api/crm/analytics over a
# large history. A database of its own gets N communications (default one
# million) spread over the last 90 UTC days with a realistic mix (seven message
# types, their primary channels, 6 % fallbacks, statuses from queued to clicked,
# 5 % failures by category, sent -> delivered times from 1 s to 1 h), written by
# one INSERT ... SELECT generate_series (counted by the analytics trigger as it
# runs). Then one `herald serve` (HERALD_ANALYTICS_REFRESH_SECONDS=60) and:
#   1. its first fold of the seed's deltas into the counters, timed from
#      process start until the delta table is empty; the counters against a
#      recount of the messages
#   2. what the API covers: its per-day totals against the table's
#   3. REQUESTS requests (curl, one connection each) for the default 30 days and
#      for 90 days with no group_by and each group_by: p50 / p95 / max in ms
#   tools/bench-analytics.sh [rows] [requests]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROWS=${1:-1000000}
REQUESTS=${2:-50}
BIN=${HERALD_BIN:-$ROOT/build/herald}
PORT=${HERALD_BENCH_PORT:-8099}
TMP=$(mktemp -d)
DB=herald_bench_analytics_$$
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

psql -X -q -d "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null
export HERALD_DATABASE_URL=${HERALD_DATABASE_URL%/*}/$DB
"$BIN" migrate >/dev/null 2>&1
q() { psql -X -qtA -v ON_ERROR_STOP=1 -d "$HERALD_DATABASE_URL" "$@"; }
now_s() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN{printf "%.0f", (b - a) * 1000}'; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); PostgreSQL $(q -c 'SHOW server_version' | cut -d' ' -f1); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: tools/bench-analytics.sh $ROWS $REQUESTS"

# -- 1. the history -----------------------------------------------------------
t=$(now_s)
q >/dev/null <<SQL
SELECT setseed(0.42);
WITH s AS MATERIALIZED (
  SELECT g, random() AS a, random() AS b, random() AS c, random() AS d, random() AS e,
         random() AS f
    FROM generate_series(1, $ROWS) g),
t0 AS (SELECT ((now() AT TIME ZONE 'UTC')::date - 89)::timestamp AT TIME ZONE 'UTC' AS t0),
m AS (
  SELECT s.*, t0.t0 + s.a * (now() - t0.t0) AS created,
         CASE WHEN s.b < 0.15 THEN 'welcome' WHEN s.b < 0.25 THEN 'budget_summary'
              WHEN s.b < 0.50 THEN 'vendor_options' WHEN s.b < 0.60 THEN 'selection_confirmation'
              WHEN s.b < 0.70 THEN 'blueprint_delivery' WHEN s.b < 0.75 THEN 'error_notification'
              ELSE 'reminder' END AS mt,
         CASE WHEN s.c < 0.01 THEN 'queued' WHEN s.c < 0.06 THEN 'failed'
              WHEN s.c < 0.18 THEN 'sent' WHEN s.c < 0.60 THEN 'delivered'
              WHEN s.c < 0.88 THEN 'opened' ELSE 'clicked' END AS st
    FROM s, t0),
x AS (
  SELECT m.*, CASE WHEN mt = 'error_notification' THEN 'sms' ELSE 'email' END AS prim,
         power(3600, d) AS dl_s
    FROM m)
INSERT INTO crm_communications (client_id, message_type, urgency, primary_channel,
    fallback_channels, channel, status, send_at, created_at, queued_at, sent_at, delivered_at,
    opened_at, clicked_at, failed_at, last_error_category, attempt_count, updated_at)
SELECT 'client-' || (g % 50000), mt, 'normal', prim,
       CASE WHEN prim = 'sms' THEN '{email,whatsapp}' ELSE '{sms}' END::text[],
       CASE WHEN st = 'queued' THEN NULL
            WHEN e < 0.06 THEN CASE WHEN prim = 'sms' THEN 'email' ELSE 'sms' END
            WHEN e < 0.12 AND prim = 'email' THEN 'whatsapp'
            ELSE prim END,
       st, created, created, created,
       CASE WHEN st IN ('sent', 'delivered', 'opened', 'clicked') OR (st = 'failed' AND f < 0.5)
            THEN created + f * interval '5 seconds' END,
       CASE WHEN st IN ('delivered', 'opened', 'clicked')
            THEN created + f * interval '5 seconds' + dl_s * interval '1 second' END,
       CASE WHEN st IN ('opened', 'clicked')
            THEN created + f * interval '5 seconds' + dl_s * interval '1 second'
                 + interval '20 minutes' END,
       CASE WHEN st = 'clicked'
            THEN created + f * interval '5 seconds' + dl_s * interval '1 second'
                 + interval '21 minutes' END,
       CASE WHEN st = 'failed' THEN created + interval '1 minute' END,
       CASE WHEN st = 'failed' THEN CASE WHEN e < 0.40 THEN 'transient'
            WHEN e < 0.70 THEN 'permanent' WHEN e < 0.85 THEN 'invalid'
            WHEN e < 0.95 THEN 'rate_limit' WHEN e < 0.98 THEN 'auth_failure' END END,
       CASE WHEN st = 'queued' THEN 0 ELSE 1 END, created
  FROM x;
ANALYZE crm_communications;
SQL
echo "== seeded $(q -c 'SELECT count(*) FROM crm_communications') communications over" \
  "$(q -c "SELECT count(DISTINCT (created_at AT TIME ZONE 'UTC')::date) FROM crm_communications") UTC days in $(ms_since "$t") ms" \
  "(table and indexes: $(q -c "SELECT pg_size_pretty(pg_total_relation_size('crm_communications'))"))"
echo "   mix: $(q -c "SELECT string_agg(status || ' ' || round(100.0 * n / t, 1) || '%', ', ' ORDER BY n DESC) FROM (SELECT status, count(*) n, sum(count(*)) OVER () t FROM crm_communications GROUP BY 1) x" | tail -n 1)"
echo "   channels: $(q -c "SELECT string_agg(ch || ' ' || round(100.0 * n / t, 1) || '%', ', ' ORDER BY n DESC) FROM (SELECT coalesce(channel, 'none') ch, count(*) n, sum(count(*)) OVER () t FROM crm_communications GROUP BY 1) x" | tail -n 1);" \
  "fallbacks $(q -c "SELECT round(100.0 * count(*) FILTER (WHERE channel <> primary_channel) / count(*), 1) FROM crm_communications")%"

# -- 2. the first fold -----------------------------------------------------------
# The seed's one INSERT was counted by the statement trigger of
# migrations/0018_analytics_counts.sql (its cost is in the seed's time above);
# the engine folds the deltas into the counters at start.
echo "   deltas the seed wrote: $(q -c 'SELECT count(*) FROM crm_analytics_delta') rows"
export HERALD_VAR_DIR="$TMP/var" HERALD_LOG_LEVEL=warn HERALD_ANALYTICS_REFRESH_SECONDS=60
t0=$(now_s)
"$BIN" serve --listen "127.0.0.1:$PORT" 2>"$TMP/serve.log" &
hpid=$!
pids+=("$hpid")
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/api/crm/health" && break; sleep 0.1; done
TOKEN=$("$BIN" token --sub bench --scopes read --ttl 3600 2>/dev/null)
get() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/crm/analytics?$1"; }
TODAY=$(date -u +%F)
FROM90=$(date -u -d "$TODAY - 89 days" +%F)
done_=""
for _ in $(seq 1 600); do # 60 s
  if [ "$(q -c 'SELECT count(*) FROM crm_analytics_delta')" = 0 ]; then done_=$(now_s); break; fi
  sleep 0.1
done
[ -n "$done_" ] || { echo "bench: the deltas were not folded within 60 s" >&2; cat "$TMP/serve.log" >&2; exit 1; }
echo "== first fold: done $(awk -v a="$t0" -v b="$done_" 'BEGIN{printf "%.0f", (b - a) * 1000}') ms after \`herald serve\` started" \
  "(herald reports $(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^crm_analytics_refresh_seconds / {printf "%.1f ms", $2 * 1000}'));" \
  "$(q -c 'SELECT count(*) FROM crm_analytics_daily') daily rows"
off=$(q -f tools/sql/analytics_recount.sql)
[ -z "$off" ] && echo "   the daily rows equal a recount of the messages" ||
  { echo "   the daily rows differ from a recount (counted | recounted):"; echo "$off"; }

# -- 3. what the API covers -------------------------------------------------------
get "from=$FROM90&to=$TODAY&group_by=day" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print("\n".join("%s %d" % (g["key"], g["total"]) for g in doc["groups"]))' | sort >"$TMP/api_days"
q -F ' ' -c "SELECT (created_at AT TIME ZONE 'UTC')::date, count(*) FROM crm_communications
              GROUP BY 1 ORDER BY 1" | sort >"$TMP/db_days"
api_total=$(awk '{n += $2} END {print n + 0}' "$TMP/api_days")
echo "== API over $FROM90 .. $TODAY: $api_total of $(q -c 'SELECT count(*) FROM crm_communications') communications"
join -a 1 -a 2 -e 0 -o 0,1.2,2.2 "$TMP/db_days" "$TMP/api_days" |
  awk '$2 != $3 { printf "   %s: %d in the table, %d in the API\n", $1, $2, $3 }' 

# -- 4. the API ---------------------------------------------------------------------
# What else herald asks of PostgreSQL meanwhile (an idle engine should ask ~nothing)
x0=$(q -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
sleep 2
x1=$(q -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
echo "== background: $(( (x1 - x0) / 2 )) transactions/s on the database from the idle server"
pct() { # file -> "p50 / p95 / max" in ms
  sort -n "$1" | awk '{v[NR] = $1 * 1000} END {
    p50 = v[int(NR * 0.5 + 0.999999)]; p95 = v[int(NR * 0.95 + 0.999999)]
    printf "%.1f / %.1f / %.1f ms", p50, p95, v[NR] }'
}
echo "== GET /api/crm/analytics, $REQUESTS requests each (curl, a new connection each): p50 / p95 / max"
for query in "" "from=$FROM90&to=$TODAY" "from=$FROM90&to=$TODAY&group_by=channel" \
  "from=$FROM90&to=$TODAY&group_by=message_type" "from=$FROM90&to=$TODAY&group_by=day"; do
  get "$query" >"$TMP/body"  # warm-up, and the size of the answer
  : >"$TMP/times"
  for _ in $(seq 1 "$REQUESTS"); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$PORT/api/crm/analytics?$query" >>"$TMP/times"
  done
  rows=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["total"]["total"])' "$TMP/body")
  printf '   %-52s %s (%d messages, %d bytes)\n' "?${query:-(default: 30 days)}" "$(pct "$TMP/times")" \
    "$rows" "$(wc -c <"$TMP/body")"
done
echo "== herald after the run: $(ps -o rss= -p $hpid) KiB resident, $(ps -o cputime= -p $hpid) CPU"

#!/usr/bin/env bash
# soak.sh - `make soak`: Herald under a steady open-loop load for a long time
# (default 30 minutes at 1,000 requests/s, the workload of tools/bench/e2e.sh:
# a new client per request, inline recipient, welcome, urgency high), to see
# whether memory and the job table stay flat. Every SAMPLE seconds it prints
# Herald's resident memory, the job table's live and dead tuples
# (pg_stat_user_tables) and size, the communications table's size, the
# emails delivered, Herald's answers since the last sample and how many took
# over 25 ms (its /metrics), the last analytics fold's time and
# PostgreSQL's checkpoints since the start; then start / middle / end, the
# RSS slope over the run after its first tenth, the load generator's
# summary, and whether the analytics counters equal a recount of the
# messages (tools/sql/analytics_recount.sql).
#
#   RATE=1000 DURATION=1800 SAMPLE=60 tools/bench/soak.sh
#   PG_MAX_WAL_SIZE=4GB ...   (private PostgreSQL: fewer WAL-started checkpoints)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RATE=${RATE:-1000}
DURATION=${DURATION:-1800}
SAMPLE=${SAMPLE:-60}
CONNS=${CONNS_FIXED:-64}
[ "$SAMPLE" -gt 0 ] && [ "$DURATION" -ge "$SAMPLE" ] || { echo "soak: SAMPLE must be in 1..DURATION" >&2; exit 2; }

start_services
machine_facts
echo "soak: ${RATE} requests/s for ${DURATION} s, a sample every ${SAMPLE} s"
start_sink
start_fakes
DB=herald_soak_$$
new_db "$DB"
start_herald "$DB"
fetch_types
bodies welcome soak >"$TMP/soak.body"

# Herald's own view, from its /metrics: answers to POST /api/crm/communications
# so far, those over 25 ms, and how long the last fold of the analytics
# deltas into their counters took.
http_stats() {
  curl -s --max-time 5 "http://127.0.0.1:$HPORT/metrics" | awk '
    /^herald_http_request_duration_seconds_bucket/ && /POST/ && /communications/ {
      if ($0 ~ /le="\+Inf"/) all += $NF; else if ($0 ~ /le="0.025"/) fast += $NF }
    /^crm_analytics_refresh_seconds / { r = $2 }
    END { printf "%d %d %.3f\n", all, fast, r }'
}
PREV_ALL=0 PREV_FAST=0 CKPT0=

sample() { # label elapsed
  local row all fast fold ckpt
  row=$(dbq "$DB" -c "/* bench-e2e */ SELECT n_live_tup, n_dead_tup, pg_total_relation_size('crm_jobs') / 1024,
      pg_total_relation_size('crm_communications') / 1048576, pg_database_size(current_database()) / 1048576,
      coalesce(to_char(greatest(last_autovacuum, last_vacuum), 'HH24:MI:SS'), '-')
      FROM pg_stat_user_tables WHERE relname = 'crm_jobs'")
  ckpt=$(dbq "$DB" -c "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
  CKPT0=${CKPT0:-$ckpt}
  read -r all fast fold < <(http_stats)
  kill -USR1 "$SINK_PID"
  sleep 0.1
  printf '%-7s %6s s  %8s KiB  %9s %9s %8s KiB %8s MiB %8s MiB %9s  %9s  %9s %9s %8s %6s\n' "$1" "$2" "$(rss_kb "$HPID")" $row \
    "$(sink_stat messages)" "$((all - PREV_ALL))" "$(((all - PREV_ALL) - (fast - PREV_FAST)))" "$fold" "$((ckpt - CKPT0))"
  PREV_ALL=$all PREV_FAST=$fast
  echo "$2 $(rss_kb "$HPID")" >>"$TMP/rss.samples"
}

printf '%-7s %8s  %12s  %9s %9s %12s %12s %12s %9s  %9s  %9s %9s %8s %6s\n' sample elapsed "herald RSS" "jobs live" "jobs dead" "jobs size" "comms size" "db size" "vacuumed" delivered \
  answers "over 25ms" "fold" ckpts
echo "(answers, over 25ms: Herald's own POST /api/crm/communications answers since the last sample, and those that took over 25 ms; fold: the last fold of the analytics deltas in s; ckpts: PostgreSQL checkpoints since the start)"
"$LOADGEN" --url "http://127.0.0.1:$HPORT/api/crm/communications" --header "Authorization: Bearer $TOKEN" \
  --body-file "$TMP/soak.body" --rate "$RATE" --duration "$DURATION" --connections "$CONNS" \
  --id-prefix soak --timeline "$TMP/soak.tl" >"$TMP/soak.lg" 2>"$TMP/soak.lgerr" &
LG_PID=$!
pids+=("$LG_PID")
t0=$(date +%s)
middle_done=0
sleep 5
sample start 5
next=$SAMPLE
while kill -0 "$LG_PID" 2>/dev/null; do
  now=$(($(date +%s) - t0))
  if [ "$middle_done" = 0 ] && [ "$now" -ge $((DURATION / 2)) ]; then
    sample middle "$now"
    middle_done=1
  elif [ "$now" -ge "$next" ] && [ "$now" -lt "$DURATION" ]; then
    sample "" "$now"
  fi
  [ "$now" -ge "$next" ] && next=$((next + SAMPLE))
  sleep 1
done
wait "$LG_PID" || { cat "$TMP/soak.lgerr" >&2; exit 1; }
sample end "$(($(date +%s) - t0))"
sink_wait "$(lg soak ok)" 60 || echo "WARNING: the sink stopped at $(sink_stat messages) of $(lg soak ok) emails"
sample drained "$(($(date +%s) - t0))"

echo "load: $(lg soak ok) of $(lg soak sent) accepted ($(lg soak non2xx) refused, $(lg soak errors) failed), accepted/s $(lg soak accepted_per_s);" \
  "API p50 $(lg soak latency_ms_p50) ms, p99 $(lg soak latency_ms_p99), p99.9 $(lg soak latency_ms_p999), max $(lg soak latency_ms_max) ms"
echo "delivered: $(sink_stat messages) emails at the sink; herald peak RSS $(($(hwm_kb "$HPID") / 1024)) MiB;" \
  "herald log $(du -k "$TMP/herald.log" | cut -f 1) KiB"
# least-squares slope of RSS over time, leaving out the first tenth (start-up)
awk -v skip=$((DURATION / 10)) '$1 >= skip { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
  END { if (n >= 3 && n * sxx - sx * sx > 0) printf "herald RSS slope after the first tenth: %.1f KiB per minute over %d samples\n", 60 * (n * sxy - sx * sy) / (n * sxx - sx * sx), n;
        else print "herald RSS slope: too few samples (lower SAMPLE)" }' "$TMP/rss.samples"
echo "the server's part of the API latency (from the actual send): p50 $(lg soak answer_ms_p50) ms, p99 $(lg soak answer_ms_p99), max $(lg soak answer_ms_max) ms"
echo "$(worst_seconds "$TMP/soak.tl" 10)"
awk '!/^#/ { n++; if ($7 > 10) slow++; if ($6 > 1000) late++ }
  END { printf "seconds of the run: %d; with an answer p99 over 10 ms: %d; with a send over 1 s late: %d\n", n, slow, late }' "$TMP/soak.tl"
# the analytics counters against a recount of every message of the run
sleep 2 # the last outcomes' commits
off=$(psql -X -qtA -d "$(db_url "$DB")" -f tools/sql/analytics_recount.sql)
if [ -z "$off" ]; then
  echo "analytics: the counters equal a recount of the $(dbq "$DB" -c "SELECT count(*) FROM crm_communications") messages"
else
  echo "analytics: the counters differ from a recount (counted/recounted):"
  echo "$off"
fi

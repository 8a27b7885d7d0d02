#!/usr/bin/env bash
# e2e.sh - `make bench-e2e`: the send path on the workload users have. Every
# request names a new client with an inline recipient (welcome, urgency high),
# the way the planning workflow sends; PostgreSQL, Redis, the load generator
# and the sink share the machine with Herald. Runs, each DURATION seconds:
#   fixed  open loop at RATE requests/s (build/loadgen: latency from the
#          scheduled send time, so queueing is counted)
#   max    as fast as CONNS_MAX keep-alive connections go
#   prefs  CLIENTS clients stored first (POST /api/crm/preferences), then an
#          open-loop mix of message types and urgencies at RATE to them: SMS
#          to the fake Twilio, low urgency into digests, normal urgency when
#          the client's business hours open (those two wait; they are counted
#          apart)
# Email goes over SMTP to build/smtp_sink (C, counts and discards). For each
# run it prints accepted/s, delivered/s end to end (load start -> last email
# at the sink, with every accepted message delivered), API p50/p99/p99.9,
# accept-to-sent p50/p95 (sent_at - created_at in the database), CPU ms per
# email per process (/proc), SQL statements, execution time, commits and WAL
# flushes per email (pg_stat_statements, pg_stat_database, pg_stat_wal), the
# context switches of the service's threads per email (/proc/<pid>/task) and
# Herald's peak RSS; a Markdown table at the end.
#
# PEER=DIR (e.g. ../shared/peers/node-twin) also runs that Node.js service on
# the fixed and max runs, against the same sink and PostgreSQL server (a
# database of its own), with Herald stopped meanwhile, and prints the ratios.
#
#   RATE=1000 DURATION=15 CLIENTS=2000 MODES="fixed max prefs" PEER= tools/bench/e2e.sh
#   CONNS_FIXED=64 CONNS_MAX=32  load generator connections
#   PROCS=1                      `herald serve` processes on the one database
#                                (the load spread over them; CPU and peak RSS
#                                are their sums)
#   WARMUP=2                     seconds of unmeasured load first (0: none)
#   BENCH_KEEP=1                 keep the logs (herald, loadgen) under /tmp
#   BENCH_KEEP_DB=1              keep each run's database (to read its tables, or
#                                its WAL with pg_walinspect); drop it yourself
set -euo pipefail
ORIG_PWD=$PWD
source "$(dirname "$0")/lib.sh"

RATE=${RATE:-1000}
DURATION=${DURATION:-15}
CLIENTS=${CLIENTS:-2000}
MODES=${MODES:-fixed max prefs}
CONNS_FIXED=${CONNS_FIXED:-64}
CONNS_MAX=${CONNS_MAX:-32}
WARMUP=${WARMUP:-2}
PEER=${PEER:-}
if [ -n "$PEER" ]; then
  case "$PEER" in /*) ;; *) PEER=$ORIG_PWD/$PEER ;; esac
  [ -f "$PEER/package.json" ] || { echo "bench: PEER=$PEER has no package.json" >&2; exit 1; }
  command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "bench: the peer needs node and npm (apt-get install nodejs npm)" >&2; exit 1; }
fi

declare -A R # results: R[run.key]
ROWS=()

start_services
machine_facts
echo "runs: ${MODES// /, } for ${DURATION} s each; open loop at ${RATE} requests/s; ${CONNS_FIXED} / ${CONNS_MAX} connections (fixed / max); ${PROCS:-1} herald process(es)"
[ "$PSS" = 1 ] || echo "note: pg_stat_statements is not loaded here; statements per email are not reported (commits are)"
start_sink
start_fakes
DB=herald_e2e_$$
new_db "$DB"
start_herald "$DB"
PROCS=${PROCS:-1}
[ "$PROCS" -gt 1 ] && start_more_heralds "$PROCS"
PORTS_ARG=()
[ "$PROCS" -gt 1 ] && PORTS_ARG=(--ports "$(IFS=,; echo "${HPORTS[*]}")")
AUTH="Authorization: Bearer $TOKEN"

fetch_types

f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
f3() { awk -v x="$1" 'BEGIN { printf "%.3f", x }'; }
per() { awk -v a="$1" -v n="$2" -v d="${3:-3}" 'BEGIN { if (n > 0) printf "%.*f", d, a / n; else printf "-" }'; }
# Herald's CPU ticks and peak RSS (KiB): the sums over its processes.
herald_ticks() { local t=0 p; for p in "${HPIDS[@]}"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }
herald_switches() {
  local v=0 n=0 p a b
  for p in "${HPIDS[@]}"; do read -r a b < <(switches "$p"); v=$((v + a)) n=$((n + b)); done
  echo "$v $n"
}
herald_hwm() { local t=0 p; for p in "${HPIDS[@]}"; do t=$((t + $(hwm_kb "$p"))); done; echo "$t"; }
ms_per() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n; else printf "-" }'; }

# One measured run against TARGET (herald | peer).
#   measure TARGET run url body-file rate conns [loadgen options...]
measure() {
  local target=$1 run=$2 url=$3 body=$4 rate=$5 conns=$6
  shift 6
  local db pid token
  if [ "$target" = herald ]; then db=$DB pid=$HPID token=$TOKEN; else db=$PEER_DB pid=$PEER_PID token=$PEER_TOKEN; fi
  sink_reset
  pss_reset
  if [ "$target" = herald ]; then for p in "${HPIDS[@]}"; do hwm_reset "$p"; done; else hwm_reset "$pid"; fi
  local c0 p0 h0 r0 s0 f0
  c0=$(pg_counters "$db")
  local sw0 sw1
  sw0=$([ "$target" = herald ] && herald_switches || switches "$pid")
  p0=$(pg_ticks) h0=$([ "$target" = herald ] && herald_ticks || ticks "$pid") r0=$(ticks "$REDIS_PID") s0=$(ticks "$SINK_PID") f0=$(ticks "$FAKES_PID")
  local m0 mt0
  m0=$(machine_ticks) mt0=$(date +%s%N)
  local polls0
  polls0=$(polls "$db")
  "$LOADGEN" --url "$url" --header "Authorization: Bearer $token" --body-file "$body" \
    --rate "$rate" --duration "$DURATION" --connections "$conns" --id-prefix "$run" \
    --timeline "$TMP/$run.tl" "$@" >"$TMP/$run.lg" 2>"$TMP/$run.lgerr" || { cat "$TMP/$run.lgerr" >&2; exit 1; }
  [ -s "$TMP/$run.lgerr" ] && sed 's/^/   /' "$TMP/$run.lgerr"
  local ok delivered expect later=0 lastns
  ok=$(lg "$run" ok)
  local start_ns
  start_ns=$(lg "$run" start_unix_ns)
  if [ "$run" = "${run%prefs}" ]; then
    # every accepted message is one email: done when the sink has them all
    expect=$ok
    sink_wait "$expect" 30 || echo "   WARNING: the sink stopped at $(sink_stat messages) of $expect emails"
    delivered=$(sink_stat messages)
    lastns=$(sink_stat last_ns)
  else
    # the mix: done when every message due now has an outcome
    read -r expect later < <(dbq "$db" -c "/* bench-e2e */ SELECT count(*) FILTER (WHERE NOT batch AND send_at <= now()),
        count(*) FILTER (WHERE batch OR send_at > now()) FROM crm_communications WHERE plan_id = '$run'")
    local done=-1 last=-2 still=0
    while :; do
      done=$(dbq "$db" -c "/* bench-e2e */ SELECT count(*) FROM crm_communications WHERE plan_id = '$run'
          AND NOT batch AND status NOT IN ('scheduled', 'queued', 'sending')")
      [ "$done" -ge "$expect" ] && break
      if [ "$done" = "$last" ]; then still=$((still + 1)); [ $still -ge 60 ] && break; else still=0 last=$done; fi
      sleep 0.5
    done
    [ "$done" -ge "$expect" ] || echo "   WARNING: $done of $expect due messages have an outcome"
    delivered=$done
    lastns=$(dbq "$db" -c "/* bench-e2e */ SELECT (extract(epoch FROM max(coalesce(sent_at, updated_at))) * 1e9)::bigint
        FROM crm_communications WHERE plan_id = '$run' AND NOT batch AND send_at <= now()")
  fi
  local p1 h1 r1 s1 f1_ hwm
  sw1=$([ "$target" = herald ] && herald_switches || switches "$pid")
  p1=$(pg_ticks) h1=$([ "$target" = herald ] && herald_ticks || ticks "$pid") r1=$(ticks "$REDIS_PID") s1=$(ticks "$SINK_PID") f1_=$(ticks "$FAKES_PID")
  local m1 mt1
  m1=$(machine_ticks) mt1=$(date +%s%N)
  hwm=$([ "$target" = herald ] && herald_hwm || hwm_kb "$pid")
  sleep 2 # backends report their counters to pg_stat_database within a second or so of going idle
  local c1 stm exms polls1
  c1=$(pg_counters "$db")
  read -r stm exms < <(pss_totals "$db")
  polls1=$(polls "$db")
  local commits wsync wrec wbytes wfpi
  commits=$(( $(cut -d ' ' -f 1 <<<"$c1") - $(cut -d ' ' -f 1 <<<"$c0") - (polls1 - polls0) * POLL_COMMITS ))
  wsync=$(( $(cut -d ' ' -f 2 <<<"$c1") - $(cut -d ' ' -f 2 <<<"$c0") ))
  wrec=$(( $(cut -d ' ' -f 3 <<<"$c1") - $(cut -d ' ' -f 3 <<<"$c0") ))
  wbytes=$(( $(cut -d ' ' -f 4 <<<"$c1") - $(cut -d ' ' -f 4 <<<"$c0") ))
  wfpi=$(( $(cut -d ' ' -f 5 <<<"$c1") - $(cut -d ' ' -f 5 <<<"$c0") ))
  local table=crm_communications
  [ "$target" = peer ] && table=communications
  local a2s
  a2s=$(dbq "$db" -c "/* bench-e2e */ SELECT count(*),
      round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at))::numeric, 1),
      round(1000 * percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at))::numeric, 1)
      FROM $table WHERE plan_id = '$run' AND sent_at IS NOT NULL")
  local nsent a50 a95
  read -r nsent a50 a95 <<<"$a2s"

  local wall e2e
  wall=$(awk -v a="$start_ns" -v b="$lastns" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  e2e=$(awk -v n="$delivered" -v w="$wall" 'BEGIN { if (w > 0) printf "%.0f", n / w; else print 0 }')
  local herald_ms pg_ms redis_ms sink_ms fakes_ms lg_ms machine
  herald_ms=$(ms_per $((h1 - h0)) "$delivered")
  pg_ms=$(ms_per $((p1 - p0)) "$delivered")
  redis_ms=$(ms_per $((r1 - r0)) "$delivered")
  sink_ms=$(ms_per $((s1 - s0)) "$delivered")
  fakes_ms=$(ms_per $((f1_ - f0)) "$delivered")
  lg_ms=$(per "$(lg "$run" cpu_ms)" "$delivered")
  machine=$(ms_per $((h1 - h0 + p1 - p0 + r1 - r0)) "$delivered")
  # an external server's CPU is not on this machine's /proc: say so, not 0
  [ -n "$PM_PID" ] || { pg_ms="not measured (external server)"; machine="$machine without PostgreSQL"; }
  [ -n "$REDIS_PID" ] || { redis_ms="not measured (external server)"; machine="$machine without Redis"; }
  # what the rest of the machine used meanwhile: other sessions' work shows here
  local ours others others_pct
  ours=$(awk -v t=$((h1 - h0 + p1 - p0 + r1 - r0 + s1 - s0 + f1_ - f0)) -v l="$(lg "$run" cpu_ms)" -v hz="$HZ" 'BEGIN { printf "%d", t + l * hz / 1000 }')
  others=$(( m1 - m0 - ours ))
  [ "$others" -lt 0 ] && others=0
  others_pct=$(awk -v o="$others" -v hz="$HZ" -v n="$(nproc)" -v s="$mt0" -v e="$mt1" \
    'BEGIN { d = (e - s) / 1e9; if (d > 0) printf "%.0f", 100 * o / hz / (d * n); else print 0 }')
  local name=Herald
  [ "$target" = peer ] && name="peer ($(basename "$PEER"))"

  echo "== $run: $name, $(lg "$run" mode) $( [ "$rate" != 0 ] && echo "at $rate requests/s " )with $conns connections for ${DURATION} s"
  echo "   requests: $(lg "$run" sent) sent, $ok accepted, $(lg "$run" non2xx) refused, $(lg "$run" errors) failed;" \
    "accepted/s $(lg "$run" accepted_per_s); sent over 1 ms after their scheduled time: $(lg "$run" late_sends) (at most $(lg "$run" max_late_ms) ms)"
  echo "   API latency (from the scheduled send): p50 $(lg "$run" latency_ms_p50) ms, p90 $(lg "$run" latency_ms_p90)," \
    "p99 $(lg "$run" latency_ms_p99), p99.9 $(lg "$run" latency_ms_p999), max $(lg "$run" latency_ms_max) ms"
  echo "   the server's part (from the actual send): p50 $(lg "$run" answer_ms_p50) ms, p99 $(lg "$run" answer_ms_p99)," \
    "max $(lg "$run" answer_ms_max) ms; $(worst_seconds "$TMP/$run.tl" 3)"
  if [ "$run" = "${run%prefs}" ]; then
    echo "   delivered: $delivered emails at the sink ($(sink_stat sessions) new SMTP sessions); $nsent recorded sent;" \
      "end to end $e2e emails/s (load start -> last email, $wall s)"
  else
    echo "   delivered: $delivered of $expect messages due now have an outcome ($(sink_stat messages) emails at the sink);" \
      "$later wait for business hours or a digest; end to end $e2e messages/s ($wall s)"
    dbq "$db" -c "/* bench-e2e */ SELECT message_type, urgency, coalesce(channel, '-'), status, count(*)
        FROM crm_communications WHERE plan_id = '$run' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4" |
      awk '{ printf "     %-24s %-9s %-9s %-10s %d\n", $1, $2, $3, $4, $5 }'
  fi
  echo "   accept-to-sent: p50 $a50 ms, p95 $a95 ms"
  echo "   CPU ms per message: $name $herald_ms, PostgreSQL $pg_ms$( [ "$target" = herald ] && echo ", Redis $redis_ms" )" \
    "= $machine for the service; apart: sink $sink_ms, load generator $lg_ms$( [ "$run" != "${run%prefs}" ] && echo ", fake providers $fakes_ms" )"
  if [ "$PSS" = 1 ]; then
    echo "   SQL per message: $(per "$stm" "$delivered" 2) statements, $(per "$exms" "$delivered" 3) ms executing," \
      "$(per "$commits" "$delivered" 2) commits, $(per "$wsync" "$delivered" 2) WAL flushes, $(per "$wrec" "$delivered" 1) WAL records," \
      "$(per "$((wbytes / 1024))" "$delivered" 1) KiB of WAL ($(per "$wfpi" "$delivered" 2) full-page images)"
    pss_top "$db" "$delivered"
  else
    echo "   SQL per message: $(per "$commits" "$delivered" 2) commits, $(per "$wsync" "$delivered" 2) WAL flushes," \
      "$(per "$((wbytes / 1024))" "$delivered" 1) KiB of WAL ($(per "$wfpi" "$delivered" 2) full-page images) (pg_stat_statements not loaded)"
  fi
  local v0 n0 v1 n1
  read -r v0 n0 <<<"$sw0"
  read -r v1 n1 <<<"$sw1"
  echo "   context switches per message ($name's threads): $(per $((v1 - v0)) "$delivered" 1) voluntary, $(per $((n1 - n0)) "$delivered" 2) involuntary"
  echo "   peak RSS: $((hwm / 1024)) MiB; everything else on the machine: $(ms_per "$others" "$delivered") ms per message (about ${others_pct} % of its $(nproc) cores)"
  R[$run.accepted]=$(lg "$run" accepted_per_s) R[$run.e2e]=$e2e R[$run.machine]=$machine
  ROWS+=("| $run | $name | $(lg "$run" accepted_per_s | cut -d . -f 1) | $e2e | $(lg "$run" latency_ms_p50) / $(lg "$run" latency_ms_p99) / $(lg "$run" latency_ms_p999) ms | $a50 / $a95 ms | $herald_ms / $pg_ms / $( [ "$target" = herald ] && echo "$redis_ms" || echo "-" ) = **$machine** | $sink_ms / $lg_ms | $(per "$stm" "$delivered" 2) / $(per "$commits" "$delivered" 2) / $(per "$wsync" "$delivered" 2) | $((hwm / 1024)) MiB |")
}

# A short unmeasured run first: a fresh process's first requests pay for
# connections and compiled scripts once, which a long-running server does not.
warmup() { # url token
  [ "$WARMUP" != 0 ] || return 0
  bodies welcome warmup >"$TMP/warmup.body"
  sink_reset
  "$LOADGEN" --url "$1" --header "Authorization: Bearer $2" --body-file "$TMP/warmup.body" \
    --rate "$RATE" --duration "$WARMUP" --connections "$CONNS_FIXED" --id-prefix "warmup$RANDOM" \
    >"$TMP/warmup.lg" 2>&1 || { cat "$TMP/warmup.lg" >&2; exit 1; }
  sink_wait "$(lg warmup ok)" 30 || true
}

# Commits that one of the bench's own queries adds to pg_stat_database.
calibrate_polls() { # db
  local a b
  a=$(pg_counters "$1" | cut -d ' ' -f 1)
  dbq "$1" -c "/* bench-e2e */ SELECT 1" >/dev/null
  dbq "$1" -c "/* bench-e2e */ SELECT 1" >/dev/null
  sleep 1.5
  b=$(pg_counters "$1" | cut -d ' ' -f 1)
  POLL_COMMITS=$(( (b - a) / 2 ))
}
calibrate_polls "$DB"

URL=http://127.0.0.1:$HPORT/api/crm/communications
warmup "$URL" "$TOKEN"
for mode in $MODES; do
  case $mode in
    fixed) bodies welcome fixed >"$TMP/fixed.body"; measure herald fixed "$URL" "$TMP/fixed.body" "$RATE" "$CONNS_FIXED" "${PORTS_ARG[@]}" ;;
    max) bodies welcome max >"$TMP/max.body"; measure herald max "$URL" "$TMP/max.body" 0 "$CONNS_MAX" "${PORTS_ARG[@]}" ;;
    prefs)
      echo '{"client_id":"$ID","name":"Client $ID","email":"$ID@bench.example","phone":"+14155550100","timezone":"UTC","locale":"en"}' >"$TMP/clients.body"
      "$LOADGEN" --url "http://127.0.0.1:$HPORT/api/crm/preferences" --header "$AUTH" --body-file "$TMP/clients.body" \
        --rate 0 --requests "$CLIENTS" --connections 16 --id-prefix client >"$TMP/clients.lg" 2>"$TMP/clients.lgerr"
      echo "== prefs: $(lg clients ok) of $CLIENTS clients stored ($(lg clients accepted_per_s) per second)"
      bodies mix prefs >"$TMP/prefs.body"
      measure herald prefs "$URL" "$TMP/prefs.body" "$RATE" "$CONNS_FIXED" --clients "$CLIENTS" --client-prefix client
      ;;
    *) echo "bench: unknown mode $mode (fixed, max, prefs)" >&2; exit 2 ;;
  esac
done

if [ -n "$PEER" ]; then
  for p in "${HPIDS[@]}"; do stop_pid "$p"; done
  PEER_DIR=$ROOT/$BUILD_DIR/peer-$(basename "$PEER")
  mkdir -p "$PEER_DIR"
  if ! cmp -s "$PEER/package-lock.json" "$PEER_DIR/package-lock.json" || [ ! -d "$PEER_DIR/node_modules" ]; then
    echo "== peer: npm ci in $PEER_DIR"
    (cd "$PEER" && tar cf - --exclude=node_modules .) | (cd "$PEER_DIR" && tar xf -)
    chmod -R u+w "$PEER_DIR"
    (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$TMP/npm.log" 2>&1) ||
      { cat "$TMP/npm.log" >&2; exit 1; }
  else
    (cd "$PEER" && tar cf - --exclude=node_modules .) | (cd "$PEER_DIR" && tar xf -)
  fi
  PEER_DB=peer_e2e_$$
  new_db "$PEER_DB"
  PPORT=$(free_port)
  PEER_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  (cd "$PEER_DIR" && exec env DATABASE_URL="$(db_url "$PEER_DB")" API_TOKEN="$PEER_TOKEN" \
    SMTP_HOST=127.0.0.1 SMTP_PORT="$SINK_PORT" PORT="$PPORT" node server.js) 2>"$TMP/peer.log" &
  PEER_PID=$!
  pids+=("$PEER_PID")
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$PPORT/healthz" && break
    kill -0 "$PEER_PID" 2>/dev/null || { tail -n 20 "$TMP/peer.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "== peer: $(tail -n 1 "$TMP/peer.log")"
  calibrate_polls "$PEER_DB"
  PURL=http://127.0.0.1:$PPORT/api/crm/communications
  warmup "$PURL" "$PEER_TOKEN"
  for mode in $MODES; do
    case $mode in
      fixed) bodies welcome peer-fixed >"$TMP/peer-fixed.body"; measure peer peer-fixed "$PURL" "$TMP/peer-fixed.body" "$RATE" "$CONNS_FIXED" ;;
      max) bodies welcome peer-max >"$TMP/peer-max.body"; measure peer peer-max "$PURL" "$TMP/peer-max.body" 0 "$CONNS_MAX" ;;
    esac
  done
fi

echo
echo "| run | service | accepted/s | delivered/s end to end | API p50 / p99 / p99.9 | accept-to-sent p50 / p95 | CPU ms per message: service / PostgreSQL / Redis = machine | sink / loadgen | SQL statements / commits / WAL flushes per message | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if [ -n "$PEER" ]; then
  for m in fixed max; do
    [ -n "${R[$m.e2e]:-}" ] && [ -n "${R[peer-$m.e2e]:-}" ] || continue
    echo "ratio Herald / peer, $m run: delivered/s $(awk -v a="${R[$m.e2e]}" -v b="${R[peer-$m.e2e]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')x," \
      "CPU per email (Herald + PostgreSQL + Redis against peer + PostgreSQL) $(awk -v a="${R[$m.machine]}" -v b="${R[peer-$m.machine]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')x"
  done
fi

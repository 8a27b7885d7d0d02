# lib.sh - the set-up and the measurements shared by tools/bench/e2e.sh and
# tools/bench/soak.sh (sourced, not run): private services with
# pg_stat_statements, a fresh database, the C SMTP sink, the fake providers,
# `herald serve`, CPU ticks from /proc, PostgreSQL's counters.
# Every process started here is remembered and stopped by its pid on exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD:-build}
BIN=${HERALD_BIN:-$ROOT/$BUILD_DIR/herald}
SINK_BIN=$ROOT/$BUILD_DIR/smtp_sink
LOADGEN=$ROOT/$BUILD_DIR/loadgen
SVC_VAR=${HERALD_VAR_DIR:-$ROOT/var} # where tools/services.sh keeps its servers
# A server named in the environment is external (its CPU is not measured),
# unless the URL is the private server's own, as `tools/services.sh env`
# prints it (a shell that ran `eval "$(tools/services.sh env)"`).
PRIVATE_URLS=$(env -u HERALD_DATABASE_URL -u HERALD_REDIS_URL tools/services.sh env 2>/dev/null || true)
EXTERNAL_PG=
[ -n "${HERALD_DATABASE_URL:-}" ] &&
  [ "export HERALD_DATABASE_URL=$HERALD_DATABASE_URL" != "$(grep '^export HERALD_DATABASE_URL=' <<<"$PRIVATE_URLS")" ] &&
  EXTERNAL_PG=1
EXTERNAL_REDIS=
[ -n "${HERALD_REDIS_URL:-}" ] &&
  [ "export HERALD_REDIS_URL=$HERALD_REDIS_URL" != "$(grep '^export HERALD_REDIS_URL=' <<<"$PRIVATE_URLS")" ] &&
  EXTERNAL_REDIS=1
TMP=$(mktemp -d /tmp/herald-bench.XXXXXX)
HZ=$(getconf CLK_TCK)
pids=()
dbs=()

for f in "$BIN" "$SINK_BIN" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench: $f is missing (make build)" >&2; exit 1; }
done

bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${dbs[@]}"; do
    if [ "${BENCH_KEEP_DB:-0}" = 1 ]; then echo "bench: database $p kept"; continue; fi
    psql -X -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS \"$p\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap bench_cleanup EXIT

# The port of a free local socket (the kernel's choice; it may be taken again
# before use, which the start-up checks would report).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_file() { # file [tenths]
  local i
  for ((i = 0; i < ${2:-100}; i++)); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "bench: $1 did not appear" >&2
  return 1
}

# PostgreSQL and Redis under var/ (or the servers named in the environment),
# with pg_stat_statements loaded when the server is ours: a running server
# without it is restarted once (it is the private development server).
start_services() {
  HERALD_PG_PRELOAD=pg_stat_statements tools/services.sh start >/dev/null
  eval "$(tools/services.sh env)"
  ADMIN=${HERALD_DATABASE_URL%/*}/postgres
  PSS=0
  if ! psql -X -qtA -d "$ADMIN" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements &&
    [ -z "$EXTERNAL_PG" ] && [ "${BENCH_RESTART_PG:-1}" = 1 ]; then
    echo "bench: restarting the private PostgreSQL ($SVC_VAR/pg) with pg_stat_statements loaded"
    tools/services.sh stop pg
    HERALD_PG_PRELOAD=pg_stat_statements tools/services.sh start >/dev/null
  fi
  if psql -X -qtA -d "$ADMIN" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements; then
    psql -X -q -d "$ADMIN" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 && PSS=1
  fi
  PM_PID=
  [ -z "$EXTERNAL_PG" ] && [ -r "$SVC_VAR/pg/data/postmaster.pid" ] &&
    PM_PID=$(head -n 1 "$SVC_VAR/pg/data/postmaster.pid")
  REDIS_PID=
  [ -z "$EXTERNAL_REDIS" ] && [ -r "$SVC_VAR/redis/redis.pid" ] &&
    REDIS_PID=$(cat "$SVC_VAR/redis/redis.pid")
  # PG_MAX_WAL_SIZE (e.g. 4GB): on the private server only, for runs whose
  # WAL volume would otherwise start a checkpoint every minute (ALTER SYSTEM:
  # it stays until changed back; machine_facts prints it)
  if [ -n "${PG_MAX_WAL_SIZE:-}" ] && [ -z "$EXTERNAL_PG" ]; then
    psql -X -q -d "$ADMIN" -c "ALTER SYSTEM SET max_wal_size = '$PG_MAX_WAL_SIZE'" \
      -c "SELECT pg_reload_conf()" >/dev/null
  fi
  PG_VERSION=$(psql -X -qtA -d "$ADMIN" -c "SHOW server_version")
  PG_WAL=$(psql -X -qtA -d "$ADMIN" -c "SHOW max_wal_size")
}

# The N seconds of a loadgen --timeline with the slowest answers from the
# send (the server's part), as "second: p99 / max ms (sent up to L ms late)".
worst_seconds() { # file n
  [ -s "$1" ] || { echo "no timeline"; return; }
  grep -v '^#' "$1" | sort -k7,7gr | head -n "$2" |
    awk 'BEGIN { printf "slowest seconds:" } { printf "%s %s s: %s / %s ms (sent up to %s ms late)", (NR > 1 ? ";" : ""), $1, $7, $8, $6 }
         END { print "" }'
}

new_db() { # name -> creates it; dropped on exit
  psql -X -q -d "$ADMIN" -c "CREATE DATABASE \"$1\"" >/dev/null
  dbs+=("$1")
}

db_url() { echo "${HERALD_DATABASE_URL%/*}/$1"; }

start_sink() {
  "$SINK_BIN" --ready-file "$TMP/sink.port" --stats-file "$TMP/sink.stats" &
  SINK_PID=$!
  pids+=("$SINK_PID")
  wait_file "$TMP/sink.port"
  SINK_PORT=$(cat "$TMP/sink.port")
}

sink_stat() { awk -v k="$1" '$1 == k {print $2}' "$TMP/sink.stats"; }

sink_reset() {
  kill -USR2 "$SINK_PID"
  local i
  for ((i = 0; i < 50; i++)); do [ "$(sink_stat messages)" = 0 ] && return 0; sleep 0.05; done
}

# Waits until the sink has n messages, or nothing arrived for `quiet` seconds.
sink_wait() { # n [quiet]
  local last=-1 still=0 got
  while :; do
    kill -USR1 "$SINK_PID"
    sleep 0.1
    got=$(sink_stat messages)
    [ "$got" -ge "$1" ] && return 0
    if [ "$got" = "$last" ]; then
      still=$((still + 1))
      [ $still -ge $((${2:-20} * 10)) ] && return 1
    else
      still=0
      last=$got
    fi
  done
}

# Fake Twilio and Meta (tests/fakes/fake_providers.py) for SMS and WhatsApp.
start_fakes() {
  /usr/bin/python3 tests/fakes/fake_providers.py --port 0 --ready-file "$TMP/fakes.port" \
    >/dev/null 2>"$TMP/fakes.log" &
  FAKES_PID=$!
  pids+=("$FAKES_PID")
  wait_file "$TMP/fakes.port"
  FAKES_PORT=$(cat "$TMP/fakes.port")
}

# `herald serve` on the database `db`: email over SMTP to the sink, SMS and
# WhatsApp to the fakes, API limits out of the way (the limiter still runs).
start_herald() { # db
  HPORT=$(free_port)
  mkdir -p "$TMP/var"
  HERALD_ENV=(HERALD_DATABASE_URL="$(db_url "$1")" HERALD_VAR_DIR="$TMP/var"
    HERALD_LOG_LEVEL=warn HERALD_LISTEN="127.0.0.1:$HPORT"
    HERALD_PUBLIC_URL="http://127.0.0.1:$HPORT"
    HERALD_EMAIL_DRIVER=smtp HERALD_SMTP_STARTTLS=off HERALD_SMTP_URL="smtp://127.0.0.1:$SINK_PORT"
    HERALD_SMS_DRIVER=twilio HERALD_TWILIO_BASE_URL="http://127.0.0.1:${FAKES_PORT:-9}"
    HERALD_TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000
    HERALD_TWILIO_AUTH_TOKEN=test-token HERALD_TWILIO_FROM=+15005550006
    HERALD_WHATSAPP_DRIVER=whatsapp HERALD_WHATSAPP_BASE_URL="http://127.0.0.1:${FAKES_PORT:-9}"
    HERALD_WHATSAPP_PHONE_NUMBER_ID=1234567890 HERALD_WHATSAPP_TOKEN=test-meta-token
    HERALD_LIMIT_API_RATE=1000000 HERALD_LIMIT_API_BURST=1000000)
  env "${HERALD_ENV[@]}" "$BIN" migrate >/dev/null 2>"$TMP/migrate.log" ||
    { cat "$TMP/migrate.log" >&2; exit 1; }
  env "${HERALD_ENV[@]}" "$BIN" serve 2>>"$TMP/herald.log" &
  HPID=$!
  pids+=("$HPID")
  local i
  for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$HPORT/api/crm/health" && break
    kill -0 "$HPID" 2>/dev/null || { tail -n 20 "$TMP/herald.log" >&2; exit 1; }
    sleep 0.1
  done
  TOKEN=$(env "${HERALD_ENV[@]}" "$BIN" token --sub bench --scopes send,read --ttl 86400 2>/dev/null)
  HPIDS=("$HPID") HPORTS=("$HPORT")
}

# N - 1 more `herald serve` processes on the database of start_herald, each
# with its own port and var directory (HPIDS, HPORTS list them all).
start_more_heralds() { # n
  local k i port
  for ((k = 2; k <= $1; k++)); do
    port=$(free_port)
    mkdir -p "$TMP/var$k"
    cp -a "$TMP/var/dev-keys" "$TMP/var$k/" # the same secrets: tokens and sealed fields
    env "${HERALD_ENV[@]}" HERALD_LISTEN="127.0.0.1:$port" HERALD_VAR_DIR="$TMP/var$k" \
      "$BIN" serve 2>>"$TMP/herald$k.log" &
    HPIDS+=("$!") HPORTS+=("$port")
    pids+=("$!")
    for ((i = 0; i < 200; i++)); do
      curl -s -o /dev/null "http://127.0.0.1:$port/api/crm/health" && break
      kill -0 "$!" 2>/dev/null || { tail -n 20 "$TMP/herald$k.log" >&2; exit 1; }
      sleep 0.1
    done
  done
}

stop_pid() { # pid: TERM, wait
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# CPU ticks (utime + stime) of one process; with "all", its waited-for
# children's too (cutime + cstime): the postmaster collects its backends'.
ticks() { # pid [all]
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  awk -v all="${2:-}" '{ sub(/^.*\) /, ""); print $12 + $13 + (all ? $14 + $15 : 0) }' "/proc/$1/stat"
}

# The whole PostgreSQL cluster: the postmaster, the backends that have ended
# (its cutime/cstime) and those alive now.
pg_ticks() {
  [ -n "$PM_PID" ] || { echo 0; return; }
  local sum c
  sum=$(ticks "$PM_PID" all)
  for c in $(ps -o pid= --ppid "$PM_PID"); do sum=$((sum + $(ticks "$c"))); done
  echo "$sum"
}

# Busy ticks of the whole machine (every CPU, /proc/stat): user + nice +
# system + irq + softirq + steal.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# Context switches of every thread of a process: "voluntary involuntary"
# (/proc/<pid>/task/*/status; threads that ended meanwhile are not counted).
switches() { # pid
  [ -n "$1" ] && [ -d "/proc/$1/task" ] || { echo "0 0"; return; }
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v + 0, n + 0 }'
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Resets a process's peak RSS (VmHWM) so the next reading is this run's.
hwm_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

# Queries of the bench's own carry this tag, so pg_stat_statements leaves
# them out; each also counts one commit, subtracted from xact_commit.
dbq() { # db sql...
  local db=$1
  shift
  echo x >>"$TMP/polls.$db"
  psql -X -qtA -F ' ' -d "$(db_url "$db")" "$@"
}
polls() { [ -f "$TMP/polls.$1" ] && wc -l <"$TMP/polls.$1" || echo 0; }

# Cluster-wide and per-database counters:
# "commits wal_sync wal_records wal_bytes wal_fpi".
pg_counters() { # db
  psql -X -qtA -F ' ' -d "$ADMIN" -v db="$1" <<'SQL'
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = :'db'),
       wal_sync, wal_records, wal_bytes, wal_fpi FROM pg_stat_wal;
SQL
}

pss_reset() { [ "$PSS" = 1 ] && psql -X -qtA -d "$ADMIN" -c "SELECT pg_stat_statements_reset()" >/dev/null || true; }

# "statements exec_ms" of database db since the reset, the bench's own left out.
pss_totals() { # db
  [ "$PSS" = 1 ] || { echo "- -"; return; }
  psql -X -qtA -F ' ' -d "$ADMIN" -v db="$1" <<'SQL'
SELECT coalesce(sum(calls), 0), round(coalesce(sum(total_exec_time), 0)::numeric, 1)
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = :'db' AND s.query NOT LIKE '%bench-e2e%';
SQL
}

# The statements that cost most, per email.
pss_top() { # db n
  [ "$PSS" = 1 ] || return 0
  psql -X -qtA -F '|' -d "$ADMIN" -v db="$1" -v n="$2" <<'SQL' |
SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),
       left(regexp_replace(query, '\s+', ' ', 'g'), 100)
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = :'db' AND s.query NOT LIKE '%bench-e2e%'
 ORDER BY total_exec_time DESC LIMIT 6;
SQL
    awk -F '|' -v n="$2" '{ printf "     %6.2f calls %7.3f ms/email  (%.3f ms each)  %s\n", $1 / n, $2 / n, $3, $4 }'
}

machine_facts() {
  echo "machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(free -m | awk '/^Mem:/ {print $2}') MiB;" \
    "PostgreSQL ${PG_VERSION:-?} (max_wal_size ${PG_WAL:-?}); $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $(cut -d ' ' -f 1-3 /proc/loadavg)"
}

# The declared examples of the message types (scripts/types.lua), through the
# API: every context satisfies its type's declaration.
fetch_types() {
  curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HPORT/api/crm/message-types" >"$TMP/types.json"
}

# body lines for loadgen: $ID is a new client per request, $CLIENT a stored one
bodies() { # kind plan_id > file
  /usr/bin/python3 - "$TMP/types.json" "$1" "$2" <<'PY'
import json, sys
types = {t["name"]: t for t in json.load(open(sys.argv[1]))["message_types"]}
kind, plan = sys.argv[2], sys.argv[3]
def context(name):
    c = dict(types[name]["example"])
    c.pop("plan_id", None)        # the request's plan_id is the run's label
    c.pop("client_name", None)    # the recipient's or the stored name
    return c
def line(mtype, urgency, **extra):
    body = {"plan_id": plan, "message_type": mtype, "urgency": urgency, "context": context(mtype)}
    body.update(extra)
    print(json.dumps(body, separators=(",", ":")))
if kind == "welcome":
    line("welcome", "high", client_id="$ID",
         recipient={"name": "Client $ID", "email": "$ID@bench.example"})
else:  # the mix, to stored clients; one line per tenth of the requests
    for mtype, urgency in [("welcome", "high"), ("welcome", "high"), ("welcome", "critical"),
                           ("vendor_options", "high"), ("vendor_options", "high"),
                           ("selection_confirmation", "high"), ("blueprint_delivery", "high"),
                           ("budget_summary", "normal"), ("error_notification", "critical"),
                           ("reminder", "low")]:
        line(mtype, urgency, client_id="$CLIENT")
PY
}

# one value of a loadgen report: lg run key
lg() { awk -v k="$2" '$1 == k {print $2}' "$TMP/$1.lg"; }

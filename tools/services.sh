#!/usr/bin/env bash
# services.sh - a private PostgreSQL and Redis for development and tests,
# kept under var/ so nothing outside the checkout is touched.
#
#   tools/services.sh start   start both (idempotent), create the database
#   tools/services.sh stop [pg|redis]    stop what is running under var/
#   tools/services.sh status [pg|redis]  exit 0 when it answers
#   tools/services.sh env     print the HERALD_*_URL exports for them
#
# When HERALD_DATABASE_URL / HERALD_REDIS_URL are already set, the matching
# private service is neither started nor stopped.
#
# HERALD_PG_PRELOAD=pg_stat_statements starts PostgreSQL with that in
# shared_preload_libraries (the benchmarks' statement counts, tools/bench/e2e.sh);
# it takes effect when the server starts, so a running one is left as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=${HERALD_VAR_DIR:-$ROOT/var}
PG_PORT=${HERALD_PG_PORT:-55432}
REDIS_PORT=${HERALD_REDIS_PORT:-56379}
PG_DIR=$VAR/pg
REDIS_DIR=$VAR/redis
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

# initdb refuses to run as root: as root, the cluster belongs to `postgres`.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_url() { echo "postgresql://herald@127.0.0.1:$PG_PORT/herald"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT/0"; }

# The private service is ours to manage when no URL names another server;
# a URL that names it (what `env` prints) still means ours.
ours_pg() { [ -z "${HERALD_DATABASE_URL:-}" ] || [ "$HERALD_DATABASE_URL" = "$(pg_url)" ]; }
ours_redis() { [ -z "${HERALD_REDIS_URL:-}" ] || [ "$HERALD_REDIS_URL" = "$(redis_url)" ]; }

start_pg() {
  ours_pg || return 0
  [ -x "$PG_BIN/initdb" ] || { echo "services: PostgreSQL binaries not found; run tools/deps.sh" >&2; exit 1; }
  mkdir -p "$PG_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U herald --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
      echo "services: port $PG_PORT already has a PostgreSQL that is not $PG_DIR;" \
        "stop it, or pick another port with HERALD_PG_PORT=..." >&2
      exit 1
    fi
    # The default ports lie in Linux's ephemeral range (32768-60999): an
    # outgoing connection of another program can hold the port for a while,
    # and the bind fails. That passes: try again for up to 30 s.
    local tries=0 preload=""
    [ -n "${HERALD_PG_PRELOAD:-}" ] && preload="-c shared_preload_libraries=$HERALD_PG_PRELOAD"
    until as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 60 -l "$PG_DIR/server.log" \
      -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on $preload" start >/dev/null; do
      tries=$((tries + 1))
      if [ $tries -ge 30 ] || ! tail -n 5 "$PG_DIR/server.log" | grep -q "Address already in use"; then
        tail -n 20 "$PG_DIR/server.log" >&2
        exit 1
      fi
      echo "services: port $PG_PORT is held by another connection; trying again" >&2
      sleep 1
    done
  fi
  for _ in $(seq 1 50); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.2
  done
  if ! psql -qtA -h 127.0.0.1 -p "$PG_PORT" -U herald -d postgres -c "SELECT 1 FROM pg_database WHERE datname='herald'" | grep -q 1; then
    psql -q -h 127.0.0.1 -p "$PG_PORT" -U herald -d postgres -c "CREATE DATABASE herald" >/dev/null
  fi
}

start_redis() {
  ours_redis || return 0
  mkdir -p "$REDIS_DIR"
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    # Ours only when it keeps its files in our directory.
    if [ "$(redis-cli -p "$REDIS_PORT" config get dir 2>/dev/null | tail -n 1)" = "$(cd "$REDIS_DIR" && pwd -P)" ]; then
      return 0
    fi
    echo "services: port $REDIS_PORT already has a Redis that is not $REDIS_DIR;" \
      "stop it, or pick another port with HERALD_REDIS_PORT=..." >&2
    exit 1
  fi
  # As for PostgreSQL: the port may be held for a while by an outgoing
  # connection (the ephemeral range); try again for up to 30 s.
  for _ in $(seq 1 30); do
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --daemonize yes \
      --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do
      redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    tail -n 5 "$REDIS_DIR/redis.log" 2>/dev/null | grep -q "Address already in use" || break
    echo "services: port $REDIS_PORT is held by another connection; trying again" >&2
  done
  echo "services: redis did not start; see $REDIS_DIR/redis.log" >&2
  exit 1
}

stop_pg() {
  if ours_pg && [ -f "$PG_DIR/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

stop_redis() {
  if ours_redis; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

# exit 0 when the named private service answers (or an external one is configured)
status_pg() { ! ours_pg || "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
status_redis() { ! ours_redis || redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; }

what=${2:-all}
case "$what" in all|pg|redis) ;; *) echo "services: expected all, pg or redis, got $what" >&2; exit 2 ;; esac
case "${1:-}" in
  start) start_pg; start_redis ;;
  stop)
    [ "$what" = redis ] || stop_pg
    [ "$what" = pg ] || stop_redis
    ;;
  status)
    case "$what" in
      pg) status_pg ;;
      redis) status_redis ;;
      all) status_pg && status_redis ;;
    esac
    ;;
  env)
    echo "export HERALD_DATABASE_URL=${HERALD_DATABASE_URL:-$(pg_url)}"
    echo "export HERALD_REDIS_URL=${HERALD_REDIS_URL:-$(redis_url)}"
    ;;
  *) echo "usage: tools/services.sh start|stop|status|env [all|pg|redis]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# run.sh - `make run`: services, migrations, a development token, then
# `herald serve` in the foreground. Ctrl-C stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${HERALD_BIN:-$ROOT/build/herald}

# Stop on exit only what this run started: services already running (another
# `make run`, a test session) are left alone.
orig_db=${HERALD_DATABASE_URL-}
orig_redis=${HERALD_REDIS_URL-}
started=()
tools/services.sh status pg >/dev/null 2>&1 || started+=(pg)
tools/services.sh status redis >/dev/null 2>&1 || started+=(redis)
cleanup() {
  for s in "${started[@]}"; do
    echo "herald: stopping the private $s" >&2
    HERALD_DATABASE_URL=$orig_db HERALD_REDIS_URL=$orig_redis "$ROOT/tools/services.sh" stop "$s"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tools/services.sh start
eval "$(tools/services.sh env)"

"$BIN" migrate
TOKEN=$("$BIN" token --sub dev --scopes send,read,admin --ttl 86400)
LISTEN=${HERALD_LISTEN:-127.0.0.1:8080}
OUTBOX=${HERALD_OUTBOX_DIR:-var/outbox}
cat >&2 <<TXT

  Herald is starting on http://$LISTEN  (development token below, valid 24 h)

    curl -s http://$LISTEN/api/crm/health
    curl -s -H "Authorization: Bearer $TOKEN" http://$LISTEN/api/crm/auth/me

  Send a first message: a client's preferences, then a welcome (?wait=5 answers
  once it is sent):

    curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{"client_id":"c-1","name":"Maria Alvarez","email":"maria@example.com","timezone":"Europe/Paris"}' \\
         http://$LISTEN/api/crm/preferences
    curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
         -d '{"plan_id":"plan-1","client_id":"c-1","message_type":"welcome","urgency":"critical","context":{"event_type":"wedding","event_date":"2027-06-14","plan_url":"https://plans.example.com/plan-1"}}' \\
         'http://$LISTEN/api/crm/communications?wait=5'

  With the default outbox driver it lands in $OUTBOX/email/ (an .eml per attempt),
  and shows on the dashboard, http://$LISTEN/dashboard (sign in with an API key:
  $BIN apikey create --name me --scopes send,read,admin).
  What each message type needs in its context: curl -s -H "Authorization: Bearer $TOKEN"
  http://$LISTEN/api/crm/message-types, or build/herald types.

TXT
# Not exec: the trap must run to stop the services after Ctrl-C.
"$BIN" serve &
child=$!
# Ctrl-C reaches the whole process group; herald stops cleanly on SIGINT and
# a clean stop is a successful run.
trap 'kill -INT $child 2>/dev/null || true' INT TERM
set +e
wait $child
rc=$?
# wait returns early (status > 128) when a trapped signal arrives; the second
# wait gives herald's own exit status.
[ $rc -gt 128 ] && { wait $child; rc=$?; }
exit $rc

#!/usr/bin/env bash
# bench-transport.sh - the transport drivers under load, through `herald
# deliver` (the libcurl multi loop), against local peers:
#   SMTP: N emails into tests/fakes/smtp_sink.py (--discard) over K connections
#   HTTP: N SMS into the fake Twilio and N WhatsApp into the fake Meta, each
#         answering after 50 ms, with 200 requests in flight
# Prints messages/s, CPU seconds per 1,000 messages and peak memory.
#   tools/bench-transport.sh [N] [K]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-20000}
K=${2:-8}
BIN=${HERALD_BIN:-$ROOT/build/herald}
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

wait_ready() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "bench: $1 not ready" >&2; exit 1; }

/usr/bin/python3 tests/fakes/smtp_sink.py --port 0 --ready-file "$TMP/smtp" --discard --stats-port 0 >/dev/null 2>&1 &
pids+=($!)
/usr/bin/python3 tests/fakes/fake_providers.py --port 0 --ready-file "$TMP/http" --latency-ms 50 >/dev/null 2>&1 &
pids+=($!)
wait_ready "$TMP/smtp"
wait_ready "$TMP/http"
SMTP_PORT=$(sed -n 1p "$TMP/smtp")
STATS_PORT=$(sed -n 2p "$TMP/smtp")
HTTP_PORT=$(cat "$TMP/http")

# the config with K SMTP connections and 200 HTTP requests in flight
export HERALD_VAR_DIR="$TMP/var" HERALD_SMTP_CONNECTIONS=$K HERALD_SMS_IN_FLIGHT=200 HERALD_WHATSAPP_IN_FLIGHT=200
export HERALD_EMAIL_DRIVER=smtp HERALD_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" HERALD_SMTP_STARTTLS=off
export HERALD_SMS_DRIVER=twilio HERALD_TWILIO_BASE_URL="http://127.0.0.1:$HTTP_PORT"
export HERALD_TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 HERALD_TWILIO_AUTH_TOKEN=test-token
export HERALD_TWILIO_FROM=+15005550006
export HERALD_WHATSAPP_DRIVER=whatsapp HERALD_WHATSAPP_BASE_URL="http://127.0.0.1:$HTTP_PORT/v18.0"
export HERALD_WHATSAPP_PHONE_NUMBER_ID=1234567890 HERALD_WHATSAPP_TOKEN=test-meta-token

gen() { # channel count
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
ch, n = sys.argv[1], int(sys.argv[2])
html = "<p>" + "Your plan is ready. " * 20 + "</p>"
for i in range(n):
    if ch == "email":
        m = {"channel": "email", "to": "client%d@example.com" % i, "to_name": "Client %d" % i,
             "subject": "Your budget summary %d" % i, "text": "Hello, your plan is ready. " * 10,
             "html": html, "comm_id": "bench-e-%d" % i}
    else:
        m = {"channel": ch, "to": "+14155551234",
             "text": "Hi Maria, your vendor options are ready: https://app.example/p/%d" % i,
             "comm_id": "bench-%s-%d" % (ch, i)}
    print(json.dumps(m))
PY
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); N=$N, K=$K"
gen email "$N" > "$TMP/email.jsonl"
echo "== SMTP: $N emails over $K connections (sink discards)"
"$BIN" deliver --no-classify --quiet --stats < "$TMP/email.jsonl"
echo "   sink: $(curl -s "http://127.0.0.1:$STATS_PORT/_stats" | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print("%d messages over %d sessions" % (s["messages"], s["sessions"]))')"
for ch in sms whatsapp; do
  gen "$ch" "$N" > "$TMP/$ch.jsonl"
  echo "== $ch: $N messages, fake provider answering after 50 ms, 200 in flight"
  "$BIN" deliver --no-classify --quiet --stats < "$TMP/$ch.jsonl"
done

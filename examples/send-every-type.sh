#!/usr/bin/env bash
# send-every-type.sh - what a workflow does with Herald, end to end: store a
# client's preferences, then send every message type with the example context
# Herald itself serves (GET /api/crm/message-types, declared in
# scripts/types.lua), and show where each went.
#
#   examples/send-every-type.sh [BASE_URL]      (default http://127.0.0.1:8080)
#
# Needs a token with the send and read scopes in $TOKEN (`make run` prints
# one), curl and python3. Each send waits for its first outcome (?wait=5).
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
: "${TOKEN:?set TOKEN to an access token with the send and read scopes (make run prints one)}"
AUTH="Authorization: Bearer $TOKEN"
CLIENT=example-$(date +%s)

curl -sf -X POST -H "$AUTH" -H 'Content-Type: application/json' \
     -d "{\"client_id\":\"$CLIENT\",\"name\":\"Maria Alvarez\",\"email\":\"maria@example.com\",
          \"phone\":\"+14155550100\",\"timezone\":\"Europe/Paris\"}" \
     "$BASE/api/crm/preferences" >/dev/null

curl -sf -H "$AUTH" "$BASE/api/crm/message-types" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["message_types"]:
    if t["name"] != "digest":  # the engine builds digests itself
        print(t["name"], json.dumps(t["example"]))
' | while read -r type context; do
  body="{\"plan_id\":\"example-plan\",\"client_id\":\"$CLIENT\",\"message_type\":\"$type\",
         \"urgency\":\"critical\",\"context\":$context}"
  answer=$(curl -s -X POST -H "$AUTH" -H 'Content-Type: application/json' -d "$body" \
           "$BASE/api/crm/communications?wait=5")
  printf '%-24s %s\n' "$type" "$(echo "$answer" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if "error" in d:
    print("refused:", d["error"]["code"], d["error"]["message"])
else:
    print(d["status"], "by", d["strategy"]["primary_channel"], d["id"])
')"
done

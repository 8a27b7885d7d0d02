#!/usr/bin/env python3
"""planner.py - an event-planning workflow talking to Herald (Python standard library only).

It plays the six points where the planning workflow tells a client something:

  welcome -> budget summary -> vendor options -> selection confirmation
  -> blueprint (with its PDF attached) -> an error notification (a vendor cancelled)

Each step sends with `?wait=` (the answer comes once the message has its first
outcome) and an Idempotency-Key (a retried step never sends twice), then the
history API lists what the plan sent, page by page.

    make run                                   # in another shell; it prints a token
    TOKEN=... examples/workflow/planner.py     # or --api-key KEY (exchanged for a token)

Options: --url (default http://127.0.0.1:8080), --client, --plan, --wait SECONDS,
--urgency U (every step at U instead of the policy's default for its type: with the
default, normal-urgency steps wait for the client's business hours), --json (a summary
on stdout, for scripts). Exits 1 when Herald refuses a step.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid


class Herald:
    """The few calls a workflow needs."""

    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, headers=None):
        """(status, JSON answer); HTTP errors are answers too."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"error": {"code": "http_%d" % e.code, "message": raw[:200].decode()}}

    def login(self, api_key):
        status, doc = self.call("POST", "/api/crm/auth/token", {"api_key": api_key})
        if status != 200:
            raise SystemExit("planner: the API key was refused: %s" % doc["error"]["message"])
        self.token = doc["access_token"]

    def send(self, message, wait, key):
        path = "/api/crm/communications?wait=%d" % wait
        return self.call("POST", path, message, {"Idempotency-Key": key})

    def history(self, plan_id, page_size=4):
        """Every message of the plan, newest first, following next_cursor."""
        items, cursor = [], None
        while True:
            q = {"plan_id": plan_id, "limit": page_size}
            if cursor:
                q["cursor"] = cursor
            status, doc = self.call("GET", "/api/crm/communications?" + urllib.parse.urlencode(q))
            if status != 200:
                raise SystemExit("planner: history: %s" % doc["error"]["message"])
            items += doc["items"]
            cursor = doc["next_cursor"]
            if not cursor:
                return items


def blueprint_pdf(plan):
    """A one-page PDF of the plan's blueprint (a real, minimal PDF 1.4)."""
    text = "Blueprint for %s - %s" % (plan["event_type"], plan["event_date"])
    stream = "BT /F1 18 Tf 72 720 Td (%s) Tj ET" % text.replace("(", "[").replace(")", "]")
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        "<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += ("%d 0 obj\n%s\nendobj\n" % (i, body)).encode()
    xref = len(out)
    out += ("xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)).encode()
    out += "".join("%010d 00000 n \n" % o for o in offsets).encode()
    out += ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref)).encode()
    return out


def steps(plan):
    """The workflow's six messages: (step, message_type, context, attachments)."""
    common = {"event_type": plan["event_type"], "event_date": plan["event_date"],
              "plan_url": plan["plan_url"], "client_name": plan["client_name"]}
    vendors = [
        {"name": "Harbor House Loft", "category": "Venue", "price": 5200,
         "url": "https://vendors.example.com/v/harbor-house-loft"},
        {"name": "Saffron & Salt", "category": "Catering", "price": 4800,
         "url": "https://vendors.example.com/v/saffron-and-salt"},
    ]
    pdf = blueprint_pdf(plan)
    return [
        ("welcome", "welcome", dict(common, next_steps=["Tell us your budget",
                                                        "Pick a time for a kickoff call"]), None),
        ("budget", "budget_summary", dict(common, currency="USD", total_budget=18000,
                                           recommended="Balanced", strategies=[
            {"name": "Essential", "total": 14500, "description": "A loft venue and a buffet."},
            {"name": "Balanced", "total": 17250, "description": "Plated dinner and a DJ."}]),
         None),
        ("vendors", "vendor_options", dict(common, currency="USD", categories=[
            {"name": v["category"], "vendors": [{"name": v["name"], "url": v["url"],
                                                  "price": v["price"], "rating": 4.7}]}
            for v in vendors]), None),
        ("selection", "selection_confirmation", dict(common, currency="USD",
                                                     selected_vendors=vendors,
                                                     selection_total=10000), None),
        ("blueprint", "blueprint_delivery", dict(common, blueprint_pages=1,
                                                 blueprint_url=plan["plan_url"] + "/blueprint.pdf"),
         [{"filename": "blueprint.pdf", "content_type": "application/pdf",
           "content_base64": base64.b64encode(pdf).decode()}]),
        ("error", "error_notification", dict(common,
                                             error_summary="Your caterer cancelled.",
                                             action="Pick another caterer by Friday."), None),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("HERALD_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--api-key", default=os.environ.get("HERALD_API_KEY"))
    ap.add_argument("--client", default="planner-" + uuid.uuid4().hex[:8])
    ap.add_argument("--plan", default="plan-" + uuid.uuid4().hex[:8])
    ap.add_argument("--wait", type=int, default=10)
    ap.add_argument("--urgency", choices=["low", "normal", "high", "critical"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    herald = Herald(args.url, os.environ.get("TOKEN") or os.environ.get("HERALD_TOKEN"))
    if args.api_key:
        herald.login(args.api_key)
    if not herald.token:
        raise SystemExit("planner: set TOKEN (make run prints one) or pass --api-key")
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    plan = {"event_type": "graduation party", "event_date": "2027-06-12",
            "plan_url": "https://plans.example.com/" + args.plan, "client_name": "Sam Rivera"}
    status, prefs = herald.call("POST", "/api/crm/preferences", {
        "client_id": args.client, "name": plan["client_name"], "email": "sam@example.com",
        "phone": "+14155550123", "timezone": "America/Chicago",
        "consent": {"given": True, "source": "planner signup form"}})
    if status not in (200, 201):
        raise SystemExit("planner: preferences refused: %s" % prefs["error"]["message"])
    say("client %s stored (%s)" % (args.client, "created" if status == 201 else "updated"))

    results, failed = [], False
    for step, mtype, context, attachments in steps(plan):
        message = {"plan_id": args.plan, "client_id": args.client, "message_type": mtype,
                   "context": context}
        if args.urgency:
            message["urgency"] = args.urgency
        if attachments:
            message["attachments"] = attachments
        status, doc = herald.send(message, args.wait, "%s-%s" % (args.plan, step))
        if status != 202:
            failed = True
            say("%-10s refused %d %s: %s" % (step, status, doc["error"]["code"],
                                             doc["error"]["message"]))
            results.append({"step": step, "message_type": mtype, "http": status,
                            "error": doc["error"]})
            continue
        _, full = herald.call("GET", "/api/crm/communications/" + doc["id"])
        channel = full.get("channel") or doc["strategy"]["primary_channel"]
        say("%-10s %-22s %-9s by %-8s at %s  %s" % (step, mtype, full["status"], channel,
                                                  doc["strategy"]["send_at"], doc["id"]))
        results.append({"step": step, "message_type": mtype, "http": status, "id": doc["id"],
                        "status": full["status"], "channel": full.get("channel"),
                        "strategy": doc["strategy"], "attempts": len(full["attempts"])})

    listed = herald.history(args.plan)
    say("history of %s: %d messages" % (args.plan, len(listed)))
    for item in listed:
        say("  %s  %-22s %-9s %s" % (item["created_at"], item["message_type"], item["status"],
                                     item["channel"] or "-"))
    if args.json:
        print(json.dumps({"client_id": args.client, "plan_id": args.plan, "steps": results,
                          "history": listed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Large and bursty provider callbacks (issue 17, item 6): a Meta status
callback with 3,000 statuses and a burst of Twilio callbacks are answered
within a bound (2 s for the 3,000, 500 ms at the 95th percentile of the
burst; the old code answered the 3,000 with a 503 after 10 s), and every status is applied afterwards (the status of
each message, one event each); a callback over http.webhook_max_bytes is
413 with a JSON error and nothing of it is applied.

The messages are made directly in the database (sent on WhatsApp or SMS,
with the attempt row a receipt finds them by): what is measured is the
receipt path, not the sends."""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

import harness

SID, TOKEN = "AC00000000000000000000000000000000", "burst-token"
PUBLIC = "https://herald.example.com"
TW = "/api/crm/webhooks/twilio"
WA = "/api/crm/webhooks/whatsapp"
APP_SECRET = "wa-app-secret-" + uuid.uuid4().hex
BOUND_S = 0.5
# The bound is about the plain build. The sanitizer run (ASAN_OPTIONS set)
# takes 7-11 s for 3,000 (instrumented parsing, not the database), near the
# engine's 10 s answer limit on a loaded machine: there it checks the batch
# path's memory safety on 1,000 statuses within 9 s.
SANITIZED = bool(os.environ.get("ASAN_OPTIONS"))
META_BOUND_S = 9.0 if SANITIZED else 2.0
STATUSES = 1000 if SANITIZED else 3000
TWILIO_BURST = 600
WEBHOOK_MAX = 2 * 1024 * 1024  # the default of http.webhook_max_bytes


def meta_signature(body):
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(url, params):
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def wa_status(wamid, status, ts):
    # what Meta sends for a delivered business-initiated message
    return {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": "14155551234",
            "conversation": {"id": "c" + hashlib.md5(wamid.encode()).hexdigest(),
                             "origin": {"type": "utility"}},
            "pricing": {"billable": True, "pricing_model": "CBP", "category": "utility"}}


def wa_payload(statuses):
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{
                "field": "messages",
                "value": {"messaging_product": "whatsapp",
                          "metadata": {"display_phone_number": "15550783881",
                                       "phone_number_id": "1234567890"},
                          "statuses": statuses}}]}]}


class WebhookBurstTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_PUBLIC_URL": PUBLIC,
            "HERALD_WORKERS": "2",
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_WHATSAPP_APP_SECRET": APP_SECRET})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                            "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, p.stderr.decode()))
        return p.stdout.decode().rstrip("\n")

    def sent_messages(self, channel, n):
        """n messages 'sent' on channel, each with its attempt row; their provider ids."""
        tag = uuid.uuid4().hex[:10]
        self.psql(
            "WITH c AS (INSERT INTO crm_communications (client_id, message_type, urgency, "
            "primary_channel, channel, status, send_at, sent_at, attempt_count, "
            "provider_message_id) SELECT 'burst-' || i, 'welcome', 'normal', '%(ch)s', "
            "'%(ch)s', 'sent', now(), now() - interval '1 minute', 1, 'p-%(tag)s-' || i "
            "FROM generate_series(1, %(n)d) i RETURNING id, provider_message_id) "
            "INSERT INTO crm_delivery_logs (communication_id, kind, channel, attempt, status, "
            "provider, provider_message_id) SELECT id, 'attempt', '%(ch)s', 1, 'ok', '%(ch)s', "
            "provider_message_id FROM c" % {"ch": channel, "tag": tag, "n": n})
        return ["p-%s-%d" % (tag, i) for i in range(1, n + 1)]

    def count_status(self, pids, status):
        return int(self.psql(
            "SELECT count(*) FROM crm_communications WHERE provider_message_id = ANY('{%s}') "
            "AND status = '%s'" % (",".join(pids), status)))

    def count_events(self, pids):
        return int(self.psql(
            "SELECT count(*) FROM crm_delivery_logs WHERE kind = 'event' "
            "AND provider_message_id = ANY('{%s}')" % ",".join(pids)))

    def wait_applied(self, pids, status, events, timeout=60):
        deadline = time.time() + timeout
        while True:
            got = self.count_status(pids, status)
            ev = self.count_events(pids)
            if got == len(pids) and ev == events or time.time() > deadline:
                return got, ev
            time.sleep(0.25)

    def post_whatsapp(self, doc):
        body = json.dumps(doc).encode()
        hdr = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
        t0 = time.monotonic()
        r = self.server.request("POST", WA, body=body, headers=hdr, timeout=30)
        return r, time.monotonic() - t0, len(body)

    def test_meta_callback_with_3000_statuses(self):
        pids = self.sent_messages("whatsapp", STATUSES)
        ts = int(time.time())
        doc = wa_payload([wa_status(p, "delivered", ts) for p in pids])
        r, secs, size = self.post_whatsapp(doc)
        print("Meta callback, %d statuses, %d bytes: %d in %.0f ms"
              % (STATUSES, size, r.status, secs * 1000), file=sys.stderr)
        self.assertEqual(r.status, 200, r)
        self.assertLess(secs, META_BOUND_S)
        got, ev = self.wait_applied(pids, "delivered", STATUSES)
        self.assertEqual((got, ev), (STATUSES, STATUSES))
        # the provider's time is kept, as for one receipt
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_communications WHERE provider_message_id = ANY('{%s}') "
            "AND delivered_at = to_timestamp(%d)" % (",".join(pids), ts)), str(STATUSES))
        # sent again (Meta retries): answered, nothing counted twice
        r, secs, _ = self.post_whatsapp(doc)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.count_events(pids), STATUSES)

    def test_meta_statuses_of_one_message_in_one_callback(self):
        pids = self.sent_messages("whatsapp", 200)
        ts = int(time.time())
        statuses = []
        for p in pids:
            statuses += [wa_status(p, "sent", ts - 2), wa_status(p, "delivered", ts - 1),
                         wa_status(p, "read", ts)]
        r, secs, _ = self.post_whatsapp(wa_payload(statuses))
        self.assertEqual(r.status, 200, r)
        got, ev = self.wait_applied(pids, "opened", 600)
        self.assertEqual((got, ev), (200, 600))
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_communications WHERE provider_message_id = ANY('{%s}') "
            "AND delivered_at = to_timestamp(%d) AND opened_at = to_timestamp(%d)"
            % (",".join(pids), ts - 1, ts)), "200")

    def test_twilio_burst(self):
        pids = self.sent_messages("sms", TWILIO_BURST)

        def post(pid):
            params = {"AccountSid": SID, "ApiVersion": "2010-04-01", "From": "+15005550006",
                      "To": "+14155551234", "MessageSid": pid, "SmsSid": pid,
                      "MessageStatus": "delivered", "SmsStatus": "delivered"}
            hdr = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": twilio_signature(PUBLIC + TW, params)}
            t0 = time.monotonic()
            r = self.server.request("POST", TW, body=urllib.parse.urlencode(params),
                                    headers=hdr, timeout=30)
            return r.status, time.monotonic() - t0

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
            res = list(ex.map(post, pids))
        times = sorted(t for _, t in res)
        print("Twilio burst, %d callbacks over 32 connections: median %.0f ms, p95 %.0f ms, "
              "max %.0f ms" % (len(res), times[len(times) // 2] * 1000,
                               times[int(len(times) * 0.95)] * 1000, times[-1] * 1000),
              file=sys.stderr)
        self.assertEqual([s for s, _ in res], [200] * len(res))
        self.assertLess(times[int(len(times) * 0.95)], BOUND_S)
        got, ev = self.wait_applied(pids, "delivered", TWILIO_BURST)
        self.assertEqual((got, ev), (TWILIO_BURST, TWILIO_BURST))

    def test_over_the_cap_is_413_and_changes_nothing(self):
        pids = self.sent_messages("whatsapp", 10)
        statuses = [wa_status(p, "delivered", int(time.time())) for p in pids]
        doc = wa_payload(statuses)
        doc["padding"] = "x" * WEBHOOK_MAX
        body = json.dumps(doc).encode()
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "X-Hub-Signature-256: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (WA, meta_signature(body), len(body))).encode()
        status, hdrs, data = harness.raw_request(self.server.port, head + body)
        self.assertEqual(status, 413, data)
        self.assertEqual(hdrs.get("content-type"), "application/json")
        err = json.loads(data)["error"]
        self.assertEqual(err["code"], "payload_too_large")
        self.assertIn(str(WEBHOOK_MAX), err["message"])
        time.sleep(0.5)
        self.assertEqual(self.count_events(pids), 0)
        self.assertEqual(self.count_status(pids, "sent"), 10)


if __name__ == "__main__":
    import unittest
    unittest.main()

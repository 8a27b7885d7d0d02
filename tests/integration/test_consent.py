"""Consent is never served stale (issue 17, item 1): an opt-out saved while
Redis is stalled (SIGSTOP) still commits, and a message sent after Redis
comes back does not go out on the channel the client left, whatever the
preferences cache still holds. The message ends `suppressed`, with the
policy's refusal in its events, and raises no failure alert.

Runs on a database and a Redis of its own: the test stalls its Redis, and
the server's workers claim every job of their database."""

import glob
import os
import subprocess
import tempfile
import time
import uuid

import harness

PREFS = "/api/crm/preferences"
COMMS = "/api/crm/communications"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ConsentAfterRedisStallTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-consent-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.alerts = harness.start_alert_sink()
        cls.redis = harness.PrivateRedis().start()
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(redis=cls.redis.url, name="herald (private redis)", env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_OUTBOX_DIR": cls.outbox,
            "HERALD_WORKERS": "1",
            "HERALD_ALERT_URL": "http://127.0.0.1:%d/alerts" % cls.alerts.server_port})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.cleanup()
            cls.alerts.shutdown()
            cls.drop_db()
            subprocess.run(["rm", "-rf", cls.tmp])

    def redis_cli(self, *args):
        p = subprocess.run(["redis-cli", "-u", self.redis.url] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        return p.stdout.decode().strip()

    def prefs(self, doc):
        r = self.server.request("POST", PREFS, json_body=doc, headers=auth(), timeout=30)
        self.assertIn(r.status, (200, 201), r)
        return r.json

    def send(self, cid):
        r = self.server.request("POST", COMMS, headers=auth(), json_body={
            "plan_id": "plan-consent", "client_id": cid, "message_type": "welcome",
            "urgency": "critical", "channel": "email",
            "context": {"event_type": "wedding", "event_date": "2027-06-14"}})
        self.assertEqual(r.status, 202, r)
        return r.json

    def settle(self, comm_id, timeout=15):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", COMMS + "/" + comm_id, headers=auth())
            self.assertEqual(r.status, 200, r)
            if r.json["status"] not in ("scheduled", "queued", "sending") \
                    or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def emails_for(self, comm_id):
        return glob.glob(os.path.join(self.outbox, "email", comm_id + "-*.eml"))

    def test_an_opt_out_saved_while_redis_stalls_is_obeyed(self):
        # A client reachable by email only (no phone: no fallback).
        cid = "consent-" + uuid.uuid4().hex[:12]
        self.prefs({"client_id": cid, "name": "Zoë Martin", "email": "zoe@example.com",
                    "timezone": "Europe/Paris",
                    "consent": {"given": True, "source": "test signup form"}})
        # One message goes out by email, and the cache holds the client as
        # they are: email allowed.
        first = self.send(cid)
        self.assertEqual(first["strategy"]["primary_channel"], "email", first)
        doc = self.settle(first["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "email"), doc)
        self.assertEqual(len(self.emails_for(first["id"])), 1, doc)
        cached = self.redis_cli("GET", "herald:prefs:v1:" + cid)
        self.assertIn('"opted_out_channels":[]', cached, "the cache was not primed")

        # Redis stalls, and the server notices (here through a health check;
        # under load, any request that touches Redis): for the next second it
        # does not try Redis at all. The client opts out of email meanwhile.
        # PostgreSQL takes the change: Redis being away is degraded, not an
        # error; the cache keeps the old row.
        self.redis.pause()
        try:
            h = self.server.get("/api/crm/health", timeout=10)
            self.assertEqual((h.status, h.json["redis"]["status"]), (503, "down"), h)
            saved = self.prefs({"client_id": cid, "opted_out": ["email"]})
            self.assertEqual(saved["opted_out"], ["email"], saved)
        finally:
            self.redis.resume()
        self.assertTrue(harness.redis_ping(self.redis.port), "Redis did not come back")
        cached = self.redis_cli("GET", "herald:prefs:v1:" + cid)
        self.assertIn('"opted_out_channels":[]', cached,
                      "set-up: the cache no longer holds the old row; the test proves nothing")
        # Let the server find Redis again (it retries at most once a second).
        time.sleep(1.5)

        # Whatever the cache holds now, the next message must not go by email.
        # (Acceptance may choose the chain from the stale copy: the worker
        # checks every channel again with the row's current version.)
        alerts_before = len(harness.AlertSink.received)
        second = self.send(cid)
        doc = self.settle(second["id"])
        self.assertEqual(self.emails_for(second["id"]), [],
                         "an email went to a client who had opted out of email: %s" % doc)
        self.assertEqual(doc["attempts"], [], doc)
        self.assertEqual(doc["status"], "suppressed", doc)
        self.assertIsNotNone(doc["suppressed_at"], doc)
        self.assertIsNone(doc["failed_at"], doc)
        refused = [e for e in doc["events"] if e["type"] == "skipped"]
        self.assertEqual(len(refused), 1, doc)
        self.assertEqual((refused[0]["channel"], refused[0]["status"]), ("email", "refused"), doc)
        self.assertIn("email: client opted out", refused[0]["message"], doc)
        # A suppressed message is the client's wish, not a failure: no alert.
        time.sleep(1)
        self.assertEqual([a for a in harness.AlertSink.received[alerts_before:]
                          if a.get("communication_id") == second["id"]], [])
        self.assertIsNone(self.server.wait_log(
            lambda l: l.get("level") == "crit" and l.get("comm_id") == second["id"],
            timeout=0))


if __name__ == "__main__":
    harness.main()

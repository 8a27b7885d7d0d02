"""Fault matrix (issue 17): Redis killed (-9) and restarted from its disk.

A private Redis holds a client's preferences in the cache (one message sent
primes it) and is saved to disk (SAVE), then killed with SIGKILL. While it is
down, the server keeps accepting and sending, health says Redis is down, and
the client opts out of email through the API: PostgreSQL takes it, the cache
cannot be told. Redis then restarts from the same directory, so the cache
holds the client's old row again (checked: the test proves nothing without
it). The next message to that client must be `suppressed`, never written to
the outbox; a message to another client goes out; and every message accepted
before, during and after the outage is sent exactly once.

Runs on a database and a Redis of its own: the server's workers claim every
job of their database, and the test kills its Redis."""

import os
import subprocess
import tempfile
import time
import uuid

import harness

PREFS = "/api/crm/preferences"
COMMS = "/api/crm/communications"
HEALTH = "/api/crm/health"
PENDING = ("scheduled", "queued", "sending")


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class RedisKilledAndRestartedTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-fault-redis-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.redis = harness.PrivateRedis().start()
        cls.db, cls.drop = harness.fresh_database()
        cls.server = cls.new_server(redis=cls.redis.url, name="herald (redis killed)", env={
            "HERALD_DATABASE_URL": cls.db, "HERALD_OUTBOX_DIR": cls.outbox,
            "HERALD_WORKERS": "2"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.cleanup()
            cls.drop()
            subprocess.run(["rm", "-rf", cls.tmp])

    def redis_cli(self, *args):
        p = subprocess.run(["redis-cli", "-u", self.redis.url] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        return p.stdout.decode().strip()

    def client(self, cid):
        r = self.server.request("POST", PREFS, headers=auth(), timeout=30, json_body={
            "client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
            "timezone": "Europe/Paris",
            "consent": {"given": True, "source": "test signup form"}})
        self.assertIn(r.status, (200, 201), r)

    def send(self, cid):
        # email only: the client has no phone, so no fallback either
        r = self.server.request("POST", COMMS, headers=auth(), timeout=30, json_body={
            "plan_id": "fault-redis", "client_id": cid, "message_type": "welcome",
            "urgency": "critical", "channel": "email"})
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def settle(self, ids, timeout=30):
        def docs():
            out = [self.server.get(COMMS + "/" + i, headers=auth(), timeout=30).json
                   for i in ids]
            return out if all(d["status"] not in PENDING for d in out) else None
        out = harness.wait_until(docs, timeout, 0.1)
        self.assertTrue(out, "messages still pending after %d s" % timeout)
        return out

    def emails(self):
        return harness.outbox_ids(self.outbox, "email")

    def test_consent_survives_a_redis_restart_and_nothing_is_lost(self):
        stays = "fault-redis-stays-" + uuid.uuid4().hex[:8]
        leaves = "fault-redis-leaves-" + uuid.uuid4().hex[:8]
        self.client(stays)
        self.client(leaves)
        sent = []  # every message that must reach the outbox once

        # Before: both get a message; the cache holds `leaves` as it is.
        sent += [self.send(stays), self.send(leaves)]
        for d in self.settle(sent):
            self.assertEqual((d["status"], d["channel"]), ("sent", "email"), d)
        key = "herald:prefs:v1:" + leaves
        self.assertIn('"opted_out_channels":[]', self.redis_cli("GET", key),
                      "the cache was not primed")
        self.assertEqual(self.redis_cli("SAVE"), "OK")
        self.redis.kill()  # SIGKILL: nothing is written on the way out
        self.assertFalse(harness.redis_ping(self.redis.port))

        # During: health says so, at once; the API and the workers go on.
        t0 = time.time()
        h = self.server.get(HEALTH, timeout=10)
        self.assertLess(time.time() - t0, 5, "health must answer at once with Redis down")
        self.assertEqual((h.status, h.json["status"]), (503, "degraded"), h)
        self.assertEqual((h.json["redis"]["status"], h.json["database"]["status"]),
                         ("down", "up"), h)
        self.assertNotIn("latency_ms", h.json["redis"], "detail without a token")
        admin = self.server.get(HEALTH, token=harness.make_jwt(harness.claims(scope="admin")),
                                timeout=10)
        self.assertEqual((admin.status, admin.json["redis"]["status"]), (503, "down"), admin)
        self.assertIn("latency_ms", admin.json["redis"], admin)
        self.assertIn("version", admin.json, admin)
        line = self.server.wait_log(lambda l: l.get("msg") == "health check failed"
                                    and l.get("component") == "redis", 5)
        self.assertIsNotNone(line, "no log line says why Redis is down")

        r = self.server.request("POST", PREFS, headers=auth(), timeout=30,
                                json_body={"client_id": leaves, "opted_out": ["email"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["opted_out"], ["email"], r)
        during = [self.send(stays) for _ in range(5)]
        sent += during
        for d in self.settle(during):
            self.assertEqual((d["status"], d["channel"]), ("sent", "email"), d)

        # After: Redis comes back from its disk, with the old row.
        self.redis.start()
        self.assertIn('"opted_out_channels":[]', self.redis_cli("GET", key),
                      "set-up: Redis came back without the old row; the test proves nothing")
        back = harness.wait_until(lambda: self.server.get(HEALTH, timeout=10).status == 200,
                                  10, 0.2)
        self.assertTrue(back, "health did not recover within 10 s of Redis coming back")

        refused = self.send(leaves)
        after = [self.send(stays) for _ in range(3)]
        sent += after
        d = self.settle([refused])[0]
        self.assertEqual(d["status"], "suppressed",
                         "a client who opted out of email while Redis was down: %s" % d)
        self.assertEqual(d["attempts"], [], d)
        self.assertNotIn(refused, self.emails(), "written to the outbox: %s" % d)
        for d in self.settle(after):
            self.assertEqual((d["status"], d["channel"]), ("sent", "email"), d)

        # Nothing accepted was lost or sent twice.
        out = self.emails()
        self.assertEqual(sorted(out), sorted(sent), "outbox vs accepted")
        print("\n%d messages sent once each across the outage (%d while Redis was down); "
              "the opted-out client's message suppressed" % (len(sent), len(during)))


if __name__ == "__main__":
    harness.main()

"""Fault matrix (issue 17): PostgreSQL down for 30 s.

Messages are accepted up to the moment the server's own PostgreSQL stops
(some are then being sent: the SMTP server answers after 200 ms; some are
due only during the outage). For 30 s every call that needs the database
answers 503 with Retry-After and the JSON error; then PostgreSQL comes back
and, with nobody restarting anything, the API takes messages again and every
message that got a 202 reaches the SMTP server exactly once.

Runs on a PostgreSQL cluster of its own."""

import collections
import datetime
import subprocess
import tempfile
import threading
import time
import uuid

import harness

COMMS = "/api/crm/communications"
OUTAGE_S = 30


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


# A job claimed just as PostgreSQL stopped (its claim committed, the answer
# lost) is the engine's only after its lease: the wait for every accepted
# message to be sent covers one lease.
LEASE_S = 80


class PostgresDownTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-fault-pgdown-")
        cls.pg = harness.PrivatePostgres().start()
        cls.sink, port, cls.maildir = harness.start_smtp_sink(cls.tmp, "--latency-ms", "200")
        cls.server = cls.new_server(name="herald (private pg)", env={
            "HERALD_DATABASE_URL": cls.pg.url, "HERALD_EMAIL_DRIVER": "smtp",
            "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % port, "HERALD_SMTP_STARTTLS": "off",
            # a lease of 80 s: the record of a send that was in flight when
            # PostgreSQL stopped is retried for half of it (40 s, more than
            # the outage); a claim whose answer was lost in the stop is
            # handed out again when its lease ends (LEASE_S above)
            "HERALD_WORKERS": "2", "HERALD_RETRY_SCALE": "0.001",
            "HERALD_LEASE_SECONDS": str(LEASE_S)})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sink.terminate()
            cls.sink.wait(10)
            cls.pg.cleanup()
            subprocess.run(["rm", "-rf", cls.tmp])

    def client(self):
        cid = "fault-down-" + uuid.uuid4().hex[:8]
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "email": "zoe@example.com"})
        self.assertIn(r.status, (200, 201), r)
        return cid

    def post(self, cid, send_at=None):
        doc = {"plan_id": "fault-down", "client_id": cid, "message_type": "welcome",
               "urgency": "critical", "context": {}}
        if send_at:
            doc["send_at"] = send_at
        return self.server.request("POST", COMMS, headers=auth(), json_body=doc, timeout=30)

    def assert503(self, r, what):
        self.assertError(r, 503, msg=what)
        ra = r.header("Retry-After")
        self.assertTrue(ra and ra.isdigit() and int(ra) >= 1, "%s: Retry-After %r" % (what, ra))

    def test_outage_answers_503_with_retry_after_and_loses_nothing(self):
        cid = self.client()
        accepted = []
        # due in the middle of the outage
        later = (datetime.datetime.now(datetime.timezone.utc)
                 + datetime.timedelta(seconds=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for _ in range(10):
            r = self.post(cid, send_at=later)
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["status"], "scheduled", r)
            accepted.append(r.json["id"])
        known = accepted[0]
        for _ in range(30):
            r = self.post(cid)
            self.assertEqual(r.status, 202, r)
            accepted.append(r.json["id"])
        self.pg.stop("fast")
        down_at = time.time()

        calls = {
            "POST communications (cached client)": lambda: self.post(cid),
            "POST communications (new client)": lambda: self.post("fault-new-" + uuid.uuid4().hex),
            "GET communications/{id}": lambda: self.server.get(COMMS + "/" + known,
                                                                headers=auth()),
            "GET communications": lambda: self.server.get(COMMS + "?client_id=" + cid,
                                                          headers=auth()),
            "POST preferences": lambda: self.server.request(
                "POST", "/api/crm/preferences", headers=auth(),
                json_body={"client_id": cid, "email": "zoe@example.com"}),
        }
        rounds, slowest = 0, 0.0
        while time.time() - down_at < OUTAGE_S:
            for what, call in calls.items():
                t0 = time.time()
                r = call()
                slowest = max(slowest, time.time() - t0)
                self.assert503(r, what)
            h = self.server.get("/api/crm/health")
            self.assertEqual((h.status, h.json["database"]["status"]), (503, "down"), h)
            rounds += 1
            time.sleep(0.5)
        # an outage is answered at once, not after a pile of timeouts
        self.assertLess(slowest, 2.0)

        self.pg.start()
        up_at = time.time()
        r = harness.wait_until(lambda: (lambda r: r if r.status == 202 else None)(self.post(cid)),
                               15, interval=0.2)
        self.assertTrue(r, "no 202 within 15 s of PostgreSQL coming back")
        back_s = time.time() - up_at
        accepted.append(r.json["id"])

        ids = set(accepted)
        quoted = ",".join("'%s'" % i for i in ids)
        sent = harness.wait_until(lambda: int(self.pg.psql(
            "SELECT count(*) FROM crm_communications WHERE status = 'sent' "
            "AND id IN (%s)" % quoted)) == len(ids), LEASE_S + 30, interval=0.5)
        self.assertTrue(sent, "accepted messages not sent: %s" % self.pg.psql(
            "SELECT status, count(*) FROM crm_communications GROUP BY 1"))
        got = collections.Counter(harness.maildir_message_ids(self.maildir))
        self.assertEqual(ids - set(got), set(), "accepted (202) but never received")
        self.assertEqual({i: n for i, n in got.items() if n > 1}, {}, "received more than once")
        print("\n%d rounds of 503s in %d s (slowest %.2f s); 202 again %.2f s after "
              "PostgreSQL; %d accepted, each received once" % (rounds, OUTAGE_S, slowest,
                                                               back_s, len(ids)))


if __name__ == "__main__":
    harness.main()

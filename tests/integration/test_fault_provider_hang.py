"""Fault matrix (issue 17): a provider that accepts the connection and never
answers.

The fake Twilio holds every request to a number ending 0006 open without a
reply. With SMS capped at 4 transfers in flight and a 4 s timeout, 12 such
messages are accepted, then an email: the email must go out at once (the
outbox), never behind the hanging SMS; the fake must never see more than 4
SMS requests at a time; and each SMS attempt must end by its timeout.

Then the server is stopped (SIGTERM) while the fake still hangs and all 12
retries are handed to the transport (4 in flight, 8 waiting for a slot): it
must exit cleanly within one SMS timeout and a margin, not work through the
queue 4 at a time (3 timeouts: 12 s before the stop drained the queue)."""

import os
import subprocess
import tempfile
import time
import uuid

import harness

COMMS = "/api/crm/communications"
SID, TOKEN = "AC00000000000000000000000000000000", "test-token"
SMS_CAP, SMS_TIMEOUT_MS, HANGING = 4, 4000, 12


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ProviderHangsTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-fault-hang-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.db, cls.drop = harness.fresh_database()
        cls.fake_proc, cls.fake_port = harness.start_fake_providers(cls.tmp, hang_seconds=60)
        # the SMS timeout is not a variable: a config of its own
        with open(os.path.join(harness.SOURCE_DIR, "config.lua")) as f:
            text = f.read()
        old = 'timeout_ms = 15000,\n      in_flight = env("HERALD_SMS_IN_FLIGHT"'
        assert old in text, "config.lua's sms block changed; update the test"
        config = os.path.join(cls.tmp, "config.lua")
        with open(config, "w") as f:
            f.write(text.replace(old, old.replace("15000", str(SMS_TIMEOUT_MS))))
        cls.server = cls.new_server(name="herald (hanging twilio)", env={
            "HERALD_CONFIG": config, "HERALD_DATABASE_URL": cls.db,
            "HERALD_OUTBOX_DIR": cls.outbox, "HERALD_SMS_DRIVER": "twilio",
            "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % cls.fake_port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006", "HERALD_SMS_IN_FLIGHT": str(SMS_CAP),
            # one worker: the case where hanging sends could crowd out the rest
            "HERALD_WORKERS": "1", "HERALD_RETRY_SCALE": "0.001"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake_proc.terminate()
            cls.fake_proc.wait(10)
            cls.drop()
            subprocess.run(["rm", "-rf", cls.tmp])

    def sends_in_flight(self):
        m = self.server.get("/metrics").body.decode()
        for ln in m.splitlines():
            if ln.startswith("crm_sends_in_flight "):
                return int(float(ln.split()[1]))
        self.fail("no crm_sends_in_flight in /metrics")

    def stats(self):
        return harness.http_request(self.fake_port, "GET", "/_stats").json

    def client(self, **prefs):
        cid = "fault-hang-" + uuid.uuid4().hex[:8]
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body=dict(prefs, client_id=cid))
        self.assertIn(r.status, (200, 201), r)
        return cid

    def post(self, cid, message_type):
        r = self.server.request("POST", COMMS, headers=auth(), json_body={
            "plan_id": "fault-hang", "client_id": cid, "message_type": message_type,
            "urgency": "critical", "context": {}})
        self.assertEqual(r.status, 202, r)
        return r.json

    def test_a_hanging_provider_holds_only_its_own_slots(self):
        hanging = self.client(phone="+14155550006")
        sms = [self.post(hanging, "error_notification") for _ in range(HANGING)]
        self.assertEqual({m["strategy"]["primary_channel"] for m in sms}, {"sms"})
        most = [0]

        def held_open():
            n = self.stats()["held_open"]
            most[0] = max(most[0], n)
            return n
        self.assertTrue(harness.wait_until(lambda: held_open() >= SMS_CAP, 10), self.stats())

        t0 = time.time()
        mail = self.post(self.client(email="zoe@example.com"), "welcome")
        out = harness.wait_until(lambda: held_open() >= 0 and mail["id"] in harness.outbox_ids(
            self.outbox, "email"), SMS_TIMEOUT_MS / 1000.0, 0.02)
        took = time.time() - t0
        self.assertTrue(out, "the email waited behind the hanging SMS (%.1f s)" % took)
        # well before any SMS timed out and freed a slot
        self.assertLess(took, SMS_TIMEOUT_MS / 2000.0, "the email waited %.2f s" % took)

        # every hanging attempt ends by its timeout; the cap held throughout
        def first_attempts_done():
            docs = [self.server.get(COMMS + "/" + m["id"], headers=auth()).json for m in sms]
            return docs if all(d["attempts"] for d in docs) else None
        docs = harness.wait_until(lambda: held_open() >= 0 and first_attempts_done(),
                                  6 * SMS_TIMEOUT_MS / 1000.0, 0.2)
        self.assertTrue(docs, "an SMS attempt outlived its timeout several times over")
        for d in docs:
            a = d["attempts"][0]
            self.assertEqual((a["channel"], a["status"], a["category"]),
                             ("sms", "failed", "transient"), d)
            self.assertIn("timeout", (a["message"] or "").lower() + (a["code"] or ""), a)
        self.assertEqual(most[0], SMS_CAP, "SMS requests held open at once (polled)")

        # SIGTERM while the fake still hangs, every retry handed to the
        # transport: the sends waiting for a slot are not started (their
        # jobs go back to the queue), those in flight end by their timeout.
        queued = harness.wait_until(lambda: self.sends_in_flight() >= HANGING, 10, 0.05)
        self.assertTrue(queued, "the retries were not all handed to the transport: %d"
                        % self.sends_in_flight())
        self.assertGreaterEqual(self.stats()["held_open"], SMS_CAP, self.stats())
        t0 = time.time()
        code = self.server.stop(timeout=20)
        stop_s = time.time() - t0
        self.assertEqual(code, 0, "herald serve did not exit cleanly after SIGTERM")
        # one timeout and a margin; working through the queue takes three
        self.assertLess(stop_s, SMS_TIMEOUT_MS / 1000.0 + 3, "the stop took %.1f s" % stop_s)
        released = [ln for ln in self.server.log_lines()
                    if ln.get("msg", "").startswith("not sent: the process is stopping")]
        self.assertGreaterEqual(len(released), HANGING - SMS_CAP, "queued sends not released")
        # nothing is left leased, no attempt was recorded for them, and
        # every SMS still has its job for the next process
        def sql(q):
            r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-d", self.db, "-c", q],
                               capture_output=True, text=True, check=True)
            return r.stdout.strip()
        ids = ",".join("'%s'" % m["id"] for m in sms)
        self.assertEqual(sql("SELECT count(*) FROM crm_jobs WHERE lease_owner IS NOT NULL"), "0")
        self.assertEqual(sql("SELECT count(*) FROM crm_delivery_logs WHERE message LIKE "
                             "'%shutting down%'"), "0")
        self.assertEqual(sql("SELECT count(DISTINCT communication_id) FROM crm_jobs WHERE "
                             "kind = 'send' AND communication_id IN (%s)" % ids), str(HANGING))
        print("\nemail out %.2f s after it was accepted, %d SMS hanging; SMS held open at most "
              "%d (cap %d); stopped in %.1f s with %d sends queued behind the hanging ones"
              % (took, HANGING, most[0], SMS_CAP, stop_s, len(released)))


if __name__ == "__main__":
    harness.main()

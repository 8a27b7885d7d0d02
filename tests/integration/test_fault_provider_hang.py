"""Fault matrix (issue 17): a provider that accepts the connection and never
answers.

The fake Twilio holds every request to a number ending 0006 open without a
reply. With SMS capped at 4 transfers in flight and a 4 s timeout, 12 such
messages are accepted, then an email: the email must go out at once (the
outbox), never behind the hanging SMS; the fake must never see more than 4
SMS requests at a time; and each SMS attempt must end by its timeout."""

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
        # the fake goes first: its held connections close and the sends in
        # flight end at once, so the server's stop is not about them
        cls.fake_proc.terminate()
        cls.fake_proc.wait(10)
        try:
            super().tearDownClass()
        finally:
            cls.drop()
            subprocess.run(["rm", "-rf", cls.tmp])

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
        print("\nemail out %.2f s after it was accepted, %d SMS hanging; SMS held open at most "
              "%d (cap %d)" % (took, HANGING, most[0], SMS_CAP))


if __name__ == "__main__":
    harness.main()

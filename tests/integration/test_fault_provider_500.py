"""Fault matrix (issue 17): a provider answering 500s, then recovering.

The fake Twilio (tests/fakes/fake_providers.py) answers every request with
its 500 while SMS messages are accepted; once each has failed at least twice
it is switched back (POST /_fail?percent=0). Every message must then go out
on SMS, retried by the engine on its own, exactly once: one 201 per message
at the fake, and the failed attempts in the message's record."""

import collections
import json
import os
import subprocess
import tempfile
import uuid

import harness

COMMS = "/api/crm/communications"
SID, TOKEN = "AC00000000000000000000000000000000", "test-token"
N = 20


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ProviderRecoversTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-fault-500-")
        cls.record = os.path.join(cls.tmp, "requests.jsonl")
        cls.db, cls.drop = harness.fresh_database()
        ready = os.path.join(cls.tmp, "fake.ready")
        cls.fake_proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(harness.SOURCE_DIR, "tests", "fakes",
                                              "fake_providers.py"),
             "--port", "0", "--ready-file", ready, "--record", cls.record],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(lambda: os.path.exists(ready), 15, 0.05)
        with open(ready) as f:
            cls.fake_port = int(f.read())
        cls.server = cls.new_server(name="herald (fake twilio)", env={
            "HERALD_DATABASE_URL": cls.db, "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"),
            "HERALD_SMS_DRIVER": "twilio",
            "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % cls.fake_port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006", "HERALD_WORKERS": "2",
            # retries after about 0.6 s, 3 s and 9 s (settings.retry x 0.01)
            "HERALD_RETRY_SCALE": "0.01"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake_proc.terminate()
            cls.fake_proc.wait(10)
            cls.drop()
            subprocess.run(["rm", "-rf", cls.tmp])

    def fake(self, method, path):
        r = harness.http_request(self.fake_port, method, path)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_500s_are_retried_and_every_message_goes_out_once(self):
        cid = "fault-500-" + uuid.uuid4().hex[:8]
        # a phone only: SMS is the one channel that can carry the message
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "phone": "+14155551234"})
        self.assertIn(r.status, (200, 201), r)
        self.fake("POST", "/_fail?percent=100")
        ids = []
        for _ in range(N):
            r = self.server.request("POST", COMMS, headers=auth(), json_body={
                "plan_id": "fault-500", "client_id": cid, "message_type": "error_notification",
                "urgency": "critical", "context": {}})
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["strategy"]["primary_channel"], "sms", r)
            ids.append(r.json["id"])
        failed = harness.wait_until(
            lambda: self.fake("GET", "/_stats")["injected_failures"] >= 2 * N, 30)
        self.assertTrue(failed, "the messages were not tried twice: %r" % self.fake("GET", "/_stats"))
        self.fake("POST", "/_fail?percent=0")

        def settled():
            docs = [self.server.get(COMMS + "/" + i, headers=auth()).json for i in ids]
            return docs if all(d["status"] not in ("scheduled", "queued", "sending")
                               for d in docs) else None
        docs = harness.wait_until(settled, 60, interval=0.3)
        self.assertTrue(docs, "messages still pending 60 s after the provider recovered")
        for d in docs:
            self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
            failures = [a for a in d["attempts"] if a["status"] != "sent"]
            self.assertGreaterEqual(len(failures), 2, d["attempts"])
            self.assertEqual({a["category"] for a in failures}, {"transient"}, d["attempts"])

        ok = collections.Counter()
        with open(self.record) as f:
            for line in f:
                e = json.loads(line)
                if e["response"]["status"] == 201:
                    cb = e["form"].get("StatusCallback", "")
                    ok[cb.partition("comm_id=")[2][:36]] += 1
        self.assertEqual(set(ok), set(ids), "accepted by the provider: not every message")
        self.assertEqual({i: n for i, n in ok.items() if n > 1}, {}, "accepted twice")
        stats = self.fake("GET", "/_stats")
        print("\n%d messages: %d 500s, then %d accepted, each once"
              % (N, stats["injected_failures"], sum(ok.values())))


if __name__ == "__main__":
    harness.main()

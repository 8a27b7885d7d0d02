"""Provider buckets shared by processes (issue 13 "Done when"): three engine
processes on one database and one Redis share a sender's bucket of 10/s; the
fake Twilio sees no more than 11/s over the run, and every message arrives.
Then Redis dies mid-run: a single process goes on sending at no more than the
bucket's rate (the in-process fallback), and when Redis is back the shared
bucket takes over again without a restart. Real servers, PostgreSQL, a Redis
of the test's own, the fake Twilio with its request record."""
import datetime
import json
import os
import random
import shutil
import signal
import tempfile
import time
import uuid

import harness

SRC = harness.SOURCE_DIR
SID, TOKEN = "AC00000000000000000000000000000000", "test-token"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class SharedBucketTest(harness.HeraldCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="herald-shared-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.redis = harness.PrivateRedis().start()
        self.addCleanup(self.redis.cleanup)
        self.sender = "+1500557%04d" % random.randrange(10000)
        self.record = os.path.join(self.tmp, "requests.jsonl")
        self.fake, self.fake_port = harness.start_fake_providers(
            self.tmp, hang_seconds=1, extra=["--record", self.record])
        self.addCleanup(lambda: (self.fake.send_signal(signal.SIGTERM), self.fake.wait(10)))
        self.db_url, drop = harness.fresh_database()
        self.addCleanup(drop)

    def scripts(self, rate):
        d = os.path.join(self.tmp, "scripts-%g" % rate)
        shutil.copytree(os.path.join(SRC, "scripts"), d)
        path = os.path.join(d, "settings.lua")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("  limits = { buckets = {} },",
                                 '  limits = { buckets = { ["sms:%s"] = { rate = %g, per = 1 } } },'
                                 % (self.sender, rate), 1))
        return d

    def server(self, scripts, name):
        return self.new_server(name=name, redis=self.redis.url, env={
            "HERALD_DATABASE_URL": self.db_url, "HERALD_SCRIPTS_DIR": scripts,
            "HERALD_OUTBOX_DIR": os.path.join(self.tmp, "outbox"), "HERALD_WORKERS": "1",
            "HERALD_SMS_DRIVER": "twilio",
            "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % self.fake_port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": self.sender})

    def send(self, server, n):
        ids = []
        for _ in range(n):
            r = server.request("POST", "/api/crm/communications", headers=auth(), json_body={
                "plan_id": "p", "client_id": "client-" + uuid.uuid4().hex[:10],
                "message_type": "welcome", "urgency": "high", "channel": "sms",
                "recipient": {"name": "Ana",
                              "phone": harness.phone()}})
            self.assertEqual(r.status, 202, r)
            ids.append(r.json["id"])
        return ids

    def times(self):
        out = []
        if os.path.exists(self.record):
            with open(self.record) as f:
                for line in f:
                    e = json.loads(line)
                    if e.get("provider") == "twilio" and e["response"]["status"] == 201:
                        out.append(datetime.datetime.fromisoformat(e["time"]).timestamp())
        return sorted(out)

    def wait_sent(self, n, timeout):
        deadline = time.time() + timeout
        while len(self.times()) < n:
            self.assertLess(time.time(), deadline, "%d of %d sent" % (len(self.times()), n))
            time.sleep(0.2)
        return self.times()

    @staticmethod
    def max_in_window(times, window=1.0):
        best, j = 0, 0
        for i in range(len(times)):
            while times[i] - times[j] >= window:
                j += 1
            best = max(best, i - j + 1)
        return best

    def test_three_processes_share_one_bucket(self):
        scripts = self.scripts(10)
        servers = [self.server(scripts, "herald-%d" % i) for i in range(3)]
        self.send(servers[0], 200)
        t = self.wait_sent(200, 90)
        rate = (len(t) - 1) / (t[-1] - t[0])
        print("3 processes, one 10/s bucket: %.2f/s over %.1f s, at most %d in any second"
              % (rate, t[-1] - t[0], self.max_in_window(t)))
        self.assertLessEqual(rate, 11.0)
        self.assertGreaterEqual(rate, 8.0, "the bucket was not used to its rate")
        self.assertLessEqual(self.max_in_window(t), 12)

    def test_redis_down_sends_at_the_rate_in_process_and_back_shared(self):
        scripts = self.scripts(5)
        s = self.server(scripts, "herald")
        self.send(s, 15)
        self.wait_sent(15, 30)
        self.redis.kill()
        t_down = time.time()
        self.send(s, 25)
        t = [x for x in self.wait_sent(40, 60) if x >= t_down]
        rate = (len(t) - 1) / (t[-1] - t[0])
        print("Redis down: %d sent at %.2f/s in process" % (len(t), rate))
        self.assertLessEqual(rate, 5.5)
        self.assertGreaterEqual(len(t), 20)
        # back: the shared bucket again, no restart. Its key lives in Redis only
        # while the bucket is busy (it expires a fifth of a second after the last
        # send), so it is looked for while the messages go.
        self.redis.start()
        t_up = time.time()
        self.send(s, 25)
        deadline, seen = time.time() + 60, False
        while len(self.times()) < 65:
            self.assertLess(time.time(), deadline, "%d of 65 sent" % len(self.times()))
            seen = seen or any("bucket:sms:" in k for k in self.redis_keys())
            time.sleep(0.1)
        t = [x for x in self.times() if x >= t_up]
        self.assertLessEqual((len(t) - 1) / (t[-1] - t[0]), 5.5)
        self.assertTrue(seen, "the shared bucket was not used again")
        m = s.get("/metrics").body.decode()
        self.assertIn("crm_rate_limiter_shared 1\n", m)

    def redis_keys(self):
        import subprocess
        p = subprocess.run(["redis-cli", "-p", str(self.redis.port), "--scan"],
                           capture_output=True, text=True, timeout=10)
        return p.stdout.split()


if __name__ == "__main__":
    harness.main()

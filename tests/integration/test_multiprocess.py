"""Several `herald serve` processes on one database, sending into a real SMTP
server: every message goes out exactly once (counted at the server by
Message-ID), and a process killed with SIGKILL mid-run loses nothing."""
import concurrent.futures
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import harness

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())
SINK = os.path.join(SRC, "tests", "fakes", "smtp_sink.py")
MSGID = re.compile(rb"^Message-ID: <([0-9a-f-]{36})@", re.M | re.I)


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-qtA", "-d", url, "-c", sql], check=True,
                          capture_output=True, text=True).stdout.strip()


class MultiProcessCase(harness.HeraldCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="herald-mp-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.tmp])
        self.maildir = os.path.join(self.tmp, "mail")
        os.makedirs(self.maildir)
        ready = os.path.join(self.tmp, "sink.ready")
        self.sink = subprocess.Popen(["/usr/bin/python3", SINK, "--port", "0", "--ready-file",
                                      ready, "--maildir", self.maildir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.sink.wait, 10)
        self.addCleanup(self.sink.send_signal, signal.SIGTERM)
        deadline = time.time() + 15
        while not os.path.exists(ready):
            self.assertLess(time.time(), deadline, "smtp sink did not start")
            time.sleep(0.05)
        port = int(open(ready).read().split()[0])
        self.db, drop = harness.fresh_database()
        self.addCleanup(drop)
        self.env = {"HERALD_DATABASE_URL": self.db, "HERALD_EMAIL_DRIVER": "smtp",
                    "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % port,
                    "HERALD_SMTP_STARTTLS": "off", "HERALD_WORKERS": "2",
                    # exactly-once is the subject, not the policy deadlines: three
                    # servers, their workers and the load share two cores, where a
                    # 50 ms decision deadline can trip (a 422) on a preempted thread
                    "HERALD_LUA_DECISION_MS": os.environ.get("HERALD_LUA_DECISION_MS", "500")}

    def start_servers(self, n, **extra):
        env = dict(self.env, **extra)
        out = [type(self).new_server(env=env, name="herald-%d" % i) for i in range(n)]
        for s in out:  # before the database they use is dropped
            self.addCleanup(s.stop)
        return out

    def client(self, server):
        cid = "mp-" + uuid.uuid4().hex[:10]
        r = server.request("POST", "/api/crm/preferences", headers=auth(),
                           json_body={"client_id": cid, "email": "zoe@example.com"})
        self.assertIn(r.status, (200, 201), r)
        return cid

    def post_many(self, servers, cid, n):
        body = {"plan_id": "mp", "client_id": cid, "message_type": "welcome",
                "urgency": "critical", "context": {}}
        headers = auth()

        def one(i):
            s = servers[i % len(servers)]
            r = s.request("POST", "/api/crm/communications", json_body=body, headers=headers)
            return r.status, (r.json or {}).get("id")
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            out = list(ex.map(one, range(n)))
        self.assertEqual({s for s, _ in out}, {202}, [s for s, _ in out if s != 202][:5])
        return [i for _, i in out]

    def wait_settled(self, n, timeout):
        deadline = time.time() + timeout
        while True:
            done = int(psql(self.db, "SELECT count(*) FROM crm_communications "
                                     "WHERE status IN ('sent', 'failed')"))
            if done >= n or time.time() > deadline:
                return done
            time.sleep(0.5)

    def received_ids(self):
        ids = []
        for path in glob.glob(os.path.join(self.maildir, "*.eml")):
            with open(path, "rb") as f:
                m = MSGID.search(f.read(4096))
            if m:
                ids.append(m.group(1).decode())
        return ids


class ExactlyOnceTest(MultiProcessCase):
    def test_three_processes_ten_thousand_messages_each_once(self):
        n = int(os.environ.get("HERALD_MP_MESSAGES", "10000"))
        # every process folds the analytics deltas every second: they race
        servers = self.start_servers(3, HERALD_LEASE_SECONDS="30",
                                     HERALD_ANALYTICS_REFRESH_SECONDS="1")
        cid = self.client(servers[0])
        t0 = time.time()
        ids = self.post_many(servers, cid, n)
        settled = self.wait_settled(n, timeout=240)
        took = time.time() - t0
        self.assertEqual(settled, n)
        self.assertEqual(psql(self.db, "SELECT count(*) FROM crm_communications "
                                       "WHERE status = 'sent'"), str(n))
        self.assertEqual(psql(self.db, "SELECT count(*) FROM crm_jobs"), "0")
        got = self.received_ids()
        self.assertEqual(len(got), n, "messages at the SMTP server")
        self.assertEqual(len(set(got)), n, "a Message-ID arrived twice")
        self.assertEqual(set(got), set(ids))
        # three processes wrote the same figures concurrently, and folded them
        self.assertEqual(harness.analytics_mismatches(self.db), [])
        for s in servers:
            folds = [line for line in s.log_lines() if "analytics" in line.get("msg", "")
                     and line.get("level") in ("warn", "error")]
            self.assertEqual(folds, [], "a fold failed")
        print("\n%d messages through 3 processes in %.1f s" % (n, took))


class KillTest(MultiProcessCase):
    def test_sigkill_mid_run_loses_nothing(self):
        n = 2000
        a, b = self.start_servers(2, HERALD_LEASE_SECONDS="3")
        cid = self.client(a)
        ids = self.post_many([a, b], cid, n)
        # kill one process while it is busy
        deadline = time.time() + 60
        while int(psql(self.db, "SELECT count(*) FROM crm_communications "
                                "WHERE status = 'sent'")) < n // 5:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        a.proc, a.exit_code = None, 0  # killed on purpose: no clean exit to expect
        settled = self.wait_settled(n, timeout=120)
        self.assertEqual(settled, n, "messages lost after the kill")
        self.assertEqual(psql(self.db, "SELECT count(*) FROM crm_communications "
                                       "WHERE status = 'sent'"), str(n))
        got = self.received_ids()
        self.assertEqual(set(got), set(ids), "a message never reached the server")
        dupes = {i for i in got if got.count(i) > 1} if len(got) != len(set(got)) else set()
        if dupes:
            # only messages whose send may have begun before the kill
            recovered = set(psql(self.db, "SELECT communication_id FROM crm_delivery_logs "
                                          "WHERE event_type = 'recovered'").split())
            self.assertTrue(dupes <= recovered, dupes - recovered)
        # the transactions the kill cut off left no count behind
        self.assertEqual(harness.analytics_mismatches(self.db), [])


class DigestTest(MultiProcessCase):
    def test_one_digest_per_client_across_processes(self):
        servers = self.start_servers(2)
        cid = "digest-" + uuid.uuid4().hex[:8]
        at = time.gmtime(time.time() + 60)
        r = servers[0].request("POST", "/api/crm/preferences", headers=auth(), json_body={
            "client_id": cid, "email": "zoe@example.com", "timezone": "UTC",
            "digest_time": time.strftime("%H:%M", at)})
        self.assertIn(r.status, (200, 201), r)
        ids = []
        for i in range(6):  # accepted by both processes in turn
            r = servers[i % 2].request("POST", "/api/crm/communications", headers=auth(),
                                       json_body={"plan_id": "d", "client_id": cid,
                                                  "message_type": "reminder",
                                                  "context": {"due_item": "Item %d" % i,
                                                              "due_date": "2027-05-01"}})
            self.assertEqual(r.status, 202, r)
            self.assertTrue(r.json["strategy"]["batch"])
            ids.append(r.json["id"])
        self.assertEqual(self.wait_settled(6, timeout=150), 6)
        self.assertEqual(psql(self.db, "SELECT count(*) FROM crm_communications "
                                       "WHERE status = 'sent'"), "6")
        mails = glob.glob(os.path.join(self.maildir, "*.eml"))
        self.assertEqual(len(mails), 1, "exactly one digest")
        with open(mails[0], "rb") as f:
            raw = f.read()
        self.assertIn(b"Your daily update: 6 messages", raw)
        self.assertEqual(psql(self.db, "SELECT count(*) FROM crm_digest_runs"), "1")


class LeaseTest(MultiProcessCase):
    def test_a_send_longer_than_the_lease_is_not_sent_twice(self):
        # The provider answers after 5 s; the lease is 3 s. The worker renews
        # its lease while the send is in flight, so the other process never
        # claims the job and the provider sees each message once.
        record = os.path.join(self.tmp, "requests.jsonl")
        ready = os.path.join(self.tmp, "fake.ready")
        fake = subprocess.Popen(["/usr/bin/python3",
                                 os.path.join(SRC, "tests", "fakes", "fake_providers.py"),
                                 "--port", "0", "--ready-file", ready, "--latency-ms", "5000",
                                 "--record", record],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(fake.wait, 10)
        self.addCleanup(fake.send_signal, signal.SIGTERM)
        deadline = time.time() + 15
        while not os.path.exists(ready):
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        base = "http://127.0.0.1:%d" % int(open(ready).read())
        servers = self.start_servers(
            2, HERALD_LEASE_SECONDS="3", HERALD_SMS_DRIVER="twilio",
            HERALD_TWILIO_BASE_URL=base,
            HERALD_TWILIO_ACCOUNT_SID="AC00000000000000000000000000000000",
            HERALD_TWILIO_AUTH_TOKEN="test-token", HERALD_TWILIO_FROM="+15005550006")
        cid = "lease-" + uuid.uuid4().hex[:8]
        r = servers[0].request("POST", "/api/crm/preferences", headers=auth(),
                               json_body={"client_id": cid, "phone": "+14155551234"})
        self.assertIn(r.status, (200, 201), r)
        ids = []
        for _ in range(3):
            r = servers[0].request("POST", "/api/crm/communications", headers=auth(),
                                   json_body={"plan_id": "lease", "client_id": cid,
                                              "message_type": "error_notification"})
            self.assertEqual(r.status, 202, r)
            ids.append(r.json["id"])
        self.assertEqual(self.wait_settled(3, timeout=60), 3)
        with open(record) as f:
            reqs = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(len(reqs), 3, "the provider saw a message twice")
        attempts = psql(self.db, "SELECT count(*) FROM crm_delivery_logs WHERE kind = 'attempt'")
        self.assertEqual(attempts, "3")


if __name__ == "__main__":
    unittest.main()

"""Provider capacity (issue 13 item 3) end to end: settings.limits.buckets
gives the Twilio sender 5 messages a second; 40 SMS accepted at once (30 high,
then 10 critical) arrive at the fake Twilio at 5/s (measured there, +-10 %),
every one of them, each with one attempt (none refused by the provider,
none wasted), the critical ones ahead of the high ones still waiting; the
engine counts what it held back (crm_rate_limited_total{bucket="provider"}).
A malformed bucket refuses the reload with its name. Real server, PostgreSQL,
Redis (the shared GCRA of core/limit) and the fake Twilio."""
import datetime
import json
import os
import random
import shutil
import subprocess
import signal
import tempfile
import time
import uuid

import harness

SRC = harness.SOURCE_DIR
SID, TOKEN, FROM = "AC00000000000000000000000000000000", "test-token", "+15005550006"
RATE = 5.0


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ProviderLimitsTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-pace-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
        path = os.path.join(cls.scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        assert text.count("  limits = { buckets = {} },") == 1, "settings.lua layout changed"
        # a sender of this run only: the shared Redis keeps other runs' buckets apart
        cls.sender = "+1500555%04d" % random.randrange(10000)
        assert text.count("  caps = { exempt = { critical = true } },") == 1
        text = text.replace("  caps = { exempt = { critical = true } },",
                            "  caps = { sms = { per_day = 3 }, email = { per_day = 2, over = "
                            "\"digest\" }, exempt = { critical = true } },", 1)
        with open(path, "w") as f:
            f.write(text.replace("  limits = { buckets = {} },",
                                 '  limits = { buckets = { ["sms:%s"] = { rate = %g, per = 1 } } },'
                                 % (cls.sender, RATE), 1))
        # a script's own limit (herald.limit): the preview says what it answered
        spath = os.path.join(cls.scripts, "strategy.lua")
        with open(spath) as f:
            st = f.read()
        assert st.rstrip().endswith("return strategy")
        cls.limit_key = "preview-" + uuid.uuid4().hex[:8]
        with open(spath, "w") as f:
            f.write(st.rstrip()[:-len("return strategy")] + """
local decide = strategy.decide
function strategy.decide(request, prefs, now)
  local d = decide(request, prefs, now)
  if request.message_type == "reminder" then
    local ok, after = herald.limit("%s", 1, 60, 2)
    d.reasons[#d.reasons + 1] = string.format("herald.limit %%s %%.0f", tostring(ok), after)
  end
  return d
end

return strategy
""" % cls.limit_key)
        cls.record = os.path.join(cls.tmp, "requests.jsonl")
        cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1,
                                                      extra=["--record", cls.record])
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_SCRIPTS_DIR": cls.scripts,
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"),
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": cls.sender,
            # One worker: the order below is the claim's and the pacing's. With
            # two, the worker holding only high sends can reach the empty
            # bucket before the one holding the critical sends has asked
            # (nothing tells it a more urgent send is on its way): under the
            # sanitizers, 3 of 6 runs of the 2026-12-07 build (835a820) let
            # two high sends go first. A known gap, not tested away: see
            # docs/benchmarks.md ("Found, not fixed", 2026-12-07 23:00 UTC).
            "HERALD_WORKERS": "1"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    def send(self, urgency):
        cid = "client-" + uuid.uuid4().hex[:10]
        phone = harness.phone()
        r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
            "plan_id": "plan-1", "client_id": cid, "message_type": "welcome", "urgency": urgency,
            "channel": "sms", "recipient": {"name": "Ana", "phone": phone}})
        self.assertEqual(r.status, 202, r)
        return r.json["id"], phone

    def psql(self, sql):
        return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                               "-c", sql], capture_output=True, text=True,
                              check=True).stdout.strip()

    def twilio_sends(self):
        out = []
        if not os.path.exists(self.record):
            return out
        with open(self.record) as f:
            for line in f:
                e = json.loads(line)
                if e.get("provider") == "twilio" and e.get("form"):
                    out.append((e["time"], e["form"].get("To"), e["response"]["status"]))
        return out

    def test_a_sender_limited_to_5_per_second_gets_5_per_second_critical_first(self):
        # all 40 wait together (SMS paused while they are posted, as an operator
        # would; on a loaded machine posting 40 can take longer than sending 30),
        # then go at the bucket's rate, critical first
        admin = {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="admin"))}
        r = self.server.request("POST", "/api/crm/admin/channels/sms/pause", headers=admin)
        self.assertEqual(r.status, 200, r)
        try:
            high = [self.send("high") for _ in range(30)]
            critical = [self.send("critical") for _ in range(10)]
        finally:
            r = self.server.request("POST", "/api/crm/admin/channels/sms/resume", headers=admin)
            self.assertEqual(r.status, 200, r)
        mine = {p for _, p in high + critical}
        deadline = time.time() + 60
        while len([s for s in self.twilio_sends() if s[1] in mine]) < 40:
            self.assertLess(time.time(), deadline, "only %d of 40 sent" % len(
                [s for s in self.twilio_sends() if s[1] in mine]))
            time.sleep(0.2)
        time.sleep(0.5)
        sends = [s for s in self.twilio_sends() if s[1] in mine]
        self.assertEqual(len(sends), 40, sends)
        self.assertEqual({s for _, _, s in sends}, {201}, "the provider refused some")
        times = sorted(datetime.datetime.fromisoformat(t).timestamp() for t, _, _ in sends)
        rate = (len(times) - 1) / (times[-1] - times[0])
        print("measured at the fake: %.2f messages/s over %.1f s" % (rate, times[-1] - times[0]))
        self.assertLess(abs(rate - RATE) / RATE, 0.10, "%.2f/s, not %g/s" % (rate, RATE))
        # every message sent once, one attempt each
        for comm, _ in high + critical:
            d = self.server.get("/api/crm/communications/" + comm, headers=auth()).json
            self.assertEqual((d["status"], len(d["attempts"])), ("sent", 1), d)
        # priority kept: every critical one ahead of the high ones still waiting
        # (one high send ahead is tolerated, as before).
        order = [to for _, to, _ in sorted(sends)]
        crit = {p for _, p in critical}
        at = [i for i, p in enumerate(order) if p in crit]
        self.assertLessEqual(max(at), 10, "the 10 critical ones did not go first: at %s" % at)
        last_critical = max(i for i, p in enumerate(order) if p in crit)
        high_after = sum(1 for p in order[last_critical:] if p not in crit)
        self.assertGreaterEqual(high_after, 15, order)
        q = self.server.get("/api/crm/admin/queue", headers=admin).json
        mine = [b for b in q["buckets"] if b["bucket"] == "sms:" + self.sender]
        self.assertEqual(mine, [{"bucket": "sms:" + self.sender, "rate_per_s": RATE,
                                 "current_per_s": RATE}], q["buckets"])
        m = self.server.get("/metrics").body.decode()
        line = [l for l in m.splitlines() if l.startswith("crm_rate_limited_total")
                and 'bucket="provider"' in l]
        self.assertTrue(line and sum(float(l.split()[-1]) for l in line) > 0, line)

    def test_a_client_gets_at_most_its_cap_and_the_rest_waits_with_the_reason(self):
        cid = "client-" + uuid.uuid4().hex[:10]
        phone = harness.phone()

        def send(urgency):
            r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
                "plan_id": "plan-1", "client_id": cid, "message_type": "welcome",
                "urgency": urgency, "channel": "sms", "recipient": {"name": "Ana", "phone": phone}})
            self.assertEqual(r.status, 202, r)
            return r.json["id"]
        ids = [send("high") for _ in range(5)]
        deadline = time.time() + 30
        while True:
            docs = [self.server.get("/api/crm/communications/" + i, headers=auth()).json
                    for i in ids]
            waiting = [d for d in docs if any(e["type"] == "deferred" for e in d["events"])]
            if sum(d["status"] == "sent" for d in docs) == 3 and len(waiting) == 2:
                break
            self.assertLess(time.time(), deadline, [(d["status"], d["events"]) for d in docs])
            time.sleep(0.2)
        for d in waiting:
            self.assertEqual((d["status"], d["attempts"]), ("scheduled", []), d)
            ev = [e for e in d["events"] if e["type"] == "deferred"][0]
            self.assertIn("cap (limits.cap) is reached", ev["message"])
            # the next slot of a 3-a-day cap: about 8 hours away
            self.assertGreater(d["next_attempt_at"], time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 7 * 3600)))
        # critical is exempt: it goes at once
        crit = send("critical")
        deadline = time.time() + 20
        while self.server.get("/api/crm/communications/" + crit,
                              headers=auth()).json["status"] != "sent":
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)

    def test_over_the_cap_folds_into_one_digest_when_the_script_says_so(self):
        """settings.caps.email = {per_day = 2, over = "digest"}: of 4 emails to one
        client, 2 go, the other 2 are folded into one digest due when the cap allows
        the next; a day later (times moved, the cap's counter gone) that digest
        carries both, as one email."""
        cid = "client-" + uuid.uuid4().hex[:10]

        def send():
            r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
                "plan_id": "plan-1", "client_id": cid, "message_type": "welcome",
                "urgency": "high", "channel": "email",
                "recipient": {"name": "Ana", "email": cid + "@example.com"}})
            self.assertEqual(r.status, 202, r)
            return r.json["id"]
        ids = [send() for _ in range(4)]
        deadline = time.time() + 30
        while True:
            docs = [self.server.get("/api/crm/communications/" + i, headers=auth()).json
                    for i in ids]
            folded = [d for d in docs if any("folded into" in (e["message"] or "")
                                             for e in d["events"])]
            if sum(d["status"] == "sent" for d in docs) == 2 and len(folded) == 2:
                break
            self.assertLess(time.time(), deadline, [(d["status"], d["events"]) for d in docs])
            time.sleep(0.2)
        msgs = sorted(e["message"] for d in folded for e in d["events"] if e["type"] == "deferred")
        self.assertIn("folded into the client's own digest of ", msgs[1])
        self.assertIn("folded into the client's next digest of ", msgs[0])
        self.assertEqual(msgs[0][-20:], msgs[1][-20:], "not the same digest")
        for d in folded:
            self.assertEqual((d["status"], d["attempts"]), ("scheduled", []), d)
        # one digest job for both, due about 12 hours away (2 a day)
        fids = ",".join("'%s'" % d["id"] for d in folded)
        due = self.psql("SELECT count(*), min(extract(epoch FROM due_at - now()))::int FROM "
                        "crm_jobs WHERE communication_id IN (%s)" % fids).split("|")
        self.assertEqual(due[0], "1")
        self.assertGreater(int(due[1]), 11 * 3600)
        # a day later: the digest is due, the cap's rolling day is over
        self.psql("UPDATE crm_communications SET send_at = now() WHERE id IN (%s); "
                  "UPDATE crm_jobs SET due_at = now() WHERE communication_id IN (%s)"
                  % (fids, fids))
        import hashlib
        h = hashlib.sha256(cid.encode()).hexdigest()[:32]
        keys = subprocess.run(["redis-cli", "-u", harness.redis_url(), "--scan", "--pattern",
                               "*cap:email:" + h + "*"], capture_output=True, text=True).stdout
        self.assertTrue(keys.split(), "the cap was not counted in Redis")
        subprocess.run(["redis-cli", "-u", harness.redis_url(), "DEL"] + keys.split(),
                       check=True, capture_output=True)
        deadline = time.time() + 30
        while True:
            docs = [self.server.get("/api/crm/communications/" + d["id"], headers=auth()).json
                    for d in folded]
            if all(d["status"] == "sent" for d in docs):
                break
            self.assertLess(time.time(), deadline, [(d["status"], d["events"]) for d in docs])
            time.sleep(0.2)
        self.assertEqual(len({d["provider_message_id"] for d in docs}), 1, docs)
        self.assertEqual(self.psql("SELECT message_count FROM crm_digest_runs WHERE "
                                   "communication_id IN (%s)" % fids), "2")

    def test_scripts_have_their_own_limits_in_the_shared_limiter(self):
        got = []
        for _ in range(3):
            r = self.server.request("POST", "/api/crm/strategy/preview", headers=auth(),
                                    json_body={"message_type": "reminder",
                                               "preferences": {"email": "a@example.com"}})
            self.assertEqual(r.status, 200, r)
            got.append([x for x in r.json["reasons"] if x.startswith("herald.limit")][0])
        # a burst of 2, then one a minute: the third waits about 60 s
        self.assertEqual(got[:2], ["herald.limit true 0", "herald.limit true 0"])
        self.assertRegex(got[2], r"^herald.limit false (5[0-9]|60)$")
        # under its own prefix: a script reaches neither the engine's keys nor another's
        import subprocess
        keys = subprocess.run(["redis-cli", "-u", harness.redis_url(), "--scan", "--pattern",
                               "*" + self.limit_key + "*"], capture_output=True, text=True).stdout
        self.assertIn("herald:limit:script:" + self.limit_key, keys)

    def test_a_malformed_bucket_is_refused_with_its_name(self):
        broken = os.path.join(self.tmp, "broken")
        shutil.copytree(self.scripts, broken)
        path = os.path.join(broken, "settings.lua")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("rate = %g, per = 1" % RATE, "rate = 0, per = 1", 1))
        c = harness.cli("check", env=harness.base_env(HERALD_SCRIPTS_DIR=broken,
                                                     HERALD_DATABASE_URL=self.db_url))
        self.assertNotEqual(c.code, 0, c)
        self.assertIn('settings.limits.buckets["sms:%s"].rate' % self.sender, c.stderr)


class ProviderBackoffTest(harness.HeraldCase):
    """The provider refuses a burst (the fake Twilio accepts 4 a second and
    answers 429 / 20429 with Retry-After: 1 beyond): Herald's bucket, set too
    high at 20/s, slows down on the provider's answer as the operator's
    slow_down says (to 0.3 of its rate, never below 0.15, back slowly) and
    every message is delivered, none failed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-backoff-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
        path = os.path.join(cls.scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        cls.sender = "+1500556%04d" % random.randrange(10000)
        text = text.replace("  limits = { buckets = {} },",
                            '  limits = { slow_down = { factor = 0.3, floor = 0.15, '
                            'recover_seconds = 600 }, buckets = { ["sms:%s"] = { rate = 20, '
                            'per = 1 } } },' % cls.sender, 1)
        # an operator's longer schedule: a message may meet the provider's limit a few times
        assert "schedule = { 60, 300, 900 }," in text
        text = text.replace("schedule = { 60, 300, 900 },",
                            "schedule = { 60, 300, 900, 1800, 3600, 7200 },", 1)
        with open(path, "w") as f:
            f.write(text)
        cls.record = os.path.join(cls.tmp, "requests.jsonl")
        cls.fake, port = harness.start_fake_providers(
            cls.tmp, hang_seconds=1, extra=["--record", cls.record, "--twilio-max-rate", "4"])
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_SCRIPTS_DIR": cls.scripts,
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"), "HERALD_RETRY_SCALE": "0.001",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": cls.sender})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    def test_a_provider_429_slows_the_bucket_and_everything_is_delivered(self):
        ids = [ProviderLimitsTest.send(self, "high")[0] for _ in range(40)]
        deadline = time.time() + 90
        gauge = 'crm_rate_limit_bucket_rate{bucket="sms:%s"} ' % self.sender
        rates = []  # the bucket's rate now, as /metrics shows it along the way
        while True:
            docs = [self.server.get("/api/crm/communications/" + i, headers=auth()).json
                    for i in ids]
            m = self.server.get("/metrics").body.decode()
            rates += [float(l[len(gauge):]) for l in m.splitlines() if l.startswith(gauge)]
            if all(d["status"] in ("sent", "failed") for d in docs):
                break
            self.assertLess(time.time(), deadline, [d["status"] for d in docs])
            time.sleep(0.5)
        self.assertEqual([d["status"] for d in docs], ["sent"] * 40)
        refused = sum(1 for d in docs for a in d["attempts"] if a["code"] == "20429")
        self.assertGreater(refused, 0, "the fake never refused: the test proves nothing")
        m = self.server.get("/metrics").body.decode()
        backoff = [l for l in m.splitlines() if l.startswith("crm_rate_limited_total")
                   and 'bucket="provider_backoff"' in l]
        self.assertTrue(backoff and sum(float(l.split()[-1]) for l in backoff) >= 1, backoff)
        # the bucket's rate, 20/s as declared, was lowered on the way as the
        # operator's slow_down says, and shows so: 20 * 0.3 = 6/s, then the
        # floor 20 * 0.15 = 3/s, each recovering at most 2^(90/600) = 1.11x
        # during the test (the engine's old halving would show 10/s, 5/s, 2.5/s)
        lowered = [r for r in rates if r < 19.9]
        self.assertTrue(lowered, rates)
        for r in lowered:
            self.assertTrue(2.95 <= r <= 3.4 or 5.95 <= r <= 6.7, rates)
        self.assertIn('crm_rate_limit_bucket_configured_rate{bucket="sms:%s"} 20\n'
                      % self.sender, m)
        print("40 delivered; the provider refused %d attempts on the way; the bucket's rate "
              "went down to %.2f/s" % (refused, min(rates)))


if __name__ == "__main__":
    harness.main()

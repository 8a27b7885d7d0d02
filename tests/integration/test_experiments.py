"""A/B variants (issue 14 item 3) end to end: an experiment in
settings.experiments splits clients between two subjects; each message records
its arm (in the detail and the decision's reasons), the email written by the
engine carries that arm's subject, analytics?group_by=variant reports the arms
apart with their counts and rates, and turning the experiment off sends
everyone the control. Real server, PostgreSQL, Redis, the outbox driver."""
import email
import email.policy
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import harness

SRC = harness.SOURCE_DIR
EXPERIMENT = '''  experiments = {
    welcome_subject = {
      message_type = "welcome", enabled = true, -- under test
      variants = {
        { name = "control", weight = 50 }, -- the control arm
        { name = "short", weight = 50, subject = "Welcome aboard, {{ client_name }}!" },
      },
    },
  },'''


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ExperimentsTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-ab-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
        cls.settings = os.path.join(cls.scripts, "settings.lua")
        with open(cls.settings) as f:
            text = f.read()
        assert text.count("  experiments = {},") == 1, "settings.lua layout changed"
        with open(cls.settings, "w") as f:
            f.write(text.replace("  experiments = {},", EXPERIMENT, 1))
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={"HERALD_DATABASE_URL": cls.db_url,
                                         "HERALD_SCRIPTS_DIR": cls.scripts,
                                         "HERALD_OUTBOX_DIR": cls.outbox})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    def send(self, cid):
        r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
            "plan_id": "plan-1", "client_id": cid, "message_type": "welcome",
            "urgency": "critical", "channel": "email",
            "recipient": {"name": "Ana " + cid[-4:], "email": cid + "@example.com"}})
        self.assertEqual(r.status, 202, r)
        return r.json

    def doc(self, comm_id):
        r = self.server.get("/api/crm/communications/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def subject_of(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for path in glob.glob(os.path.join(self.outbox, "email", comm_id + "-*.eml")):
                with open(path, "rb") as f:
                    return str(email.message_from_bytes(f.read(), policy=email.policy.default)
                               ["Subject"])
            time.sleep(0.05)
        self.fail("no email written for " + comm_id)

    def test_arms_split_send_their_subjects_and_are_reported_apart(self):
        sent = []
        for i in range(60):
            cid = "client-%02d-%s" % (i, uuid.uuid4().hex[:6])
            a = self.send(cid)
            self.assertEqual(a["strategy"]["experiment"], "welcome_subject", a)
            sent.append((cid, a["id"], a["strategy"]["variant"]))
        arms = {v for _, _, v in sent}
        self.assertEqual(arms, {"control", "short"}, "60 clients never reached both arms")
        for cid, comm, variant in sent:
            subject = self.subject_of(comm)
            d = self.doc(comm)
            self.assertEqual(d["strategy"]["variant"], variant)
            self.assertIn("experiment welcome_subject: variant " + variant,
                          " ".join(d["strategy"]["reasons"]))
            if variant == "short":
                self.assertEqual(subject, "Welcome aboard, Ana %s!" % cid[-4:])
            else:
                self.assertNotIn("Welcome aboard", subject)
        # the same client always gets the same arm
        cid, _, variant = sent[0]
        again = self.send(cid)
        self.assertEqual(again["strategy"]["variant"], variant)
        self.subject_of(again["id"])  # sent

        # analytics: the arms apart, with counts that add up
        today = time.strftime("%Y-%m-%d", time.gmtime())
        r = self.server.get("/api/crm/analytics?group_by=variant&message_type=welcome&from=%s"
                            % today, headers=auth())
        self.assertEqual(r.status, 200, r)
        groups = {g["key"]: g for g in r.json["groups"]}
        want = {"welcome_subject/" + v: sum(1 for _, _, x in sent if x == v) for v in arms}
        want["welcome_subject/" + variant] += 1  # the repeat above
        self.assertEqual({k: g["total"] for k, g in groups.items()}, want)
        for g in groups.values():
            self.assertEqual(g["reached"], g["total"], g)
            self.assertIn("open_rate", g)

        # a click on one email: its arm's click rate moves, the other's does not
        self.assertEqual(subprocess.run(
            ["psql", "-X", "-q", "-d", self.db_url, "-c",
             "UPDATE crm_communications SET delivered_at = now(), opened_at = now(), "
             "clicked_at = now() WHERE id = '%s'" % sent[1][1]]).returncode, 0)
        r = self.server.get("/api/crm/analytics?group_by=variant&message_type=welcome&from=%s"
                            % today, headers=auth())
        groups = {g["key"]: g for g in r.json["groups"]}
        self.assertEqual(groups["welcome_subject/" + sent[1][2]]["clicked"], 1)
        self.assertEqual(sum(g["clicked"] for g in groups.values()), 1)

        # turning the experiment off sends everyone the control
        gen = self.server.get("/api/crm/health").json["scripts"]["generation"]
        with open(self.settings) as f:
            text = f.read()
        with open(self.settings, "w") as f:
            f.write(text.replace('enabled = true, -- under test', 'enabled = false,', 1))
        deadline = time.time() + 5
        while self.server.get("/api/crm/health").json["scripts"]["generation"] == gen:
            self.assertLess(time.time(), deadline, "the edit was not loaded")
            time.sleep(0.05)
        short = [c for c, _, v in sent if v == "short"][0]
        a = self.send(short)
        self.assertNotIn("experiment", a["strategy"])
        self.assertNotIn("Welcome aboard", self.subject_of(a["id"]))

    def test_bad_input(self):
        r = self.server.get("/api/crm/analytics?group_by=variant", headers=auth())
        self.assertError(r, 400, "invalid_field")
        self.assertIn("message_type: required with group_by=variant", r.json["error"]["message"])
        r = self.server.get("/api/crm/analytics?group_by=arm", headers=auth())
        self.assertError(r, 400, "invalid_field")
        self.assertIn("channel, message_type, day or variant", r.json["error"]["message"])
        # a mistyped experiment is refused at reload, with its place
        broken = os.path.join(self.tmp, "broken")
        shutil.copytree(self.scripts, broken)
        with open(os.path.join(broken, "settings.lua")) as f:
            text = f.read()
        with open(os.path.join(broken, "settings.lua"), "w") as f:
            f.write(text.replace('weight = 50 }, -- the control arm', 'weight = -1 },', 1))
        c = harness.cli("check", env=harness.base_env(HERALD_SCRIPTS_DIR=broken,
                                                     HERALD_DATABASE_URL=self.db_url))
        self.assertNotEqual(c.code, 0, c)
        self.assertIn("settings.experiments.welcome_subject.variants[1].weight", c.stderr)


if __name__ == "__main__":
    harness.main()

"""The examples run against a real server (issue 15, item 7).

- examples/send-every-type.sh sends every message type with its served example.
- examples/workflow/planner.py plays the planning workflow (welcome, budget
  summary, vendor options, selection confirmation, blueprint with its PDF, an
  error notification) with ?wait= and the history API: every step reaches its
  outcome on the channel the policy chose, the PDF arrives in the email, the
  history lists exactly the plan's messages (over two pages), and running the
  workflow again sends nothing twice (its Idempotency-Keys).
- examples/strategies/*: `herald check --scripts DIR` accepts each set and
  refuses a broken copy, and a server running each set decides as the set says,
  next to the shipped policy (SMS first; nothing but critical on weekends).
"""

import calendar
import email
import email.policy
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PLANNER = os.path.join(harness.SOURCE_DIR, "examples", "workflow", "planner.py")
STRATEGIES = os.path.join(harness.SOURCE_DIR, "examples", "strategies")
MATRIX_CHANNEL = {"welcome": "email", "budget_summary": "email", "vendor_options": "email",
                  "selection_confirmation": "email", "blueprint_delivery": "email",
                  "error_notification": "sms"}
SATURDAY_NOON = "2026-12-05T12:00:00Z"  # 13:00 in Paris
MONDAY_OPENING = "2026-12-07T08:00:00Z"  # 09:00 in Paris
SUNDAY_DIGEST = "2026-12-06T08:00:00Z"
WEDNESDAY_NOON = "2026-12-09T12:00:00Z"


class ExampleSetsTest(harness.unittest.TestCase):
    def test_each_set_has_every_shipped_script(self):
        """A set is whole: every module of scripts/ is there (its own file or a link
        to the shipped one), so a module the shipped policy gains is not missing."""
        shipped = sorted(os.listdir(os.path.join(harness.SOURCE_DIR, "scripts")))
        for d in sorted(glob.glob(os.path.join(STRATEGIES, "*", ""))):
            missing = [f for f in shipped if not os.path.exists(os.path.join(d, f))]
            self.assertEqual(missing, [], "%s lacks these shipped scripts (link them: "
                             "ln -s ../../../scripts/NAME)" % d)


class ServerWithOutbox:
    """A server on a database of its own, writing its outbox where the test reads it."""

    def __init__(self, case, scripts=None):
        self.db_url, self.drop = harness.fresh_database()
        self.outbox = tempfile.mkdtemp(prefix="herald-it-outbox-")
        env = {"HERALD_DATABASE_URL": self.db_url, "HERALD_OUTBOX_DIR": self.outbox}
        if scripts:
            env["HERALD_SCRIPTS_DIR"] = scripts
        try:
            self.server = case.new_server(env=env)
        except Exception:
            self.cleanup()
            raise

    def cleanup(self):
        self.drop()
        shutil.rmtree(self.outbox, ignore_errors=True)


class ExamplesTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = harness.make_jwt()
        cls.envs = []
        try:
            cls.shipped = cls.add(None)
            cls.sms_first = cls.add(os.path.join(STRATEGIES, "sms-first"))
            cls.weekends = cls.add(os.path.join(STRATEGIES, "quiet-weekends"))
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def add(cls, scripts):
        e = ServerWithOutbox(cls, scripts)
        cls.envs.append(e)
        return e

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for e in cls.envs:
                e.cleanup()

    # ---- the workflow -----------------------------------------------------

    def planner(self, server, *args):
        env = dict(os.environ, TOKEN=self.token)
        p = subprocess.run(["/usr/bin/python3", PLANNER, "--url",
                            "http://127.0.0.1:%d" % server.port, "--json", *args],
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return json.loads(p.stdout), p.stderr

    def test_workflow_sends_each_step(self):
        s = self.shipped.server
        plan, client = harness.unique("plan"), harness.unique("client")
        doc, log = self.planner(s, "--plan", plan, "--client", client, "--urgency", "critical")
        steps = doc["steps"]
        self.assertEqual([st["message_type"] for st in steps], list(MATRIX_CHANNEL))
        for st in steps:
            self.assertEqual(st["status"], "sent", st)
            self.assertEqual(st["channel"], MATRIX_CHANNEL[st["message_type"]], st)
            self.assertEqual(st["attempts"], 1, st)
        # the history API lists exactly these, newest first, over two pages of 4
        self.assertEqual([m["id"] for m in doc["history"]], [st["id"] for st in steps][::-1])
        self.assertIn("history of %s: 6 messages" % plan, log)
        # the blueprint's email carries the PDF the workflow made
        blueprint = [st for st in steps if st["message_type"] == "blueprint_delivery"][0]
        files = glob.glob(os.path.join(self.shipped.outbox, "email", blueprint["id"] + "-*"))
        self.assertEqual(len(files), 1, files)
        with open(files[0], "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
        self.assertEqual([p.get_filename() for p in pdfs], ["blueprint.pdf"])
        data = pdfs[0].get_content()
        self.assertTrue(data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF"))
        self.assertIn(b"Blueprint for graduation party", data)
        # the error notification went by SMS, as the matrix says
        error = [st for st in steps if st["message_type"] == "error_notification"][0]
        self.assertEqual(len(glob.glob(os.path.join(self.shipped.outbox, "sms",
                                                    error["id"] + "-*"))), 1)

        # the same workflow again: every step is a replay, nothing new is sent
        again, _ = self.planner(s, "--plan", plan, "--client", client, "--urgency", "critical")
        self.assertEqual([st["id"] for st in again["steps"]], [st["id"] for st in steps])
        self.assertEqual(len(again["history"]), 6)
        written = [os.path.basename(f)[:36] for ch in ("email", "sms")
                   for f in glob.glob(os.path.join(self.shipped.outbox, ch, "*"))]
        self.assertEqual(sorted(i for i in written if i in {st["id"] for st in steps}),
                         sorted(st["id"] for st in steps))

    def test_workflow_with_the_policys_urgencies(self):
        """Without --urgency each type takes the matrix's: what is not sent yet
        is scheduled for the time the strategy gave."""
        doc, _ = self.planner(self.shipped.server)
        # A step sent now has send_at = the second of its own request, which
        # may be later than when the planner started (a run that crosses a
        # second boundary failed CI): compare with when the planner ended. A
        # step the policy delays is due hours later, never within the run.
        finished = time.time()
        for st in doc["steps"]:
            send_at = st["strategy"]["send_at"]
            due = calendar.timegm(time.strptime(send_at, "%Y-%m-%dT%H:%M:%SZ"))
            if due <= finished:
                self.assertEqual(st["status"], "sent", st)
            else:
                self.assertEqual(st["status"], "scheduled", st)
        urgent = {st["message_type"]: st["status"] for st in doc["steps"]}
        # high (vendor options, blueprint) and critical (error) go now unless
        # quiet hours: this client has none
        for t in ("vendor_options", "blueprint_delivery", "error_notification"):
            self.assertEqual(urgent[t], "sent", doc["steps"])

    def test_send_every_type_script(self):
        env = dict(os.environ, TOKEN=self.token)
        p = subprocess.run(["bash", os.path.join(harness.SOURCE_DIR, "examples",
                                                 "send-every-type.sh"),
                            "http://127.0.0.1:%d" % self.shipped.server.port],
                           capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = dict(ln.split(None, 1) for ln in p.stdout.splitlines())
        self.assertEqual(set(lines), set(MATRIX_CHANNEL) | {"reminder"}, p.stdout)
        for t, outcome in lines.items():
            # critical: each goes at once, on its matrix primary (a reminder
            # is email only)
            self.assertTrue(outcome.startswith("sent by %s " % MATRIX_CHANNEL.get(t, "email")),
                            "%s: %s" % (t, outcome))

    # ---- the strategies ---------------------------------------------------

    def test_check_accepts_each_strategy_and_refuses_a_broken_one(self):
        for name in ("sms-first", "quiet-weekends"):
            r = harness.cli("check", "--scripts", os.path.join(STRATEGIES, name))
            self.assertEqual(r.code, 0, r)
            self.assertIn("policy: ok", r.stdout)
        with tempfile.TemporaryDirectory() as d:
            broken = os.path.join(d, "sms-first")
            shutil.copytree(os.path.join(STRATEGIES, "sms-first"), broken)  # links followed
            with open(os.path.join(broken, "matrix.lua"), "a") as f:
                f.write("\nreturn {\n")
            r = harness.cli("check", "--scripts", broken)
            self.assertEqual(r.code, 1, r)
            self.assertIn("matrix.lua:", r.stderr)
        r = harness.cli("check", "--scripts", os.path.join(STRATEGIES, "nope"))
        self.assertEqual(r.code, 1, r)
        self.assertIn("not a directory", r.stderr)

    def preview(self, env, **body):
        r = env.server.post_json("/api/crm/strategy/preview", body,
                                 headers={"Authorization": "Bearer " + self.token})
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_sms_first(self):
        prefs = {"email": "a@example.com", "phone": "+14155550100",
                 "timezone": "Europe/Paris", "consent": {"given": True}}
        for mtype, primary in (("welcome", "sms"), ("budget_summary", "sms"),
                               ("vendor_options", "whatsapp"),
                               ("blueprint_delivery", "email")):
            mine = self.preview(self.sms_first, message_type=mtype, preferences=prefs)
            shipped = self.preview(self.shipped, message_type=mtype, preferences=prefs)
            self.assertEqual(mine["strategy"]["primary_channel"], primary, mine)
            self.assertEqual(shipped["strategy"]["primary_channel"], "email", shipped)
        # and a real send goes out by SMS
        s = self.sms_first.server
        auth = {"Authorization": "Bearer " + self.token}
        client = harness.unique("young")
        r = s.post_json("/api/crm/preferences", dict(prefs, client_id=client), headers=auth)
        self.assertIn(r.status, (200, 201), r)
        r = s.post_json("/api/crm/communications?wait=10",
                        {"plan_id": "p", "client_id": client, "message_type": "welcome",
                         "urgency": "critical"}, headers=auth)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "sent", r)
        self.assertEqual(r.json["strategy"]["fallback_channels"], ["whatsapp", "email"])
        got = s.get("/api/crm/communications/" + r.json["id"], token=self.token).json
        self.assertEqual(got["channel"], "sms", got)
        self.assertEqual(len(glob.glob(os.path.join(self.sms_first.outbox, "sms",
                                                    r.json["id"] + "-*"))), 1)

    def test_quiet_weekends(self):
        prefs = {"email": "a@example.com", "timezone": "Europe/Paris"}

        def when(env, urgency, now):
            d = self.preview(env, message_type="vendor_options", urgency=urgency,
                             preferences=prefs, now=now)
            return d["strategy"]["send_at"], d["reasons"]

        # Saturday: high waits for Monday's opening; the shipped policy sends now
        at, reasons = when(self.weekends, "high", SATURDAY_NOON)
        self.assertEqual(at, MONDAY_OPENING, reasons)
        self.assertIn("quiet weekends: high falls on a Saturday → not before Monday 09:00",
                      reasons)
        self.assertEqual(when(self.shipped, "high", SATURDAY_NOON)[0], SATURDAY_NOON)
        # the digest moves from Sunday 09:00 to Monday 09:00
        self.assertEqual(when(self.shipped, "low", SATURDAY_NOON)[0], SUNDAY_DIGEST)
        self.assertEqual(when(self.weekends, "low", SATURDAY_NOON)[0], MONDAY_OPENING)
        # critical still goes at once; a weekday is untouched
        self.assertEqual(when(self.weekends, "critical", SATURDAY_NOON)[0], SATURDAY_NOON)
        self.assertEqual(when(self.weekends, "high", WEDNESDAY_NOON)[0], WEDNESDAY_NOON)
        # normal already waited for a working day: the same answer as shipped
        self.assertEqual(when(self.weekends, "normal", SATURDAY_NOON)[0],
                         when(self.shipped, "normal", SATURDAY_NOON)[0])


if __name__ == "__main__":
    harness.main()

"""Fault matrix (issue 17): the file driver's outbox directory unwritable.

The email outbox directory is replaced by a regular file (as root, chmod
would not stop a write), so every attempt to write the message fails with
ENOTDIR. Such a failure is the machine's, not the recipient's: each attempt
must be recorded as a transient failure naming the directory and the error,
the message must stay on email (waiting on the retry schedule, never moved
to its SMS fallback nor failed), and the server log must say which directory
and why, without the message. Once the directory is back, the message is
written exactly once."""

import os
import subprocess
import tempfile
import uuid

import harness

COMMS = "/api/crm/communications"
EMAIL = "zoe.outbox@example.com"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class OutboxUnwritableTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-fault-outbox-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.db, cls.drop = harness.fresh_database()
        cls.server = cls.new_server(name="herald (broken outbox)", env={
            "HERALD_DATABASE_URL": cls.db, "HERALD_OUTBOX_DIR": cls.outbox,
            "HERALD_WORKERS": "1",
            # retries after about 0.6 s, 3 s and 9 s (settings.retry x 0.01),
            # then the next channel: the test restores the directory well
            # before the schedule is used up
            "HERALD_RETRY_SCALE": "0.01"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop()
            subprocess.run(["rm", "-rf", cls.tmp])

    def doc(self, comm_id):
        r = self.server.get(COMMS + "/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_an_unwritable_outbox_is_retried_and_nothing_is_lost(self):
        cid = "fault-outbox-" + uuid.uuid4().hex[:8]
        # email first, SMS as the fallback: a misclassified failure moves on
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body={
            "client_id": cid, "email": EMAIL, "phone": "+14155550123"})
        self.assertIn(r.status, (200, 201), r)
        email_dir = os.path.join(self.outbox, "email")
        os.makedirs(self.outbox, exist_ok=True)
        with open(email_dir, "w") as f:
            f.write("not a directory\n")

        r = self.server.request("POST", COMMS, headers=auth(), json_body={
            "plan_id": "fault-outbox", "client_id": cid, "message_type": "welcome",
            "urgency": "critical"})
        self.assertEqual(r.status, 202, r)
        comm_id = r.json["id"]
        self.assertEqual(r.json["strategy"]["primary_channel"], "email", r)

        # two attempts, both failing on the directory
        d = harness.wait_until(lambda: (lambda d: d if len(d["attempts"]) >= 2 else None)(
            self.doc(comm_id)), 20, 0.1)
        self.assertTrue(d, "fewer than two attempts in 20 s: %r" % self.doc(comm_id))
        self.assertIn(d["status"], ("scheduled", "queued", "sending"), d)
        self.assertIsNone(d["failed_at"], d)
        for a in d["attempts"]:
            self.assertEqual((a["channel"], a["status"], a["category"], a["code"]),
                             ("email", "failed", "transient", "ENOTDIR"), a)
            self.assertIn(email_dir, a["message"], a)
            self.assertIn("Not a directory", a["message"], a)
        self.assertEqual(harness.outbox_ids(self.outbox, "sms"), [], "moved to SMS")

        # the log names the directory and the error, never the message
        line = self.server.wait_log(lambda l: l.get("dir") == email_dir, 5)
        self.assertIsNotNone(line, "no log line names the outbox directory")
        self.assertEqual((line["level"], line["error"], line["errno"]),
                         ("warn", "Not a directory", "ENOTDIR"), line)
        self.assertNotIn(EMAIL, self.server.stderr())
        self.assertNotIn("Welcome", self.server.stderr())

        # the directory comes back: the next retry writes the message, once
        os.unlink(email_dir)
        os.makedirs(email_dir)
        done = harness.wait_until(lambda: (lambda d: d if d["status"] not in (
            "scheduled", "queued", "sending") else None)(self.doc(comm_id)), 30, 0.1)
        self.assertTrue(done, "still pending 30 s after the directory came back")
        self.assertEqual((done["status"], done["channel"]), ("sent", "email"), done)
        failed = [a for a in done["attempts"] if a["status"] != "sent"]
        sent = [a for a in done["attempts"] if a["status"] == "sent"]
        self.assertGreaterEqual(len(failed), 2, done["attempts"])
        self.assertEqual(len(sent), 1, done["attempts"])
        self.assertEqual(harness.outbox_ids(self.outbox, "email"), [comm_id])
        self.assertEqual(harness.outbox_ids(self.outbox, "sms"), [])
        print("\n%d attempts failed on ENOTDIR (transient), then written once"
              % len(failed))


if __name__ == "__main__":
    harness.main()

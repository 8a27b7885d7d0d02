"""Personal data at rest (issue 17, item 12): the client's name and the
message context are stored encrypted like the addresses, so a copy of the
database (a SELECT of every row of every table, or pg_dump) holds none of
them, while the API and the delivered email still show them. A script
error about a context value logs and stores the field's name and length,
never the value; the access log masks an address in a path.

Runs on a database of its own (its server's workers claim every job there),
with a copy of templates/ whose reminder quotes a context value in an error."""

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import harness

PREFS = "/api/crm/preferences"
COMMS = "/api/crm/communications"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class PersonalDataAtRestTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-pii-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.templates = os.path.join(cls.tmp, "templates")
        shutil.copytree(os.path.join(harness.SOURCE_DIR, "templates"), cls.templates)
        # the date filter's error quotes the value it could not read
        with open(os.path.join(cls.templates, "reminder.subject"), "w") as f:
            f.write('Reminder for {{ due_item|date("%Y") }}\n')
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_OUTBOX_DIR": cls.outbox,
            "HERALD_TEMPLATES_DIR": cls.templates, "HERALD_WORKERS": "1"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.db_url, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def every_row(self):
        """Every row of every table of the database, as text (all columns)."""
        tables = self.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split()
        self.assertIn("crm_communications", tables)
        return "\n".join(self.psql("SELECT t::text FROM %s t" % t) for t in tables)

    def settle(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", COMMS + "/" + comm_id, headers=auth())
            self.assertEqual(r.status, 200, r)
            if r.json["status"] not in ("scheduled", "queued", "sending") \
                    or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def client(self, mark):
        cid = "pii-" + uuid.uuid4().hex[:12]
        email = "quill.%s@example.com" % mark
        r = self.server.request("POST", PREFS, headers=auth(), json_body={
            "client_id": cid, "name": "Zephyrine Quillfeather " + mark, "email": email,
            "timezone": "Europe/Paris", "consent": {"given": True, "source": "test"}})
        self.assertIn(r.status, (200, 201), r)
        return cid, email

    def test_name_and_context_are_absent_from_the_database_but_shown_and_sent(self):
        mark = uuid.uuid4().hex[:10]
        cid, email = self.client(mark)
        context = {"event_type": "wedding", "event_date": "2027-06-14",
                   "plan_url": "https://plans.example.com/p/pii",
                   "venue": "Chateau Brightwater " + mark,
                   "planner": {"name": "Ottoline Ravensworth " + mark},
                   "budget_note": "at most 48213 euros " + mark}
        r = self.server.request("POST", COMMS, headers=auth(), json_body={
            "plan_id": "plan-pii", "client_id": cid, "message_type": "welcome",
            "urgency": "critical", "channel": "email", "context": context})
        self.assertEqual(r.status, 202, r)
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "email"), doc)

        # The API shows the context and the client's name as given.
        self.assertEqual(doc["context"], context, doc)
        p = self.server.request("GET", PREFS + "/" + cid, headers=auth())
        self.assertEqual(p.json["name"], "Zephyrine Quillfeather " + mark, p)
        # The email carries them.
        files = glob.glob(os.path.join(self.outbox, "email", doc["id"] + "-*.eml"))
        self.assertEqual(len(files), 1, files)
        with open(files[0], "rb") as f:
            eml = f.read().decode("utf-8", "replace")
        for shown in ("Quillfeather " + mark, "Brightwater " + mark, "Ravensworth " + mark):
            self.assertIn(shown, eml)

        # The database holds none of it: not in any column of any row ...
        rows = self.every_row()
        self.assertIn(doc["id"], rows, "set-up: the message is not in the rows read")
        self.assertNotIn(mark, rows)
        self.assertNotIn(email, rows)
        self.assertNotIn("Quillfeather", rows)
        # ... and not in a dump of the database.
        dump = subprocess.run(["pg_dump", "-d", self.db_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(dump.returncode, 0, dump.stderr.decode())
        text = dump.stdout.decode("utf-8", "replace")
        self.assertIn(doc["id"], text)
        self.assertNotIn(mark, text)
        self.assertNotIn("Brightwater", text)
        # What queries need stays in clear.
        row = self.psql("SELECT client_id, message_type, context IS NULL, context_enc LIKE 'v1.%%' "
                        "FROM crm_communications WHERE id = '%s'" % doc["id"])
        self.assertEqual(row.strip(), "%s|welcome|t|t" % cid)
        # The server's log has neither the values nor the address.
        log = self.server.stderr()
        self.assertNotIn(mark, log)

    def test_a_script_error_on_a_context_value_logs_its_name_and_length_only(self):
        mark = uuid.uuid4().hex[:10]
        cid, _ = self.client(mark)
        due = "Ballroom Secretvale " + mark
        r = self.server.request("POST", COMMS, headers=auth(), json_body={
            "plan_id": "plan-pii", "client_id": cid, "message_type": "reminder",
            "urgency": "critical", "channel": "email",
            "context": {"event_type": "gala", "event_date": "2027-06-14", "due_item": due,
                        "due_date": "2027-05-01"}})
        self.assertEqual(r.status, 202, r)
        doc = self.settle(r.json["id"])
        self.assertEqual(doc["status"], "failed", doc)
        errors = [ln for ln in self.server.log_lines() if ln.get("msg") == "script error"
                  and "<due_item: %d bytes>" % len(due) in ln.get("error", "")]
        self.assertTrue(errors, "no script error names the field and its length:\n%s"
                        % self.server.stderr()[-3000:])
        self.assertIn("date: expected an ISO date", errors[0]["error"])
        # Nowhere the value: not in the log, not in the stored events.
        self.assertNotIn(mark, self.server.stderr())
        self.assertNotIn(mark, str(doc["attempts"]) + str(doc["events"]))
        self.assertIn("<due_item: %d bytes>" % len(due), str(doc["events"]))
        self.assertNotIn(mark, self.every_row())

    def test_the_access_log_masks_an_address_in_a_path(self):
        addr = "nobody.%s@example.com" % uuid.uuid4().hex[:8]
        r = self.server.request("GET", PREFS + "/" + addr, headers=auth())
        self.assertEqual(r.status, 404, r)
        line = self.server.wait_log(lambda ln: ln.get("msg") == "request" and
                                    ln.get("route") == PREFS + "/{client_id}" and
                                    "address" in ln.get("path", ""))
        self.assertIsNotNone(line, self.server.stderr()[-2000:])
        self.assertEqual(line["path"], PREFS + "/{address: %d bytes}" % len(addr))
        self.assertNotIn(addr, self.server.stderr())


if __name__ == "__main__":
    harness.main()

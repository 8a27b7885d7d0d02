"""GDPR export (issue 12, item 4; Art. 15 and 20): GET
/api/crm/clients/{client_id}/export (admin) answers one JSON document with
the client's preferences decrypted, consent history, every message with its
attempts and events (context and recipient override decrypted) and the
suppressions of the client's addresses - and nothing about another client.
The document is streamed a page of messages at a time: with 20,000 messages
the server reads 101 pages and its peak memory grows by far less than the
document's size.

Runs on a database of its own (its server's workers claim every job there)."""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import harness

PREFS = "/api/crm/preferences"
COMMS = "/api/crm/communications"
CLIENTS = "/api/crm/clients/"
MANY = 20000


def auth(scope="send read admin"):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope))}


def peak_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class ExportTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-export-")
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "out"),
            "HERALD_WORKERS": "1"})

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
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def settle(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", COMMS + "/" + comm_id, headers=auth())
            if r.json["status"] not in ("scheduled", "queued", "sending") \
                    or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def client(self, mark):
        cid = "exp-" + uuid.uuid4().hex[:12]
        who = {"name": "Cordelia Ashgrove " + mark, "email": "ash.%s@example.com" % mark,
               "phone": harness.phone()}
        r = self.server.request("POST", PREFS, headers=auth(), json_body=dict(
            who, client_id=cid, timezone="UTC", consent={"given": True, "source": "signup"}))
        self.assertIn(r.status, (200, 201), r)
        return cid, who

    def send(self, cid, mark, **extra):
        body = {"plan_id": "plan-exp", "client_id": cid, "message_type": "welcome",
                "urgency": "critical", "channel": "email",
                "context": {"event_type": "wedding", "event_date": "2027-06-14",
                            "client_name": "Cordelia " + mark}}
        body.update(extra)
        r = self.server.request("POST", COMMS, headers=auth(), json_body=body)
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def export(self, cid):
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        c.request("GET", CLIENTS + cid + "/export", headers=auth())
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def test_export_is_everything_about_the_client_streamed(self):
        mark = uuid.uuid4().hex[:10]
        cid, who = self.client(mark)
        other, other_who = self.client(uuid.uuid4().hex[:10])
        sent = self.settle(self.send(cid, mark))
        self.assertEqual(sent["status"], "sent", sent)
        later = self.send(cid, mark, send_at="2099-01-01T09:00:00Z",
                          recipient={"email": "override.%s@example.com" % mark})
        theirs = self.settle(self.send(other, "zz"))
        self.psql("INSERT INTO crm_suppressions (channel, address_index, reason, source) "
                  "SELECT 'email', email_index, 'bounce', 'test' FROM crm_client_preferences "
                  "WHERE client_id IN ('%s', '%s')" % (cid, other))
        self.psql("INSERT INTO crm_inbound_contacts (channel, address_index, last_inbound_at, "
                  "messages) SELECT ch, phone_index, now(), 1 FROM crm_client_preferences, "
                  "unnest(ARRAY['whatsapp', CASE WHEN client_id = '%s' THEN 'sms' END]) ch "
                  "WHERE client_id IN ('%s', '%s') AND ch IS NOT NULL" % (other, cid, other))

        r, body = self.export(cid)
        self.assertEqual(r.status, 200, body[:300])
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertIsNone(r.getheader("Content-Length"))  # streamed, chunked
        doc = json.loads(body)
        self.assertEqual(doc["client_id"], cid)
        p = doc["preferences"]
        self.assertEqual((p["name"], p["email"], p["phone"]),
                         (who["name"], who["email"], who["phone"]))
        self.assertTrue(p["consent"]["given"])
        self.assertEqual([h["details"]["source"] for h in doc["consent_history"]], ["signup"])
        self.assertEqual([(s["channel"], s["reason"]) for s in doc["suppressions"]],
                         [("email", "bounce")])
        self.assertEqual([(k["channel"], k["messages"]) for k in doc["inbound_contacts"]],
                         [("whatsapp", 1)])
        self.assertEqual(doc["communications_count"], 2)
        first, second = doc["communications"]
        self.assertEqual((first["id"], second["id"]), (sent["id"], later))
        self.assertEqual(first["context"]["client_name"], "Cordelia " + mark)
        self.assertEqual(first["status"], "sent")
        self.assertTrue(first["attempts"], first)
        self.assertEqual(second["recipient"]["email"], "override.%s@example.com" % mark)
        self.assertNotIn("context_enc", first)
        text = body.decode()
        for v in (other, theirs["id"], other_who["email"], other_who["name"]):
            self.assertNotIn(v, text)

        # only an admin; an unknown client is 404
        r = self.server.request("GET", CLIENTS + cid + "/export", headers=auth("send read"))
        self.assertEqual(r.status, 403, r)
        r = self.server.request("GET", CLIENTS + "nobody-" + mark + "/export", headers=auth())
        self.assertEqual(r.status, 404, r)

        # many messages: read in pages, memory bounded
        self.psql("INSERT INTO crm_communications SELECT (jsonb_populate_record("
                  "NULL::crm_communications, to_jsonb(c) || jsonb_build_object('id', "
                  "gen_random_uuid(), 'created_at', c.created_at + g * interval '1 ms', "
                  "'idempotency_key', NULL, 'provider_message_id', NULL))).* "
                  "FROM crm_communications c, generate_series(1, %d) g WHERE c.id = '%s'"
                  % (MANY, sent["id"]))
        before = peak_kb(self.server.proc.pid)
        r, body = self.export(cid)
        after = peak_kb(self.server.proc.pid)
        self.assertEqual(r.status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["communications_count"], MANY + 2)
        self.assertEqual(len({m["id"] for m in doc["communications"]}), MANY + 2)
        self.assertTrue(all(m["context"]["client_name"] == "Cordelia " + mark
                            for m in doc["communications"] if m["id"] != later))
        grew = after - before
        print("export of %d messages: %d bytes, server peak RSS %d -> %d KiB (+%d)"
              % (MANY + 2, len(body), before, after, grew))
        # ASan's quarantine keeps freed memory resident (it measured +400 MB
        # there, with no leak reported): the bound holds for the plain build;
        # the page count below holds for both
        if not os.environ.get("ASAN_OPTIONS"):
            self.assertLess(grew * 1024, len(body) / 4, "the server held the document")
        line = self.server.wait_log(lambda ln: ln.get("msg") == "client export"
                                    and int(ln.get("pages", "0")) > 100)
        self.assertIsNotNone(line, "no export read in pages")
        self.assertEqual(line["pages"], str((MANY + 2) // 200 + 1))


if __name__ == "__main__":
    harness.main()

"""GDPR erasure (issue 12, item 4): DELETE /api/crm/clients/{client_id}
(admin) makes the client's name, email, phone and message contexts
unrecoverable - a pg_dump after it holds them in no form, neither in clear
nor as the ciphertexts that were stored - cancels the waiting messages,
keeps the message rows (analytics), writes the blind indexes to the
suppression list, drops the Redis copy of the preferences and records who
erased whom. A second erasure and an unknown client answer 404.

Runs on a database of its own (its server's workers claim every job there)."""

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


def auth(scope="send read admin", sub="test:python"):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope, sub=sub))}


class ErasureTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-gdpr-")
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
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def dump(self):
        d = subprocess.run(["pg_dump", "-d", self.db_url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(d.returncode, 0, d.stderr.decode())
        return d.stdout.decode("utf-8", "replace")

    def redis(self, *args):
        url = harness.redis_url()
        port = url.rsplit(":", 1)[1].split("/")[0]
        p = subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True,
                           timeout=10)
        return p.stdout.strip()

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
        cid = "gdpr-" + uuid.uuid4().hex[:12]
        who = {"name": "Philippa Wintergreen " + mark, "email": "wg.%s@example.com" % mark,
               "phone": harness.phone()}
        r = self.server.request("POST", PREFS, headers=auth(), json_body=dict(
            who, client_id=cid, timezone="UTC", consent={"given": True, "source": "test"}))
        self.assertIn(r.status, (200, 201), r)
        return cid, who

    def send(self, cid, mark, **extra):
        body = {"plan_id": "plan-gdpr", "client_id": cid, "message_type": "welcome",
                "urgency": "critical", "channel": "email",
                "context": {"event_type": "wedding", "event_date": "2027-06-14",
                            "client_name": "Philippa " + mark}}
        body.update(extra)
        r = self.server.request("POST", COMMS, headers=auth(), json_body=body)
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def test_erasure_leaves_no_trace_in_a_dump(self):
        mark = uuid.uuid4().hex[:10]
        cid, who = self.client(mark)
        other, other_who = self.client(uuid.uuid4().hex[:10])
        sent = self.settle(self.send(cid, mark))
        self.assertEqual(sent["status"], "sent", sent)
        later = self.send(cid, mark, send_at="2099-01-01T09:00:00Z",
                          recipient={"email": "override.%s@example.com" % mark})
        self.assertEqual(self.settle(later, timeout=1)["status"], "scheduled")
        kept = self.settle(self.send(other, mark))
        # a provider's reply that quotes the address, as a bounce does
        self.psql("INSERT INTO crm_delivery_logs (communication_id, kind, event_type, message, "
                  "details) "
                  "VALUES ('%s', 'event', 'bounced', '550 5.1.1 <%s>: user unknown', "
                  "'{\"to\": \"%s\"}')" % (sent["id"], who["email"], who["email"]))
        self.psql("UPDATE crm_communications SET tracked_links = '[\"https://x.test/?n=%s\"]' "
                  "WHERE id = '%s'" % (mark, sent["id"]))
        self.server.request("GET", PREFS + "/" + cid, headers=auth())  # fills the cache
        self.assertEqual(self.redis("EXISTS", "herald:prefs:v1:" + cid), "1")
        sealed = [v for v in self.psql(
            "SELECT concat_ws(' ', email_enc, phone_enc, name_enc) FROM crm_client_preferences "
            "WHERE client_id = '%s' UNION ALL SELECT concat_ws(' ', context_enc, recipient_enc) "
            "FROM crm_communications WHERE client_id = '%s'" % (cid, cid)).split() if v]
        self.assertGreaterEqual(len(sealed), 5, sealed)
        before = self.dump()
        for v in sealed + [who["email"], mark]:
            self.assertIn(v, before, "set-up: the dump before erasure lacks %s" % v)

        # only an admin may erase
        r = self.server.request("DELETE", CLIENTS + cid, headers=auth("send read"))
        self.assertEqual(r.status, 403, r)
        r = self.server.request("DELETE", CLIENTS + cid, headers=auth(sub="dpo:alice"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"client_id": cid, "erased": True, "communications": 2,
                                  "cancelled": 1, "suppressed": 3}, r.json)
        # twice, or an unknown client: 404 and nothing written
        r = self.server.request("DELETE", CLIENTS + cid, headers=auth())
        self.assertEqual(r.status, 404, r)
        r = self.server.request("DELETE", CLIENTS + "nobody-" + mark, headers=auth())
        self.assertEqual(r.status, 404, r)

        text = self.dump()
        for v in sealed + [who["email"], who["phone"], who["name"], mark, "Wintergreen",
                           who["email"].split("@")[0], who["phone"][1:]]:
            self.assertNotIn(v, text)
        # the other client is untouched
        self.assertIn(kept["id"], text)
        p = self.server.request("GET", PREFS + "/" + other, headers=auth())
        self.assertEqual(p.json["name"], other_who["name"], p)

        # the rows stay for analytics, emptied; the waiting one is cancelled
        rows = self.psql("SELECT id, status, context::text, erased_at IS NOT NULL "
                         "FROM crm_communications WHERE client_id = '%s' ORDER BY created_at"
                         % cid).split()
        self.assertEqual(rows, ["%s|sent|{}|t" % sent["id"], "%s|cancelled|{}|t" % later])
        self.assertEqual(self.psql("SELECT count(*) FROM crm_jobs WHERE communication_id = '%s'"
                                   % later).strip(), "0")
        self.assertEqual(self.server.request("GET", PREFS + "/" + cid, headers=auth()).status,
                         404)
        self.assertEqual(self.redis("EXISTS", "herald:prefs:v1:" + cid), "0")
        # the addresses are suppressed by blind index, the audit says who
        self.assertEqual(self.psql("SELECT string_agg(channel || ':' || source, ',' ORDER BY "
                                   "channel) FROM crm_suppressions").strip(),
                         "email:erasure,sms:erasure,whatsapp:erasure")
        audit = self.psql("SELECT actor, target, details->>'communications' FROM crm_audit_log "
                          "WHERE action = 'client.erase'").split()
        self.assertEqual(audit, ["dpo:alice|client:%s|2" % cid])


if __name__ == "__main__":
    harness.main()

"""Acceptance without a preferences read (issue 16): a request that carries
its own recipient, for a client this process has not seen with a stored
preferences row, is decided as for a client with none, without reading
Redis or PostgreSQL, and the insert itself stores it only while the client
has no row. When the client has one after all (saved through another
process), nothing of the first decision is stored: the row is read and the
message decided again from it, so a stored opt-out or channel list always
wins over the guess. A client the process has seen with a row is read as
before; one it read and found without a row is guessed again.

Counted by crm_accept_unread_prefs_total (stored unread),
crm_accept_unread_prefs_refused_total (the insert found a row) and
crm_prefs_group_clients_total (clients read from PostgreSQL).

Runs on a database of its own, with a second server on it (the other
process); the counters are the first server's."""

import subprocess
import uuid

import harness

PREFS = "/api/crm/preferences"
COMMS = "/api/crm/communications"
CONTEXT = {"event_type": "wedding", "event_date": "2027-06-14"}


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def new_id():
    return "it-accept-" + uuid.uuid4().hex[:12]


class AcceptWithoutReadTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={"HERALD_DATABASE_URL": cls.db_url,
                                         "HERALD_WORKERS": "1"})
        cls.other = cls.new_server(name="herald (another process)",
                                   env={"HERALD_DATABASE_URL": cls.db_url,
                                        "HERALD_WORKERS": "1"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                            "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode().strip()

    def uncache(self, cid):
        subprocess.run(["redis-cli", "-u", harness.redis_url(), "DEL", "herald:prefs:v1:" + cid],
                       stdout=subprocess.DEVNULL, timeout=10, check=True)

    def save_prefs(self, doc, server=None):
        r = (server or self.other).request("POST", PREFS, headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        self.uncache(doc["client_id"])

    def counters(self):
        text = self.server.get("/metrics").body.decode()
        out = {}
        for name in ("crm_accept_unread_prefs_total", "crm_accept_unread_prefs_refused_total",
                     "crm_prefs_group_clients_total"):
            lines = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
            self.assertEqual(len(lines), 1, "%s is not exported" % name)
            out[name.replace("crm_", "").replace("_total", "")] = float(lines[0].split()[1])
        return out

    def delta(self, before):
        after = self.counters()
        return {k: after[k] - before[k] for k in after}

    def send(self, cid, recipient, headers=None, expect=202):
        body = {"plan_id": "plan-accept", "client_id": cid, "message_type": "welcome",
                "urgency": "high", "context": CONTEXT}
        if recipient is not None:
            body["recipient"] = recipient
        h = auth()
        h.update(headers or {})
        r = self.server.request("POST", COMMS, headers=h, json_body=body)
        self.assertEqual(r.status, expect, r)
        return r

    def stored(self, cid):
        return int(self.psql("SELECT count(*) FROM crm_communications WHERE client_id = '%s'"
                             % cid))

    def test_a_new_client_with_its_recipient_is_accepted_without_a_read(self):
        cid = new_id()
        before = self.counters()
        r = self.send(cid, {"name": "Ana Lima", "email": "ana@example.com"})
        self.assertEqual(r.json["strategy"]["primary_channel"], "email", r)
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 1, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 0})
        self.assertEqual(self.stored(cid), 1)

    def test_a_row_saved_through_another_process_wins_over_the_guess(self):
        # The client has told us: SMS only, and no email. The request's own
        # recipient offers an email address; the guess would use it.
        cid = new_id()
        self.save_prefs({"client_id": cid, "phone": "+447700900123", "channels": ["sms"],
                         "opted_out": ["email"]})
        before = self.counters()
        r = self.send(cid, {"name": "Ben Okafor", "email": "ben@example.com"})
        self.assertEqual(r.json["strategy"]["primary_channel"], "sms", r)
        self.assertNotIn("email", r.json["strategy"]["fallback_channels"], r)
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 0, "accept_unread_prefs_refused": 1,
                          "prefs_group_clients": 1})
        self.assertEqual(self.stored(cid), 1)
        # the read refilled the cache, and this process now knows the client
        # has a row: the next request is decided from the cache
        before = self.counters()
        r = self.send(cid, {"email": "ben@example.com"})
        self.assertEqual(r.json["strategy"]["primary_channel"], "sms", r)
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 0, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 0})

    def test_a_client_this_process_saved_is_read_not_guessed(self):
        cid = new_id()
        self.save_prefs({"client_id": cid, "phone": "+447700900125", "channels": ["sms"]},
                        server=self.server)
        before = self.counters()
        r = self.send(cid, {"email": "gil@example.com"})
        self.assertEqual(r.json["strategy"]["primary_channel"], "sms", r)
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 0, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 1})

    def test_a_client_read_without_a_row_is_guessed_again(self):
        cid = new_id()
        self.save_prefs({"client_id": cid, "email": "hal@example.com"}, server=self.server)
        self.psql("DELETE FROM crm_client_preferences WHERE client_id = '%s'" % cid)
        before = self.counters()
        self.send(cid, {"email": "hal@example.com"})  # read: no row any more
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 0, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 1})
        before = self.counters()
        self.send(cid, {"email": "hal@example.com"})
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 1, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 0})

    def test_the_idempotency_key_is_completed_by_the_message_stored(self):
        cid = new_id()
        self.save_prefs({"client_id": cid, "phone": "+447700900124", "channels": ["sms"]})
        key = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
        first = self.send(cid, {"email": "cy@example.com"}, headers=key)
        again = self.send(cid, {"email": "cy@example.com"}, headers=key)
        self.assertEqual(again.json, first.json)
        self.assertEqual(first.json["strategy"]["primary_channel"], "sms", first)
        self.assertEqual(self.stored(cid), 1)
        self.assertEqual(self.psql("SELECT state || ' ' || communication_id FROM "
                                   "crm_idempotency_keys WHERE idempotency_key = '%s'"
                                   % key["Idempotency-Key"]), "done " + first.json["id"])

    def test_a_guess_the_policy_refuses_is_read_before_refusing(self):
        # The request names the client but gives no address: the guess has
        # no channel. The stored row has one, so the message is accepted.
        cid = new_id()
        self.save_prefs({"client_id": cid, "email": "dee@example.com"})
        before = self.counters()
        r = self.send(cid, {"name": "Dee Ito"})
        self.assertEqual(r.json["strategy"]["primary_channel"], "email", r)
        self.assertEqual(self.delta(before)["prefs_group_clients"], 1)
        # with no row either, the refusal stands, after the read
        lone = new_id()
        before = self.counters()
        r = self.send(lone, {"name": "Eve Ng"}, expect=422)
        self.assertEqual(r.json["error"]["code"], "no_channel", r)
        self.assertEqual(self.delta(before)["prefs_group_clients"], 1)
        self.assertEqual(self.stored(lone), 0)

    def test_without_a_recipient_the_row_is_read_first(self):
        cid = new_id()
        self.save_prefs({"client_id": cid, "email": "fay@example.com"})
        before = self.counters()
        self.send(cid, None)
        self.assertEqual(self.delta(before),
                         {"accept_unread_prefs": 0, "accept_unread_prefs_refused": 0,
                          "prefs_group_clients": 1})


if __name__ == "__main__":
    harness.main()

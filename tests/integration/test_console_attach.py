"""The console attached to a running engine (issue 15 item 2): `herald console
--attach=URL`, driven through a pipe, against the real server, PostgreSQL,
Redis and the fake Twilio. Each helper is checked against what the engine
really holds: queue(), message(id), why(client_id), providers(), pause() /
resume() (a paused channel sends nothing, loses nothing, and sends what waited
on resume; both audited), retry(id) (a failed message goes again, audited),
and the admin API behind them refuses other scopes and bad input."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import harness

SID, TOKEN = "AC00000000000000000000000000000000", "test-token"


def auth(scope="send read"):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope))}


class ConsoleAttachTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-console-")
        cls.outbox = os.path.join(cls.tmp, "outbox")
        cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1)
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_OUTBOX_DIR": cls.outbox,
            "HERALD_RETRY_SCALE": "0.001",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, True)

    # -- helpers --------------------------------------------------------------

    def console(self, *lines, env=None):
        """Runs the lines through `herald console --attach` from a pipe."""
        p = subprocess.run(
            [harness.HERALD_BIN, "console", "--attach=http://127.0.0.1:%d" % self.server.port],
            input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60,
            cwd=harness.SOURCE_DIR,
            env=env or harness.base_env(HERALD_DATABASE_URL=self.db_url))
        return p.returncode, p.stdout, p.stderr

    def lua_json(self, expr):
        """The value of a console expression, as JSON (herald.json_encode in the console)."""
        code, out, err = self.console("print(herald.json_encode(%s))" % expr)
        self.assertEqual(code, 0, err)
        return json.loads(out.strip().splitlines()[-1])

    def client(self, **extra):
        cid = "client-" + uuid.uuid4().hex[:12]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
               "timezone": "UTC", "consent": {"given": True, "source": "test"}}
        doc.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type="welcome", **extra):
        body = {"plan_id": "plan-1", "client_id": cid, "message_type": message_type,
                "urgency": "critical"}
        body.update(extra)
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def doc(self, comm_id):
        r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def settle(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            d = self.doc(comm_id)
            if d["status"] in ("sent", "failed", "cancelled", "suppressed") \
                    or time.time() > deadline:
                return d
            time.sleep(0.05)

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                            "-c", sql], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    # -- tests ----------------------------------------------------------------

    def test_queue_message_why_and_providers_show_what_the_engine_holds(self):
        cid = self.client()
        sent = self.settle(self.send(cid))
        self.assertEqual(sent["status"], "sent", sent)
        later = self.send(cid, "reminder", urgency="high", send_at="2099-01-01T09:00:00Z")

        q = self.lua_json("queue()")
        scheduled = [j for j in q["jobs"] if j["kind"] == "send" and j["state"] == "scheduled"]
        self.assertGreaterEqual(sum(j["n"] for j in scheduled), 1, q)
        self.assertIn({"status": "scheduled", "channel": "email", "urgency": "high", "n": 1},
                      q["messages"])
        self.assertEqual(q["paused"], [])

        m = self.lua_json("message('%s')" % sent["id"])
        self.assertEqual((m["id"], m["status"]), (sent["id"], "sent"))
        self.assertEqual([a["status"] for a in m["attempts"]], ["sent"])
        self.assertTrue(m["strategy"]["reasons"], m)

        w = self.lua_json("why('%s')" % cid)
        self.assertEqual([x["id"] for x in w["messages"]], [later, sent["id"]])
        self.assertTrue(any("email" in r for r in w["messages"][1]["strategy"]["reasons"]), w)
        self.assertEqual([e["type"] for e in w["messages"][1]["events"]], ["attempt"])

        p = self.lua_json("providers()")
        outbox, = [x for x in p["providers"] if x["provider"] == "outbox"]
        self.assertGreaterEqual(outbox["attempts"], 1)
        self.assertEqual(outbox["errors"], 0)

        # what a terminal user sees: the console's own display
        code, out, err = self.console("queue()", "why('%s', 1)" % cid)
        self.assertEqual(code, 0, err)
        self.assertIn("oldest_due", out)
        self.assertIn(later, out)

    def test_pause_holds_a_channel_without_losing_anything_and_resume_sends_it(self):
        cid = self.client()
        code, out, err = self.console("pause('email', 'provider maintenance')")
        self.assertEqual(code, 0, err)
        self.assertIn("paused = true", out)
        try:
            ids = [self.send(cid) for _ in range(3)]
            sms_client = self.client(phone=harness.phone(),
                                     channels=["sms"])
            sms = self.settle(self.send(sms_client))
            self.assertEqual((sms["status"], sms["channel"]), ("sent", "sms"), sms)
            time.sleep(1.5)
            for i in ids:
                d = self.doc(i)
                self.assertEqual(d["status"], "queued", d)
                self.assertEqual(d["attempts"], [], d)
            paused = [e for e in self.doc(ids[0])["events"] if e["type"] == "paused"]
            self.assertEqual(len(paused), 1, paused)
            self.assertIn("paused by console", paused[0]["message"])
            q = self.lua_json("queue()")
            self.assertEqual([(p["channel"], p["by"], p["reason"]) for p in q["paused"]],
                             [("email", "console", "provider maintenance")])
            # pausing again changes nothing
            code, out, err = self.console("pause('email')")
            self.assertIn("changed = false", out)
        finally:
            code, out, err = self.console("resume('email')")
            self.assertEqual(code, 0, err)
        t0 = time.time()
        for i in ids:
            self.assertEqual(self.settle(i, timeout=10)["status"], "sent")
        self.assertLess(time.time() - t0, 5, "resume did not bring the held messages forward")
        self.assertEqual(self.psql(
            "SELECT string_agg(action || ':' || actor, ',' ORDER BY id) FROM crm_audit_log "
            "WHERE target = 'channel:email'"),
            "channel.pause:console,channel.resume:console")

    def test_retry_sends_a_failed_message_again_and_is_audited(self):
        # the fake Twilio refuses a number ending 0001 (21211, invalid 'To')
        cid = self.client(phone="+1415555%04d" % 1, channels=["sms"])
        comm = self.send(cid)
        d = self.settle(comm)
        self.assertEqual(d["status"], "failed", d)
        code, out, err = self.console("retry('%s')" % comm)
        self.assertEqual(code, 0, err)
        self.assertIn('status = "queued"', out)
        d = self.settle(comm)
        self.assertEqual(d["status"], "failed", d)
        self.assertEqual(len([a for a in d["attempts"] if a["channel"] == "sms"]), 2, d)
        self.assertEqual([e["type"] for e in d["events"] if e["type"] == "retry_requested"],
                         ["retry_requested"])
        self.assertEqual(self.psql("SELECT actor FROM crm_audit_log WHERE action = "
                                   "'communication.retry' AND target = 'communication:%s'"
                                   % comm), "console")
        # a message that did not fail is not sent again; the pipe run fails with the reason
        ok = self.settle(self.send(self.client()))
        code, out, err = self.console("retry('%s')" % ok["id"])
        self.assertNotEqual(code, 0)
        self.assertIn("only a failed message can be sent again; it is sent (HTTP 409)", err)

    def test_the_admin_api_behind_it_refuses_other_scopes_and_bad_input(self):
        for path in ("/api/crm/admin/queue", "/api/crm/admin/providers",
                     "/api/crm/admin/clients/x/why"):
            self.assertError(self.server.get(path, headers=auth("send read")), 403)
        admin = auth("admin")
        self.assertError(self.server.get("/api/crm/admin/providers?minutes=0", headers=admin),
                         400, "invalid_request")
        self.assertError(self.server.get("/api/crm/admin/clients/x/why?limit=abc",
                                         headers=admin), 400, "invalid_request")
        r = self.server.request("POST", "/api/crm/admin/channels/fax/pause", headers=admin,
                                json_body={})
        self.assertError(r, 404, "not_found")
        r = self.server.request("POST", "/api/crm/admin/channels/sms/pause", headers=admin,
                                json_body={"reason": 42})
        self.assertError(r, 400, "invalid_request")
        r = self.server.request("POST", "/api/crm/communications/%s/retry" % uuid.uuid4(),
                                headers=admin)
        self.assertError(r, 404, "not_found")
        # nothing was paused by the refused requests
        self.assertEqual(self.psql("SELECT count(*) FROM crm_channel_pauses"), "0")
        # an engine that is not there: the console says so
        code, out, err = subprocess.run(
            [harness.HERALD_BIN, "console", "--attach=http://127.0.0.1:9"], input="queue()\n",
            capture_output=True, text=True, timeout=30, env=harness.base_env()).returncode, "", ""
        self.assertNotEqual(code, 0)


if __name__ == "__main__":
    harness.main()

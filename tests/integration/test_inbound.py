"""Messages clients send us and what providers tell us about opt-outs (issue 12
items 2 and 3), end to end with the real binary, PostgreSQL, Redis and the fake
Twilio / Meta servers:

- a WhatsApp "STOP" in Meta's signed `messages` notification opts the number
  out of WhatsApp (every client with it) and suppresses it, SMS still goes,
  "START" restores it; the time of every inbound message is kept per number
  (by blind index) and reaches the policy before each attempt;
- the keywords are policy: an operator adds one to settings.inbound and the
  next text is read with it, no restart;
- a failure receipt that the policy classifies as an opt-out (Meta 131050,
  Twilio 21610) puts the number on the suppression list for every client that
  has it, so later sends are not even tried;
- malformed or unsigned payloads change nothing."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import harness
from test_webhooks import (APP_SECRET, FROM, META, PUBLIC, SID, TOKEN, VERIFY, meta_signature,
                           status_params, twilio_signature, wa_status)

SRC = harness.SOURCE_DIR
WA = "/api/crm/webhooks/whatsapp"
TW = "/api/crm/webhooks/twilio"
INBOUND = "/api/crm/webhooks/twilio/inbound"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def phone():
    return harness.phone()


def wa_inbound(number, text=None, ts=None, kind="text", **extra):
    """One message as Meta's `messages` webhook carries it (from: digits, no '+')."""
    m = {"from": number.lstrip("+"), "id": "wamid.IN" + uuid.uuid4().hex,
         "timestamp": str(int(ts if ts is not None else time.time())), "type": kind}
    if kind == "text":
        m["text"] = {"body": text}
    elif kind == "button":
        m["button"] = {"payload": "p", "text": text}
    m.update(extra)
    return m


def wa_payload(messages=(), statuses=()):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1234567890"}}
    if messages:
        value["contacts"] = [{"profile": {"name": "Zoë"}, "wa_id": m.get("from")}
                             for m in messages if isinstance(m, dict)]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}


class InboundTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-inbound-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
        cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1)
        base = "http://127.0.0.1:%d" % port
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_PUBLIC_URL": PUBLIC,
            "HERALD_SCRIPTS_DIR": cls.scripts,
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"), "HERALD_RETRY_SCALE": "0.001",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": FROM,
            "HERALD_WHATSAPP_DRIVER": "whatsapp", "HERALD_WHATSAPP_BASE_URL": base,
            "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890", "HERALD_WHATSAPP_TOKEN": META,
            "HERALD_WHATSAPP_APP_SECRET": APP_SECRET, "HERALD_WHATSAPP_VERIFY_TOKEN": VERIFY})

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

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                            "-c", sql], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, p.stderr))
        return p.stdout.rstrip("\n")

    def client(self, number, **extra):
        cid = "client-" + uuid.uuid4().hex[:12]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
               "phone": number, "timezone": "UTC",
               "consent": {"given": True, "source": "test signup form"}}
        doc.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type="vendor_options", **extra):
        body = {"plan_id": "plan-1", "client_id": cid, "message_type": message_type,
                "urgency": "critical"}
        body.update(extra)
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        return r.json["id"]

    def settle(self, comm_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
            self.assertEqual(r.status, 200, r)
            if r.json["status"] in ("sent", "failed", "cancelled", "suppressed") \
                    or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def whatsapp(self, doc, signature=True):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        hdr = {"Content-Type": "application/json"}
        if signature:
            hdr["X-Hub-Signature-256"] = meta_signature(body)
        return self.server.request("POST", WA, body=body, headers=hdr)

    def sms_in(self, number, text):
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": SID, "From": number,
                  "To": FROM, "Body": text}
        hdr = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(PUBLIC + INBOUND, params)}
        return self.server.request("POST", INBOUND, body=urllib.parse.urlencode(params),
                                   headers=hdr)

    def opted_out(self, cid):
        r = self.server.request("GET", "/api/crm/preferences/" + cid, headers=auth())
        self.assertEqual(r.status, 200, r)
        return sorted(r.json.get("opted_out") or [])

    def suppressions(self):
        """{(channel, reason, source)} on the list, whatever the address."""
        rows = self.psql("SELECT channel || '|' || reason || '|' || coalesce(source, '') "
                         "FROM crm_suppressions")
        return set(tuple(r.split("|")) for r in rows.splitlines() if r)

    def contacts(self):
        """{channel: (last_inbound_at epoch, messages)} of every number that wrote."""
        rows = self.psql("SELECT channel, extract(epoch FROM last_inbound_at)::bigint, messages "
                         "FROM crm_inbound_contacts")
        return [tuple(r.split("|")) for r in rows.splitlines() if r]

    def ledger(self, cid):
        return self.psql("SELECT coalesce(string_agg(details->>'channel' || ':' || "
                         "(details->>'keyword'), ',' ORDER BY id), '') FROM crm_audit_log "
                         "WHERE action = 'preferences.inbound' AND target = 'client:%s'" % cid)

    def generation(self):
        return self.server.get("/api/crm/health").json["scripts"]["generation"]

    def sent_on(self, cid, channel, message_type="vendor_options"):
        d = self.settle(self.send(cid, message_type))
        self.assertEqual((d["status"], d["channel"]), ("sent", channel), d)
        return d

    # -- tests ----------------------------------------------------------------

    def test_whatsapp_stop_opts_the_number_out_of_whatsapp_and_start_restores_it(self):
        number = phone()
        # vendor_options goes email -> whatsapp -> sms; email is opted out here
        a = self.client(number, opted_out=["email"])
        b = self.client(number, opted_out=["email"])
        self.sent_on(a, "whatsapp")
        # unsigned: nothing recorded, not even the time of contact
        before = self.contacts()
        r = self.whatsapp(wa_payload([wa_inbound(number, "STOP")]), signature=False)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.contacts(), before)
        self.assertEqual(self.opted_out(a), ["email"])

        r = self.whatsapp(wa_payload([wa_inbound(number, " Stop \n")]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((self.opted_out(a), self.opted_out(b)),
                         (["email", "whatsapp"], ["email", "whatsapp"]))
        self.assertEqual(self.ledger(a), "whatsapp:STOP")
        self.assertIn(("whatsapp", "opt_out", "webhook:meta"), self.suppressions())
        # WhatsApp is refused now; SMS (its own opt-in) still goes
        self.sent_on(a, "sms")
        # a client id stored after the STOP is caught by the suppression list
        late = self.client(number, opted_out=["email"])
        self.sent_on(late, "sms")
        # a WhatsApp STOP is not an SMS STOP
        self.assertEqual(self.opted_out(late), ["email"])

        # START, as a quick-reply button's text, restores WhatsApp
        r = self.whatsapp(wa_payload([wa_inbound(number, "START", kind="button")]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.opted_out(a), ["email"])
        self.assertEqual(self.ledger(a), "whatsapp:STOP,whatsapp:START")
        self.sent_on(late, "whatsapp")

    def test_every_inbound_message_keeps_the_time_of_contact_by_number_only(self):
        number = phone()
        cid = self.client(number)
        t0 = int(time.time()) - 3600
        r = self.whatsapp(wa_payload([wa_inbound(number, "Hello, is the venue confirmed?",
                                                 ts=t0)]))
        self.assertEqual(r.status, 200, r)
        # an older message arriving late does not move the time back; a picture counts
        r = self.whatsapp(wa_payload([wa_inbound(number, kind="image", ts=t0 - 600,
                                                 image={"id": "1", "mime_type": "image/jpeg"}),
                                      wa_inbound(number, "thanks", ts=t0 + 60)]))
        self.assertEqual(r.status, 200, r)
        self.assertIn(("whatsapp", str(t0 + 60), "3"), self.contacts())
        # nothing else changed, and nothing personal is stored or logged
        self.assertEqual((self.opted_out(cid), self.ledger(cid)), ([], ""))
        dump = self.psql("SELECT row_to_json(k)::text FROM crm_inbound_contacts k")
        for secret in (number, number.lstrip("+"), "venue"):
            self.assertNotIn(secret, dump)
            self.assertNotIn(secret, self.server.stderr())
        # an SMS is a contact too, on its own channel
        self.assertEqual(self.sms_in(number, "Running late, sorry").status, 200)
        self.assertEqual(sorted(c[0] for c in self.contacts() if c[2] == "1"
                                and abs(int(c[1]) - time.time()) < 60), ["sms"])
        # a time in the future (a skewed clock) is taken as now
        r = self.whatsapp(wa_payload([wa_inbound(number, "hi", ts=time.time() + 86400 * 30)]))
        self.assertEqual(r.status, 200, r)
        wa, = [c for c in self.contacts() if c[0] == "whatsapp" and c[2] == "4"]
        self.assertLess(abs(int(wa[1]) - time.time()), 60, wa)
        # an erasure forgets the number's contact rows
        r = self.server.request("DELETE", "/api/crm/clients/" + cid, headers={
            "Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="admin"))})
        self.assertIn(r.status, (200, 204), r)
        self.assertNotIn("4", [c[2] for c in self.contacts()])

    def test_keywords_are_policy_an_operator_adds_one_without_a_restart(self):
        number = phone()
        cid = self.client(number, channels=["sms", "email"])
        self.assertEqual(self.sms_in(number, "ARRET").status, 200)
        self.assertEqual(self.opted_out(cid), [])
        gen = self.generation()
        path = os.path.join(self.scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        old = 'opt_out = { "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT" },'
        self.assertIn(old, text, "settings.lua layout changed; update the test")
        with open(path + ".tmp~", "w") as f:
            f.write(text.replace(old, old[:-3] + ', "ARRET" },', 1))
        os.replace(path + ".tmp~", path)
        deadline = time.time() + 5
        while self.generation() == gen:
            self.assertLess(time.time(), deadline, "the edit was not loaded")
            time.sleep(0.05)
        self.assertEqual(self.sms_in(number, "arret").status, 200)
        self.assertEqual(self.opted_out(cid), ["sms"])
        self.assertEqual(self.ledger(cid), "sms:ARRET")

    def test_a_meta_131050_failure_receipt_suppresses_the_number_for_every_client(self):
        number = phone()
        a = self.client(number, opted_out=["email"], channels=["whatsapp"])
        d = self.sent_on(a, "whatsapp")
        wamid = d["attempts"][-1]["provider_message_id"]
        r = self.whatsapp(wa_payload(statuses=[wa_status(wamid, "failed", opaque=d["id"], errors=[{
            "code": 131050, "title": "Unable to deliver the message. This recipient has chosen to "
            "stop receiving marketing messages on WhatsApp from your business"}])]))
        self.assertEqual(r.status, 200, r)
        deadline = time.time() + 10
        while ("whatsapp", "opt_out", "classify") not in self.suppressions():
            self.assertLess(time.time(), deadline, self.suppressions())
            time.sleep(0.05)
        # another client id with the number: WhatsApp is not even tried
        b = self.client(number, opted_out=["email"], channels=["whatsapp"])
        d = self.settle(self.send(b))
        self.assertEqual(d["status"], "suppressed", d)
        self.assertEqual([x for x in d["attempts"] if x["channel"] == "whatsapp"], [], d)
        self.assertIn("opt_out", json.dumps(d["events"]), d)

    def test_a_twilio_21610_failure_receipt_suppresses_the_number(self):
        number = phone()
        a = self.client(number, channels=["sms"])
        d = self.sent_on(a, "sms", message_type="welcome")
        sid = d["attempts"][-1]["provider_message_id"]
        params = status_params(sid, "undelivered", ErrorCode="21610", To=number)
        path = TW + "?comm_id=" + d["id"]
        r = self.server.request("POST", path, body=urllib.parse.urlencode(params), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(PUBLIC + path, params)})
        self.assertEqual(r.status, 200, r)
        deadline = time.time() + 10
        while ("sms", "opt_out", "classify") not in self.suppressions():
            self.assertLess(time.time(), deadline, self.suppressions())
            time.sleep(0.05)
        b = self.client(number, channels=["sms"])
        d = self.settle(self.send(b, "welcome"))
        self.assertEqual(d["status"], "suppressed", d)

    def test_malformed_messages_are_400_and_change_nothing(self):
        number = phone()
        cid = self.client(number)
        before = self.contacts()
        bad = [
            ({"from": "+1 415", "id": "x", "type": "text", "text": {"body": "STOP"}},
             "messages[1]"),
            ({"from": "12", "type": "text", "text": {"body": "STOP"}}, "messages[1]"),
            ({"from": number.lstrip("+"), "timestamp": [], "text": {"body": "STOP"}},
             "messages[1]"),
            ("STOP", "messages[1]"),
        ]
        for m, where in bad:
            r = self.whatsapp(wa_payload([wa_inbound(number, "hi"), m]))
            self.assertError(r, 400, "invalid_field")
            self.assertIn(where, r.json["error"]["message"])
        doc = wa_payload([wa_inbound(number, "STOP")])
        doc["entry"][0]["changes"][0]["value"]["messages"] = {"0": "STOP"}
        self.assertError(self.whatsapp(doc), 400, "invalid_field")
        self.assertEqual(self.contacts(), before)
        self.assertEqual(self.opted_out(cid), [])


if __name__ == "__main__":
    harness.main()

"""WhatsApp's 24-hour customer-service window (issue 14 item 1), end to end with
the real binary, PostgreSQL, Redis and the fake Meta server run with
--meta-window (free-form text to a number that has not written within 24 h is
refused with 131047, as Meta does; templates are checked for their typed
components):

- a client who never wrote gets the approved template of the message type,
  with its parameters built from the context, in the order settings.whatsapp
  gives, and the template language of the client's locale;
- a client who wrote an hour ago (Meta's signed `messages` webhook) gets the
  rendered text;
- when Meta answers 131047 anyway, the retry sends the template, never the
  same text again;
- a template Meta does not know (132001) is `invalid`: the next channel goes,
  with a clear event; a type without a template is skipped on WhatsApp with
  the reason. Each decision and its reason is an event on the message."""
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.request
import uuid

import harness
from test_webhooks import APP_SECRET, FROM, META, PUBLIC, SID, TOKEN, VERIFY, meta_signature

SRC = harness.SOURCE_DIR
WA = "/api/crm/webhooks/whatsapp"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def phone():
    return harness.phone()


class WhatsAppWindowTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-wa-window-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
        cls.record = os.path.join(cls.tmp, "requests.jsonl")
        cls.fake, cls.fake_port = harness.start_fake_providers(
            cls.tmp, hang_seconds=1, extra=["--meta-window", "--record", cls.record])
        base = "http://127.0.0.1:%d" % cls.fake_port
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

    def client(self, number, **extra):
        cid = "client-" + uuid.uuid4().hex[:12]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
               "phone": number, "timezone": "UTC", "channels": ["whatsapp", "sms"],
               "consent": {"given": True, "source": "test signup form"}}
        doc.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type="vendor_options", **extra):
        body = {"plan_id": "plan-" + uuid.uuid4().hex[:6], "client_id": cid,
                "message_type": message_type, "urgency": "critical"}
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

    def wrote(self, number, ago_s, tell_fake=True):
        """The client's message ago_s seconds ago, as Meta's webhook brings it to Herald
        (and, with tell_fake, as the fake Meta learns it: its window opens)."""
        ts = int(time.time() - ago_s)
        doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": "1234567890"},
                "contacts": [{"profile": {"name": "Zoë"}, "wa_id": number.lstrip("+")}],
                "messages": [{"from": number.lstrip("+"), "id": "wamid.IN" + uuid.uuid4().hex,
                              "timestamp": str(ts), "type": "text",
                              "text": {"body": "Is the venue confirmed?"}}]}}]}]}
        body = json.dumps(doc).encode()
        r = self.server.request("POST", WA, body=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)})
        self.assertEqual(r.status, 200, r)
        if tell_fake:
            req = urllib.request.Request(
                "http://127.0.0.1:%d/_meta/inbound" % self.fake_port, method="POST",
                data=json.dumps({"from": number.lstrip("+"), "timestamp": ts}).encode())
            with urllib.request.urlopen(req, timeout=5) as resp:
                self.assertEqual(resp.status, 200)

    def meta_requests(self, number):
        """What the fake Meta received for number, in order: (type, body json, status)."""
        out = []
        with open(self.record) as f:
            for line in f:
                e = json.loads(line)
                j = e.get("json") or {}
                if e.get("provider") == "meta" and j.get("to") == number.lstrip("+"):
                    out.append((j.get("type"), j, e["response"]["status"]))
        return out

    @staticmethod
    def events(doc, type_):
        return [e for e in doc["events"] if e["type"] == type_]

    def edit_settings(self, old, new):
        gen = self.server.get("/api/crm/health").json["scripts"]["generation"]
        path = os.path.join(self.scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text, "settings.lua layout changed; update the test")
        with open(path + ".tmp~", "w") as f:
            f.write(text.replace(old, new, 1))
        os.replace(path + ".tmp~", path)
        deadline = time.time() + 5
        while self.server.get("/api/crm/health").json["scripts"]["generation"] == gen:
            self.assertLess(time.time(), deadline, "the edit was not loaded")
            time.sleep(0.05)

    # -- tests ----------------------------------------------------------------

    def test_a_client_who_never_wrote_gets_the_approved_template_with_typed_parameters(self):
        number = phone()
        cid = self.client(number)
        comm = self.send(cid)
        d = self.settle(comm)
        self.assertEqual((d["status"], d["channel"]), ("sent", "whatsapp"), d)
        (kind, body, status), = self.meta_requests(number)
        self.assertEqual((kind, status), ("template", 200), body)
        t = body["template"]
        self.assertEqual((t["name"], t["language"]["code"]), ("herald_vendor_options_v2", "en_US"))
        ctx = self.server.get("/api/crm/message-types/vendor_options",
                              headers=auth()).json["example"]
        comps = {c["type"]: c for c in t["components"]}
        self.assertEqual([p["text"] for p in comps["body"]["parameters"]],
                         ["Zoë Martin", ctx["event_type"], str(len(ctx["categories"]))])
        self.assertTrue(all(p["type"] == "text" for p in comps["body"]["parameters"]))
        self.assertEqual((comps["button"]["sub_type"], comps["button"]["index"]), ("url", "0"))
        self.assertEqual(comps["button"]["parameters"],
                         [{"type": "text", "text": d["plan_id"]}])
        ev, = self.events(d, "whatsapp_template")
        self.assertIn("herald_vendor_options_v2", ev["message"])
        self.assertIn("never written", ev["message"])
        # the decision's explanation says what WhatsApp will hinge on
        r = self.server.request("POST", "/api/crm/strategy/preview", headers=auth(), json_body={
            "message_type": "vendor_options", "urgency": "critical",
            "preferences": {"phone": number, "channels": ["whatsapp"],
                            "consent": {"given": True}}})
        self.assertEqual(r.status, 200, r)
        self.assertIn("else the approved template herald_vendor_options_v2", json.dumps(r.json))

    def test_a_client_who_wrote_an_hour_ago_gets_the_text(self):
        number = phone()
        cid = self.client(number)
        self.wrote(number, 3600)
        d = self.settle(self.send(cid))
        self.assertEqual((d["status"], d["channel"]), ("sent", "whatsapp"), d)
        (kind, body, status), = self.meta_requests(number)
        self.assertEqual((kind, status), ("text", 200), body)
        self.assertIn("Hi Zoë Martin", body["text"]["body"])
        ev, = self.events(d, "whatsapp_text")
        self.assertIn("inside the 24-hour window", ev["message"])
        # 25 hours ago is outside: the template
        other = phone()
        self.wrote(other, 25 * 3600)
        d = self.settle(self.send(self.client(other)))
        self.assertEqual([k for k, _, _ in self.meta_requests(other)], ["template"])
        self.assertIn("outside the 24-hour window", self.events(d, "whatsapp_template")[0]["message"])

    def test_meta_131047_sends_the_template_instead_never_the_same_text_again(self):
        number = phone()
        cid = self.client(number)
        # Herald has the client's message; Meta (the fake) does not count it
        self.wrote(number, 600, tell_fake=False)
        d = self.settle(self.send(cid))
        self.assertEqual((d["status"], d["channel"]), ("sent", "whatsapp"), d)
        sent = self.meta_requests(number)
        self.assertEqual([(k, s) for k, _, s in sent], [("text", 400), ("template", 200)], sent)
        first, second = [a for a in d["attempts"] if a["channel"] == "whatsapp"]
        self.assertEqual((first["status"], first["code"]), ("failed", "131047"), d)
        self.assertEqual(second["status"], "sent", d)
        self.assertIn("Meta said", self.events(d, "whatsapp_template")[0]["message"])
        # and the next message to that client goes as a template from the start
        d = self.settle(self.send(cid))
        self.assertEqual([k for k, _, _ in self.meta_requests(number)][2:], ["template"])
        # until the client writes again (after Meta's refusal: the times are in seconds)
        time.sleep(1.1)
        self.wrote(number, 0)
        d = self.settle(self.send(cid))
        self.assertEqual([k for k, _, _ in self.meta_requests(number)][3:], ["text"], (self.events(d, "whatsapp_template"), self.meta_requests(number)))

    def test_template_language_follows_the_client_locale(self):
        for locale, code in (("fr-CA", "fr"), ("es", "es"), ("de", "en_US")):
            number = phone()
            d = self.settle(self.send(self.client(number, locale=locale)))
            self.assertEqual(d["status"], "sent", d)
            (kind, body, _), = self.meta_requests(number)
            self.assertEqual((kind, body["template"]["language"]["code"]), ("template", code))

    def test_a_template_meta_does_not_know_is_invalid_and_the_next_channel_goes(self):
        self.edit_settings('name = "herald_vendor_options_v2"', 'name = "missing_vendor_options"')
        try:
            number = phone()
            d = self.settle(self.send(self.client(number)))
            self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
            wa, = [a for a in d["attempts"] if a["channel"] == "whatsapp"]
            self.assertEqual((wa["code"], wa["category"]), ("132001", "invalid"), d)
            self.assertIn("Template name does not exist", wa["message"], d)
            ev, = self.events(d, "whatsapp_template")
            self.assertIn("missing_vendor_options", ev["message"])
        finally:
            self.edit_settings('name = "missing_vendor_options"', 'name = "herald_vendor_options_v2"')

    def test_a_type_without_a_template_is_skipped_on_whatsapp_with_the_reason(self):
        self.edit_settings('      vendor_options = { name = ',
                           '      vendor_options = nil and { name = ')
        try:
            number = phone()
            d = self.settle(self.send(self.client(number)))
            self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
            self.assertEqual(self.meta_requests(number), [])
            self.assertIn("no approved WhatsApp template for 'vendor_options'",
                          json.dumps(d["events"]))
            # inside the window the text still goes
            other = phone()
            self.wrote(other, 60)
            d = self.settle(self.send(self.client(other)))
            self.assertEqual((d["status"], d["channel"]), ("sent", "whatsapp"), d)
        finally:
            self.edit_settings('      vendor_options = nil and { name = ',
                               '      vendor_options = { name = ')


if __name__ == "__main__":
    harness.main()

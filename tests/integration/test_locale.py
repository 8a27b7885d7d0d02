"""Locales end to end (issue 14, item 2) with the real binary: a fr-CA client
gets the French email (through a real SMTP server, tests/fakes/smtp_sink.py),
SMS (fake Twilio), WhatsApp template in language fr with French parameters
and, once they wrote, the French WhatsApp text (fake Meta, enforcing the
24-hour window); a de client gets the default with a recorded fallback reason (a locale_fallback event); the
locale written in is kept in the attempt's details; a request's
recipient.locale overrides the stored one and a malformed one is refused.
And the operator's side: `herald check` refuses a locale whose templates are
incomplete and accepts one its language's parent completes; `herald render
--locale` renders in a locale and says which."""
import email
import email.policy
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request
import uuid

import harness
from test_webhooks import APP_SECRET, meta_signature

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())
SID, TOKEN, META = "AC00000000000000000000000000000000", "test-token", "test-meta-token"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def run(*args, env=None):
    e = harness.base_env(**(env or {}))
    p = subprocess.run([harness.HERALD_BIN, *args], cwd=SRC, env=e, capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class LocaleDeliveryTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-locale-")
        cls.record = os.path.join(cls.tmp, "requests.jsonl")
        cls.fake, port = harness.start_fake_providers(
            cls.tmp, extra=["--meta-window", "--record", cls.record])
        cls.fake_port = port
        cls.sink, sport, cls.maildir = harness.start_smtp_sink(cls.tmp)
        base = "http://127.0.0.1:%d" % port
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_WORKERS": "2",
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"),
            "HERALD_EMAIL_DRIVER": "smtp", "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % sport,
            "HERALD_SMTP_STARTTLS": "off",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006",
            "HERALD_WHATSAPP_DRIVER": "whatsapp", "HERALD_WHATSAPP_BASE_URL": base,
            "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890", "HERALD_WHATSAPP_TOKEN": META,
            "HERALD_WHATSAPP_APP_SECRET": APP_SECRET})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for p in (cls.fake, cls.sink):
                p.send_signal(signal.SIGTERM)
                p.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, locale=None, phone=None):
        cid = "client-" + uuid.uuid4().hex[:12]
        phone = phone or harness.phone()
        prefs = {"client_id": cid, "name": "Zoë Martin", "email": cid + "@example.com",
                 "phone": phone, "timezone": "America/Montreal",
                 "consent": {"given": True, "source": "test signup form"}}
        if locale:
            prefs["locale"] = locale
        r = self.server.request("POST", "/api/crm/preferences", json_body=prefs, headers=auth())
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, channel, message_type="welcome", **extra):
        body = {"plan_id": "plan-7", "client_id": cid, "message_type": message_type,
                "urgency": "critical", "channel": channel,
                "context": {"event_type": "mariage", "event_date": "2027-03-12",
                            "plan_url": "https://plans.example.com/plan-7"}}
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

    def mail_to(self, cid, timeout=10):
        """The message the SMTP sink saved for this client, parsed."""
        deadline = time.time() + timeout
        while True:
            for path in glob.glob(os.path.join(self.maildir, "*.eml")):
                with open(path, "rb") as f:
                    raw = f.read()
                if (cid + "@example.com").encode() in raw:
                    return email.message_from_bytes(raw, policy=email.policy.default)
            if time.time() > deadline:
                self.fail("no mail for " + cid)
            time.sleep(0.05)

    def provider_request(self, provider, comm_id):
        with open(self.record) as f:
            for line in f:
                r = json.loads(line)
                if r["provider"] != provider:
                    continue
                if provider == "twilio" and comm_id in r["form"].get("StatusCallback", ""):
                    return r
                if provider == "meta" and r["json"].get("biz_opaque_callback_data") == comm_id:
                    return r
        self.fail("no %s request for %s" % (provider, comm_id))

    def wrote(self, number):
        """The client's WhatsApp message a minute ago, through Meta's signed
        webhook (and the fake Meta's window): free-form text may go."""
        ts = int(time.time() - 60)
        doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": "1234567890"},
                "contacts": [{"profile": {"name": "Zoë"}, "wa_id": number.lstrip("+")}],
                "messages": [{"from": number.lstrip("+"), "id": "wamid.IN" + uuid.uuid4().hex,
                              "timestamp": str(ts), "type": "text",
                              "text": {"body": "Bonjour !"}}]}}]}]}
        body = json.dumps(doc).encode()
        r = self.server.request("POST", "/api/crm/webhooks/whatsapp", body=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)})
        self.assertEqual(r.status, 200, r)
        req = urllib.request.Request(
            "http://127.0.0.1:%d/_meta/inbound" % self.fake_port, method="POST",
            data=json.dumps({"from": number.lstrip("+"), "timestamp": ts}).encode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            self.assertEqual(resp.status, 200)

    def attempt_details(self, comm_id):
        out = subprocess.run(
            ["psql", "-X", "-A", "-t", "-d", self.db_url, "-c",
             "SELECT details::text FROM crm_delivery_logs WHERE kind = 'attempt' "
             "AND communication_id = '%s'" % comm_id],
            capture_output=True, text=True, check=True).stdout.strip()
        return [json.loads(l) for l in out.splitlines()]

    def events(self, doc, kind):
        return [e for e in doc["events"] if e.get("type") == kind]

    def test_a_fr_ca_client_gets_french_on_every_channel(self):
        number = harness.phone()
        cid = self.client(locale="fr-CA", phone=number)
        # never wrote on WhatsApp: the approved template, in French
        template_id = self.send(cid, "whatsapp")
        doc = self.settle(template_id)
        self.assertEqual(doc["status"], "sent", doc)
        t = self.provider_request("meta", template_id)["json"]["template"]
        self.assertEqual((t["name"], t["language"]["code"]), ("herald_welcome_v1", "fr"))
        body = [c for c in t["components"] if c["type"] == "body"][0]["parameters"]
        self.assertEqual([p["text"] for p in body],
                         ["Zoë Martin", "Herald Events", "mariage", "12 mars 2027"])
        self.assertEqual(self.events(doc, "locale_fallback"), [], doc)
        self.wrote(number)  # now the window is open: the French text
        ids = {ch: self.send(cid, ch) for ch in ("email", "sms", "whatsapp")}
        for ch, comm_id in ids.items():
            doc = self.settle(comm_id)
            self.assertEqual(doc["status"], "sent", (ch, doc))
            self.assertEqual(doc["channel"], ch, doc)
            # French is the client's language: no fallback to record
            self.assertEqual(self.events(doc, "locale_fallback"), [], doc)
            self.assertEqual([d.get("locale") for d in self.attempt_details(comm_id)], ["fr"])
        msg = self.mail_to(cid)
        self.assertEqual(msg["Subject"],
                         "Bienvenue chez Herald Events : préparons ensemble votre mariage")
        text = msg.get_body(("plain",)).get_content()
        self.assertIn("Bienvenue, Zoë Martin !", text)
        self.assertIn("Merci d’avoir choisi Herald Events pour votre mariage du vendredi "
                      "12 mars 2027.", text)
        self.assertIn("Se désabonner : ", text)
        html = msg.get_body(("html",)).get_content()
        self.assertIn('<html lang="fr">', html)
        sms = self.provider_request("twilio", ids["sms"])["form"]["Body"]
        self.assertEqual(sms, "Bonjour Zoë Martin, bienvenue chez Herald Events ! Nous préparons "
                              "votre mariage du 12/03. Votre projet : "
                              "https://plans.example.com/plan-7")
        wa = self.provider_request("meta", ids["whatsapp"])["json"]["text"]["body"]
        self.assertTrue(wa.startswith("Bonjour Zoë Martin, bienvenue chez *Herald Events* !"), wa)
        self.assertIn("du *vendredi 12 mars 2027*", wa)

    def test_a_de_client_gets_the_default_with_the_reason_recorded(self):
        cid = self.client(locale="de")
        for ch in ("email", "sms", "whatsapp"):
            comm_id = self.send(cid, ch)
            doc = self.settle(comm_id)
            self.assertEqual(doc["status"], "sent", doc)
            fb = self.events(doc, "locale_fallback")
            self.assertEqual(len(fb), 1, doc)
            self.assertEqual(fb[0]["message"],
                             "%s: no templates for de (templates/de/ does not exist); written "
                             "in the default, en" % ch)
            self.assertEqual([d.get("locale") for d in self.attempt_details(comm_id)], ["en"])
            if ch == "whatsapp":  # the template in the default's language and words
                t = self.provider_request("meta", comm_id)["json"]["template"]
                self.assertEqual(t["language"]["code"], "en_US")
                body = [c for c in t["components"] if c["type"] == "body"][0]["parameters"]
                self.assertEqual(body[3]["text"], "March 12, 2027")
        msg = self.mail_to(cid)
        self.assertEqual(msg["Subject"], "Welcome to Herald Events, Zoë Martin!")
        self.assertIn("on Friday, March 12, 2027", msg.get_body(("plain",)).get_content())

    def test_the_request_recipient_locale_holds_for_that_message(self):
        cid = self.client()  # no stored locale: the default
        comm_id = self.send(cid, "sms", recipient={"locale": "es_MX"})
        doc = self.settle(comm_id)
        self.assertEqual(doc["status"], "sent", doc)
        sms = self.provider_request("twilio", comm_id)["form"]["Body"]
        self.assertTrue(sms.startswith("Hola, Zoë Martin. Le damos la bienvenida"), sms)
        self.assertEqual(self.events(doc, "locale_fallback"), [], doc)
        other = self.settle(self.send(cid, "sms"))
        self.assertEqual([d.get("locale") for d in self.attempt_details(other["id"])], ["en"])

    def test_a_malformed_locale_is_refused_where_it_comes_in(self):
        cid = self.client()
        r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
            "plan_id": "plan-7", "client_id": cid, "message_type": "welcome",
            "urgency": "critical", "recipient": {"locale": "fr!!"},
            "context": {"event_type": "mariage", "event_date": "2027-03-12",
                        "plan_url": "https://plans.example.com/plan-7"}})
        self.assertError(r, 400, "invalid_request")
        self.assertIn("recipient.locale: expected a locale like en, fr_FR or pt-BR",
                      r.json["error"]["message"])
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "locale": "x" * 40})
        self.assertEqual(r.status, 400, r)


class LocaleCommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()  # herald check also checks the stored keys

    def copy_policy(self):
        d = tempfile.mkdtemp(prefix="herald-lcli-")
        self.addCleanup(shutil.rmtree, d, True)
        shutil.copytree(os.path.join(SRC, "scripts"), os.path.join(d, "scripts"))
        shutil.copytree(os.path.join(SRC, "templates"), os.path.join(d, "templates"))
        return {"HERALD_SCRIPTS_DIR": os.path.join(d, "scripts"),
                "HERALD_TEMPLATES_DIR": os.path.join(d, "templates")}, d

    def test_check_renders_every_example_in_every_locale(self):
        code, out, err = run("check")
        self.assertEqual(code, 0, err)
        # 8 types x 3 channels x 3 locales (en, es, fr)
        self.assertRegex(out, r"policy: ok \(\d+ scripts, \d+ templates, 3 locales, "
                              r"72 example renders\)")

    def test_check_refuses_an_incomplete_locale(self):
        env, d = self.copy_policy()
        os.makedirs(os.path.join(d, "templates", "de"))
        with open(os.path.join(d, "templates", "de", "welcome.subject"), "w") as f:
            f.write("Willkommen bei {{ company.name }}\n")
        code, out, err = run("check", env=env)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("templates/de:0: locale de is incomplete: no blueprint_delivery.subject", err)
        # render refuses to run on a policy that does not load, naming why
        code, out, err = run("render", "welcome", "--locale", "de", env=env)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("locale de is incomplete", err)

    def test_check_accepts_a_region_its_language_completes(self):
        env, d = self.copy_policy()
        os.makedirs(os.path.join(d, "templates", "fr-CA"))
        with open(os.path.join(d, "templates", "fr-CA", "welcome.subject"), "w") as f:
            f.write("Bienvenue chez {{ company.name }}, au Québec comme ailleurs\n")
        code, out, err = run("check", env=env)
        self.assertEqual(code, 0, (out, err))
        self.assertIn("4 locales, 96 example renders", out)
        code, out, err = run("render", "welcome", "--locale", "fr_CA", env=env)
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("Subject: Bienvenue chez Herald Events, au Québec comme "
                                       "ailleurs\n"), out)
        self.assertIn("Merci d’avoir choisi", out)  # the rest from fr/
        self.assertIn("herald render: locale fr-CA\n", err)

    def test_check_names_a_locale_template_reading_an_undeclared_field(self):
        env, d = self.copy_policy()
        with open(os.path.join(d, "templates", "es", "reminder.subject"), "w") as f:
            f.write("Recordatorio: {{ due_itme }}\n")
        code, out, err = run("check", env=env)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("es/reminder.subject:1:", err)
        self.assertIn("due_itme", err)

    def test_render_in_a_locale(self):
        code, out, err = run("render", "vendor_options", "--locale", "es", "--channel", "sms")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("Hola, Priya Raman. Ya tiene disponibles nuestras "
                                       "propuestas"), out)
        self.assertIn("herald render: locale es\n", err)
        code, out, err = run("render", "budget_summary", "--locale", "fr", "--json")
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["locale"], "fr")
        self.assertIn("48\u202f000,00\u00a0$US", doc["text"])
        code, out, err = run("render", "welcome", "--locale", "de")
        self.assertEqual(code, 0, err)
        self.assertTrue(out.startswith("Subject: Welcome to Herald Events, Maria Alvarez!"), out)
        self.assertIn("herald render: locale en: no templates for de (templates/de/ does not "
                      "exist); written in the default, en", err)
        code, out, err = run("render", "welcome", "--locale", "fr!!")
        self.assertEqual(code, 2, (out, err))
        self.assertIn("--locale: expected a locale tag like fr, fr-CA or pt_BR", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Unsubscribe links (issue 12 item 1): every email of a type settings.unsubscribe
lists carries a signed /u/{token} link in its footer and the RFC 8058 headers;
the one-click POST read from the List-Unsubscribe header of a message the SMTP
server received opts the client out of email at once (preferences, ledger,
audit, the message's event), a message already queued for email is then
suppressed at send time while SMS still goes; GET never unsubscribes; a
tampered token changes nothing; another body is 400; a replay is harmless."""
import base64
import email
import email.policy
import glob
import hashlib
import hmac
import urllib.parse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import harness

SID, TOKEN = "AC00000000000000000000000000000000", "test-token"
INBOUND = "/api/crm/webhooks/twilio/inbound"


def twilio_signature(url, params, token=TOKEN):
    """Twilio's algorithm: base64(HMAC-SHA1(token, url + name1 value1 ...)), params sorted."""
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def admin():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="admin"))}


def utc(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class UnsubscribeTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-unsub-")
        cls.scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(harness.SOURCE_DIR, "scripts"), cls.scripts)
        cls.sink, smtp_port, cls.maildir = harness.start_smtp_sink(cls.tmp)
        cls.fake, port = harness.start_fake_providers(cls.tmp)
        base = "http://127.0.0.1:%d" % port
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_PUBLIC_URL": "https://herald.test",
            "HERALD_SCRIPTS_DIR": cls.scripts,
            "HERALD_EMAIL_DRIVER": "smtp", "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % smtp_port,
            "HERALD_SMTP_STARTTLS": "off", "HERALD_RETRY_SCALE": "0.001",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006"})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for p in (cls.sink, cls.fake):
                p.send_signal(signal.SIGTERM)
                p.wait(10)
            cls.drop_db()
            subprocess.run(["rm", "-rf", cls.tmp])

    def psql(self, sql, *params):
        args = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.db_url]
        for i, p in enumerate(params):
            args += ["-v", "p%d=%s" % (i + 1, p)]
        r = subprocess.run(args, input=sql, capture_output=True, text=True, check=True)
        return r.stdout.strip()

    def client(self, phone=None, email=None, **extra):
        cid = "client-" + uuid.uuid4().hex[:12]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": email or cid + "@example.com",
               "phone": phone or harness.phone(), "timezone": "UTC",
               "consent": {"given": True, "source": "test signup form"}}
        doc.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body=doc)
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type, **extra):
        body = {"plan_id": "plan-1", "client_id": cid, "message_type": message_type,
                "urgency": "critical", "context": {"event_type": "wedding"}}
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

    def received(self, comm_id, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for path in glob.glob(os.path.join(self.maildir, "*.eml")):
                with open(path, "rb") as f:
                    data = f.read()
                if ("<%s@" % comm_id).encode() in data:
                    return email.message_from_bytes(data, policy=email.policy.default)
            time.sleep(0.05)
        self.fail("the SMTP server never received " + comm_id)

    def opted_out(self, cid):
        r = self.server.request("GET", "/api/crm/preferences/" + cid, headers=auth())
        self.assertEqual(r.status, 200, r)
        return sorted(r.json.get("opted_out") or [])

    def one_click_path(self, msg):
        lu = str(msg["List-Unsubscribe"])
        self.assertEqual(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click")
        m = re.search(r"<https://herald\.test(/u/[A-Za-z0-9_-]+)>", lu)
        self.assertIsNotNone(m, lu)
        return m.group(1)

    def post(self, path, body):
        return self.server.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})

    def test_one_click_from_the_header_opts_out_of_email_and_queued_email_is_suppressed(self):
        cid = self.client()
        first = self.send(cid, "welcome", channel="email")
        self.assertEqual(self.settle(first)["status"], "sent")
        msg = self.received(first)
        path = self.one_click_path(msg)
        # the footer carries the same signed link, not the old placeholder
        text = msg.get_body(("plain",)).get_content()
        self.assertIn("https://herald.test" + path, text)
        self.assertNotIn("/u/preview", text)
        # queued before the click, due after it
        queued = self.send(cid, "reminder", urgency="high", channel="email",
                           send_at=utc(time.time() + 4))
        # a link scanner's GET changes nothing
        page = self.server.request("GET", path)
        self.assertEqual(page.status, 200, page)
        self.assertIn(b"<form method=\"post\">", page.body)
        self.assertNotIn(b"<script", page.body)
        self.assertEqual(self.opted_out(cid), [])

        r = self.post(path, "List-Unsubscribe=One-Click")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Location"))
        self.assertEqual(self.opted_out(cid), ["email"])
        # the ledger / audit row and the event on the message that carried the link
        self.assertEqual(self.psql(
            "SELECT details->>'source' || ' ' || (details->'channels')::text FROM crm_audit_log "
            "WHERE action = 'preferences.unsubscribe' AND target = 'client:%s'" % cid),
            'one_click ["email"]')
        events = [e for e in self.settle(first).get("events", [])
                  if e.get("type") == "unsubscribe"]
        self.assertEqual(len(events), 1, events)
        # a replay is harmless: 200, nothing written twice
        self.assertEqual(self.post(path, "List-Unsubscribe=One-Click").status, 200)
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_audit_log WHERE action = 'preferences.unsubscribe' "
            "AND target = 'client:%s'" % cid), "1")

        # the address is on the suppression list too (blind index only)
        self.assertEqual(self.psql(
            "SELECT s.reason || ' ' || s.source FROM crm_suppressions s JOIN "
            "crm_client_preferences p ON p.email_index = s.address_index "
            "WHERE s.channel = 'email' AND p.client_id = '%s'" % cid), "unsubscribe one_click")
        doc = self.settle(queued)
        self.assertEqual(doc["status"], "suppressed", doc)
        self.assertFalse(any(("<%s@" % queued).encode() in open(p, "rb").read()
                             for p in glob.glob(os.path.join(self.maildir, "*.eml"))))
        # the next welcome leaves email out and still goes by SMS
        nxt = self.send(cid, "welcome", urgency="high")
        doc = self.settle(nxt)
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "sms"), doc)

    def test_page_buttons_unsubscribe_from_everything(self):
        cid = self.client()
        first = self.send(cid, "welcome", channel="email")
        self.assertEqual(self.settle(first)["status"], "sent")
        path = self.one_click_path(self.received(first))
        r = self.post(path, "scope=all")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"unsubscribed", r.body)
        self.assertEqual(self.opted_out(cid), ["email", "sms", "whatsapp"])
        self.assertEqual(self.psql(
            "SELECT details->>'source' FROM crm_audit_log WHERE action = "
            "'preferences.unsubscribe' AND target = 'client:%s'" % cid), "unsubscribe_link")

    def test_tampered_token_or_other_body_changes_nothing(self):
        cid = self.client()
        first = self.send(cid, "welcome", channel="email")
        self.assertEqual(self.settle(first)["status"], "sent")
        path = self.one_click_path(self.received(first))
        tok = path[3:]
        flipped = tok[:10] + ("A" if tok[10] != "A" else "B") + tok[11:]
        for bad in ("/u/" + flipped, "/u/" + tok[:-1], "/u/preview"):
            self.assertEqual(self.post(bad, "List-Unsubscribe=One-Click").status, 404, bad)
            self.assertEqual(self.server.request("GET", bad).status, 404, bad)
        r = self.post(path, "List-Unsubscribe=Yes")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.post(path, "").status, 400)
        self.assertEqual(self.opted_out(cid), [])
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_audit_log WHERE action = 'preferences.unsubscribe' "
            "AND target = 'client:%s'" % cid), "0")

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

    def test_a_mailto_from_settings_carries_the_token_in_its_subject(self):
        self.edit_settings("unsubscribe_mailto = nil,",
                           'unsubscribe_mailto = "unsubscribe@herald.test",')
        try:
            cid = self.client()
            c = self.send(cid, "welcome", channel="email")
            self.assertEqual(self.settle(c)["status"], "sent")
            msg = self.received(c)
            path = self.one_click_path(msg)
            lu = str(msg["List-Unsubscribe"])
            self.assertIn("<mailto:unsubscribe@herald.test?subject=unsubscribe-%s>"
                          % path[len("/u/"):], lu)
            # what the mailbox's reader does with it: the one-click POST of that token
            token = re.search(r"subject=unsubscribe-([A-Za-z0-9_-]+)>", lu).group(1)
            self.assertEqual(self.post("/u/" + token, "List-Unsubscribe=One-Click").status, 200)
            self.assertEqual(self.opted_out(cid), ["email"])
            # a transactional type carries neither
            c = self.send(self.client(), "error_notification", channel="email")
            self.assertEqual(self.settle(c)["status"], "sent")
            self.assertIsNone(self.received(c)["List-Unsubscribe"])
        finally:
            self.edit_settings('unsubscribe_mailto = "unsubscribe@herald.test",',
                               "unsubscribe_mailto = nil,")

    def test_error_notification_carries_no_one_click_header(self):
        cid = self.client()
        c = self.send(cid, "error_notification", channel="email")
        self.assertEqual(self.settle(c)["status"], "sent")
        msg = self.received(c)
        self.assertIsNone(msg["List-Unsubscribe"])
        self.assertIsNone(msg["List-Unsubscribe-Post"])

    def test_token_of_a_message_gone_says_unsubscribed_and_nothing_else(self):
        cid = self.client()
        first = self.send(cid, "welcome", channel="email")
        self.assertEqual(self.settle(first)["status"], "sent")
        path = self.one_click_path(self.received(first))
        self.psql("DELETE FROM crm_communications WHERE client_id = '%s'" % cid)
        page = self.server.request("GET", path)
        self.assertEqual(page.status, 200, page)
        self.assertIn(b"This address is unsubscribed", page.body)
        self.assertNotIn(b"<form", page.body)
        self.assertEqual(self.post(path, "List-Unsubscribe=One-Click").status, 200)


    def inbound(self, phone, text, signature=True):
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": SID, "From": phone,
                  "To": "+15005550006", "Body": text}
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature:
            hdr["X-Twilio-Signature"] = twilio_signature("https://herald.test" + INBOUND, params)
        else:
            hdr["X-Twilio-Signature"] = twilio_signature("https://herald.test" + INBOUND,
                                                         params, token="wrong")
        return self.server.request("POST", INBOUND, body=urllib.parse.urlencode(params),
                                   headers=hdr)

    def ledger(self, cid):
        return self.psql("SELECT string_agg(details->>'keyword', ',' ORDER BY id) FROM "
                         "crm_audit_log WHERE action = 'preferences.inbound' AND "
                         "target = 'client:%s'" % cid)

    def test_stop_through_the_signed_inbound_webhook_stops_sms_and_start_restores_it(self):
        phone = harness.phone()
        # two client ids with the same number: a STOP is the number's
        a = self.client(phone, channels=["sms"])
        b = self.client(phone)
        other = self.client(harness.phone())
        # an unsigned (wrongly signed) STOP changes nothing
        self.assertEqual(self.inbound(phone, "STOP", signature=False).status, 403)
        self.assertEqual(self.opted_out(a), [])
        queued = self.send(a, "welcome", urgency="high", send_at=utc(time.time() + 4))
        r = self.inbound(phone, "  stop\n")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"<Response/>", r.body)
        self.assertEqual((self.opted_out(a), self.opted_out(b), self.opted_out(other)),
                         (["sms"], ["sms"], []))
        self.assertEqual(self.ledger(a), "STOP")
        # a repeated STOP is harmless: nothing written again
        self.assertEqual(self.inbound(phone, "Quit").status, 200)
        self.assertEqual(self.ledger(a), "STOP")
        # the SMS queued before the STOP is suppressed at send time
        doc = self.settle(queued)
        self.assertEqual(doc["status"], "suppressed", doc)
        # HELP is recorded and changes nothing; any other text records nothing
        self.assertEqual(self.inbound(phone, "help").status, 200)
        self.assertEqual(self.inbound(phone, "stop it please").status, 200)
        self.assertEqual(self.ledger(a), "STOP,HELP")
        self.assertEqual(self.opted_out(a), ["sms"])
        # the number is suppressed: a client id created after the STOP gets no SMS
        late = self.client(phone, channels=["sms"])
        doc = self.settle(self.send(late, "welcome", urgency="high"))
        self.assertEqual(doc["status"], "suppressed", doc)
        self.assertIn("address suppressed (opt_out)", str(doc.get("events")), doc)
        # START restores it, and the next SMS goes
        self.assertEqual(self.inbound(phone, "START").status, 200)
        doc = self.settle(self.send(late, "welcome", urgency="high"))
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "sms"), doc)
        self.assertEqual((self.opted_out(a), self.opted_out(b)), ([], []))
        self.assertEqual(self.ledger(a), "STOP,HELP,START")
        doc = self.settle(self.send(a, "welcome", urgency="high"))
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "sms"), doc)

    def test_inbound_bad_input(self):
        r = self.inbound("not-a-number", "STOP")
        self.assertEqual(r.status, 400, r)
        r = self.server.request("POST", INBOUND, body="From=%2B14155550000&Body=STOP",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 403, r)


    def test_api_suppression_holds_for_every_client_with_the_address_and_lifting_is_audited(self):
        shared = "shared-%s@example.com" % uuid.uuid4().hex[:8]
        a, b, other = self.client(email=shared), self.client(email=shared), self.client()
        url = "/api/crm/suppressions"
        # admin scope only; bad input is 400 and adds nothing
        r = self.server.request("POST", url, headers=auth(),
                                json_body={"channel": "email", "address": shared})
        self.assertEqual(r.status, 403, r)
        for bad in ({"channel": "fax", "address": shared},
                    {"channel": "email", "address": "not an address"},
                    {"channel": "sms", "address": "0612"},
                    {"channel": "email", "address": shared, "reason": "because"}):
            r = self.server.request("POST", url, headers=admin(), json_body=bad)
            self.assertEqual(r.status, 400, (bad, r))
        # the blind index normalises: case does not matter
        r = self.server.request("POST", url, headers=admin(), json_body={
            "channel": "email", "address": shared.upper(), "reason": "bounce"})
        self.assertEqual(r.status, 201, r)
        sid = r.json["id"]
        again = self.server.request("POST", url, headers=admin(),
                                    json_body={"channel": "email", "address": shared})
        self.assertEqual((again.status, again.json["id"], again.json["created"]),
                         (200, sid, False), again)
        listed = self.server.request("GET", url + "?channel=email", headers=admin())
        self.assertEqual(listed.status, 200, listed)
        entry = [e for e in listed.json["items"] if e["id"] == sid]
        self.assertEqual(entry[0]["reason"], "bounce", entry)
        self.assertNotIn(shared.encode(), listed.body)
        # read before every attempt, for both client ids; another address still goes
        for cid in (a, b):
            doc = self.settle(self.send(cid, "reminder", urgency="high", channel="email"))
            self.assertEqual(doc["status"], "suppressed", doc)
            self.assertIn("address suppressed (bounce)", str(doc.get("events")), doc)
        doc = self.settle(self.send(other, "reminder", urgency="high", channel="email"))
        self.assertEqual(doc["status"], "sent", doc)
        # lifting is audited, and the address is mailed again
        self.assertEqual(self.server.request("DELETE", "%s/%d" % (url, sid),
                                             headers=auth()).status, 403)
        self.assertEqual(self.server.request("DELETE", "%s/%d" % (url, sid),
                                             headers=admin()).status, 204)
        self.assertEqual(self.server.request("DELETE", "%s/%d" % (url, sid),
                                             headers=admin()).status, 404)
        self.assertEqual(self.psql(
            "SELECT actor || ' ' || (details->>'reason') FROM crm_audit_log WHERE action = "
            "'suppression.lift' AND target = 'suppression:%d'" % sid), "test:python bounce")
        doc = self.settle(self.send(a, "reminder", urgency="high", channel="email"))
        self.assertEqual(doc["status"], "sent", doc)


    def test_one_claim_reads_every_message_s_own_suppressions(self):
        # a worker reads the suppression facts of a claimed batch in one
        # statement (dispatch_prefetch): each message must meet its own
        # recipient's, whatever else is in the batch. The channels are paused
        # while the messages are posted, so one claim takes them together.
        blocked_mail = "blocked-%s@example.com" % uuid.uuid4().hex[:8]
        blocked_phone = harness.phone()
        for ch, addr in (("email", blocked_mail), ("sms", blocked_phone)):
            r = self.server.request("POST", "/api/crm/suppressions", headers=admin(),
                                    json_body={"channel": ch, "address": addr,
                                               "reason": "complaint"})
            self.assertEqual(r.status, 201, r)
        mail_blocked = [self.client(email=blocked_mail) for _ in range(2)]
        mail_free = [self.client() for _ in range(3)]
        sms_blocked = [self.client(phone=blocked_phone)]
        sms_free = [self.client() for _ in range(2)]
        sent = {}
        for ch in ("email", "sms"):
            r = self.server.request("POST", "/api/crm/admin/channels/%s/pause" % ch,
                                    headers=admin())
            self.assertEqual(r.status, 200, r)
        try:
            for cid in mail_blocked + mail_free:
                sent[cid] = self.send(cid, "reminder", urgency="high", channel="email")
            for cid in sms_blocked + sms_free:
                sent[cid] = self.send(cid, "reminder", urgency="high", channel="sms")
        finally:
            for ch in ("email", "sms"):
                r = self.server.request("POST", "/api/crm/admin/channels/%s/resume" % ch,
                                        headers=admin())
                self.assertEqual(r.status, 200, r)
        # a blocked address is refused on its channel and never attempted
        # there (the policy may then fall back to another channel); a free
        # one goes on the channel asked for
        for ch, cids in (("email", mail_blocked), ("sms", sms_blocked)):
            for cid in cids:
                doc = self.settle(sent[cid])
                self.assertIn(doc["status"], ("suppressed", "sent"), doc)
                self.assertIn("%s: address suppressed (complaint)" % ch,
                              [e["message"] for e in doc["events"]], doc)
                self.assertEqual([a for a in doc["attempts"] if a["channel"] == ch], [], doc)
        for ch, cids in (("email", mail_free), ("sms", sms_free)):
            for cid in cids:
                doc = self.settle(sent[cid])
                self.assertEqual((doc["status"], [a["channel"] for a in doc["attempts"]]),
                                 ("sent", [ch]), doc)
                self.assertNotIn("suppressed", str(doc["events"]), doc)

    def test_a_5_1_1_bounce_suppresses_the_address_for_every_client_that_has_it(self):
        # the sink answers 550 5.1.1 to any "nouser" local part (a +tag is ignored)
        dead = "nouser+%s@example.com" % uuid.uuid4().hex[:8]
        a, b = self.client(email=dead), self.client(email=dead)
        doc = self.settle(self.send(a, "reminder", urgency="high", channel="email"))
        self.assertEqual(doc["status"], "failed", doc)
        self.assertEqual(self.psql(
            "SELECT s.reason || ' ' || s.source FROM crm_suppressions s JOIN "
            "crm_client_preferences p ON p.email_index = s.address_index "
            "WHERE s.channel = 'email' AND p.client_id = '%s'" % b), "bounce classify")
        doc = self.settle(self.send(b, "reminder", urgency="high", channel="email"))
        self.assertEqual(doc["status"], "suppressed", doc)
        self.assertEqual(doc.get("attempts"), [], doc)
        self.assertIn("address suppressed (bounce)", str(doc.get("events")), doc)


if __name__ == "__main__":
    harness.main()

"""Provider webhooks end to end with the real binary, against a database of
its own on the real PostgreSQL and the fake Twilio / Meta servers of
tests/fakes (which carry the sends whose receipts are then posted here):

  POST /api/crm/webhooks/twilio    status callbacks, X-Twilio-Signature over
                                   HERALD_PUBLIC_URL + path + query and the
                                   posted params sorted by name
  GET  /api/crm/webhooks/whatsapp  Meta's verification challenge
  POST /api/crm/webhooks/whatsapp  status notifications, X-Hub-Signature-256
                                   over the raw body

Signatures are computed here with hmac/hashlib/base64, independently of the
C code. Checked: a bad signature (403) or a malformed body (400) changes
nothing, status only moves forward, each event is recorded once, a receipt
for a message Herald does not know is kept and answered 200, and a failed
receipt goes through classify and retry.policy: the fallback chain goes on
(the message stays 'sent' on its new channel), or the message ends 'failed'
and the alert is posted to HERALD_ALERT_URL."""
import base64
import hashlib
import hmac
import json
import re
import shutil
import os
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

import harness

SID, TOKEN, META = "AC00000000000000000000000000000000", "test-token", "test-meta-token"
PUBLIC = "https://herald.example.com"  # no port: ":443" must be accepted too
TW = "/api/crm/webhooks/twilio"
WA = "/api/crm/webhooks/whatsapp"
APP_SECRET = "wa-app-secret-" + uuid.uuid4().hex
VERIFY = "wa-verify-" + uuid.uuid4().hex
FROM = "+15005550006"


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def start_fake(tmp):
    return harness.start_fake_providers(tmp, hang_seconds=1)


AlertSink = harness.AlertSink


def twilio_signature(url, params, token=TOKEN):
    """Twilio's algorithm: base64(HMAC-SHA1(token, url + name1 value1 name2 value2 ...))
    with the params sorted by name."""
    data = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def meta_signature(body, secret=APP_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def status_params(sid, status, **extra):
    """What Twilio posts to a StatusCallback."""
    p = {"AccountSid": SID, "ApiVersion": "2010-04-01", "From": FROM, "To": "+14155551234",
         "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status}
    p.update(extra)
    return p


def wa_status(wamid, status, opaque=None, **extra):
    s = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
         "recipient_id": "14155551234"}
    if opaque is not None:
        s["biz_opaque_callback_data"] = opaque
    s.update(extra)
    return s


def wa_payload(*statuses):
    """A Meta webhook notification carrying statuses."""
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{
                "field": "messages",
                "value": {"messaging_product": "whatsapp",
                          "metadata": {"display_phone_number": "15550783881",
                                       "phone_number_id": "1234567890"},
                          "statuses": list(statuses)}}]}]}


class WebhooksTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alerts = harness.start_alert_sink()
        cls.tmp = tempfile.mkdtemp(prefix="herald-hooks-")
        cls.fake, port = start_fake(cls.tmp)
        base = "http://127.0.0.1:%d" % port
        cls.outbox = os.path.join(cls.tmp, "outbox")
        # A database of its own: other tests' servers run workers too.
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url,
            "HERALD_PUBLIC_URL": PUBLIC,
            "HERALD_OUTBOX_DIR": cls.outbox, "HERALD_RETRY_SCALE": "0.001",
            "HERALD_WORKERS": "2",
            "HERALD_ALERT_URL": "http://127.0.0.1:%d/alerts" % cls.alerts.server_port,
            "HERALD_ALERT_EMAIL": "ops@herald.example",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": FROM,
            "HERALD_WHATSAPP_DRIVER": "whatsapp", "HERALD_WHATSAPP_BASE_URL": base,
            "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890", "HERALD_WHATSAPP_TOKEN": META,
            "HERALD_WHATSAPP_APP_SECRET": APP_SECRET,
            "HERALD_WHATSAPP_VERIFY_TOKEN": VERIFY})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.alerts.shutdown()
            cls.alerts.server_close()
            cls.drop_db()
            subprocess.run(["rm", "-rf", cls.tmp])

    # -- helpers --------------------------------------------------------------

    def psql(self, sql):
        p = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", self.db_url,
                            "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        if p.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, p.stderr.decode()))
        return p.stdout.decode().rstrip("\n")

    def client(self, phone="+14155551234", email="zoe@example.com", **extra):
        cid = "client-" + uuid.uuid4().hex[:12]
        prefs = {"client_id": cid, "name": "Zoë Martin", "email": email, "phone": phone,
                 "timezone": "Europe/Paris",
                 "consent": {"given": True, "source": "test signup form"}}
        prefs.update(extra)
        r = self.server.request("POST", "/api/crm/preferences", json_body=prefs, headers=auth())
        self.assertIn(r.status, (200, 201), r)
        return cid

    def send(self, cid, message_type, urgency="critical", **extra):
        body = {"plan_id": "plan-1", "client_id": cid, "message_type": message_type,
                "urgency": urgency, "context": {"event_type": "wedding",
                                                "event_date": "2027-06-14"}}
        body.update(extra)
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        return r.json

    def doc(self, comm_id):
        r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def settle(self, comm_id, timeout=15):
        deadline = time.time() + timeout
        while True:
            d = self.doc(comm_id)
            if d["status"] in ("sent", "failed", "cancelled") or time.time() > deadline:
                return d
            time.sleep(0.05)

    def wait_for(self, comm_id, pred, timeout=10, seen=None):
        """Polls the message until pred(doc); seen (a set) collects every status met."""
        deadline = time.time() + timeout
        while True:
            d = self.doc(comm_id)
            if seen is not None:
                seen.add(d["status"])
            if pred(d):
                return d
            if time.time() > deadline:
                self.fail("condition not reached within %d s: %s" % (timeout, json.dumps(d)))
            time.sleep(0.05)

    def sent_on(self, message_type, channel, **prefs):
        """A message of a new client, sent on channel; returns (comm id, provider id)."""
        cid = self.client(**prefs)
        r = self.send(cid, message_type)
        d = self.settle(r["id"])
        self.assertEqual((d["status"], d["channel"]), ("sent", channel), d)
        pid = d["attempts"][-1]["provider_message_id"]
        self.assertTrue(pid.startswith({"sms": "SM", "whatsapp": "wamid."}[channel]), d)
        return r["id"], pid

    def sms_message(self):
        return self.sent_on("welcome", "sms", opted_out=["email"])  # email -> sms

    def wa_message(self, **prefs):
        prefs.setdefault("opted_out", ["email", "sms"])
        return self.sent_on("vendor_options", "whatsapp", **prefs)  # email, whatsapp, sms

    def twilio(self, params, query=None, signature=True, sign_url=None, sign_params=None,
               token=TOKEN, headers=None, body=None):
        """POSTs a status callback. signature: True computes it over the public URL
        (or sign_url) and params (or sign_params); None sends none; a str is sent as is."""
        path = TW + ("?" + query if query is not None else "")
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is True:
            hdr["X-Twilio-Signature"] = twilio_signature(
                sign_url if sign_url is not None else PUBLIC + path,
                sign_params if sign_params is not None else params, token)
        elif signature is not None:
            hdr["X-Twilio-Signature"] = signature
        hdr.update(headers or {})
        if body is None:
            body = urllib.parse.urlencode(params)
        return self.server.request("POST", path, body=body, headers=hdr)

    def whatsapp(self, doc, signature=True, secret=APP_SECRET):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        hdr = {"Content-Type": "application/json"}
        if signature is True:
            hdr["X-Hub-Signature-256"] = meta_signature(body, secret)
        elif signature is not None:
            hdr["X-Hub-Signature-256"] = signature
        return self.server.request("POST", WA, body=body, headers=hdr)

    @staticmethod
    def events(d, type_, pid=None):
        return [e for e in d["events"] if e["type"] == type_ and
                (pid is None or e["provider_message_id"] == pid)]

    def alert_for(self, comm_id, timeout=5):
        deadline = time.time() + timeout
        while True:
            got = [a for a in AlertSink.received if a.get("communication_id") == comm_id]
            if got:
                return got
            self.assertLess(time.time(), deadline, "no alert was posted for %s" % comm_id)
            time.sleep(0.05)

    # -- Twilio ---------------------------------------------------------------

    def test_twilio_signature_and_duplicates(self):
        comm, sid = self.sms_message()
        query = "comm_id=" + comm
        before = self.doc(comm)
        self.assertIsNone(before["delivered_at"], before)
        delivered = status_params(sid, "delivered")
        refused = {
            "no signature": dict(signature=None),
            "a wrong signature": dict(signature=base64.b64encode(os.urandom(20)).decode()),
            "an empty signature": dict(signature=""),
            "signed over other params": dict(sign_params=status_params(sid, "sent")),
            "signed with another token": dict(token="not-" + TOKEN),
            "signed for another comm_id": dict(
                sign_url=PUBLIC + TW + "?comm_id=" + str(uuid.uuid4())),
            "signed without the query": dict(sign_url=PUBLIC + TW),
            "signed for http://": dict(sign_url="http://herald.example.com" + TW + "?" + query),
            "signed for another port": dict(
                sign_url="https://herald.example.com:8443" + TW + "?" + query),
            "signed for the listen address": dict(
                sign_url="http://127.0.0.1:%d%s?%s" % (self.server.port, TW, query)),
        }
        for what, kw in refused.items():
            with self.subTest(what):
                r = self.twilio(delivered, query=query, **kw)
                self.assertError(r, 403, "forbidden", what)
        # a signature valid for the body, sent with another comm_id in the query
        other, _ = self.sms_message()
        other_before = self.doc(other)
        r = self.twilio(delivered, query="comm_id=" + other, sign_url=PUBLIC + TW + "?" + query)
        self.assertError(r, 403, "forbidden")
        self.assertEqual(self.doc(comm), before, "a refused callback changed the message")
        self.assertEqual(self.doc(other), other_before, "a refused callback changed a message")

        # The public URL with its default port is the same URL.
        r = self.twilio(status_params(sid, "sent"), query=query,
                        sign_url="https://herald.example.com:443" + TW + "?" + query,
                        headers={"Content-Type":
                                 "application/x-www-form-urlencoded; charset=utf-8"})
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "sent", d)
        self.assertEqual(len(self.events(d, "sent", sid)), 1, d)
        # without I-Twilio-Idempotency-Token: MessageSid + MessageStatus count once
        r = self.twilio(status_params(sid, "sent"), query=query)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(len(self.events(d, "sent", sid)), 1, d)

        token = {"I-Twilio-Idempotency-Token": "idem-" + uuid.uuid4().hex}
        r = self.twilio(delivered, query=query, headers=token)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "delivered", d)
        self.assertIsNotNone(d["delivered_at"], d)
        ev, = self.events(d, "delivered")
        self.assertEqual((ev["provider"], ev["provider_message_id"], ev["status"], ev["channel"]),
                         ("twilio", sid, "delivered", "sms"), d)
        # Twilio retries the same callback: the same token, counted once
        r = self.twilio(delivered, query=query, headers=token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm), d, "a duplicate callback changed the message")

    def test_twilio_out_of_order_never_moves_back(self):
        comm, sid = self.sms_message()
        query = "comm_id=" + comm
        r = self.twilio(status_params(sid, "delivered"), query=query)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "delivered", d)
        delivered_at = d["delivered_at"]
        for late in ("sent", "sending", "queued"):
            r = self.twilio(status_params(sid, late), query=query)
            self.assertEqual(r.status, 200, (late, r))
        d = self.doc(comm)
        self.assertEqual(d["status"], "delivered", d)
        self.assertEqual(d["delivered_at"], delivered_at, d)
        for t in ("delivered", "sent", "sending", "queued"):
            self.assertEqual(len(self.events(d, t, sid)), 1, (t, d))
        # read (WhatsApp-style status Twilio also sends) moves it forward
        r = self.twilio(status_params(sid, "read"), query=query)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "opened", d)
        r = self.twilio(status_params(sid, "delivered"), query=query,
                        headers={"I-Twilio-Idempotency-Token": uuid.uuid4().hex})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "opened")

    def test_twilio_failed_receipt_moves_to_the_next_channel(self):
        cid = self.client()
        r = self.send(cid, "error_notification")  # sms, then email, then whatsapp
        comm = r["id"]
        d = self.settle(comm)
        self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
        sid = d["attempts"][0]["provider_message_id"]
        r = self.twilio(status_params(sid, "undelivered", ErrorCode="30005"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        seen = set()
        d = self.wait_for(comm, lambda d: [a for a in d["attempts"] if a["channel"] == "email"]
                          and d["channel"] == "email", seen=seen)
        self.assertEqual(seen, {"sent"}, "the message left 'sent' on its way to the next "
                         "channel: %s" % seen)
        self.assertEqual((d["status"], d["channel"]), ("sent", "email"), d)
        sms, mail = d["attempts"]
        self.assertEqual((sms["channel"], sms["provider_message_id"]), ("sms", sid), d)
        self.assertEqual((mail["channel"], mail["status"]), ("email", "sent"), d)
        ev, = self.events(d, "failed", sid)
        self.assertEqual((ev["provider"], ev["status"], ev["code"], ev["category"]),
                         ("twilio", "undelivered", "30005", "invalid"), d)
        self.assertEqual((d["last_error_category"], d["last_error_code"]), ("invalid", "30005"))
        self.assertTrue(os.path.exists(os.path.join(self.outbox, "email", comm + "-1.eml")), d)
        # the same failure again (Twilio retrying) does not move it a second time
        r = self.twilio(status_params(sid, "undelivered", ErrorCode="30005"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        time.sleep(0.3)
        d2 = self.doc(comm)
        self.assertEqual(d2, d)

    def test_twilio_failed_receipt_on_the_last_channel_fails_and_alerts(self):
        comm, sid = self.sms_message()  # welcome, email opted out: sms is the last channel
        r = self.twilio(status_params(sid, "undelivered", ErrorCode="30005"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        d = self.wait_for(comm, lambda d: d["status"] != "sent", timeout=5)
        self.assertEqual(d["status"], "failed", d)
        self.assertIsNotNone(d["failed_at"], d)
        self.assertEqual(len(d["attempts"]), 1, d)  # nothing went out again
        alert, = self.alert_for(comm)
        self.assertEqual(alert["alert"], "communication_failed")
        self.assertEqual(alert["message_type"], "welcome")
        self.assertEqual(alert["category"], "invalid")
        self.assertTrue(self.server.wait_log(
            lambda l: l.get("level") == "crit" and l.get("comm_id") == comm), d)
        # failed is terminal: a late delivered changes nothing but the record
        r = self.twilio(status_params(sid, "delivered"), query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        d2 = self.doc(comm)
        self.assertEqual((d2["status"], d2["delivered_at"]), ("failed", None), d2)
        self.assertEqual(len(self.events(d2, "delivered", sid)), 1, d2)
        time.sleep(0.2)
        self.assertEqual(len(self.alert_for(comm)), 1, "alerted twice")

    def retried_after_a_transient_receipt(self):
        """An SMS-only message whose first attempt a receipt reports failed with a
        transient code (30003): the policy retries it on SMS. Returns (comm, sid1, doc)."""
        comm, sid = self.sms_message()  # welcome, email opted out: sms only
        r = self.twilio(status_params(sid, "undelivered", ErrorCode="30003"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        seen = set()
        d = self.wait_for(comm, lambda d: len(d["attempts"]) == 2, seen=seen)
        self.assertEqual(seen, {"sent"}, seen)
        return comm, sid, d

    def test_twilio_transient_failed_receipt_is_retried_on_the_same_channel(self):
        comm, sid, d = self.retried_after_a_transient_receipt()
        self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
        first, second = d["attempts"]
        self.assertEqual([(a["channel"], a["attempt"], a["status"]) for a in d["attempts"]],
                         [("sms", 1, "sent"), ("sms", 2, "sent")], d)
        self.assertNotEqual(second["provider_message_id"], sid, d)
        ev, = self.events(d, "failed", sid)
        self.assertEqual((ev["code"], ev["category"]), ("30003", "transient"), d)
        # the receipt of the new attempt
        r = self.twilio(status_params(second["provider_message_id"], "delivered"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "delivered")

    def test_twilio_failure_of_a_superseded_attempt_does_not_send_again(self):
        # Product bug: handle_receipt (core/http/api_webhooks.c) acts on a failed
        # receipt whenever the message is 'sent' on the receipt's channel, without
        # checking that the receipt is about the current attempt. A second failure
        # report about attempt 1, after attempt 2 went out, makes the policy retry
        # "attempt 1" again: a third SMS goes out, numbered attempt 2 a second time.
        comm, sid, d = self.retried_after_a_transient_receipt()
        self.assertEqual([a["attempt"] for a in d["attempts"]], [1, 2], d)
        r = self.twilio(status_params(sid, "failed", ErrorCode="30003"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        deadline = time.time() + 1.5
        while time.time() < deadline and len(self.doc(comm)["attempts"]) == 2:
            time.sleep(0.05)
        d = self.doc(comm)
        self.assertEqual(len(self.events(d, "failed", sid)), 2, d)  # recorded, as an event
        numbers = [(a["channel"], a["attempt"]) for a in d["attempts"]]
        self.assertEqual(len(set(numbers)), len(numbers), "two attempts share a number: %s"
                         % numbers)
        self.assertEqual(len(d["attempts"]), 2, "the failure of attempt 1 was acted on twice: "
                         "%s" % json.dumps(d["attempts"]))

    def test_twilio_sent_receipt_during_an_in_flight_send_keeps_the_message_sent(self):
        # Product bug: Twilio took the request but its answer never reached Herald
        # (the fake holds the connection, then closes it: connection_lost, a
        # transient failure kept for a retry). Twilio's 'sent' callback (found by
        # comm_id) moves the message 'sending' -> 'sent'; the retry job then finds
        # a 'sent' message, and dispatch() (core/engine/worker.c, the "cancelled
        # or already settled" branch) settles it with comms_skip(..., "message no
        # longer pending", last=true), whose st_failed (core/store/repo_comms.c,
        # WHERE status IN (..., 'sent')) turns the sent message 'failed' - with
        # no alert, and for good.
        cid = self.client(phone="+14155550006", opted_out=["email"])  # never answered
        comm = self.send(cid, "welcome")["id"]  # sms only
        self.wait_for(comm, lambda d: d["status"] == "sending", timeout=5)
        sid = "SM" + uuid.uuid4().hex  # Twilio's id, which Herald never got
        r = self.twilio(status_params(sid, "sent"), query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "sent")
        # the held request ends without an answer; the worker keeps a retry job
        self.wait_for(comm, lambda d: d["attempts"], timeout=10)
        deadline = time.time() + 1.5
        while time.time() < deadline and self.doc(comm)["status"] == "sent":
            time.sleep(0.05)
        d = self.doc(comm)
        self.assertEqual((d["status"], d["failed_at"]), ("sent", None), json.dumps(d))
        r = self.twilio(status_params(sid, "delivered"), query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "delivered")

    def test_twilio_unknown_message_is_kept_and_answered_200(self):
        ref, ref_sid = self.sms_message()
        ref_before = self.doc(ref)
        sid = "SM" + uuid.uuid4().hex
        for query in (None, "comm_id=" + str(uuid.uuid4()), "comm_id=not-a-uuid"):
            with self.subTest(query=query):
                r = self.twilio(status_params(sid, "delivered"), query=query,
                                headers={"I-Twilio-Idempotency-Token": uuid.uuid4().hex})
                self.assertEqual(r.status, 200, r)
        # kept once: the same sid and status, whatever the (unsigned) idempotency token
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_delivery_logs WHERE provider_message_id = '%s' "
            "AND communication_id IS NULL AND kind = 'event'" % sid), "1")
        self.assertEqual(self.doc(ref), ref_before)
        self.assertEqual(self.psql("SELECT count(*) FROM crm_communications WHERE status "
                                   "IN ('delivered', 'opened') AND id = '%s'" % ref), "0")

    def test_twilio_malformed_bodies_are_400_and_change_nothing(self):
        comm, sid = self.sms_message()
        query = "comm_id=" + comm
        before = self.doc(comm)
        no_sid = status_params(sid, "delivered")
        del no_sid["MessageSid"], no_sid["SmsSid"]
        no_status = status_params(sid, "delivered")
        del no_status["MessageStatus"], no_status["SmsStatus"]
        cases = {
            "no MessageSid": dict(params=no_sid),
            "no MessageStatus": dict(params=no_status),
            "a MessageSid that is not a Twilio value": dict(
                params=status_params(sid + "<script>", "delivered")),
            "an empty MessageSid": dict(params=status_params("", "delivered")),
        }
        for what, kw in cases.items():
            with self.subTest(what):
                r = self.twilio(kw["params"], query=query)
                self.assertEqual(r.status, 400, (what, r))
                self.assertEqual(r.json["error"]["code"], "invalid_field", r)
        # bodies that do not parse: signed over the params as they read
        for raw in ("MessageSid=SM%G1&MessageStatus=delivered",
                    "MessageSid=" + sid + "&MessageStatus=delivered%2",
                    "MessageSid=" + sid + "&MessageStatus=deliv%00ered"):
            with self.subTest(raw=raw):
                literal = dict(p.split("=", 1) for p in raw.split("&"))
                r = self.twilio(literal, query=query, body=raw)
                self.assertEqual(r.status, 400, (raw, r))
                self.assertEqual(r.json["error"]["code"], "invalid_form", r)
        self.assertEqual(self.doc(comm), before)

    # -- WhatsApp verification -------------------------------------------------

    def test_whatsapp_verification_challenge(self):
        q = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                    "hub.challenge": "1158201444"})
        r = self.server.request("GET", WA + "?" + q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"1158201444")
        self.assertEqual((r.header("Content-Type") or "").split(";")[0].strip(), "text/plain")
        for what, params in {
            "wrong token": {"hub.mode": "subscribe", "hub.verify_token": VERIFY + "x",
                            "hub.challenge": "1"},
            "a prefix of the token": {"hub.mode": "subscribe",
                                      "hub.verify_token": VERIFY[:-1], "hub.challenge": "1"},
            "wrong mode": {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY,
                           "hub.challenge": "1"},
            "no token": {"hub.mode": "subscribe", "hub.challenge": "1"},
            "empty token": {"hub.mode": "subscribe", "hub.verify_token": "",
                            "hub.challenge": "1"},
            "no mode": {"hub.verify_token": VERIFY, "hub.challenge": "1"},
            "nothing": {},
        }.items():
            with self.subTest(what):
                r = self.server.request("GET", WA + ("?" + urllib.parse.urlencode(params)
                                                     if params else ""))
                self.assertError(r, 403, "forbidden", what)

    # -- WhatsApp statuses -----------------------------------------------------

    def test_whatsapp_delivered_then_read_and_duplicates(self):
        comm, wamid = self.wa_message()
        r = self.whatsapp(wa_payload(wa_status(wamid, "delivered", opaque=comm)))
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "delivered", d)
        self.assertIsNotNone(d["delivered_at"], d)
        payload = wa_payload(wa_status(wamid, "read", opaque=comm))
        r = self.whatsapp(payload)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "opened", d)
        self.assertIsNotNone(d["opened_at"], d)
        ev, = self.events(d, "read", wamid)
        self.assertEqual((ev["provider"], ev["status"], ev["channel"]),
                         ("whatsapp", "read", "whatsapp"), d)
        # Meta delivering the same payload again, and a late 'sent' and 'delivered'
        r = self.whatsapp(payload)
        self.assertEqual(r.status, 200, r)
        r = self.whatsapp(wa_payload(wa_status(wamid, "sent"), wa_status(wamid, "delivered")))
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "opened", d)
        for t in ("sent", "delivered", "read"):
            self.assertEqual(len(self.events(d, t, wamid)), 1, (t, d))

    def test_whatsapp_read_without_delivered(self):
        comm, wamid = self.wa_message()
        # matched by the wamid alone (no callback data)
        r = self.whatsapp(wa_payload(wa_status(wamid, "read")))
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "opened", d)
        self.assertIsNotNone(d["opened_at"], d)
        self.assertIsNotNone(d["delivered_at"], d)
        self.assertEqual(len(self.events(d, "read", wamid)), 1, d)

    def test_whatsapp_matched_by_callback_data(self):
        comm, wamid = self.wa_message()
        made_up = "wamid.HBgL" + uuid.uuid4().hex.upper()
        r = self.whatsapp(wa_payload(wa_status(made_up, "delivered", opaque=comm)))
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "delivered", d)
        ev, = self.events(d, "delivered")
        self.assertEqual(ev["provider_message_id"], made_up, d)

    def test_whatsapp_unknown_message_is_kept_and_answered_200(self):
        ref, _ = self.wa_message()
        ref_before = self.doc(ref)
        unknown = "wamid.HBgL" + uuid.uuid4().hex.upper()
        for opaque in (None, str(uuid.uuid4()), "not-ours"):
            r = self.whatsapp(wa_payload(wa_status(unknown, "delivered", opaque=opaque)))
            self.assertEqual(r.status, 200, (opaque, r))
        # one orphan: the same wamid and status are one event
        self.assertEqual(self.psql(
            "SELECT count(*) FROM crm_delivery_logs WHERE provider_message_id = '%s' "
            "AND communication_id IS NULL" % unknown), "1")
        self.assertEqual(self.doc(ref), ref_before)

    def test_whatsapp_bad_signatures_are_403_and_change_nothing(self):
        comm, wamid = self.wa_message()
        before = self.doc(comm)
        body = json.dumps(wa_payload(wa_status(wamid, "delivered", opaque=comm))).encode()
        good = meta_signature(body)
        changed = body.replace(b'"delivered"', b'"read"')
        self.assertNotEqual(changed, body)
        cases = {
            "no header": (body, None),
            "signed with another secret": (body, meta_signature(body, "not-" + APP_SECRET)),
            "body changed after signing": (changed, good),
            "hex without the sha256= prefix": (body, good[len("sha256="):]),
            "sha1= prefix": (body, "sha1=" + hmac.new(APP_SECRET.encode(), body,
                                                      hashlib.sha1).hexdigest()),
            "truncated": (body, good[:-2]),
            "empty": (body, ""),
        }
        for what, (b, sig) in cases.items():
            with self.subTest(what):
                r = self.whatsapp(b, signature=sig)
                self.assertError(r, 403, "forbidden", what)
        self.assertEqual(self.doc(comm), before)
        # the same body with its right signature is taken
        r = self.whatsapp(body, signature=good)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "delivered")

    def test_whatsapp_malformed_payloads_are_400_and_change_nothing(self):
        comm, wamid = self.wa_message()
        before = self.doc(comm)
        valid = wa_status(wamid, "delivered", opaque=comm)
        no_id = {"status": "read", "timestamp": "1700000000"}
        mixed_entries = wa_payload(valid)
        mixed_entries["entry"].append("not an object")
        cases = {
            "not JSON": b"{\"entry\": [",
            "a JSON array": b"[]",
            "entry not an array": {"object": "whatsapp_business_account", "entry": {}},
            "changes not an array": {"entry": [{"changes": {"value": {}}}]},
            "statuses not an array": {"entry": [{"changes": [{"value": {"statuses": {}}}]}]},
            "a status without id": wa_payload(no_id),
            "a status with a numeric id": wa_payload(dict(valid, id=12)),
            "a status without status": wa_payload({"id": wamid}),
            # validate first, then apply: the valid status must not be applied
            "one valid status, then one without id": wa_payload(valid, no_id),
            "one valid status, then a malformed entry": mixed_entries,
        }
        for what, doc in cases.items():
            with self.subTest(what):
                r = self.whatsapp(doc)
                self.assertEqual(r.status, 400, (what, r))
                self.assertEqual(self.doc(comm), before, what)
        self.assertEqual(self.psql("SELECT count(*) FROM crm_delivery_logs WHERE kind = 'event' "
                                   "AND provider_message_id = '%s'" % wamid), "0")
        # and the valid status alone is then applied (the 400s left no dedup key behind)
        r = self.whatsapp(wa_payload(valid))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.doc(comm)["status"], "delivered")

    def test_whatsapp_failed_receipt_moves_to_the_next_channel(self):
        comm, wamid = self.wa_message(opted_out=["email"])  # whatsapp, then sms
        r = self.whatsapp(wa_payload(wa_status(wamid, "failed", opaque=comm, errors=[{
            "code": 131026, "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message failed to send"}}])))
        self.assertEqual(r.status, 200, r)
        seen = set()
        d = self.wait_for(comm, lambda d: d["channel"] == "sms" and
                          [a for a in d["attempts"] if a["channel"] == "sms"], seen=seen)
        self.assertEqual(seen, {"sent"}, seen)
        self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
        wa, sms = d["attempts"]
        self.assertEqual((wa["channel"], wa["provider_message_id"]), ("whatsapp", wamid), d)
        self.assertEqual(sms["status"], "sent", d)
        self.assertTrue(sms["provider_message_id"].startswith("SM"), d)
        ev, = self.events(d, "failed", wamid)
        self.assertEqual((ev["provider"], ev["code"], ev["category"]),
                         ("whatsapp", "131026", "invalid"), d)
        # the receipt of the new attempt: delivered
        r = self.twilio(status_params(sms["provider_message_id"], "delivered"),
                        query="comm_id=" + comm)
        self.assertEqual(r.status, 200, r)
        d = self.doc(comm)
        self.assertEqual((d["status"], d["channel"]), ("delivered", "sms"), d)
        self.assertIsNotNone(d["delivered_at"], d)


    def test_a_resend_after_a_failed_receipt_keeps_the_attachment(self):
        import base64
        import email as email_mod
        import email.policy
        cid = self.client(channels=["whatsapp", "email"])  # blueprint: whatsapp first here
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
        r = self.send(cid, "blueprint_delivery", context={
            "event_type": "wedding", "event_date": "2027-06-14",
            "blueprint_url": "https://app.example/b/1"},
            attachments=[{"filename": "blueprint.pdf", "content_type": "application/pdf",
                          "content_base64": base64.b64encode(pdf).decode()}])
        comm = r["id"]
        d = self.wait_for(comm, lambda d: d["status"] == "sent")
        self.assertEqual(d["channel"], "whatsapp", d)
        wamid = d["attempts"][0]["provider_message_id"]
        r = self.whatsapp(wa_payload(wa_status(wamid, "failed", opaque=comm, errors=[{
            "code": 131026, "title": "Message undeliverable"}])))
        self.assertEqual(r.status, 200, r)
        self.wait_for(comm, lambda d: d["channel"] == "email" and len(d["attempts"]) == 2)
        path = os.path.join(self.outbox, "email", comm + "-1.eml")
        with open(path, "rb") as f:
            m = email_mod.message_from_bytes(f.read(), policy=email.policy.default)
        att, = list(m.iter_attachments())
        self.assertEqual((att.get_filename(), att.get_content()), ("blueprint.pdf", pdf))

    def metric(self, text, name, **labels):
        """The value of one sample (labels matched exactly, in any order), or 0."""
        for line in text.splitlines():
            m = re.match(r"^(\w+)(\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            if got == {k: str(v) for k, v in labels.items()}:
                return float(m.group(4))
        return 0.0

    def scrape(self):
        r = self.server.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is not installed (apt-get install prometheus)")
        p = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())
        return r.body.decode()

    def test_metrics_follow_sends_receipts_and_retries(self):
        before = self.scrape()
        comm, sid = self.sms_message()  # welcome on sms
        self.assertEqual(self.twilio(status_params(sid, "delivered"),
                                     query="comm_id=" + comm).status, 200)
        self.wait_for(comm, lambda d: d["status"] == "delivered")
        # a transient receipt: the policy retries on the same channel
        comm2, sid2 = self.sms_message()
        self.assertEqual(self.twilio(status_params(sid2, "undelivered", ErrorCode="30003"),
                                     query="comm_id=" + comm2).status, 200)
        self.wait_for(comm2, lambda d: len(d["attempts"]) == 2)
        after = self.scrape()
        for family in ("crm_communications_total", "crm_delivery_time_seconds",
                       "crm_open_rate", "crm_api_errors_total", "crm_queue_jobs",
                       "crm_sends_in_flight", "crm_retries_total", "crm_fallbacks_total",
                       "crm_script_generation", "crm_script_reload_errors_total"):
            self.assertRegex(after, r"(?m)^# TYPE %s " % family)

        def grew(name, by, **labels):
            self.assertEqual(self.metric(after, name, **labels) - self.metric(before, name, **labels),
                             by, (name, labels))
        # acceptance counts the primary channel: sms (the client opted out of email)
        grew("crm_communications_total", 2, channel="sms", status="queued",
             message_type="welcome")
        grew("crm_communications_total", 3, channel="sms", status="sent", message_type="welcome")
        grew("crm_communications_total", 1, channel="sms", status="delivered",
             message_type="welcome")
        grew("crm_delivery_time_seconds_count", 1)
        grew("crm_retries_total", 1, category="transient")
        grew("crm_fallbacks_total", 0, category="transient")
        self.assertGreaterEqual(self.metric(after, "crm_script_generation"), 1)


if __name__ == "__main__":
    unittest.main()

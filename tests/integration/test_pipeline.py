"""The send pipeline end to end with the real binary: POST a communication,
the workers send it through the drivers (outbox, and the fake Twilio / Meta
servers of tests/fakes), retries and the fallback chain follow the policy
scripts (delays scaled down with HERALD_RETRY_SCALE), and the history API
shows every attempt."""
import glob
import threading
import os
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import harness

SID, TOKEN, META = "AC00000000000000000000000000000000", "test-token", "test-meta-token"
MATRIX = {"welcome": ("email", ["sms"]), "budget_summary": ("email", ["whatsapp"]),
          "vendor_options": ("email", ["whatsapp", "sms"]),
          "selection_confirmation": ("email", ["sms"]),
          "blueprint_delivery": ("email", ["whatsapp"]),
          "error_notification": ("sms", ["email", "whatsapp"]), "reminder": ("email", [])}


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


def start_fake(tmp):
    return harness.start_fake_providers(tmp, hang_seconds=3)


AlertSink = harness.AlertSink


class PipelineTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alerts = harness.start_alert_sink()
        cls.tmp = tempfile.mkdtemp(prefix="herald-pipe-")
        cls.fake, port = start_fake(cls.tmp)
        base = "http://127.0.0.1:%d" % port
        cls.outbox = os.path.join(cls.tmp, "outbox")
        # A database of its own: other tests' servers run workers too.
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url,
            "HERALD_OUTBOX_DIR": cls.outbox, "HERALD_RETRY_SCALE": "0.001",
            "HERALD_WORKERS": "2",
            "HERALD_ALERT_URL": "http://127.0.0.1:%d/alerts" % cls.alerts.server_port,
            "HERALD_ALERT_EMAIL": "ops@herald.example",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": "+15005550006",
            "HERALD_WHATSAPP_DRIVER": "whatsapp", "HERALD_WHATSAPP_BASE_URL": base,
            "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890", "HERALD_WHATSAPP_TOKEN": META})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.alerts.shutdown()
            cls.drop_db()
            subprocess.run(["rm", "-rf", cls.tmp])

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
        return self.server.request("POST", "/api/crm/communications", json_body=body,
                                   headers=auth())

    def settle(self, comm_id, timeout=15):
        deadline = time.time() + timeout
        while True:
            r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
            self.assertEqual(r.status, 200, r)
            if r.json["status"] in ("sent", "failed", "cancelled", "suppressed") \
                    or time.time() > deadline:
                return r.json
            time.sleep(0.05)

    def test_a_context_link_with_another_scheme_is_refused_at_acceptance(self):
        # issue 17 item 11, issue 18: a vendor URL from the workflow that is
        # javascript: or data: is refused before anything is stored, each named
        # by its path and never echoed (the email's link sanitizer stays as a
        # second line: tests/c/test_tracking.c)
        cid = self.client()
        ctx = {"client_name": "Zoë", "event_type": "wedding", "event_date": "2027-06-14",
               "currency": "EUR", "selection_deadline": "2027-05-01",
               "categories": [{"name": "Venue", "vendors": [
                   {"name": "Evil", "price": 1, "rating": 5, "url": "javascript:alert(1)"},
                   {"name": "Data", "price": 2, "rating": 4,
                    "url": "data:text/html,<script>alert(1)</script>"},
                   {"name": "Good", "price": 3, "rating": 4,
                    "url": "https://vendors.example/good"}]}]}
        r = self.send(cid, "vendor_options", channel="email", context=ctx)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"]["code"], "invalid_context")
        self.assertEqual([p["path"] for p in r.json["error"]["problems"]],
                         ["categories[0].vendors[0].url", "categories[0].vendors[1].url"])
        self.assertNotIn("javascript", r.body.decode())
        self.assertNotIn("script>", r.body.decode())
        listed = self.server.request("GET", "/api/crm/communications?client_id=" + cid,
                                     headers=auth())
        self.assertEqual(listed.json["items"], [])

    def test_each_matrix_row_goes_out_on_its_primary_channel(self):
        cid = self.client()
        ids = {}
        for mt, (primary, fallbacks) in MATRIX.items():
            r = self.send(cid, mt)
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["strategy"]["primary_channel"], primary, (mt, r.json))
            self.assertEqual(r.json["strategy"]["fallback_channels"], fallbacks, (mt, r.json))
            ids[mt] = r.json["id"]
        for mt, cid_ in ids.items():
            doc = self.settle(cid_)
            self.assertEqual(doc["status"], "sent", (mt, doc))
            self.assertEqual(doc["channel"], MATRIX[mt][0], (mt, doc))
            self.assertEqual(len(doc["attempts"]), 1, doc)
            if MATRIX[mt][0] == "email":
                self.assertTrue(os.path.exists(os.path.join(self.outbox, "email",
                                                            cid_ + "-1.eml")), doc)

    def test_opt_out_and_missing_address_change_the_channel(self):
        cid = self.client(opted_out=["email"])
        r = self.send(cid, "welcome")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["strategy"]["primary_channel"], "sms", r.json)
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "sms"), doc)
        self.assertTrue(doc["attempts"][0]["provider_message_id"].startswith("SM"), doc)

    def test_permanent_failure_goes_straight_to_the_next_channel(self):
        cid = self.client(phone="+14155550001")  # the fake Twilio answers 21211
        r = self.send(cid, "error_notification")  # sms, then email, then whatsapp
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "email"), doc)
        sms, mail = doc["attempts"]
        self.assertEqual((sms["channel"], sms["category"], sms["code"]),
                         ("sms", "invalid", "21211"), doc)
        self.assertEqual(mail["channel"], "email")

    def test_transient_failures_are_retried_then_the_chain_moves_on(self):
        cid = self.client(phone="+14155550005", opted_out=["email"])  # whatsapp answers 500
        r = self.send(cid, "budget_summary")  # email (opted out) -> whatsapp
        self.assertEqual(r.json["strategy"]["primary_channel"], "whatsapp", r.json)
        doc = self.settle(r.json["id"])
        self.assertEqual(doc["status"], "failed", doc)
        wa = [a for a in doc["attempts"] if a["channel"] == "whatsapp"]
        # the first try and the three retries of the schedule
        self.assertEqual(len(wa), 4, doc)
        self.assertTrue(all(a["category"] == "transient" for a in wa), doc)
        self.assertEqual(doc["last_error_category"], "transient")

    def test_whole_chain_failing_ends_failed(self):
        cid = self.client(phone="+14155550001", email=None)
        r = self.send(cid, "error_notification")
        self.assertEqual(r.status, 202, r)
        doc = self.settle(r.json["id"])
        self.assertEqual(doc["status"], "failed", doc)
        self.assertIsNotNone(doc["failed_at"])
        self.assertTrue(self.server.wait_log(
            lambda l: l.get("level") == "crit" and l.get("comm_id") == r.json["id"]), doc)
        deadline = time.time() + 5
        while not [a for a in AlertSink.received if a["communication_id"] == r.json["id"]]:
            self.assertLess(time.time(), deadline, "no alert was posted")
            time.sleep(0.05)
        alert, = [a for a in AlertSink.received if a["communication_id"] == r.json["id"]]
        self.assertEqual(alert["alert"], "communication_failed")
        self.assertEqual(alert["client_id"], cid)
        self.assertEqual(alert["message_type"], "error_notification")
        # and the e-mail form, through the email driver (the outbox here)
        path = os.path.join(self.outbox, "email", "alert-%s-1.eml" % r.json["id"])
        deadline = time.time() + 5
        while not os.path.exists(path):
            self.assertLess(time.time(), deadline, "no alert email")
            time.sleep(0.05)
        with open(path, "rb") as f:
            raw = f.read()
        self.assertIn(b"To: ops@herald.example", raw)
        self.assertIn(r.json["id"].encode(), raw)

    def test_preferences_are_checked_again_at_send_time(self):
        cid = self.client()
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        r = self.send(cid, "welcome", send_at=soon)  # email, then sms
        self.assertEqual(r.json["strategy"]["primary_channel"], "email", r.json)
        # the client narrows their channels before it goes out
        p = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "channels": ["sms"]})
        self.assertEqual(p.status, 200, p)
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "sms"), doc)
        self.assertEqual(doc["events"][0]["type"], "skipped", doc)
        self.assertIn("allowed channels", doc["events"][0]["message"])

    def test_consent_is_checked_again_at_send_time(self):
        # Accepted with consent for email then sms; withdrawn before it is due.
        cid = self.client()
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        r = self.send(cid, "welcome", send_at=soon)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["strategy"]["primary_channel"], "email", r.json)
        p = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "consent": {"given": False}})
        self.assertEqual(p.status, 200, p)
        doc = self.settle(r.json["id"])
        # Every channel refused: the client's wish, not a failure.
        self.assertEqual(doc["status"], "suppressed", doc)
        self.assertIsNone(doc["failed_at"], doc)
        self.assertEqual(doc["attempts"], [], doc)  # nothing reached a provider
        skipped = [e for e in doc["events"] if e["type"] == "skipped"]
        self.assertEqual(len(skipped), 2, doc)
        self.assertEqual([e["status"] for e in skipped], ["refused", "refused"], doc)
        self.assertIn("email: the client withdrew consent", skipped[0]["message"])
        self.assertIn("sms: the client withdrew consent", skipped[1]["message"])
        # ... so no alert is raised for it.
        time.sleep(0.5)
        self.assertEqual([a for a in AlertSink.received
                          if a["communication_id"] == r.json["id"]], [], doc)
        self.assertIsNone(self.server.wait_log(
            lambda l: l.get("level") == "crit" and l.get("comm_id") == r.json["id"], timeout=0))

    def test_whatsapp_needs_an_opt_in(self):
        # Only whatsapp could reach this client: without an opt-in, the
        # request is refused at once, saying why.
        cid = self.client(opted_out=["email", "sms"], consent={"given": False})
        r = self.send(cid, "vendor_options")
        self.assertEqual(r.status, 422, r)
        self.assertIn("whatsapp: no consent", r.json["error"]["message"], r.json)
        # With it, whatsapp carries the message.
        p = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid, "consent": {"given": True}})
        self.assertEqual(p.status, 200, p)
        r = self.send(cid, "vendor_options")
        self.assertEqual(r.status, 202, r)
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "whatsapp"), doc)

    def test_quiet_hours_are_checked_again_at_send_time(self):
        cid = self.client(timezone="UTC")
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        r = self.send(cid, "vendor_options", urgency="high", send_at=soon)
        self.assertEqual(r.status, 202, r)
        # quiet hours start before the message comes due
        start = time.strftime("%H:%M", time.gmtime(time.time() - 3600))
        end = time.strftime("%H:%M", time.gmtime(time.time() + 3600))
        p = self.server.request("POST", "/api/crm/preferences", headers=auth(),
                                json_body={"client_id": cid,
                                           "quiet_hours": {"start": start, "end": end}})
        self.assertEqual(p.status, 200, p)
        deadline = time.time() + 10
        while True:
            doc = self.server.request("GET", "/api/crm/communications/" + r.json["id"],
                                      headers=auth()).json
            if [e for e in doc["events"] if e["type"] == "deferred"]:
                break
            self.assertLess(time.time(), deadline, doc)
            time.sleep(0.1)
        self.assertNotEqual(doc["status"], "sent", doc)
        self.assertEqual(doc["attempts"], [], doc)
        ev = [e for e in doc["events"] if e["type"] == "deferred"][0]
        self.assertIn("quiet hours", ev["message"])

    def test_low_urgency_messages_go_as_one_digest(self):
        # the digest time is the next minute, in UTC
        at = time.gmtime(time.time() + 60)
        cid = self.client(timezone="UTC", digest_time=time.strftime("%H:%M", at))
        ids = []
        for i in range(3):
            r = self.send(cid, "reminder", urgency="low",
                          context={"event_type": "wedding", "event_date": "2027-06-14",
                                   "due_item": "Item %d" % i, "due_date": "2027-05-0%d" % (i + 1)})
            self.assertEqual(r.status, 202, r)
            self.assertTrue(r.json["strategy"]["batch"], r.json)
            ids.append(r.json["id"])
        sends = {self.server.request("GET", "/api/crm/communications/" + i,
                                     headers=auth()).json["strategy"]["send_at"] for i in ids}
        self.assertEqual(len(sends), 1, sends)  # one digest time for all three
        docs = [self.settle(i, timeout=120) for i in ids]
        self.assertEqual([d["status"] for d in docs], ["sent"] * 3, docs)
        mails = [i for i in ids
                 if os.path.exists(os.path.join(self.outbox, "email", i + "-1.eml"))]
        self.assertEqual(len(mails), 1, "exactly one digest email")
        with open(os.path.join(self.outbox, "email", mails[0] + "-1.eml"), "rb") as f:
            raw = f.read()
        import email as email_mod
        import email.policy
        m = email_mod.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(m["subject"], "Your daily update: 3 messages")
        text = m.get_body(("plain",)).get_content()
        for i in range(3):
            self.assertIn("Item %d" % i, text)

    def test_wait_answers_at_the_first_outcome(self):
        cid = self.client()
        body = {"plan_id": "plan-w", "client_id": cid, "message_type": "welcome",
                "urgency": "critical", "context": {}}
        t0 = time.time()
        r = self.server.request("POST", "/api/crm/communications?wait=10", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "sent", r.json)
        self.assertLess(time.time() - t0, 5)
        # a message for later answers at once: "scheduled" is its first outcome
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        t0 = time.time()
        r = self.server.request("POST", "/api/crm/communications?wait=10",
                                json_body=dict(body, send_at=later), headers=auth())
        self.assertEqual((r.status, r.json["status"]), (202, "scheduled"), r)
        self.assertLess(time.time() - t0, 2)
        for bad in ("abc", "31", "-1", ""):
            r = self.server.request("POST", "/api/crm/communications?wait=" + bad,
                                    json_body=body, headers=auth())
            self.assertEqual(r.status, 400, (bad, r))

    def test_waiting_requests_hold_no_http_thread(self):
        # WhatsApp never answers (the fake holds it), so each ?wait=2 times out;
        # more of them than HTTP threads (4) must not stall other requests.
        cid = self.client(phone="+14155550006", opted_out=["email"])
        body = {"plan_id": "plan-h", "client_id": cid, "message_type": "budget_summary",
                "urgency": "critical"}
        results = []

        def post():
            results.append(self.server.request("POST", "/api/crm/communications?wait=2",
                                               json_body=body, headers=auth()))
        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.time()
        h = self.server.request("GET", "/api/crm/health")
        self.assertEqual(h.status, 200, h)
        self.assertLess(time.time() - t0, 1.0, "health waited behind the suspended requests")
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.status for r in results), [202] * 8)
        # no outcome within 2 s: the answer says where the message is
        self.assertTrue({r.json["status"] for r in results} <= {"queued", "sending"}, results)

    def test_the_blueprint_pdf_goes_as_an_attachment(self):
        import base64
        import email as email_mod
        import email.policy
        cid = self.client()
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"
        r = self.send(cid, "blueprint_delivery", context={
            "event_type": "wedding", "event_date": "2027-06-14",
            "blueprint_url": "https://app.example/b/1"},
            attachments=[{"filename": "blueprint.pdf", "content_type": "application/pdf",
                          "content_base64": base64.b64encode(pdf).decode()}])
        self.assertEqual(r.status, 202, r)
        doc = self.settle(r.json["id"])
        self.assertEqual((doc["status"], doc["channel"]), ("sent", "email"), doc)
        with open(os.path.join(self.outbox, "email", r.json["id"] + "-1.eml"), "rb") as f:
            m = email_mod.message_from_bytes(f.read(), policy=email.policy.default)
        att, = list(m.iter_attachments())
        self.assertEqual(att.get_filename(), "blueprint.pdf")
        self.assertEqual(att.get_content_type(), "application/pdf")
        self.assertEqual(att.get_content(), pdf)
        for bad, word in [([{"filename": "a.pdf", "content_type": "application/pdf",
                             "content_base64": "not base64!"}], "content_base64"),
                          ([{"filename": "a\r\nBcc: x@y", "content_type": "application/pdf",
                             "content_base64": ""}], "filename"),
                          ([{"filename": "a.pdf"}], "attachments[0]"),
                          ("a.pdf", "attachments")]:
            r = self.send(cid, "blueprint_delivery", attachments=bad)
            self.assertEqual(r.status, 400, (bad, r))
            self.assertIn(word, r.json["error"]["message"])

    def test_cancel_only_before_a_provider_has_it(self):
        cid = self.client()
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        r = self.send(cid, "welcome", send_at=later)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "scheduled", r.json)
        path = "/api/crm/communications/" + r.json["id"]
        d = self.server.request("DELETE", path, headers=auth())
        self.assertEqual((d.status, d.json["status"]), (200, "cancelled"), d)
        d = self.server.request("DELETE", path, headers=auth())
        self.assertEqual(d.status, 409, d)
        sent = self.send(cid, "welcome")
        self.settle(sent.json["id"])
        d = self.server.request("DELETE", "/api/crm/communications/" + sent.json["id"],
                                headers=auth())
        self.assertEqual(d.status, 409, d)
        d = self.server.request("DELETE", "/api/crm/communications/" + str(uuid.uuid4()),
                                headers=auth())
        self.assertEqual(d.status, 404, d)

    def test_history_filters_and_pages(self):
        cid = self.client()
        ids = [self.send(cid, "welcome", plan_id="plan-h").json["id"] for _ in range(5)]
        seen, cursor = [], None
        while True:
            q = "/api/crm/communications?client_id=%s&limit=2" % cid
            if cursor:
                q += "&cursor=" + cursor
            r = self.server.request("GET", q, headers=auth())
            self.assertEqual(r.status, 200, r)
            seen += [i["id"] for i in r.json["items"]]
            cursor = r.json["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, list(reversed(ids)))  # newest first, each once
        r = self.server.request("GET", "/api/crm/communications?cursor=junk", headers=auth())
        self.assertEqual(r.status, 400, r)

    def test_idempotency_keys(self):
        cid = self.client()
        body = {"plan_id": "plan-i", "client_id": cid, "message_type": "welcome",
                "urgency": "critical", "context": {}}
        key = {"Idempotency-Key": "idem-" + uuid.uuid4().hex}
        key.update(auth())
        first = self.server.request("POST", "/api/crm/communications", json_body=body,
                                    headers=key)
        self.assertEqual(first.status, 202, first)
        again = self.server.request("POST", "/api/crm/communications", json_body=body,
                                    headers=key)
        self.assertEqual(again.status, 202, again)
        self.assertEqual(again.body, first.body)  # the stored answer, byte for byte
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        other = dict(body, message_type="reminder")
        r = self.server.request("POST", "/api/crm/communications", json_body=other, headers=key)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["code"], "idempotency_mismatch")
        # one message only
        r = self.server.request("GET", "/api/crm/communications?client_id=" + cid,
                                headers=auth())
        self.assertEqual([i["id"] for i in r.json["items"]], [first.json["id"]])
        # keys belong to their caller: another subject may use the same key
        other_caller = {"Authorization": "Bearer " + harness.make_jwt(
            harness.claims(scope="send read", sub="apikey:someone-else"))}
        other_caller["Idempotency-Key"] = key["Idempotency-Key"]
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=other_caller)
        self.assertEqual(r.status, 202, r)
        self.assertNotEqual(r.json["id"], first.json["id"])

    def test_concurrent_requests_with_one_key(self):
        import threading
        cid = self.client()
        body = {"plan_id": "plan-c", "client_id": cid, "message_type": "welcome",
                "urgency": "critical"}
        headers = {"Idempotency-Key": "idem-" + uuid.uuid4().hex}
        headers.update(auth())
        results = []

        def post():
            results.append(self.server.request("POST", "/api/crm/communications",
                                               json_body=body, headers=headers))
        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status for r in results)
        self.assertTrue(set(statuses) <= {202, 409}, statuses)
        ids = {r.json["id"] for r in results if r.status == 202}
        self.assertEqual(len(ids), 1, statuses)  # every 202 names the same message
        r = self.server.request("GET", "/api/crm/communications?client_id=" + cid,
                                headers=auth())
        self.assertEqual(len(r.json["items"]), 1)

    def test_a_scheduled_message_goes_when_due_and_not_before(self):
        cid = self.client()
        soon = time.time() + 3
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon))
        r = self.send(cid, "welcome", send_at=at)
        self.assertEqual(r.json["status"], "scheduled", r.json)
        self.assertEqual(r.json["strategy"]["send_at"], at)
        time.sleep(1)
        doc = self.server.request("GET", "/api/crm/communications/" + r.json["id"],
                                  headers=auth()).json
        self.assertEqual(doc["status"], "scheduled", doc)
        doc = self.settle(r.json["id"], timeout=15)
        self.assertEqual(doc["status"], "sent", doc)
        sent = time.mktime(time.strptime(doc["sent_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.assertGreaterEqual(sent, int(soon))

    def test_rate_limit_waits_for_retry_after(self):
        cid = self.client(phone="+14155550004", opted_out=["email"])  # 429, Retry-After: 2
        r = self.send(cid, "welcome")  # email opted out -> sms
        doc = self.settle(r.json["id"], timeout=30)
        sms = [a for a in doc["attempts"] if a["channel"] == "sms"]
        self.assertGreaterEqual(len(sms), 2, doc)
        self.assertEqual(sms[0]["category"], "rate_limit", doc)
        gap = lambda a, b: (time.mktime(time.strptime(b["at"][:19], "%Y-%m-%dT%H:%M:%S")) -
                            time.mktime(time.strptime(a["at"][:19], "%Y-%m-%dT%H:%M:%S")))
        # the scaled schedule would retry in milliseconds; Retry-After says 2 s
        self.assertGreaterEqual(gap(sms[0], sms[1]), 1, doc)

    def test_validation(self):
        cid = self.client()
        cases = [({"client_id": cid, "message_type": "welcome"}, 400, "plan_id"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "Welcome!"}, 400,
                  "message_type"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "welcome", "urgency": "asap"},
                  400, "urgency"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "welcome", "context": []},
                  400, "context"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "welcome", "colour": 1},
                  400, "colour"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "welcome",
                   "recipient": {"email": "not an address"}}, 400, "recipient.email"),
                 ({"plan_id": "p", "client_id": cid, "message_type": "no_such_type"}, 400,
                  "'no_such_type' is not declared in scripts/types.lua")]
        for body, status, word in cases:
            with self.subTest(body=body):
                r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                        headers=auth())
                self.assertEqual(r.status, status, r)
                self.assertIn(word, r.json["error"]["message"])


if __name__ == "__main__":
    unittest.main()

"""The no-receipt fallback (settings.no_receipt, retry.no_receipt) with the
real binary, PostgreSQL and the fake Meta and Twilio servers: a WhatsApp
message with no delivery receipt within its time goes on to SMS; a receipt in
time disarms the timer; a receipt arriving after the fallback never causes a
third message. The policy is a copy of scripts/ with a 1-second timer."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import harness
from test_webhooks import (APP_SECRET, META, SID, TOKEN, FROM, PUBLIC, WA, auth,
                           meta_signature, start_fake, wa_payload, wa_status)

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())


class NoReceiptTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="herald-noreceipt-")
        scripts = os.path.join(cls.tmp, "scripts")
        shutil.copytree(os.path.join(SRC, "scripts"), scripts)
        path = os.path.join(scripts, "settings.lua")
        with open(path) as f:
            text = f.read()
        want = "whatsapp = { high = 600, critical = 600 },"
        if want not in text:
            raise AssertionError("settings.lua no longer has %r" % want)
        with open(path, "w") as f:
            f.write(text.replace(want, "whatsapp = { high = 600, critical = 1 },"))
        cls.fake, port = start_fake(cls.tmp)
        base = "http://127.0.0.1:%d" % port
        cls.db_url, cls.drop_db = harness.fresh_database()
        cls.server = cls.new_server(env={
            "HERALD_DATABASE_URL": cls.db_url, "HERALD_PUBLIC_URL": PUBLIC,
            "HERALD_SCRIPTS_DIR": scripts,
            "HERALD_OUTBOX_DIR": os.path.join(cls.tmp, "outbox"),
            "HERALD_RETRY_SCALE": "0.001", "HERALD_WORKERS": "2",
            "HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": base,
            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
            "HERALD_TWILIO_FROM": FROM,
            "HERALD_WHATSAPP_DRIVER": "whatsapp", "HERALD_WHATSAPP_BASE_URL": base,
            "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890", "HERALD_WHATSAPP_TOKEN": META,
            "HERALD_WHATSAPP_APP_SECRET": APP_SECRET})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.send_signal(signal.SIGTERM)
            cls.fake.wait(10)
            cls.drop_db()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def doc(self, comm_id):
        r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_for(self, comm_id, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            d = self.doc(comm_id)
            if pred(d):
                return d
            if time.time() > deadline:
                self.fail("not reached within %d s: %s" % (timeout, json.dumps(d)))
            time.sleep(0.05)

    def jobs(self, comm_id):
        p = subprocess.run(["psql", "-X", "-qAt", "-d", self.db_url, "-c",
                            "SELECT count(*) FROM crm_jobs WHERE communication_id = '%s'"
                            % comm_id], capture_output=True, timeout=30, check=True)
        return int(p.stdout.decode().strip())

    def on_whatsapp(self, urgency="critical"):
        """vendor_options to a client opted out of email: whatsapp, then sms."""
        cid = "client-" + uuid.uuid4().hex[:12]
        r = self.server.request("POST", "/api/crm/preferences", headers=auth(), json_body={
            "client_id": cid, "name": "Zoë", "email": "zoe@example.com",
            "phone": "+14155551234", "opted_out": ["email"],
            "consent": {"given": True, "source": "test"}})
        self.assertIn(r.status, (200, 201), r)
        r = self.server.request("POST", "/api/crm/communications", headers=auth(), json_body={
            "plan_id": "p", "client_id": cid, "message_type": "vendor_options",
            "urgency": urgency, "context": {"event_type": "wedding", "event_date": "2027-06-14"}})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["strategy"]["primary_channel"], "whatsapp", r.json)
        d = self.wait_for(r.json["id"], lambda d: d["status"] == "sent")
        return r.json["id"], d["attempts"][0]["provider_message_id"]

    def receipt(self, wamid, status):
        body = json.dumps(wa_payload(wa_status(wamid, status))).encode()
        r = self.server.request("POST", WA, body=body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)})
        self.assertEqual(r.status, 200, r)

    def test_no_receipt_in_time_moves_to_the_next_channel_and_never_a_third(self):
        comm, wamid = self.on_whatsapp()
        t0 = time.time()
        d = self.wait_for(comm, lambda d: len(d["attempts"]) == 2, timeout=10)
        self.assertGreaterEqual(time.time() - t0, 0.5)  # the timer's second, not at once
        self.assertEqual([a["channel"] for a in d["attempts"]], ["whatsapp", "sms"], d)
        d = self.wait_for(comm, lambda d: d["channel"] == "sms" and d["status"] == "sent")
        ev = [e for e in d["events"] if e["type"] == "no_receipt"]
        self.assertEqual(len(ev), 1, d)
        self.assertIn("no delivery receipt on whatsapp", ev[0]["message"])
        # the WhatsApp receipt comes late: delivered, and nothing more is sent
        self.receipt(wamid, "delivered")
        d = self.wait_for(comm, lambda d: d["status"] == "delivered")
        time.sleep(2.5)  # longer than any timer that could still be armed
        d = self.doc(comm)
        self.assertEqual(len(d["attempts"]), 2, d)
        self.assertEqual(self.jobs(comm), 0)

    def test_a_receipt_in_time_disarms_the_timer(self):
        comm, wamid = self.on_whatsapp()
        self.receipt(wamid, "delivered")
        self.wait_for(comm, lambda d: d["status"] == "delivered")
        time.sleep(2.5)
        d = self.doc(comm)
        self.assertEqual(len(d["attempts"]), 1, d)
        self.assertEqual([e for e in d["events"] if e["type"] == "no_receipt"], [], d)
        self.assertEqual(self.jobs(comm), 0)

    def test_read_without_delivered_disarms_it_too(self):
        comm, wamid = self.on_whatsapp()
        self.receipt(wamid, "read")
        self.wait_for(comm, lambda d: d["status"] == "opened")
        time.sleep(2.5)
        self.assertEqual(len(self.doc(comm)["attempts"]), 1)

    def test_no_timer_where_the_policy_sets_none(self):
        # high urgency keeps the shipped 600 s: nothing happens within seconds
        comm, _ = self.on_whatsapp(urgency="high")
        time.sleep(2.5)
        d = self.doc(comm)
        self.assertEqual((d["status"], len(d["attempts"])), ("sent", 1), d)
        self.assertEqual(self.jobs(comm), 1)  # the armed 600 s timer


if __name__ == "__main__":
    unittest.main()

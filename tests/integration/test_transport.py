"""The transport drivers through `herald deliver`, against real peers: an
aiosmtpd SMTP server (tests/fakes/smtp_sink.py) and local fake Twilio and
Meta servers speaking their wire formats (tests/fakes/fake_providers.py).
Received bytes are checked with Python's standard MIME parser."""
import base64
import email
import email.policy
import glob
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness

SRC = os.environ.get("HERALD_SOURCE_DIR", os.getcwd())
FAKES = os.path.join(SRC, "tests", "fakes")
PY = "/usr/bin/python3"
SID, TOKEN, META = "AC00000000000000000000000000000000", "test-token", "test-meta-token"


def start_fake(script, tmp, *args):
    ready = os.path.join(tmp, os.path.basename(script) + ".ready")
    p = subprocess.Popen([PY, os.path.join(FAKES, script), "--port", "0", "--ready-file", ready,
                          *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not os.path.exists(ready):
        if p.poll() is not None or time.time() > deadline:
            raise RuntimeError("%s did not start" % script)
        time.sleep(0.05)
    with open(ready) as f:
        ports = [int(x) for x in f.read().split()]
    return p, ports


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TransportCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="herald-tr-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.tmp])

    def deliver(self, messages, env=None, config=None, timeout=60):
        e = harness.base_env(HERALD_VAR_DIR=os.path.join(self.tmp, "var"), **(env or {}))
        args = [harness.HERALD_BIN, "deliver"]
        if config:
            args += ["--config", config]
        p = subprocess.run(args, cwd=SRC, env=e, input="\n".join(json.dumps(m) for m in messages),
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        self.assertEqual(len(out), len(messages), p.stdout + p.stderr)
        return {o["comm_id"]: o for o in out}

    def config_with(self, replacements):
        """config.lua with some lines changed (timeouts are not variables)."""
        with open(os.path.join(SRC, "config.lua")) as f:
            text = f.read()
        for old, new in replacements:
            self.assertIn(old, text)
            text = text.replace(old, new)
        path = os.path.join(self.tmp, "config.lua")
        with open(path, "w") as f:
            f.write(text)
        return path


class SmtpTest(TransportCase):
    def setUp(self):
        super().setUp()
        self.maildir = os.path.join(self.tmp, "mail")
        os.makedirs(self.maildir)
        self.sink, ports = start_fake("smtp_sink.py", self.tmp, "--maildir", self.maildir,
                                      "--stats-port", "0")
        self.addCleanup(stop, self.sink)
        self.port, self.stats_port = ports[0], ports[1]
        self.env = {"HERALD_EMAIL_DRIVER": "smtp",
                    "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % self.port,
                    "HERALD_SMTP_STARTTLS": "off",
                    "HERALD_EMAIL_FROM": "Événements Zoë <events@herald.example>"}

    def received(self):
        msgs = []
        for path in sorted(glob.glob(os.path.join(self.maildir, "*.eml")),
                           key=lambda p: int(os.path.basename(p).split(".")[0])):
            with open(path, "rb") as f:
                raw = f.read()
            with open(path[:-4] + ".json") as f:
                env = json.load(f)
            msgs.append((raw, email.message_from_bytes(raw, policy=email.policy.default), env))
        return msgs

    def stats(self):
        return json.loads(harness.http_request(self.stats_port, "GET", "/_stats").body)

    def test_mime_parses_and_round_trips(self):
        pdf = bytes(range(256)) * 40 + b"%%EOF"
        subject = "Votre plan de mariage — résumé du budget pour Zoë & Ana " * 3
        msg = {"channel": "email", "to": "zoe@example.com", "to_name": "Zoë Ångström, Jr.",
               "comm_id": "c0ffee00-0000-4000-8000-000000000001",
               "subject": subject.strip(), "text": "Bonjour Zoë,\nvoici le plan.\n",
               "html": "<p>Bonjour <b>Zoë</b></p>",
               "unsubscribe_url": "https://herald.example/u/tok123",
               "attachments": [{"filename": "plan-zoé.pdf", "content_type": "application/pdf",
                                "content_base64": base64.b64encode(pdf).decode()}]}
        out = self.deliver([msg], self.env)
        self.assertTrue(out[msg["comm_id"]]["ok"], out)
        (raw, m, env), = self.received()
        self.assertEqual(env["rcpt_tos"], ["zoe@example.com"])
        self.assertEqual(env["mail_from"], "events@herald.example")
        self.assertEqual(m["subject"], subject.strip())
        self.assertEqual(m["to"].addresses[0].display_name, "Zoë Ångström, Jr.")
        self.assertEqual(m["from"].addresses[0].display_name, "Événements Zoë")
        self.assertEqual(m["message-id"], "<%s@herald.example>" % msg["comm_id"])
        self.assertIn("<https://herald.example/u/tok123>", m["list-unsubscribe"])
        self.assertEqual(m["list-unsubscribe-post"], "List-Unsubscribe=One-Click")
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        types = [p.get_content_type() for p in m.walk()]
        self.assertEqual(types, ["multipart/mixed", "multipart/alternative", "text/plain",
                                 "text/html", "application/pdf"])
        # CRLF on the wire is the text's line break
        self.assertEqual(m.get_body(("plain",)).get_content().replace("\r\n", "\n"),
                         "Bonjour Zoë,\nvoici le plan.\n")
        self.assertIn("<b>Zoë</b>", m.get_body(("html",)).get_content())
        att, = list(m.iter_attachments())
        self.assertEqual(att.get_filename(), "plan-zoé.pdf")
        self.assertEqual(att.get_content(), pdf)
        # headers folded under 78 characters, no line over 998
        head = raw.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            self.assertLessEqual(len(line), 78, line)
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)

    def test_message_id_is_stable_across_attempts(self):
        base = {"channel": "email", "to": "zoe@example.com", "subject": "Hi", "text": "x",
                "comm_id": "c0ffee00-0000-4000-8000-000000000002"}
        self.deliver([dict(base, attempt=1)], self.env)
        self.deliver([dict(base, attempt=2)], self.env)
        got = self.received()
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0][1]["message-id"], got[1][1]["message-id"])
        self.assertEqual(sorted(g[1]["x-herald-attempt"] for g in got), ["1", "2"])

    def test_header_injection_is_refused_before_sending(self):
        cases = [{"subject": "Hi\r\nBcc: victim@example.com"},
                 {"to_name": "Eve\nBcc: victim@example.com"},
                 {"to": "zoe@example.com\r\nRCPT TO:<victim@example.com>"},
                 {"to": "zoe@example.com>, victim@example.com"}]
        msgs = []
        for i, extra in enumerate(cases):
            m = {"channel": "email", "to": "zoe@example.com", "subject": "Hi", "text": "x",
                 "comm_id": "inj-%d" % i}
            m.update(extra)
            msgs.append(m)
        out = self.deliver(msgs, self.env)
        for m in msgs:
            o = out[m["comm_id"]]
            self.assertFalse(o["ok"], o)
            self.assertEqual(o["category"], "invalid", o)
            self.assertFalse(o["may_have_been_sent"], o)
            self.assertEqual(o["result"]["kind"], "local", o)
        self.assertEqual(self.received(), [])

    def test_replies_map_to_categories(self):
        cases = {"tempfail@example.com": ("transient", 451, "4.3.0", "rcpt"),
                 "full@example.com": ("transient", 452, "4.2.2", "rcpt"),
                 "nouser@example.com": ("invalid", 550, "5.1.1", "rcpt"),
                 "bigdata@example.com": ("permanent", 552, "5.3.4", "eom"),
                 "policy@example.com": ("permanent", 554, "5.7.1", "eom")}
        msgs = [{"channel": "email", "to": to, "subject": "Hi", "text": "x",
                 "comm_id": to.split("@")[0]}
                for to in cases]
        out = self.deliver(msgs, self.env)
        for to, (cat, code, enh, stage) in cases.items():
            o = out[to.split("@")[0]]
            self.assertFalse(o["ok"], o)
            self.assertEqual(o["result"].get("smtp_code"), code, o)
            self.assertEqual(o["result"]["enhanced_code"], enh, o)
            self.assertEqual(o["result"]["smtp_stage"], stage, o)
            self.assertEqual(o["category"], cat, o)
        self.assertEqual(self.received(), [])

    def test_one_connection_carries_many_messages(self):
        cfg = self.config_with([('connections = env("HERALD_SMTP_CONNECTIONS", "8")',
                                 'connections = 1')])
        msgs = [{"channel": "email", "to": "u%d@example.com" % i, "subject": "n%d" % i,
                 "text": "x", "comm_id": "many-%d" % i} for i in range(40)]
        out = self.deliver(msgs, self.env, config=cfg)
        self.assertTrue(all(o["ok"] for o in out.values()), out)
        s = self.stats()
        self.assertEqual(s["messages"], 40, s)
        self.assertEqual(s["sessions"], 1, s)


class SmtpTlsTest(TransportCase):
    def test_starttls_required_refuses_a_server_without_it(self):
        maildir = os.path.join(self.tmp, "mail")
        os.makedirs(maildir)
        sink, ports = start_fake("smtp_sink.py", self.tmp, "--maildir", maildir)
        self.addCleanup(stop, sink)
        env = {"HERALD_EMAIL_DRIVER": "smtp", "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % ports[0],
               "HERALD_SMTP_STARTTLS": "required"}
        msg = {"channel": "email", "to": "zoe@example.com", "subject": "Hi", "text": "x",
               "comm_id": "tls-1"}
        o = self.deliver([msg], env)["tls-1"]
        self.assertFalse(o["ok"], o)
        self.assertEqual(o["result"]["network_error"], "tls_failed", o)
        self.assertFalse(o["may_have_been_sent"], o)
        self.assertEqual(glob.glob(os.path.join(maildir, "*.eml")), [])


class SmtpAuthTest(TransportCase):
    def test_authentication_failure_and_success(self):
        maildir = os.path.join(self.tmp, "mail")
        os.makedirs(maildir)
        sink, ports = start_fake("smtp_sink.py", self.tmp, "--maildir", maildir,
                                 "--auth", "herald:s3cret")
        self.addCleanup(stop, sink)
        env = {"HERALD_EMAIL_DRIVER": "smtp", "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % ports[0],
               "HERALD_SMTP_STARTTLS": "off", "HERALD_SMTP_USERNAME": "herald",
               "HERALD_SMTP_PASSWORD": "wrong"}
        msg = {"channel": "email", "to": "zoe@example.com", "subject": "Hi", "text": "x",
               "comm_id": "auth-1"}
        o = self.deliver([msg], env)["auth-1"]
        self.assertFalse(o["ok"], o)
        self.assertEqual(o["category"], "auth_failure", o)
        env["HERALD_SMTP_PASSWORD"] = "s3cret"
        o = self.deliver([msg], env)["auth-1"]
        self.assertTrue(o["ok"], o)
        self.assertEqual(len(glob.glob(os.path.join(maildir, "*.eml"))), 1)


class HttpProvidersTest(TransportCase):
    def setUp(self):
        super().setUp()
        self.record = os.path.join(self.tmp, "requests.jsonl")
        self.fake, ports = start_fake("fake_providers.py", self.tmp, "--record", self.record,
                                      "--hang-seconds", "5")
        self.addCleanup(stop, self.fake)
        self.base = "http://127.0.0.1:%d" % ports[0]
        self.env = {"HERALD_SMS_DRIVER": "twilio", "HERALD_TWILIO_BASE_URL": self.base,
                    "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_AUTH_TOKEN": TOKEN,
                    "HERALD_TWILIO_FROM": "+15005550006",
                    "HERALD_WHATSAPP_DRIVER": "whatsapp",
                    "HERALD_WHATSAPP_BASE_URL": self.base + "/v18.0",
                    "HERALD_WHATSAPP_PHONE_NUMBER_ID": "1234567890",
                    "HERALD_WHATSAPP_TOKEN": META,
                    "HERALD_PUBLIC_URL": "https://herald.example"}
        self.cfg = self.config_with([("timeout_ms = 15000", "timeout_ms = 1500")])

    def requests(self):
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]

    def both(self, to_suffix):
        return [{"channel": "sms", "to": "+1415555" + to_suffix, "text": "Hello Zoë",
                 "comm_id": "sms-" + to_suffix},
                {"channel": "whatsapp", "to": "+1415555" + to_suffix, "text": "Hello Zoë",
                 "comm_id": "wa-" + to_suffix}]

    def test_success_and_wire_format(self):
        out = self.deliver(self.both("1234"), self.env, self.cfg)
        self.assertTrue(out["sms-1234"]["ok"], out)
        self.assertRegex(out["sms-1234"]["provider_id"], r"^SM[0-9a-f]{32}$")
        self.assertTrue(out["wa-1234"]["ok"], out)
        self.assertTrue(out["wa-1234"]["provider_id"].startswith("wamid."), out)
        reqs = {r["provider"]: r for r in self.requests()}
        tw = reqs["twilio"]
        self.assertEqual(tw["path"], "/2010-04-01/Accounts/%s/Messages.json" % SID)
        self.assertEqual(tw["form"]["To"], "+14155551234")
        self.assertEqual(tw["form"]["Body"], "Hello Zoë")
        self.assertEqual(tw["form"]["StatusCallback"],
                         "https://herald.example/api/crm/webhooks/twilio?comm_id=sms-1234")
        meta = reqs["meta"]
        self.assertEqual(meta["json"]["to"], "14155551234")
        self.assertEqual(meta["json"]["text"]["body"], "Hello Zoë")
        self.assertEqual(meta["json"]["biz_opaque_callback_data"], "wa-1234")
        self.assertEqual(meta["headers"]["authorization"], "Bearer " + META)

    def test_provider_errors_map_to_categories(self):
        msgs = self.both("0001") + self.both("0002") + self.both("0004") + self.both("0005")
        out = self.deliver(msgs, self.env, self.cfg)
        expect = {"sms-0001": ("invalid", "21211"), "wa-0001": ("invalid", "131026"),
                  "sms-0002": ("invalid", "21614"), "wa-0002": ("invalid", "131030"),
                  "sms-0004": ("rate_limit", "20429"), "wa-0004": ("rate_limit", "130429")}
        for cid, (cat, code) in expect.items():
            self.assertFalse(out[cid]["ok"], out[cid])
            self.assertEqual(out[cid]["category"], cat, out[cid])
            self.assertEqual(out[cid]["result"]["provider_code"], code, out[cid])
        for cid in ("sms-0004", "wa-0004"):
            self.assertEqual(out[cid]["result"]["retry_after"], 2, out[cid])
            self.assertFalse(out[cid]["may_have_been_sent"], out[cid])
        for cid in ("sms-0005", "wa-0005"):
            self.assertEqual(out[cid]["result"]["http_status"], 500, out[cid])
            self.assertEqual(out[cid]["category"], "transient", out[cid])
            self.assertTrue(out[cid]["may_have_been_sent"], out[cid])

    def test_bad_credentials(self):
        env = dict(self.env, HERALD_TWILIO_AUTH_TOKEN="nope", HERALD_WHATSAPP_TOKEN="nope")
        out = self.deliver(self.both("1234"), env, self.cfg)
        self.assertEqual(out["sms-1234"]["result"]["provider_code"], "20003")
        self.assertEqual(out["sms-1234"]["category"], "auth_failure")
        self.assertEqual(out["wa-1234"]["result"]["provider_code"], "190")
        self.assertEqual(out["wa-1234"]["category"], "auth_failure")

    def test_no_answer_may_have_been_sent(self):
        t0 = time.time()
        out = self.deliver(self.both("0006"), self.env, self.cfg)
        self.assertLess(time.time() - t0, 10)
        for cid in ("sms-0006", "wa-0006"):
            o = out[cid]
            self.assertEqual(o["result"]["network_error"], "timeout", o)
            self.assertTrue(o["result"]["request_sent"], o)
            self.assertEqual(o["category"], "transient", o)
            self.assertTrue(o["may_have_been_sent"], o)

    def test_connection_refused_never_received(self):
        dead = "http://127.0.0.1:%d" % closed_port()
        env = dict(self.env, HERALD_TWILIO_BASE_URL=dead, HERALD_WHATSAPP_BASE_URL=dead)
        out = self.deliver(self.both("1234"), env, self.cfg)
        for cid in ("sms-1234", "wa-1234"):
            o = out[cid]
            self.assertEqual(o["result"]["network_error"], "connect_failed", o)
            self.assertEqual(o["category"], "transient", o)
            self.assertFalse(o["may_have_been_sent"], o)

    def test_a_slow_provider_never_blocks_another_channel(self):
        # WhatsApp hangs (every slot of its cap busy until the timeout) while
        # SMS and email flow: each channel has its own in-flight slots.
        cfg = self.config_with([("timeout_ms = 15000", "timeout_ms = 4000"),
                                ('in_flight = env("HERALD_WHATSAPP_IN_FLIGHT", "200")',
                                 "in_flight = 2")])
        msgs = [{"channel": "whatsapp", "to": "+14155550006", "text": "x",
                 "comm_id": "hang-%d" % i} for i in range(4)]
        msgs += [{"channel": "sms", "to": "+14155551234", "text": "x", "comm_id": "fast-%d" % i}
                 for i in range(20)]
        outbox = os.path.join(self.tmp, "ob")
        msgs += [{"channel": "email", "to": "zoe@example.com", "subject": "s", "text": "x",
                  "comm_id": "mail-%d" % i} for i in range(5)]
        e = harness.base_env(HERALD_VAR_DIR=os.path.join(self.tmp, "var"),
                             HERALD_OUTBOX_DIR=outbox, **self.env)
        p = subprocess.Popen([harness.HERALD_BIN, "deliver", "--config", cfg], cwd=SRC, env=e,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        p.stdin.write("\n".join(json.dumps(m) for m in msgs))
        p.stdin.close()
        t0 = time.time()
        seen = {}
        for line in p.stdout:
            o = json.loads(line)
            seen[o["comm_id"]] = time.time() - t0
        p.wait(30)
        fast = [seen["fast-%d" % i] for i in range(20)] + [seen["mail-%d" % i] for i in range(5)]
        self.assertLess(max(fast), 2.0, seen)  # long before the first WhatsApp timeout (4 s)
        slow = sorted(seen["hang-%d" % i] for i in range(4))
        self.assertGreater(slow[0], 3.5, seen)
        self.assertGreater(slow[2], 7.0, seen)  # the cap of 2: a second wave of timeouts

    def test_whatsapp_template_message(self):
        msg = {"channel": "whatsapp", "to": "+14155551234", "comm_id": "tpl-1",
               "template": {"name": "plan_ready", "language": "en_US",
                            "parameters": ["Zoë", "June 14"]}}
        out = self.deliver([msg], self.env, self.cfg)
        self.assertTrue(out["tpl-1"]["ok"], out)
        body = self.requests()[0]["json"]
        self.assertEqual(body["type"], "template")
        self.assertEqual(body["template"]["name"], "plan_ready")
        self.assertEqual([p["text"] for p in body["template"]["components"][0]["parameters"]],
                         ["Zoë", "June 14"])


class OutboxTest(TransportCase):
    def test_writes_each_channel(self):
        outbox = os.path.join(self.tmp, "outbox")
        msgs = [{"channel": "email", "to": "zoe@example.com", "subject": "Hi Zoë", "text": "x",
                 "html": "<p>x</p>", "comm_id": "ob-1"},
                {"channel": "sms", "to": "+14155551234", "text": "Hello", "comm_id": "ob-2"},
                {"channel": "whatsapp", "to": "+14155551234", "text": "Hello", "comm_id": "ob-3"}]
        out = self.deliver(msgs, {"HERALD_OUTBOX_DIR": outbox})
        self.assertTrue(all(o["ok"] for o in out.values()), out)
        with open(os.path.join(outbox, "email", "ob-1-1.eml"), "rb") as f:
            m = email.message_from_bytes(f.read(), policy=email.policy.default)
        self.assertEqual(m["subject"], "Hi Zoë")
        with open(os.path.join(outbox, "sms", "ob-2-1.json")) as f:
            self.assertEqual(json.load(f)["text"], "Hello")
        self.assertTrue(os.path.exists(os.path.join(outbox, "whatsapp", "ob-3-1.json")))

    def test_killed_mid_write_leaves_only_complete_files(self):
        outbox = os.path.join(self.tmp, "outbox")
        big = base64.b64encode(os.urandom(2 * 1024 * 1024)).decode()
        lines = "\n".join(json.dumps({
            "channel": "email", "to": "zoe@example.com", "subject": "n%d" % i, "text": "x",
            "comm_id": "kill-%d" % i,
            "attachments": [{"filename": "a.bin", "content_type": "application/octet-stream",
                             "content_base64": big}]}) for i in range(60))
        e = harness.base_env(HERALD_OUTBOX_DIR=outbox, HERALD_VAR_DIR=os.path.join(self.tmp, "v"))
        p = subprocess.Popen([harness.HERALD_BIN, "deliver", "--no-classify", "--quiet"], cwd=SRC,
                             env=e, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        p.stdin.write(lines.encode())
        p.stdin.close()
        # kill as soon as some files exist, while others are being written
        deadline = time.time() + 30
        while time.time() < deadline:
            if len(glob.glob(os.path.join(outbox, "email", "*.eml"))) >= 3:
                break
            time.sleep(0.01)
        p.kill()
        p.wait()
        done = glob.glob(os.path.join(outbox, "email", "*.eml"))
        self.assertGreaterEqual(len(done), 3)
        for path in done:
            with open(path, "rb") as f:
                raw = f.read()
            m = email.message_from_bytes(raw, policy=email.policy.default)
            att, = list(m.iter_attachments())
            self.assertEqual(len(att.get_content()), 2 * 1024 * 1024, path)
            self.assertTrue(raw.rstrip().endswith(b"--"), path)  # the closing boundary


if __name__ == "__main__":
    unittest.main()

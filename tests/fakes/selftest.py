#!/usr/bin/python3
"""Self-test of the test peers in tests/fakes/ (fake_providers.py, smtp_sink.py).

Starts every fake as a subprocess on port 0 with a ready file, checks each
documented behaviour with the standard library's own clients (http.client,
smtplib), then stops them with SIGTERM and checks they exit with status 0.
Exits non-zero on any failure; removes its processes and temporary files.

    /usr/bin/python3 tests/fakes/selftest.py [-v] [TestClass[.test_name]]

Needs Debian's python3-aiosmtpd (for the sink); uses `openssl` for the
STARTTLS test when it is installed (skipped otherwise).  Takes about 10 s.
"""

import base64
import ctypes
import email.utils
import http.client
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
# The fakes need Debian's python (it has aiosmtpd), whatever runs this file.
PYTHON = os.environ.get("HERALD_FAKES_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)

TWILIO_SID = "AC00000000000000000000000000000000"
TWILIO_TOKEN = "test-token"
META_TOKEN = "test-meta-token"
TWILIO_PATH = "/2010-04-01/Accounts/%s/Messages.json" % TWILIO_SID
SMTP_USER, SMTP_PASS = "herald", "s3cret"

TMP = None          # the temporary directory of this run
FAKES = {}          # name -> Fake


# ---------------------------------------------------------------------------
# Running the fakes
# ---------------------------------------------------------------------------

def die_with_parent():
    """In the child: get SIGTERM when this test process dies (e.g. a CTest timeout
    kills it), so no fake outlives the test holding its port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Fake:
    """One fake as a subprocess, started with --port 0 and a ready file."""

    def __init__(self, name, script, *args):
        self.name = name
        self.ready_file = os.path.join(TMP, name + ".ready")
        self.log_path = os.path.join(TMP, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(HERE, script), "--port", "0",
             "--ready-file", self.ready_file] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)
        self.ports = None

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_file):
                with open(self.ready_file) as f:
                    self.ports = [int(line) for line in f.read().split()]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("%s did not become ready (exit %s):\n%s"
                           % (self.name, self.proc.poll(), self.output()))

    @property
    def port(self):
        return self.ports[0]

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode


def have_openssl():
    return shutil.which("openssl") is not None


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="herald-fakes-selftest-")
    try:
        start_fakes()
    except BaseException:
        stop_fakes()
        raise


def start_fakes():
    os.makedirs(os.path.join(TMP, "mail"))
    os.makedirs(os.path.join(TMP, "mail-auth"))
    os.makedirs(os.path.join(TMP, "mail-tls"))
    specs = [
        ("http", "fake_providers.py", "--record", os.path.join(TMP, "record.jsonl")),
        ("http_latency", "fake_providers.py", "--latency-ms", "200"),
        ("http_hold", "fake_providers.py"),
        ("http_fail_all", "fake_providers.py", "--fail-percent", "100"),
        ("http_fail_half", "fake_providers.py", "--fail-percent", "50"),
        ("http_custom", "fake_providers.py", "--twilio-sid", "AC" + "1" * 32,
         "--twilio-token", "other-token", "--meta-token", "other-meta-token",
         "--meta-phone-number-id", "1234567890"),
        ("smtp", "smtp_sink.py", "--maildir", os.path.join(TMP, "mail"), "--stats-port", "0",
         "--stats-file", os.path.join(TMP, "smtp-stats.json")),
        ("smtp_auth", "smtp_sink.py", "--maildir", os.path.join(TMP, "mail-auth"),
         "--auth", "%s:%s" % (SMTP_USER, SMTP_PASS)),
        ("smtp_latency", "smtp_sink.py", "--latency-ms", "300", "--discard",
         "--stats-port", "0"),
    ]
    if have_openssl():
        cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        specs.append(("smtp_tls", "smtp_sink.py", "--maildir", os.path.join(TMP, "mail-tls"),
                      "--tls-cert", cert, "--tls-key", key, "--require-starttls"))
    for name, script, *args in specs:        # start all, then wait for all
        FAKES[name] = Fake(name, script, *args)
    for fake in FAKES.values():
        fake.wait_ready()


def stop_fakes():
    """Stop every fake; complain about any that did not exit 0 on SIGTERM."""
    problems = []
    for name, fake in FAKES.items():
        rc = fake.stop()
        if rc != 0:
            problems.append("%s exited %s on SIGTERM:\n%s" % (name, rc, fake.output()))
    FAKES.clear()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)
    return problems


def tearDownModule():
    problems = stop_fakes()
    if problems:
        raise AssertionError("\n".join(problems))


# ---------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------

def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Response:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.raw = resp.read()

    def json(self):
        return json.loads(self.raw)


def request(port, method, path, body=None, headers=None, conn=None, timeout=5):
    """One request; on `conn` if given (keep-alive), else on a new connection."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return Response(conn.getresponse())
    finally:
        if own:
            conn.close()


def twilio(port, to="+15551234567", sender="+15550000000", body="Hello from Herald",
           auth=(TWILIO_SID, TWILIO_TOKEN), path=TWILIO_PATH, extra=None, conn=None,
           timeout=5, **fields):
    form = {}
    if to is not None:
        form["To"] = to
    if sender is not None:
        form["From"] = sender
    if body is not None:
        form["Body"] = body
    form.update(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = basic(*auth)
    headers.update(extra or {})
    return request(port, "POST", path, urllib.parse.urlencode(form), headers, conn, timeout)


def meta_text(to="+15551234567", text="Hello from Herald", **extra):
    msg = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"body": text, "preview_url": False}}
    msg.update(extra)
    return msg


def meta(port, msg, token=META_TOKEN, path="/v18.0/1234567890/messages", conn=None,
         timeout=5, raw=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    body = raw if raw is not None else json.dumps(msg)
    return request(port, "POST", path, body, headers, conn, timeout)


def stats(port, reset=False):
    if reset:
        return request(port, "POST", "/_stats/reset", b"").json()
    return request(port, "GET", "/_stats").json()


def records():
    with open(os.path.join(TMP, "record.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------
# Fake Twilio
# ---------------------------------------------------------------------------

def alive(name):
    """The shared fake's port; a dead fake fails the test with its own output."""
    fake = FAKES[name]
    if fake.proc.poll() is not None:
        raise AssertionError("fake %s exited with %s; its output:\n%s"
                             % (name, fake.proc.poll(), fake.output()))
    return fake.port


class TwilioTests(unittest.TestCase):
    def setUp(self):
        self.port = alive("http")

    def assertTwilioError(self, r, status, code):
        self.assertEqual(r.status, status, r.raw)
        doc = r.json()
        self.assertEqual(doc["code"], code)
        self.assertEqual(doc["status"], status)
        self.assertEqual(doc["more_info"], "https://www.twilio.com/docs/errors/%d" % code)
        self.assertIsInstance(doc["message"], str)
        self.assertTrue(doc["message"])

    def test_success(self):
        r = twilio(self.port, body="Hi there",
                   StatusCallback="https://herald.test/hooks/twilio?c=42")
        self.assertEqual(r.status, 201, r.raw)
        self.assertEqual(r.headers["content-length"], str(len(r.raw)))
        self.assertTrue(r.headers["content-type"].startswith("application/json"))
        doc = r.json()
        self.assertRegex(doc["sid"], r"^SM[0-9a-f]{32}$")
        self.assertEqual(doc["status"], "queued")
        self.assertEqual((doc["to"], doc["from"], doc["body"]),
                         ("+15551234567", "+15550000000", "Hi there"))
        self.assertEqual(doc["account_sid"], TWILIO_SID)
        self.assertEqual(doc["num_segments"], "1")
        self.assertEqual(doc["direction"], "outbound-api")
        self.assertIsNone(doc["error_code"])
        self.assertEqual(doc["uri"], "/2010-04-01/Accounts/%s/Messages/%s.json"
                         % (TWILIO_SID, doc["sid"]))
        email.utils.parsedate_to_datetime(doc["date_created"])   # RFC 2822

    def test_messaging_service_and_segments(self):
        r = twilio(self.port, sender=None, MessagingServiceSid="MG" + "a" * 32,
                   body="x" * 161)
        self.assertEqual(r.status, 201, r.raw)
        doc = r.json()
        self.assertEqual(doc["status"], "accepted")
        self.assertIsNone(doc["from"])
        self.assertEqual(doc["num_segments"], "2")              # GSM-7: 153 per part
        self.assertEqual(twilio(self.port, body="é" * 160).json()["num_segments"], "1")
        self.assertEqual(twilio(self.port, body="ж" * 71).json()["num_segments"], "2")  # UCS-2

    def test_error_table(self):
        self.assertTwilioError(twilio(self.port, to="+15550000001"), 400, 21211)
        self.assertIn("+15550000001", twilio(self.port, to="+15550000001").json()["message"])
        self.assertTwilioError(twilio(self.port, to="+15550000002"), 400, 21614)
        self.assertTwilioError(twilio(self.port, to="+15550000003"), 400, 21610)
        r = twilio(self.port, to="+15550000004")
        self.assertTwilioError(r, 429, 20429)
        self.assertEqual(r.headers.get("retry-after"), "2")
        # WhatsApp through Twilio: only the digits count.
        self.assertTwilioError(twilio(self.port, to="whatsapp:+15550000001"), 400, 21211)

    def test_500_is_not_json(self):
        r = twilio(self.port, to="+15550000005")
        self.assertEqual(r.status, 500)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertEqual(r.headers["content-length"], str(len(r.raw)))
        with self.assertRaises(ValueError):
            json.loads(r.raw)

    def test_never_answers(self):
        start = time.monotonic()
        with self.assertRaises((socket.timeout, TimeoutError)):
            twilio(self.port, to="+15550000006", timeout=2)
        self.assertLess(time.monotonic() - start, 4)
        # The client has closed: the fake lets go of the connection.
        deadline = time.monotonic() + 3
        while stats(self.port)["held_open"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(stats(self.port)["held_open"], 0)
        self.assertEqual(twilio(self.port).status, 201)          # still serving
        rec = [e for e in records() if e["provider"] == "twilio"
               and e.get("form", {}).get("To") == "+15550000006"]
        self.assertEqual(rec[-1]["response"]["status"], None)

    def test_bad_credentials(self):
        r = twilio(self.port, auth=(TWILIO_SID, "wrong"))
        self.assertTwilioError(r, 401, 20003)
        self.assertIn("Basic", r.headers.get("www-authenticate", ""))
        self.assertTwilioError(twilio(self.port, auth=None), 401, 20003)
        other = "AC" + "2" * 32
        self.assertTwilioError(twilio(self.port, path="/2010-04-01/Accounts/%s/Messages.json"
                                      % other), 401, 20003)
        # Credentials given on the command line.
        custom = FAKES["http_custom"].port
        sid = "AC" + "1" * 32
        path = "/2010-04-01/Accounts/%s/Messages.json" % sid
        self.assertEqual(twilio(custom, auth=(sid, "other-token"), path=path).status, 201)
        self.assertTwilioError(twilio(custom), 401, 20003)

    def test_validation(self):
        self.assertTwilioError(twilio(self.port, to=None), 400, 21604)
        self.assertTwilioError(twilio(self.port, body=None), 400, 21602)
        self.assertTwilioError(twilio(self.port, sender=None), 400, 21603)
        self.assertTwilioError(twilio(self.port, body="x" * 1601), 400, 21617)
        self.assertTwilioError(twilio(self.port, StatusCallback="not a url"), 400, 21609)
        r = request(self.port, "GET", TWILIO_PATH,
                    headers={"Authorization": basic(TWILIO_SID, TWILIO_TOKEN)})
        self.assertTwilioError(r, 405, 20004)
        self.assertEqual(request(self.port, "GET", "/nowhere").status, 404)

    def test_record(self):
        marker = "record-me-%d" % time.monotonic_ns()
        twilio(self.port, body=marker, StatusCallback="http://127.0.0.1:1/cb?id=7")
        entry = [e for e in records() if e.get("form", {}).get("Body") == marker][-1]
        self.assertEqual(entry["provider"], "twilio")
        self.assertEqual((entry["method"], entry["path"]), ("POST", TWILIO_PATH))
        self.assertEqual(entry["headers"]["authorization"], basic(TWILIO_SID, TWILIO_TOKEN))
        self.assertEqual(entry["headers"]["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(entry["form"]["StatusCallback"], "http://127.0.0.1:1/cb?id=7")
        self.assertEqual(entry["response"]["status"], 201)
        self.assertRegex(entry["response"]["body"]["sid"], r"^SM[0-9a-f]{32}$")
        self.assertTrue(all(k == k.lower() for k in entry["headers"]))


# ---------------------------------------------------------------------------
# Fake Meta (WhatsApp Cloud API)
# ---------------------------------------------------------------------------

class MetaTests(unittest.TestCase):
    def setUp(self):
        self.port = alive("http")

    def assertMetaError(self, r, status, code, subcode=None):
        self.assertEqual(r.status, status, r.raw)
        err = r.json()["error"]
        self.assertEqual(err["code"], code)
        self.assertIn(err["type"], ("OAuthException", "GraphMethodException"))
        self.assertTrue(err["message"])
        self.assertTrue(err["fbtrace_id"])
        if subcode is not None:
            self.assertEqual(err["error_subcode"], subcode)
        return err

    def test_text_success_with_and_without_version(self):
        for path in ("/v18.0/1234567890/messages", "/1234567890/messages",
                     "/v21.0/42/messages"):
            r = meta(self.port, meta_text(to="+1 555-123-4567",
                                          biz_opaque_callback_data="comm-42"), path=path)
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual(r.headers["content-length"], str(len(r.raw)))
            doc = r.json()
            self.assertEqual(doc["messaging_product"], "whatsapp")
            self.assertEqual(doc["contacts"], [{"input": "+1 555-123-4567",
                                                "wa_id": "15551234567"}])
            self.assertRegex(doc["messages"][0]["id"], r"^wamid\.[A-Za-z0-9+/=_-]+$")

    def test_template_success(self):
        msg = {"messaging_product": "whatsapp", "to": "15551234567", "type": "template",
               "template": {"name": "order_shipped", "language": {"code": "en_US"},
                            "components": [{"type": "body", "parameters": [
                                {"type": "text", "text": "Ada"},
                                {"type": "text", "text": "#1234"}]}]},
               "biz_opaque_callback_data": "comm-43"}
        r = meta(self.port, msg)
        self.assertEqual(r.status, 200, r.raw)
        self.assertTrue(r.json()["messages"][0]["id"].startswith("wamid."))
        entry = [e for e in records() if e["provider"] == "meta"
                 and e.get("json", {}).get("biz_opaque_callback_data") == "comm-43"][-1]
        self.assertEqual(entry["json"]["template"]["name"], "order_shipped")
        self.assertEqual(entry["headers"]["authorization"], "Bearer " + META_TOKEN)
        self.assertEqual(entry["response"]["status"], 200)

    def test_error_table(self):
        self.assertMetaError(meta(self.port, meta_text(to="+15550000001")), 400, 131026)
        self.assertMetaError(meta(self.port, meta_text(to="+15550000002")), 400, 131030)
        err = self.assertMetaError(meta(self.port, meta_text(to="+15550000003")), 400, 131047)
        self.assertEqual(err["error_data"]["messaging_product"], "whatsapp")
        r = meta(self.port, meta_text(to="+15550000004"))
        self.assertMetaError(r, 429, 130429)
        self.assertEqual(r.headers.get("retry-after"), "2")
        self.assertMetaError(meta(self.port, meta_text(to="+15550000005")), 500, 131000)

    def test_never_answers(self):
        start = time.monotonic()
        with self.assertRaises((socket.timeout, TimeoutError)):
            meta(self.port, meta_text(to="+15550000006"), timeout=2)
        self.assertLess(time.monotonic() - start, 4)
        self.assertEqual(meta(self.port, meta_text()).status, 200)

    def test_bad_token(self):
        self.assertMetaError(meta(self.port, meta_text(), token="nope"), 401, 190)
        self.assertMetaError(meta(self.port, meta_text(), token=None), 401, 190)

    def test_malformed(self):
        bad = [
            None,                                                    # not JSON
            {"to": "+15551234567", "type": "text", "text": {"body": "x"}},   # no product
            meta_text(messaging_product="sms"),
            {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
            meta_text(type="carrier-pigeon"),
            {"messaging_product": "whatsapp", "to": "+15551234567", "type": "text",
             "text": {}},
            {"messaging_product": "whatsapp", "to": "+15551234567", "type": "template",
             "template": {"name": "t"}},
            {"messaging_product": "whatsapp", "to": "+15551234567", "type": "template",
             "template": {"name": "t", "language": {"code": "en"},
                          "components": [{"type": "body", "parameters": [{"type": "text"}]}]}},
        ]
        for msg in bad:
            with self.subTest(msg=msg):
                raw = "{not json" if msg is None else None
                self.assertMetaError(meta(self.port, msg, raw=raw), 400, 100)

    def test_unknown_phone_number_id(self):
        custom = FAKES["http_custom"].port
        self.assertEqual(meta(custom, meta_text(), token="other-meta-token").status, 200)
        self.assertMetaError(meta(custom, meta_text(), token="other-meta-token",
                                  path="/v18.0/999/messages"), 400, 100, subcode=33)
        self.assertMetaError(meta(custom, meta_text()), 401, 190)


# ---------------------------------------------------------------------------
# HTTP fakes: stats, keep-alive, latency, failures
# ---------------------------------------------------------------------------

class ProviderStatsTests(unittest.TestCase):
    def test_keep_alive_counts_one_connection(self):
        port = FAKES["http_custom"].port      # not used concurrently by other tests
        stats(port, reset=True)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        sid = "AC" + "1" * 32
        path = "/2010-04-01/Accounts/%s/Messages.json" % sid
        r1 = twilio(port, auth=(sid, "other-token"), path=path, conn=conn)
        r2 = meta(port, meta_text(), token="other-meta-token", conn=conn)
        self.assertEqual((r1.status, r2.status), (201, 200))
        self.assertEqual(r1.headers.get("connection"), None)     # kept alive
        s = stats(port)
        self.assertEqual(s["requests"]["total"], 2)
        self.assertEqual(s["connections"], 1)
        self.assertEqual(s["by_provider"]["twilio"], {"201": 1})
        self.assertEqual(s["by_provider"]["meta"], {"200": 1})
        conn.close()
        # A second connection counts as a second one.
        twilio(port, auth=(sid, "other-token"), path=path)
        self.assertEqual(stats(port)["connections"], 2)
        # "Connection: close" is honoured.
        r = twilio(port, auth=(sid, "other-token"), path=path, extra={"Connection": "close"})
        self.assertEqual(r.headers.get("connection"), "close")

    def test_latency(self):
        port = FAKES["http_latency"].port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(2):
            start = time.monotonic()
            self.assertEqual(twilio(port, conn=conn).status, 201)
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, 0.19)
            self.assertLess(elapsed, 1.0)
        conn.close()
        start = time.monotonic()
        stats(port)                                              # not delayed
        self.assertLess(time.monotonic() - start, 0.15)

    def test_latency_is_concurrent(self):
        # 40 clients at once, 200 ms each: about 0.2 s in all, not 8 s.
        port = FAKES["http_latency"].port
        stats(port, reset=True)
        results = []

        def one():
            results.append(meta(port, meta_text()).status)
        threads = [threading.Thread(target=one) for _ in range(40)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 40)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertGreaterEqual(stats(port)["max_in_flight"], 10)

    def test_fail_all(self):
        port = FAKES["http_fail_all"].port
        stats(port, reset=True)
        statuses = [twilio(port).status for _ in range(5)]
        statuses += [meta(port, meta_text()).status for _ in range(5)]
        statuses.append(twilio(port, auth=("x", "y")).status)   # before any other check
        self.assertEqual(statuses, [500] * 11)
        self.assertEqual(meta(port, meta_text()).json()["error"]["code"], 131000)
        self.assertEqual(stats(port)["injected_failures"], 12)

    def test_fail_half(self):
        port = FAKES["http_fail_half"].port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        statuses = [twilio(port, conn=conn).status for _ in range(200)]
        conn.close()
        failed = statuses.count(500)
        self.assertEqual(failed + statuses.count(201), 200)
        self.assertTrue(60 <= failed <= 140, failed)             # 50 % of 200, +/- 5.6 sigma


class HoldTests(unittest.TestCase):
    """POST /_hold, GET /_held, POST /_release on a fake of their own."""

    def setUp(self):
        self.port = alive("http_hold")
        self.addCleanup(request, self.port, "POST", "/_release", b"")

    def control(self, method, path):
        r = request(self.port, method, path, b"" if method == "POST" else None)
        self.assertEqual(r.status, 200, r.raw)
        return r.json()

    def in_threads(self, calls):
        """Runs each call in a thread; returns (threads, results by index)."""
        results = {}

        def run(i, call):
            try:
                results[i] = call()
            except Exception as exc:     # noqa: BLE001 - reported by the test
                results[i] = exc
        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        return threads, results

    def wait_held(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            held = self.control("GET", "/_held")
            if len(held["held"]) >= n or time.monotonic() > deadline:
                return held
            time.sleep(0.02)

    def test_off_by_default(self):
        self.assertEqual(self.control("GET", "/_held"), {"holding": [], "held": []})
        start = time.monotonic()
        self.assertEqual(twilio(self.port).status, 201)
        self.assertLess(time.monotonic() - start, 1.0)

    def test_hold_then_release_answers_with_the_listed_ids(self):
        self.assertEqual(self.control("POST", "/_hold"),
                         {"holding": ["meta", "twilio"], "held": 0})
        cb = "https://herald.test/api/crm/webhooks/twilio?comm_id=c-%d"
        threads, results = self.in_threads(
            [lambda i=i: twilio(self.port, to="+1555123%04d" % (100 + i),
                                StatusCallback=cb % i) for i in range(3)]
            + [lambda: meta(self.port, meta_text(biz_opaque_callback_data="comm-9")),
               lambda: twilio(self.port, to="+15550000001")])      # an error is held too
        held = self.wait_held(5)
        self.assertEqual(held["holding"], ["meta", "twilio"])
        self.assertEqual(len(held["held"]), 5, held)
        self.assertEqual(results, {})                           # nobody answered yet
        self.assertEqual(stats(self.port)["held_answers"], 5)
        time.sleep(0.3)
        self.assertEqual(results, {})
        tw = {h["to"]: h for h in held["held"] if h["provider"] == "twilio"}
        wa, = [h for h in held["held"] if h["provider"] == "meta"]
        self.assertEqual(wa["biz_opaque_callback_data"], "comm-9")
        self.assertRegex(wa["id"], r"^wamid\.")
        self.assertEqual((tw["+15550000001"]["status"], tw["+15550000001"]["sid"]), (400, None))
        self.assertEqual(self.control("POST", "/_release"), {"released": 5})
        for t in threads:
            t.join(5)
        for i in range(3):
            r = results[i]
            self.assertEqual(r.status, 201, r.raw)
            h = tw["+1555123%04d" % (100 + i)]
            self.assertEqual((h["status"], h["sid"], h["status_callback"]),
                             (201, r.json()["sid"], cb % i))
        self.assertEqual(results[3].json()["messages"][0]["id"], wa["id"])
        self.assertEqual(results[4].json()["code"], 21211)
        # released: holding stops, new requests are answered at once
        self.assertEqual(self.control("GET", "/_held"), {"holding": [], "held": []})
        self.assertEqual(stats(self.port)["held_answers"], 0)
        self.assertEqual(twilio(self.port).status, 201)

    def test_hold_one_provider(self):
        self.assertEqual(self.control("POST", "/_hold?provider=twilio"),
                         {"holding": ["twilio"], "held": 0})
        threads, results = self.in_threads([lambda: twilio(self.port)])
        self.wait_held(1)
        self.assertEqual(meta(self.port, meta_text()).status, 200)   # not held
        self.assertEqual(results, {})
        self.assertEqual(self.control("POST", "/_release"), {"released": 1})
        threads[0].join(5)
        self.assertEqual(results[0].status, 201)

    def test_bad_control_requests(self):
        self.assertEqual(request(self.port, "POST", "/_hold?provider=smtp", b"").status, 400)
        self.assertEqual(request(self.port, "GET", "/_hold").status, 405)
        self.assertEqual(request(self.port, "GET", "/_release").status, 405)
        self.assertEqual(request(self.port, "POST", "/_held", b"").status, 405)
        self.assertEqual(self.control("GET", "/_held")["holding"], [])


# ---------------------------------------------------------------------------
# SMTP sink
# ---------------------------------------------------------------------------

def smtp_connect(name, timeout=5):
    s = smtplib.SMTP("127.0.0.1", FAKES[name].port, timeout=timeout)
    s.ehlo("selftest.example")
    return s


def sink_stats(name, reset=False):
    return stats(FAKES[name].ports[1], reset=reset)


def queued_number(reply):
    """The message number n from '250 2.0.0 OK: queued as n'."""
    m = re.search(rb"queued as (\d+)", reply)
    return int(m.group(1))


def make_message(i):
    """A message with the edge cases a sink must keep byte for byte."""
    return ("From: Herald <noreply@herald.example>\r\n"
            "To: <user%d@example.com>\r\n"
            "Subject: =?UTF-8?B?w6l0w6k=?= %d\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            ".a line starting with a dot\r\n"
            "..two dots\r\n"
            "UTF-8: été ☃ %d\r\n"
            "\r\n"
            "trailing spaces   \r\n" % (i, i, i)).encode("utf-8")


class SmtpTests(unittest.TestCase):
    maildir = property(lambda self: os.path.join(TMP, "mail"))

    def saved(self, n, maildir=None):
        base = os.path.join(maildir or self.maildir, str(n))
        with open(base + ".eml", "rb") as f:
            content = f.read()
        with open(base + ".json") as f:
            return content, json.load(f)

    def test_twenty_messages_on_one_connection(self):
        sink_stats("smtp", reset=True)
        s = smtp_connect("smtp")
        sent = {}
        for i in range(20):
            msg = make_message(i)
            self.assertEqual(s.mail("noreply@herald.example", ["BODY=8BITMIME"])[0], 250)
            self.assertEqual(s.rcpt("user%d@example.com" % i)[0], 250)
            code, reply = s.data(msg)
            self.assertEqual(code, 250, reply)
            self.assertTrue(reply.startswith(b"2.0.0"), reply)
            sent[queued_number(reply)] = (i, msg)
            if i % 5 == 4:
                self.assertEqual(s.rset()[0], 250)              # RSET, then MAIL again
        s.quit()

        self.assertEqual(len(sent), 20)
        sessions = set()
        for n, (i, msg) in sent.items():
            content, meta = self.saved(n)
            self.assertEqual(content, msg)                      # byte for byte
            self.assertEqual(meta["mail_from"], "noreply@herald.example")
            self.assertEqual(meta["rcpt_tos"], ["user%d@example.com" % i])
            self.assertEqual(meta["message_in_session"], i + 1)
            self.assertEqual(meta["helo"], "selftest.example")
            self.assertEqual(meta["peer"][0], "127.0.0.1")
            sessions.add(meta["session"])
        self.assertEqual(len(sessions), 1)
        st = sink_stats("smtp")
        self.assertEqual((st["messages"], st["sessions"], st["sessions_with_messages"],
                          st["max_messages_per_session"]), (20, 1, 1, 20))

    def test_concurrent_connections(self):
        sink_stats("smtp", reset=True)
        errors = []

        def client(k):
            try:
                s = smtp_connect("smtp")
                for i in range(10):
                    s.sendmail("a@herald.example", ["c%d@example.com" % k], make_message(i))
                s.quit()
            except Exception as exc:     # reported below
                errors.append(exc)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        st = sink_stats("smtp")
        self.assertEqual((st["messages"], st["sessions"], st["sessions_with_messages"],
                          st["max_messages_per_session"]), (200, 20, 20, 10))

    def test_recipient_behaviours(self):
        s = smtp_connect("smtp")
        s.mail("a@herald.example")
        for rcpt, code, enhanced in [("tempfail@example.com", 451, b"4.3.0"),
                                     ("full@example.com", 452, b"4.2.2"),
                                     ("nouser@example.com", 550, b"5.1.1"),
                                     ("NoUser+tag7@example.com", 550, b"5.1.1")]:
            got, text = s.rcpt(rcpt)
            self.assertEqual(got, code, (rcpt, text))
            self.assertTrue(text.startswith(enhanced), text)
        self.assertEqual(s.rcpt("fine@example.com"), (250, b"2.1.5 OK"))
        code, reply = s.data(b"Subject: kept\r\n\r\nonly fine@ gets this\r\n")
        self.assertEqual(code, 250)
        self.assertEqual(self.saved(queued_number(reply))[1]["rcpt_tos"], ["fine@example.com"])

        for rcpt, code, enhanced in [("bigdata@example.com", 552, b"5.3.4"),
                                     ("policy+x@example.com", 554, b"5.7.1")]:
            s.mail("a@herald.example")
            self.assertEqual(s.rcpt(rcpt)[0], 250)             # accepted at RCPT ...
            got, text = s.data(b"Subject: x\r\n\r\nbody\r\n")  # ... refused at end of DATA
            self.assertEqual(got, code, text)
            self.assertTrue(text.startswith(enhanced), text)
        # The session goes on after refusals.
        s.mail("a@herald.example")
        s.rcpt("after@example.com")
        self.assertEqual(s.data(b"Subject: after\r\n\r\nstill fine\r\n")[0], 250)
        s.quit()

    def test_ehlo_without_auth(self):
        s = smtp_connect("smtp")
        self.assertFalse(s.has_extn("auth"))
        self.assertTrue(s.has_extn("enhancedstatuscodes"))
        self.assertTrue(s.has_extn("8bitmime"))
        s.quit()

    def test_auth(self):
        s = smtp_connect("smtp_auth")
        self.assertEqual(s.esmtp_features["auth"].split(), ["LOGIN", "PLAIN"])
        code, text = s.docmd("MAIL FROM:<a@herald.example>")
        self.assertEqual(code, 530, text)                        # AUTH first
        for mech in ("PLAIN", "LOGIN"):
            s.user, s.password = SMTP_USER, "wrong"
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                s.auth(mech, getattr(s, "auth_" + mech.lower()))
            self.assertEqual(cm.exception.smtp_code, 535)
            self.assertTrue(cm.exception.smtp_error.startswith(b"5.7.8"))
        s.user, s.password = SMTP_USER, SMTP_PASS
        self.assertEqual(s.auth("PLAIN", s.auth_plain)[0], 235)
        s.mail("a@herald.example")
        s.rcpt("b@example.com")
        code, reply = s.data(b"Subject: authed\r\n\r\nhello\r\n")
        self.assertEqual(code, 250)
        meta = self.saved(queued_number(reply), os.path.join(TMP, "mail-auth"))[1]
        self.assertEqual(meta["auth_login"], SMTP_USER)
        s.quit()

        s = smtp_connect("smtp_auth")
        s.user, s.password = SMTP_USER, SMTP_PASS
        self.assertEqual(s.auth("LOGIN", s.auth_login)[0], 235)
        s.sendmail("a@herald.example", ["b@example.com"], b"Subject: login\r\n\r\nhi\r\n")
        s.quit()

    def test_latency_before_data_reply(self):
        s = smtp_connect("smtp_latency")
        start = time.monotonic()
        s.mail("a@herald.example")
        s.rcpt("b@example.com")
        self.assertLess(time.monotonic() - start, 0.25)        # only DATA waits
        start = time.monotonic()
        self.assertEqual(s.data(b"Subject: slow\r\n\r\nx\r\n")[0], 250)
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        s.quit()
        self.assertGreaterEqual(sink_stats("smtp_latency")["messages"], 1)

    def test_stats_file_on_sigusr1(self):
        path = os.path.join(TMP, "smtp-stats.json")
        if os.path.exists(path):
            os.unlink(path)
        FAKES["smtp"].proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(path) as f:
            doc = json.load(f)
        for key in ("messages", "sessions", "sessions_with_messages",
                    "max_messages_per_session", "sessions_open"):
            self.assertIn(key, doc)

    @unittest.skipUnless(have_openssl(), "openssl not installed")
    def test_starttls(self):
        s = smtp_connect("smtp_tls")
        self.assertTrue(s.has_extn("starttls"))
        self.assertEqual(s.docmd("MAIL FROM:<a@herald.example>")[0], 530)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.assertEqual(s.starttls(context=ctx)[0], 220)
        s.ehlo("selftest.example")
        s.mail("a@herald.example")
        s.rcpt("b@example.com")
        code, reply = s.data(b"Subject: tls\r\n\r\nsecret\r\n")
        self.assertEqual(code, 250)
        meta = self.saved(queued_number(reply), os.path.join(TMP, "mail-tls"))[1]
        self.assertTrue(meta["tls"])
        s.quit()


def on_sigterm(signum, frame):
    """Killed from outside (a CTest timeout): stop the fakes, remove the files."""
    stop_fakes()
    os._exit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    unittest.main()

"""A message's life owned by the engine (issue 11), with the real binary, its
own database on the real PostgreSQL, the fake Twilio of tests/fakes (holding
its answers on demand: POST /_hold, GET /_held, POST /_release), the SMTP
sink and an alert endpoint:

  A  no HTTP thread waits on a receipt: 200 failure receipts for sends that
     are in flight and unrecorded, posted at once, are each answered 200 at
     once while GET /api/crm/health stays under 50 ms; once the fake answers,
     every receipt is applied (the failure event, and the message moved as
     retry.policy says: the next channel)
  B  a failure alert is a durable job: with the alert endpoint down when the
     message fails, it arrives once the endpoint is back, exactly once, and
     the message's events record it
  C  the engine obeys strategy.refusal: an operator's edit (live reload)
     that allows a channel the client's stored list leaves out is followed,
     and a refusal's own reason is the one recorded
  D  a message waiting for a retry reads "scheduled" with next_attempt_at and
     can be cancelled; a message a provider holds cannot (409)
  E  a policy script that leaves out a value is an error naming the file and
     line (a "policy_error" event), not a delay made up in C

The health poller of A and B runs in a process of its own: in this one,
hundreds of threads would make it wait for the interpreter lock, and the
50 ms it checks would measure Python, not Herald.
"""
import calendar
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import harness
from test_webhooks import FROM, PUBLIC, SID, TOKEN, auth, status_params, twilio_signature

SRC = harness.SOURCE_DIR
# The contract: no health request waits longer. The sanitizer run of CI
# (.ci/run) checks memory safety with every instruction instrumented, several
# times slower: it sets HERALD_LIFECYCLE_HEALTH_MS to a bound that still tells
# a waiting HTTP thread (seconds) from a slow one. The plain build keeps 50.
HEALTH_BOUND_MS = float(os.environ.get("HERALD_LIFECYCLE_HEALTH_MS", "50"))

# Polls GET /api/crm/health every INTERVAL seconds (a request starts INTERVAL
# after the previous one started, or at once if that one took longer) until
# its stdin closes; then prints [[start, milliseconds, status], ...] as JSON.
POLLER = r"""
import http.client, json, sys, threading, time
port, interval = int(sys.argv[1]), float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
out = []
sys.stdout.write("polling\n")
sys.stdout.flush()
nxt = time.monotonic()
while not stop.is_set():
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/api/crm/health")
        r = c.getresponse()
        r.read()
        status = r.status
        c.close()
    except Exception as e:
        status = repr(e)
    t1 = time.monotonic()
    out.append([t0, (t1 - t0) * 1000.0, status])
    nxt = max(nxt + interval, t1)
    stop.wait(max(0.0, nxt - time.monotonic()))
json.dump(out, sys.stdout)
"""


class HealthPoller:
    """GET /api/crm/health every 10 ms from a process of its own."""

    def __init__(self, port, interval=0.010):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", POLLER, str(port), str(interval)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "polling":
            self.proc.kill()
            raise AssertionError("the health poller did not start: %r" % line)
        self.samples = None

    def stop(self):
        """Stops polling; returns the samples: [(start, ms, status), ...]."""
        if self.samples is None:
            out, _ = self.proc.communicate(timeout=30)
            self.samples = [tuple(s) for s in json.loads(out)]
        return self.samples

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def health_summary(samples):
    ms = sorted(s[1] for s in samples)
    if not ms:
        return "no health request"
    slow = [s for s in samples if s[1] > HEALTH_BOUND_MS]
    return ("%d health requests, median %.1f ms, p99 %.1f ms, max %.1f ms, %d over %g ms, "
            "statuses %s" % (len(ms), ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))],
                             ms[-1], len(slow), HEALTH_BOUND_MS,
                             sorted({str(s[2]) for s in samples})))


def slow_health(samples):
    """The health requests over the bound or not 200, as readable strings."""
    t0 = samples[0][0] if samples else 0
    return ["%.1f ms -> %s (at +%.2f s)" % (ms, st, at - t0) for at, ms, st in samples
            if ms > HEALTH_BOUND_MS or st != 200]


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s):
    """Unix seconds of an RFC 3339 time (Z or an offset, fractions allowed)."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)",
                     s or "")
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    t = calendar.timegm((y, mo, d, h, mi, sec)) + float(m.group(7) or 0)
    tz = m.group(8)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t


def start_sink(tmp, maildir):
    """tests/fakes/smtp_sink.py on a free port; returns (process, port)."""
    ready = os.path.join(tmp, "smtp.ready")
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests", "fakes", "smtp_sink.py"),
                          "--port", "0", "--ready-file", ready, "--maildir", maildir],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while not os.path.exists(ready):
        if time.time() > deadline or p.poll() is not None:
            p.kill()
            raise RuntimeError("the SMTP sink did not start")
        time.sleep(0.05)
    with open(ready) as f:
        return p, int(f.read().split()[0])


def stop_process(p):
    if p is not None and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class LifecycleCase(harness.HeraldCase):
    """One server per class on a database of its own, with a private copy of
    scripts/ (tests edit it while the server runs), an outbox and, as the
    class asks, the fake providers and the SMTP sink."""

    with_fake = False
    with_sink = False
    retry_scale = "0.001"
    extra_env = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake = cls.sink = None
        cls.drop_db = None
        cls.tmp = tempfile.mkdtemp(prefix="herald-lifecycle-")
        try:
            cls.scripts = os.path.join(cls.tmp, "scripts")
            shutil.copytree(os.path.join(SRC, "scripts"), cls.scripts)
            cls.outbox = os.path.join(cls.tmp, "outbox")
            cls.maildir = os.path.join(cls.tmp, "mail")
            os.makedirs(cls.maildir)
            cls.db_url, cls.drop_db = harness.fresh_database()
            env = {"HERALD_DATABASE_URL": cls.db_url, "HERALD_PUBLIC_URL": PUBLIC,
                   "HERALD_SCRIPTS_DIR": cls.scripts, "HERALD_OUTBOX_DIR": cls.outbox,
                   "HERALD_RETRY_SCALE": cls.retry_scale, "HERALD_WORKERS": "2",
                   "HERALD_TWILIO_AUTH_TOKEN": TOKEN}
            if cls.with_fake:
                cls.fake, port = harness.start_fake_providers(cls.tmp, hang_seconds=1)
                cls.fake_port = port
                env.update({"HERALD_SMS_DRIVER": "twilio",
                            "HERALD_TWILIO_BASE_URL": "http://127.0.0.1:%d" % port,
                            "HERALD_TWILIO_ACCOUNT_SID": SID, "HERALD_TWILIO_FROM": FROM})
            if cls.with_sink:
                cls.sink, port = start_sink(cls.tmp, cls.maildir)
                env.update({"HERALD_EMAIL_DRIVER": "smtp",
                            "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % port,
                            "HERALD_SMTP_STARTTLS": "off"})
            env.update(cls.server_env())
            cls.server = cls.new_server(env=env)
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def server_env(cls):
        return dict(cls.extra_env)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.fake is not None:
                harness.http_request(cls.fake_port, "POST", "/_release", body=b"")
            super().tearDownClass()
        finally:
            cls._cleanup()

    @classmethod
    def _cleanup(cls):
        stop_process(cls.fake)
        stop_process(cls.sink)
        if cls.drop_db is not None:
            cls.drop_db()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- the fake's hold ---------------------------------------------------------

    def fake_control(self, method, path):
        r = harness.http_request(self.fake_port, method, path,
                                 body=b"" if method == "POST" else None)
        self.assertEqual(r.status, 200, r)
        return r.json

    def hold(self):
        self.fake_control("POST", "/_hold?provider=twilio")
        self.addCleanup(self.release)

    def release(self):
        return self.fake_control("POST", "/_release")["released"]

    def held(self, comm_ids, timeout=60):
        """Waits until the fake holds a send of every id; returns {comm id: held entry}."""
        want = set(comm_ids)
        deadline = time.time() + timeout
        while True:
            got = {}
            for h in self.fake_control("GET", "/_held")["held"]:
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["status_callback"] or "").query)
                cid = (q.get("comm_id") or [None])[0]
                if cid in want:
                    got[cid] = h
            if len(got) == len(want):
                return got
            if time.time() > deadline:
                self.fail("the fake holds %d of the %d sends after %d s"
                          % (len(got), len(want), timeout))
            time.sleep(0.1)

    # -- the API -----------------------------------------------------------------

    def client(self, **prefs):
        cid = "client-" + uuid.uuid4().hex[:12]
        doc = {"client_id": cid, "name": "Zoë Martin", "email": "zoe@example.com",
               "phone": "+14155551234", "timezone": "Europe/Paris",
               "consent": {"given": True, "source": "test signup form"}}
        doc.update(prefs)
        self.set_prefs(doc)
        return doc

    def set_prefs(self, doc):
        r = self.server.request("POST", "/api/crm/preferences", json_body=doc, headers=auth())
        self.assertIn(r.status, (200, 201), r)

    def send(self, client_id, message_type, urgency="critical", **extra):
        body = {"plan_id": "plan-1", "client_id": client_id, "message_type": message_type,
                "urgency": urgency,
                "context": {"event_type": "wedding", "event_date": "2027-06-14"}}
        body.update(extra)
        r = self.server.request("POST", "/api/crm/communications", json_body=body,
                                headers=auth())
        self.assertEqual(r.status, 202, r)
        return r.json

    def doc(self, comm_id):
        r = self.server.request("GET", "/api/crm/communications/" + comm_id, headers=auth())
        self.assertEqual(r.status, 200, r)
        return r.json

    def wait_for(self, comm_id, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while True:
            d = self.doc(comm_id)
            if pred(d):
                return d
            if time.time() > deadline:
                self.fail("%s not reached within %d s: %s" % (what, timeout, json.dumps(d)))
            time.sleep(0.05)

    def jobs(self, comm_id):
        p = subprocess.run(["psql", "-X", "-qAt", "-d", self.db_url, "-c",
                            "SELECT count(*) FROM crm_jobs WHERE communication_id = '%s'"
                            % comm_id], capture_output=True, timeout=30, check=True)
        return int(p.stdout.decode().strip())

    @staticmethod
    def events(d, type_=None):
        return [e for e in d["events"] if type_ is None or e["type"] == type_]

    def outbox_files(self, channel, comm_id):
        return sorted(f for f in os.listdir(os.path.join(self.outbox, channel))
                      if f.startswith(comm_id)) \
            if os.path.isdir(os.path.join(self.outbox, channel)) else []

    # -- the policy scripts, edited on the running server ------------------------

    def generation(self):
        r = self.server.request("GET", "/api/crm/health")
        self.assertEqual(r.status, 200, r)
        return r.json["scripts"]["generation"], r.json["scripts"]

    def edit_script(self, name, text, timeout=10):
        """Writes scripts/NAME (temporary file + rename, as an editor saves) and
        waits for the live reload to take it; the original comes back after
        the test. Returns the time the new generation was seen."""
        originals = self.__dict__.setdefault("_originals", {})
        if name not in originals:
            with open(os.path.join(self.scripts, name)) as f:
                originals[name] = f.read()
            self.addCleanup(self._write_and_reload, name, originals[name], 10)
        self._write_and_reload(name, text, timeout)
        return time.time()

    def _write_and_reload(self, name, text, timeout):
        before, _ = self.generation()
        path = os.path.join(self.scripts, name)
        tmp = path + ".edit"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        deadline = time.time() + timeout
        while True:
            gen, st = self.generation()
            if gen > before and st["status"] == "ok":
                return
            if st["status"] != "ok" or time.time() > deadline:
                self.fail("the edited %s was not loaded: %s" % (name, json.dumps(st)))
            time.sleep(0.05)

    def script(self, name):
        with open(os.path.join(SRC, "scripts", name)) as f:
            return f.read()


# ---------------------------------------------------------------------------
# A. No HTTP thread waits on a receipt
# ---------------------------------------------------------------------------

class ReceiptBurstTest(LifecycleCase):
    """200 failure receipts for sends in flight, at once, with health polled.
    HERALD_LIFECYCLE_RECEIPTS changes the count (a sanitizer build, a slow
    machine); the contract is 200."""

    N = int(os.environ.get("HERALD_LIFECYCLE_RECEIPTS", "200"))
    with_fake = True

    @classmethod
    def server_env(cls):
        # 200 sends in flight at once: a worker keeps up to 16, and claims again
        # only at 8 or fewer, so 24 workers (9 each at worst) always have room
        # for 200; the SMS channel's own cap above that. The sends may be held
        # longer than the SMS timeout (not a variable): 15 s becomes 120 s.
        with open(os.path.join(SRC, "config.lua")) as f:
            text = f.read()
        pat = re.compile(r"(\bsms = \{[^}]*?timeout_ms = )15000,")
        if not pat.search(text):
            raise AssertionError("config.lua no longer has channels.sms.timeout_ms = 15000")
        path = os.path.join(cls.tmp, "config.lua")
        with open(path, "w") as f:
            f.write(pat.sub(r"\g<1>120000,", text))
        return {"HERALD_CONFIG": path, "HERALD_WORKERS": str(max(24, cls.N // 9 + 2)),
                "HERALD_SMS_IN_FLIGHT": str(max(256, cls.N + 16))}

    def receipt(self, held):
        """Twilio's failure callback for a held send: to the StatusCallback URL
        Herald gave (its comm_id), signed over it, about the sid the fake will
        answer with (so it concerns the message's latest attempt)."""
        cb = urllib.parse.urlsplit(held["status_callback"])
        params = status_params(held["sid"], "undelivered", ErrorCode="30005",
                               ErrorMessage="Unknown destination handset")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": twilio_signature(held["status_callback"], params)}
        return cb.path + "?" + cb.query, urllib.parse.urlencode(params), headers

    def post_all(self, receipts, timeout=10):
        """POSTs every receipt from its own thread, all released together.
        Returns [(status or error, seconds)] in the order given."""
        results = [None] * len(receipts)
        gate = threading.Barrier(len(receipts))

        def one(i, path, body, headers):
            # The load generator yields the CPU to the server and to the
            # health poller: on a shared two-core machine the 200 posting
            # threads would otherwise delay the poller's own measurements,
            # which are about the server. (In production the load comes from
            # other machines.) Linux takes a thread id here.
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
            except (AttributeError, OSError):
                pass
            gate.wait()
            t0 = time.monotonic()
            try:
                r = self.server.request("POST", path, body=body, headers=headers,
                                        timeout=timeout)
                results[i] = (r.status, time.monotonic() - t0)
            except Exception as exc:  # a timeout is a result here
                results[i] = (repr(exc), time.monotonic() - t0)
        threads = [threading.Thread(target=one, args=(i,) + r) for i, r in enumerate(receipts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 30)
        return results

    def test_failure_receipts_for_unrecorded_sends_are_parked_not_slept_on(self):
        c = self.client()
        self.hold()
        t0 = time.time()
        # error_notification: sms first, then email (outbox), then whatsapp
        ids = []
        lock = threading.Lock()

        def accept():
            while True:
                with lock:
                    if len(ids) + accept.pending >= self.N:
                        return
                    accept.pending += 1
                r = self.send(c["client_id"], "error_notification")
                with lock:
                    accept.pending -= 1
                    ids.append(r["id"])
        accept.pending = 0
        threads = [threading.Thread(target=accept) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(ids), self.N)
        held = self.held(ids)
        t_held = time.time()
        for cid in ids:  # in flight, unrecorded
            self.assertEqual(self.doc(cid)["attempts"], [], cid)
        receipts = [self.receipt(held[cid]) for cid in ids]

        poller = HealthPoller(self.server.port)
        try:
            time.sleep(0.2)  # a few polls before the burst, for reference
            t_burst = time.monotonic()
            results = self.post_all(receipts)
            burst_s = time.monotonic() - t_burst
            time.sleep(0.2)
        finally:
            samples = poller.stop() if poller.proc.poll() is None else []
            poller.kill()
        released = self.release()
        t_released = time.time()

        statuses = {}
        for st, _ in results:
            statuses[str(st)] = statuses.get(str(st), 0) + 1
        slowest = max(s for _, s in results)
        summary = ("receipts: %s, slowest answer %.2f s, burst %.2f s; %s; "
                   "accepted and held in %.1f s" % (statuses, slowest, burst_s,
                                                     health_summary(samples), t_held - t0))
        sys.stderr.write("\n[test_lifecycle A] %s\n" % summary)
        self.assertEqual(released, self.N, summary)

        with self.subTest("no health request waits more than 50 ms"):
            # An HTTP thread that waits on a receipt shows as health requests
            # of whole seconds (the old engine: 3-10 s). The bound is checked
            # by the server's own clock (from the moment an HTTP thread took
            # the request to its answer) and at the client. On a shared
            # two-core host the kernel now and then deschedules a process for
            # tens of milliseconds whatever it does (measured here: 1 or 2 of
            # 100-190 requests at 55-80 ms while other builds ran), so 2 % of
            # them (at least 2) may pass the bound, and none may come near a
            # second.
            self.assertGreaterEqual(len(samples), 10, summary)
            served = [ln.get("duration_ms", 0) for ln in self.server.log_lines()
                      if ln.get("route") == "/api/crm/health"]
            self.assertGreaterEqual(len(served), len(samples), summary)
            over = sorted(ms for ms in served if ms > HEALTH_BOUND_MS)
            allowed = max(2, len(samples) // 50)
            self.assertLessEqual(len(over), allowed,
                                 "health requests served in over %g ms: %s; %s"
                                 % (HEALTH_BOUND_MS, over[:5], summary))
            self.assertLess(max(served), 5 * HEALTH_BOUND_MS, summary)
            slow = slow_health(samples)
            self.assertLessEqual(len(slow), allowed,
                                 "%d of %d health requests over %g ms at the client; %s"
                                 % (len(slow), len(samples), HEALTH_BOUND_MS, summary))
            self.assertEqual([s for s in samples if s[1] > 10 * HEALTH_BOUND_MS or s[2] != 200],
                             [], summary)
        with self.subTest("every receipt is answered 200 at once"):
            late = [(cid, r) for cid, r in zip(ids, results) if r[0] != 200 or r[1] > 3.0]
            self.assertEqual(late[:5], [], "%d of %d receipts: %s" % (len(late), self.N, summary))
        with self.subTest("every receipt is applied once its send is recorded"):
            # the receipt said 30005 (classify: invalid): retry.policy moves to
            # the next channel, email, through the outbox
            pending = {cid: held[cid]["sid"] for cid in ids}
            deadline = time.time() + 45
            last = {}
            while pending and time.time() < deadline:
                for cid, sid in list(pending.items()):
                    d = last[cid] = self.doc(cid)
                    failed = [e for e in self.events(d, "failed")
                              if e["provider_message_id"] == sid and e["code"] == "30005"]
                    chans = [(a["channel"], a["provider_message_id"]) for a in d["attempts"]]
                    if (len(failed) == 1 and d["channel"] == "email" and d["status"] == "sent"
                            and chans[:1] == [("sms", sid)] and len(chans) == 2
                            and chans[1][0] == "email"):
                        del pending[cid]
                if pending:
                    time.sleep(0.2)
            some = [last[cid] for cid in list(pending)[:2]]
            self.assertEqual(len(pending), 0, "%d of %d receipts not applied %.0f s after the "
                             "release; e.g. %s" % (len(pending), self.N, time.time() - t_released,
                                                   json.dumps(some)))
            for cid in ids[:3]:
                self.assertEqual(len(self.outbox_files("email", cid)), 1, cid)


# ---------------------------------------------------------------------------
# B. Failure alerts are durable jobs
# ---------------------------------------------------------------------------

class AlertJobTest(LifecycleCase):
    with_fake = True

    @classmethod
    def server_env(cls):
        # The alert endpoint's port, with nothing listening on it yet.
        cls.alert_port = harness.free_port()
        return {"HERALD_ALERT_URL": "http://127.0.0.1:%d/alerts" % cls.alert_port}

    def start_alert_endpoint(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.alert_port),
                                                      harness.AlertSink)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv

    def alerts_for(self, comm_id):
        return [a for a in list(harness.AlertSink.received)
                if a.get("communication_id") == comm_id]

    def test_an_alert_raised_while_the_endpoint_is_down_arrives_once_it_is_back(self):
        # One channel, refused by the provider: 21211 (invalid), nothing left
        c = self.client(phone="+14155550001", channels=["sms"])
        poller = HealthPoller(self.server.port)
        try:
            comm = self.send(c["client_id"], "error_notification")["id"]
            d = self.wait_for(comm, lambda d: d["status"] == "failed", what="failed")
            self.assertEqual([(a["channel"], a["code"]) for a in d["attempts"]],
                             [("sms", "21211")], d)
            time.sleep(1.0)  # the endpoint stays down a while after the failure
        finally:
            samples = poller.stop() if poller.proc.poll() is None else []
            poller.kill()
        summary = health_summary(samples)
        sys.stderr.write("\n[test_lifecycle B] endpoint down: %s\n" % summary)
        with self.subTest("no health request waits more than 50 ms while the endpoint is down"):
            self.assertGreaterEqual(len(samples), 10, summary)
            slow = slow_health(samples)
            self.assertEqual(slow[:5], [], "%d health requests over %g ms; %s"
                             % (len(slow), HEALTH_BOUND_MS, summary))

        self.assertEqual(self.alerts_for(comm), [])
        self.start_alert_endpoint()
        deadline = time.time() + 30
        while not self.alerts_for(comm):
            if time.time() > deadline:
                self.fail("no alert for %s within 30 s of the endpoint coming back "
                          "(alerts received: %s)" % (comm, harness.AlertSink.received))
            time.sleep(0.05)
        time.sleep(3)  # a duplicate would come within this
        got = self.alerts_for(comm)
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["communication_id"], comm)
        self.assertEqual(got[0].get("alert"), "communication_failed", got)
        d = self.wait_for(comm, lambda d: any("alert" in (e["type"] or "") for e in d["events"]),
                          timeout=10, what="an alert event")
        self.assertEqual(d["status"], "failed", d)


# ---------------------------------------------------------------------------
# C. The engine obeys strategy.refusal
# ---------------------------------------------------------------------------

OPERATOR_REFUSAL = """
-- An operator's rule (test_lifecycle): only an opt-out refuses a channel%s.
function strategy.refusal(ch, prefs)
  prefs = type(prefs) == "table" and prefs or {}
  local out = prefs.opted_out
  if type(out) == "table" and out[ch] == true then
    return "client opted out"
  end%s
  return nil
end

"""

PAUSED = """
  if ch == "email" then
    return "paused by operator"
  end"""


class RefusalTest(LifecycleCase):
    NOT_LISTED = "not among the client's allowed channels"

    def strategy_with(self, extra=""):
        text = self.script("strategy.lua")
        head, sep, tail = text.rpartition("return strategy")
        self.assertTrue(sep, "strategy.lua no longer ends with `return strategy`")
        rule = OPERATOR_REFUSAL % (", and email is paused" if extra else "", extra)
        return head + rule + sep + tail

    def scheduled_message(self, lead=5):
        """welcome (email, then sms) for a client allowing both, due in lead s."""
        c = self.client(channels=["email", "sms"])
        due = int(time.time()) + lead
        r = self.send(c["client_id"], "welcome", send_at=rfc3339(due))
        self.assertEqual(r["strategy"]["primary_channel"], "email", r)
        self.assertEqual(r["strategy"]["fallback_channels"], ["sms"], r)
        self.assertEqual(self.doc(r["id"])["status"], "scheduled")
        return c, r["id"], due

    def before(self, comm, due, edited_at):
        """The edit must have been live before the message came due."""
        d = self.doc(comm)
        if d["status"] != "scheduled" or edited_at >= due:
            self.fail("set-up too slow: the scripts were reloaded %.1f s before the message "
                      "was due (it reads %s); the test proves nothing"
                      % (due - edited_at, d["status"]))

    def skips(self, d):
        return [e["message"] for e in self.events(d, "skipped")]

    def test_a_failing_strategy_when_sends_nothing(self):
        # strategy.when is asked before each attempt of a normal or high
        # message; when it fails the engine does not send on a guess: the job
        # waits for its lease (and a fixed script) and the message stays due.
        self.broken_when_sends_nothing(
            'function strategy.when() error("strategy.when broken by the test") end\n',
            "strategy.when broken by the test")

    def test_a_strategy_when_without_send_at_sends_nothing(self):
        # an answer C cannot use (no send_at) is a failure too, named in the log
        self.broken_when_sends_nothing(
            'function strategy.when() return {reasons = {"no time given"}} end\n',
            "strategy.when returned no send_at")

    def broken_when_sends_nothing(self, broken, logged):
        c = self.client(channels=["email", "sms"])
        due = int(time.time()) + 5
        r = self.send(c["client_id"], "welcome", urgency="high", send_at=rfc3339(due))
        comm = r["id"]
        self.assertEqual(self.doc(comm)["status"], "scheduled")
        head, sep, tail = self.script("strategy.lua").rpartition("return strategy")
        self.assertTrue(sep, "strategy.lua no longer ends with `return strategy`")
        edited = self.edit_script("strategy.lua", head + broken + sep + tail)
        self.before(comm, due, edited)
        time.sleep(max(0, due - time.time()) + 4)
        d = self.doc(comm)
        self.assertIn(d["status"], ("scheduled", "queued"), d)
        self.assertEqual(d["attempts"], [], d)
        self.assertEqual(self.outbox_files("email", comm), [])
        self.assertEqual(self.outbox_files("sms", comm), [])
        line = self.server.wait_log(lambda ln: ln.get("comm_id") == comm and
                                    logged in (ln.get("error") or ""))
        self.assertIsNotNone(line, "no log line naming the failure (%r)" % logged)

    def test_a_channel_the_client_list_leaves_out_is_used_when_the_script_allows_it(self):
        c, comm, due = self.scheduled_message()
        # The client's list changes after acceptance: email is no longer in it.
        c["channels"] = ["sms"]
        self.set_prefs(c)
        # ... and the operator's refusal rule does not look at that list.
        edited = self.edit_script("strategy.lua", self.strategy_with())
        self.before(comm, due, edited)
        d = self.wait_for(comm, lambda d: d["status"] not in ("scheduled", "queued", "sending"),
                          what="an outcome")
        self.assertEqual([m for m in self.skips(d) if self.NOT_LISTED in (m or "")], [],
                         "C refused a channel the script allows: %s" % json.dumps(d))
        self.assertEqual((d["status"], d["channel"]), ("sent", "email"), d)
        self.assertEqual([a["channel"] for a in d["attempts"]], ["email"], d)
        self.assertEqual(len(self.outbox_files("email", comm)), 1)
        self.assertEqual(self.outbox_files("sms", comm), [])

    def test_the_scripts_refusal_and_its_reason_are_the_ones_recorded(self):
        c, comm, due = self.scheduled_message()
        # Email leaves the client's list, and the operator pauses email: the
        # reason recorded must be the script's, not a check of C's own.
        c["channels"] = ["sms"]
        self.set_prefs(c)
        edited = self.edit_script("strategy.lua", self.strategy_with(PAUSED))
        self.before(comm, due, edited)
        d = self.wait_for(comm, lambda d: d["status"] not in ("scheduled", "queued", "sending"),
                          what="an outcome")
        skips = [(e["channel"], e["message"]) for e in self.events(d, "skipped")]
        self.assertEqual(len(skips), 1, d)
        self.assertEqual(skips[0][0], "email", d)
        self.assertIn("paused by operator", skips[0][1] or "",
                      "the script's reason is not the one recorded: %s" % json.dumps(d))
        self.assertEqual((d["status"], d["channel"]), ("sent", "sms"), d)
        self.assertEqual([a["channel"] for a in d["attempts"]], ["sms"], d)
        self.assertEqual(self.outbox_files("email", comm), [])
        self.assertEqual(len(self.outbox_files("sms", comm)), 1)


# ---------------------------------------------------------------------------
# D. Status while waiting for a retry
# ---------------------------------------------------------------------------

class WaitingStatusTest(LifecycleCase):
    with_fake = True
    with_sink = True
    retry_scale = "1"  # the shipped schedule: the first retry 60 s (±20 %) later

    def test_a_message_waiting_for_a_retry_is_scheduled_and_can_be_cancelled(self):
        # A provider holds the message: too late to cancel.
        c = self.client(channels=["sms"])
        self.hold()
        held = self.send(c["client_id"], "error_notification")["id"]
        self.held([held])
        r = self.server.request("DELETE", "/api/crm/communications/" + held, headers=auth())
        self.assertError(r, 409, "conflict")
        self.assertEqual(self.release(), 1)
        self.wait_for(held, lambda d: d["status"] == "sent", what="sent")

        # The SMTP server answers 451 4.3.0 (transient): a retry in about a minute.
        c = self.client(email="tempfail@example.com", channels=["email", "sms"])
        comm = self.send(c["client_id"], "welcome")["id"]
        d = self.wait_for(comm, lambda d: len(d["attempts"]) == 1, timeout=20,
                          what="the first attempt")
        self.assertEqual((d["attempts"][0]["channel"], d["attempts"][0]["code"]),
                         ("email", "451 4.3.0"), d)
        self.assertEqual(d["last_error_category"], "transient", d)
        self.assertEqual(d["status"], "scheduled", d)
        self.assertIn("next_attempt_at", d, d)
        nxt = parse_rfc3339(d["next_attempt_at"])
        now = time.time()
        self.assertTrue(now + 20 <= nxt <= now + 120, (d["next_attempt_at"], nxt - now))

        r = self.server.request("DELETE", "/api/crm/communications/" + comm, headers=auth())
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["id"], r.json["status"]), (comm, "cancelled"), r)
        d = self.doc(comm)
        self.assertEqual(d["status"], "cancelled", d)
        self.assertIsNotNone(d["cancelled_at"], d)
        self.assertEqual(self.jobs(comm), 0, "a job is left to send it again")
        time.sleep(2)
        d = self.doc(comm)
        self.assertEqual((d["status"], len(d["attempts"])), ("cancelled", 1), d)


# ---------------------------------------------------------------------------
# E. A script that leaves out a value is an error, with file and line
# ---------------------------------------------------------------------------

NO_DELAY = """function retry.policy(category, attempt, result)
  if category == "transient" then
    return { action = "retry", reason = "operator: retry transient failures (no delay given)" }
  end
"""


class PolicyErrorTest(LifecycleCase):
    with_sink = True
    retry_scale = "1"

    def test_a_retry_without_a_delay_is_a_policy_error_not_a_made_up_delay(self):
        text = self.script("retry.lua")
        head = "function retry.policy(category, attempt, result)\n"
        self.assertEqual(text.count(head), 1, "retry.lua no longer defines retry.policy so")
        self.edit_script("retry.lua", text.replace(head, NO_DELAY))
        c = self.client(email="tempfail@example.com", channels=["email", "sms"])
        comm = self.send(c["client_id"], "welcome")["id"]
        d = self.wait_for(comm, lambda d: self.events(d, "policy_error"), timeout=20,
                          what="a policy_error event")
        for ev in self.events(d, "policy_error"):
            self.assertRegex(ev["message"] or "", r"retry\.lua:\d+", d)
        self.assertEqual([(a["channel"], a["code"]) for a in d["attempts"]],
                         [("email", "451 4.3.0")], d)
        self.assertEqual(d["status"], "scheduled", d)
        time.sleep(3)  # no retry at a delay C made up, and not the next channel either
        d = self.doc(comm)
        self.assertEqual((d["status"], len(d["attempts"])), ("scheduled", 1), d)


if __name__ == "__main__":
    unittest.main()

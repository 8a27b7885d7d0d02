"""The end-to-end bench's own tools (tools/bench/): the C SMTP sink counts what
a real SMTP client sends and nothing else, and the load generator keeps its
schedule (open loop) whatever the server's answer time, names a new client per
request and reports what the server saw.

The binaries are built next to `herald` (HERALD_BIN's directory) unless
HERALD_BENCH_BIN_DIR says otherwise. No database or Redis is needed.
"""

import http.server
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD_BIN  # noqa: E402

BIN_DIR = os.environ.get("HERALD_BENCH_BIN_DIR") or os.path.dirname(HERALD_BIN)
SINK = os.path.join(BIN_DIR, "smtp_sink")
LOADGEN = os.path.join(BIN_DIR, "loadgen")


def wait_file(path, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read()
        time.sleep(0.05)
    raise AssertionError("%s did not appear" % path)


def read_stats(path):
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


class SinkTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sinktest-")
        self.stats = os.path.join(self.tmp, "stats")
        self.proc = subprocess.Popen([SINK, "--port", "0", "--ready-file",
                                      os.path.join(self.tmp, "port"), "--stats-file", self.stats])
        self.port = int(wait_file(os.path.join(self.tmp, "port")))

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def current(self):
        """The counters now (SIGUSR1 rewrites the file)."""
        before = os.stat(self.stats).st_mtime_ns
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + 5
        while os.stat(self.stats).st_mtime_ns == before and time.time() < deadline:
            time.sleep(0.02)
        return read_stats(self.stats)

    def test_counts_messages_over_reused_and_concurrent_sessions(self):
        a = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        b = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        code, caps = a.ehlo("bench")
        self.assertEqual(code, 250)
        self.assertIn(b"PIPELINING", caps)
        self.assertNotIn(b"STARTTLS", caps)
        # smtplib dot-stuffs the line that starts with ".": it must not end the message
        body = "Subject: one\r\n\r\n.\r\n..two dots\r\nend\r\n"
        self.assertEqual(a.sendmail("from@example.com", ["to@example.com"], body), {})
        self.assertEqual(b.sendmail("from@example.com", ["x@example.com", "y@example.com"],
                                    "Subject: b\r\n\r\nhello\r\n"), {})
        a.rset()  # connection reuse as libcurl does it: RSET, MAIL FROM again
        self.assertEqual(a.sendmail("from@example.com", ["to@example.com"], "Subject: 3\r\n\r\nx"), {})
        a.quit()
        b.quit()
        st = self.current()
        self.assertEqual(st["messages"], 3)
        self.assertEqual(st["sessions"], 2)
        self.assertGreater(st["last_ns"], 0)
        self.assertGreaterEqual(st["last_ns"], st["first_ns"])
        self.assertLess(abs(st["last_ns"] / 1e9 - time.time()), 60)

    def test_terminator_split_across_packets_and_pipelined_commands(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220"))
        # pipelined: EHLO, MAIL, RCPT and DATA in one packet, four answers back
        s.sendall(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
        lines = []
        while not lines or not lines[-1].startswith(b"354"):
            lines.append(f.readline())
        self.assertTrue(any(line.startswith(b"250 ") for line in lines))
        for part in (b"Subject: split\r\n\r\nbody\r", b"\n.", b"\r", b"\n"):
            s.sendall(part)
            time.sleep(0.05)
        self.assertTrue(f.readline().startswith(b"250"))
        s.sendall(b"QUIT\r\n")
        self.assertTrue(f.readline().startswith(b"221"))
        s.close()
        self.assertEqual(self.current()["messages"], 1)

    def test_reset_and_clean_exit(self):
        c = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        c.sendmail("a@b.c", ["d@e.f"], "Subject: x\r\n\r\ny")
        c.quit()
        self.assertEqual(self.current()["messages"], 1)
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.time() + 5
        while read_stats(self.stats)["messages"] != 0 and time.time() < deadline:
            time.sleep(0.02)
        self.assertEqual(read_stats(self.stats)["messages"], 0)
        self.assertEqual(read_stats(self.stats)["first_ns"], 0)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=10), 0)


class Recorder(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; answers 202 after `delay` seconds; keeps the bodies."""
    protocol_version = "HTTP/1.1"
    delay = 0.0
    seen = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Recorder.lock:
            Recorder.seen.append((self.headers.get("Authorization"), json.loads(body)))
        if Recorder.delay:
            time.sleep(Recorder.delay)
        out = b'{"status":"queued"}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class LoadgenTest(unittest.TestCase):
    def setUp(self):
        Recorder.seen = []
        Recorder.delay = 0.0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.tmp = tempfile.mkdtemp(prefix="lgtest-")
        self.body = os.path.join(self.tmp, "body")
        with open(self.body, "w") as f:
            f.write('{"client_id":"$ID","email":"$ID@bench.example","kind":"a","stored":"$CLIENT"}\n')
            f.write('{"client_id":"$ID","email":"$ID@bench.example","kind":"b","stored":"$CLIENT"}\n')
        self.plain = os.path.join(self.tmp, "plain")
        with open(self.plain, "w") as f:
            f.write('{"client_id":"$ID"}\n')

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_loadgen(self, *args, body=None):
        url = "http://127.0.0.1:%d/api/x" % self.server.server_address[1]
        p = subprocess.run([LOADGEN, "--url", url, "--body-file", body or self.plain,
                            "--header", "Authorization: Bearer t0ken"] + [str(a) for a in args],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = {}
        for line in p.stdout.decode().splitlines():
            k, v = line.split()
            out[k] = float(v) if k not in ("mode",) else v
        return out

    def test_fixed_rate_new_client_per_request(self):
        t = time.time()
        out = self.run_loadgen("--rate", 200, "--duration", 1, "--connections", 8,
                               "--threads", 2, "--id-prefix", "run1", "--clients", 3,
                               "--client-prefix", "stored", body=self.body)
        wall = time.time() - t
        self.assertEqual(out["mode"], "open-loop")
        self.assertEqual(out["sent"], 200)
        self.assertEqual(out["ok"], 200)
        self.assertEqual(out["status_202"], 200)
        self.assertEqual(out["errors"], 0)
        self.assertEqual(len(Recorder.seen), 200)
        ids = sorted(int(b["client_id"].split("-")[1]) for _, b in Recorder.seen)
        self.assertEqual(ids, list(range(200)))  # every request a new client, none twice
        for auth, b in Recorder.seen:
            self.assertEqual(auth, "Bearer t0ken")
            k = int(b["client_id"].split("-")[1])
            self.assertEqual(b["email"], "run1-%d@bench.example" % k)
            self.assertEqual(b["kind"], "ab"[k % 2])  # line k mod lines
            self.assertEqual(b["stored"], "stored-%d" % (k % 3))
        # the schedule spreads the 200 requests over the second, not at once
        self.assertGreater(wall, 0.9)
        self.assertGreater(out["accepted_per_s"], 100)
        self.assertLess(out["accepted_per_s"], 260)
        self.assertLessEqual(out["latency_ms_p50"], out["latency_ms_p99"])

    def test_open_loop_counts_the_wait_behind_a_slow_answer(self):
        # One connection, 50 ms per answer, 40 requests/s scheduled for 1 s: the
        # server can only do 20/s, so the later requests wait for the connection
        # and their latency counts that wait (from the schedule, not the send).
        Recorder.delay = 0.05
        timeline = os.path.join(self.tmp, "timeline")
        out = self.run_loadgen("--rate", 40, "--duration", 1, "--connections", 1,
                               "--threads", 1, "--timeline", timeline)
        self.assertEqual(out["ok"], 40)
        self.assertGreater(out["late_sends"], 20)
        # the last request was due at 0.975 s and answered at >= 40 * 50 ms = 2 s
        self.assertGreater(out["latency_ms_max"], 800)
        self.assertGreater(out["latency_ms_p99"], 600)
        self.assertGreaterEqual(out["latency_ms_p50"], 50)
        # from the send, each answer took its 50 ms: the rest was the queue
        self.assertGreaterEqual(out["answer_ms_p50"], 50)
        self.assertLess(out["answer_ms_p99"], 400)
        # one line for the one second the requests were due in
        with open(timeline) as f:
            lines = [ln.split() for ln in f if not ln.startswith("#")]
        self.assertEqual(len(lines), 1, lines)
        sec, answered, p50, p99, mx, late, ans99, ansmax = lines[0]
        self.assertEqual((sec, answered), ("0", "40"))
        self.assertAlmostEqual(float(p99), out["latency_ms_p99"], delta=0.01)
        self.assertGreater(float(late), 800)  # the last was sent over 0.8 s late
        self.assertLess(float(ans99), 400)
        self.assertLessEqual(float(ans99), float(ansmax))

    def test_timeline_has_a_line_per_second(self):
        out = self.run_loadgen("--rate", 20, "--duration", 3, "--connections", 2,
                               "--threads", 1, "--timeline", os.path.join(self.tmp, "tl"))
        self.assertEqual(out["ok"], 60)
        with open(os.path.join(self.tmp, "tl")) as f:
            lines = [ln.split() for ln in f if not ln.startswith("#")]
        self.assertEqual([(ln[0], ln[1]) for ln in lines], [("0", "20"), ("1", "20"),
                                                             ("2", "20")])

    def test_max_mode_and_request_count(self):
        out = self.run_loadgen("--rate", 0, "--requests", 57, "--connections", 5,
                               "--threads", 2)
        self.assertEqual(out["mode"], "max")
        self.assertEqual(out["sent"], 57)
        self.assertEqual(out["ok"], 57)
        self.assertEqual(len(Recorder.seen), 57)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Idle and slow connections from one address never take the API from
another (issue 17, item 4): 127.0.0.2 opens and holds 2,000 idle
connections and some that dribble a header byte every second, while
127.0.0.1 gets GET /api/crm/health answered within 100 ms. The server keeps
at most http.max_connections_per_address of them, and closes a connection
whose request headers are not in within http.header_timeout (seconds).

The server is started as most systems start a service: a soft descriptor
limit of 1024 (systemd's default, most shells'), the hard one higher. The
server raises its own soft limit to the hard one; one that does not runs out
of descriptors long before its connection slots."""

import errno
import resource
import select
import socket
import sys
import threading
import time

import harness
from harness import HeraldCase

ATTACKER = "127.0.0.2"
IDLE = 2000
DRIBBLERS = 40
# the shipped defaults (config.lua, docs/configuration.md)
PER_ADDRESS = 256
HEADER_TIMEOUT_S = 10
BOUND_S = 0.100


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def open_from(addr, port):
    """A connection from addr, its connect started (non-blocking)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((addr, 0))
    rc = s.connect_ex(("127.0.0.1", port))
    if rc not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(rc, "connect from %s failed" % addr)
    return s


def common_soft_limit():
    """In the server's child before exec: the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


def still_open(s):
    """Whether the server has not closed s (nothing readable, or data)."""
    try:
        p = select.poll()
        p.register(s, select.POLLIN)
        if not p.poll(0):
            return True
        return s.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


class Dribbler(threading.Thread):
    """Sends one byte of a request's headers per second on each socket."""

    HEAD = b"GET /api/crm/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks = socks
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(self.HEAD[i:i + 1])
                except OSError:
                    pass
            i = (i + 1) % len(self.HEAD)


def timed_health(port):
    """Seconds to a 200 from /api/crm/health on a fresh connection from
    127.0.0.1 (connect included); None when it did not come in 5 s."""
    t0 = time.monotonic()
    try:
        r = harness.http_request(port, "GET", "/api/crm/health", timeout=5)
    except OSError:
        return None
    return time.monotonic() - t0 if r.status == 200 else None


class SlowlorisTest(HeraldCase):
    @classmethod
    def setUpClass(cls):
        # the test's own sockets: IDLE + DRIBBLERS + a few
        raise_nofile(IDLE + DRIBBLERS + 1024)
        super().setUpClass()
        cls.server = cls.new_server(preexec_fn=common_soft_limit)

    def setUp(self):
        self.socks = []
        self.dribbler = None

    def tearDown(self):
        if self.dribbler:
            self.dribbler.stop.set()
            self.dribbler.join()
        for s in self.socks:
            s.close()

    def hold(self):
        port = self.server.port
        idle = [open_from(ATTACKER, port) for _ in range(IDLE)]
        slow = [open_from(ATTACKER, port) for _ in range(DRIBBLERS)]
        self.socks = idle + slow
        self.dribbler = Dribbler(slow)
        self.dribbler.start()
        time.sleep(1.5)  # the server has seen (and refused) them
        return idle, slow

    def test_other_address_is_answered_within_100ms(self):
        self.hold()
        times = [timed_health(self.server.port) for _ in range(20)]
        answered = sorted(t for t in times if t is not None)
        print("health from 127.0.0.1, ms:", [round(t * 1000, 1) for t in answered],
              file=sys.stderr)
        self.assertEqual(len(answered), len(times),
                         "health unanswered from 127.0.0.1 while %s holds %d connections: %r"
                         % (ATTACKER, IDLE, times))
        # a loaded 2-core machine (or the sanitizer build) may delay a few;
        # most must be in, and the median well within the bound
        within = sum(1 for t in answered if t < BOUND_S)
        self.assertGreaterEqual(within, 16, "latencies (s): %r" % answered)
        self.assertLess(answered[len(answered) // 2], BOUND_S, "latencies (s): %r" % answered)

    def test_one_address_holds_at_most_its_limit(self):
        idle, slow = self.hold()
        held = sum(1 for s in self.socks if still_open(s))
        self.assertLessEqual(held, PER_ADDRESS,
                             "%d of %d connections from %s still held" %
                             (held, len(self.socks), ATTACKER))
        # a header that never completes is cut off, dribbled or not
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 5
        while time.monotonic() < deadline:
            held = sum(1 for s in self.socks if still_open(s))
            if held == 0:
                break
            time.sleep(0.5)
        self.assertEqual(held, 0, "connections still held past the header timeout")
        # and the address may connect again once they are gone
        s = open_from(ATTACKER, self.server.port)
        self.socks.append(s)
        s.setblocking(True)
        s.settimeout(5)
        s.sendall(b"GET /api/crm/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])


if __name__ == "__main__":
    import unittest
    unittest.main()

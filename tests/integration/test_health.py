"""GET /api/crm/health with both services up, with Redis stopped and
restarted, with the database unreachable; GET /metrics valid per promtool."""

import re
import shutil
import subprocess
import time

import harness
from harness import HeraldCase, PrivateRedis, claims, make_jwt, redis_ping

HEALTH = "/api/crm/health"


def metric_value(text, name, labels=None):
    """The value of one sample of the Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if labels is None and not got or labels is not None and got == labels:
            return float(m.group(4))
    return None


class HealthUpTest(HeraldCase):
    start_server = True

    def test_health_without_a_token_says_only_what_is_up(self):
        # issue 17 item 15: no versions, latencies or script errors (file
        # paths) for an unauthenticated caller, nor for a token without admin
        for hdr in [None, {"Authorization": "Bearer " + make_jwt(claims(scope="send read"))},
                    {"Authorization": "Bearer garbage"}]:
            with self.subTest(headers=hdr):
                r = self.server.get(HEALTH, headers=hdr)
                self.assertEqual(r.status, 200, r)
                doc = r.json
                self.assertEqual(set(doc), {"status", "database", "redis", "scripts"}, doc)
                self.assertEqual(doc["database"], {"status": "up"})
                self.assertEqual(doc["redis"], {"status": "up"})
                self.assertEqual(set(doc["scripts"]), {"status", "generation"}, doc)

    def test_health_is_200_with_both_up(self):
        r = self.server.get(HEALTH, token=make_jwt(claims(scope="admin")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json")
        doc = r.json
        self.assertEqual(doc["status"], "ok")
        version = harness.cli("version").stdout.split()[-1]
        self.assertEqual(doc["version"], version)
        self.assertIsInstance(doc["uptime_s"], (int, float))
        self.assertGreaterEqual(doc["uptime_s"], 0)
        self.assertLess(doc["uptime_s"], 3600)
        self.assertEqual(doc["database"]["status"], "up", doc)
        self.assertEqual(doc["redis"]["status"], "up", doc)

    def test_health_needs_no_token(self):
        r = self.server.get(HEALTH, headers={"Authorization": "Bearer garbage"})
        self.assertEqual(r.status, 200, r)

    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is not installed (apt-get install prometheus)")
        # populate counters and histograms of several routes and statuses
        self.server.get(HEALTH)
        self.server.get("/api/crm/auth/me")
        self.server.get("/no/such/route")
        self.server.request("DELETE", HEALTH)
        self.server.get("/api/crm/auth/me", token=make_jwt(claims()))
        time.sleep(0.1)
        r = self.server.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain"), r)
        p = subprocess.run([promtool, "check", "metrics"], input=r.body,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics failed:\n%s%s\n--- metrics:\n%s"
                         % (p.stdout.decode(), p.stderr.decode(), r.body.decode()))
        text = r.body.decode()
        for family in ["herald_http_requests_total", "herald_http_request_duration_seconds",
                       "herald_db_pool_connections", "herald_redis_up"]:
            self.assertRegex(text, r"(?m)^# TYPE %s " % family)
        self.assertEqual(metric_value(text, "herald_redis_up"), 1.0, text)
        self.assertIsNotNone(metric_value(text, "herald_db_pool_connections",
                                          {"state": "in_use"}), text)
        self.assertIsNotNone(metric_value(text, "herald_db_pool_connections",
                                          {"state": "idle"}), text)

    def _scrape(self):
        r = self.server.get("/metrics")
        self.assertEqual(r.status, 200, r)
        return r.body.decode()

    def test_request_counter_counts_exactly_the_calls(self):
        labels = {"route": "/api/crm/auth/me", "method": "GET", "status": "401"}
        hist = {"route": "/api/crm/auth/me", "method": "GET"}
        before = self._scrape()
        c0 = metric_value(before, "herald_http_requests_total", labels) or 0
        h0 = metric_value(before, "herald_http_request_duration_seconds_count", hist) or 0
        for _ in range(3):
            self.assertEqual(self.server.get("/api/crm/auth/me").status, 401)
        # the count is taken when the request completes, maybe just after the
        # client has its answer: poll briefly, then insist on the exact delta
        deadline = time.time() + 3
        while True:
            after = self._scrape()
            c1 = metric_value(after, "herald_http_requests_total", labels) or 0
            if c1 >= c0 + 3 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(c1 - c0, 3, after)
        h1 = metric_value(after, "herald_http_request_duration_seconds_count", hist) or 0
        self.assertGreaterEqual(h1 - h0, 3, after)
        inf = metric_value(after, "herald_http_request_duration_seconds_bucket",
                           dict(hist, le="+Inf"))
        self.assertEqual(inf, h1, after)


class RedisDownTest(HeraldCase):
    """Redis goes away under a running server, then comes back."""

    def setUp(self):
        harness.ensure_migrated()
        self.redis = PrivateRedis().start()
        self.addCleanup(self.redis.cleanup)
        self.srv = self.new_server(redis=self.redis.url, name="herald (private redis)")

    def _health(self):
        t0 = time.time()
        r = self.srv.get(HEALTH)
        self.assertLess(time.time() - t0, 5, "health must answer quickly even with Redis down")
        return r

    def _metrics(self):
        return self.srv.get("/metrics").body.decode()

    def test_health_degrades_and_recovers(self):
        r = self._health()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["redis"]["status"], "up")

        port = self.redis.port
        self.redis.kill()
        self.assertFalse(redis_ping(port))

        r = self._health()
        self.assertEqual(r.status, 503, r)
        self.assertEqual((r.header("Content-Type") or "").split(";")[0], "application/json")
        self.assertEqual(r.json["status"], "degraded", r)
        self.assertEqual(r.json["redis"]["status"], "down", r)
        self.assertEqual(r.json["database"]["status"], "up", r)
        detail = self.srv.get(HEALTH, token=make_jwt(claims(scope="admin")))
        self.assertEqual(detail.json["version"], harness.cli("version").stdout.split()[-1])

        # the rest of the engine keeps serving
        me = self.srv.get("/api/crm/auth/me", token=make_jwt(claims(sub="redis-down")))
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json["sub"], "redis-down")
        _, key = harness.create_api_key("read")
        tok = self.srv.post_json("/api/crm/auth/token", {"api_key": key})
        self.assertEqual(tok.status, 200, tok)
        m = self._metrics()
        self.assertEqual(metric_value(m, "herald_redis_up"), 0.0, m)
        self.assertEqual(metric_value(m, "herald_db_up"), 1.0, m)
        # still degraded on a second look (not a one-off failure)
        self.assertEqual(self._health().status, 503)

        # Redis back on the same port: healthy again within a few seconds
        self.redis.start()
        deadline = time.time() + 10
        while True:
            r = self._health()
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(r.status, 200, "health did not recover after Redis came back: %r" % r)
        self.assertEqual(r.json["status"], "ok")
        self.assertEqual(r.json["redis"]["status"], "up")
        self.assertEqual(metric_value(self._metrics(), "herald_redis_up"), 1.0)

        code = self.srv.stop()
        self.assertEqual(code, 0, "herald serve exited with %r after SIGTERM" % code)

    def test_metrics_alone_notice_redis_down(self):
        # A Prometheus scrape is often the only traffic: herald_redis_up must
        # not keep saying 1 just because nothing else has touched Redis since
        # it died (herald_db_up is probed on every scrape; Redis must be too).
        self.assertEqual(metric_value(self._metrics(), "herald_redis_up"), 1.0)
        self.redis.kill()
        deadline = time.time() + 5
        while True:
            up = metric_value(self._metrics(), "herald_redis_up")
            if up == 0.0 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(up, 0.0, "herald_redis_up still %r 5 s after Redis died "
                                  "(only /metrics was called)" % up)

class ServiceDownAtStartTest(HeraldCase):

    def test_starts_degraded_when_redis_is_down_at_start(self):
        dead = "redis://127.0.0.1:%d/0" % harness.free_port()
        srv = self.new_server(redis=dead, name="herald (no redis)")
        r = srv.get(HEALTH)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["status"], "degraded")
        self.assertEqual(r.json["redis"]["status"], "down")
        self.assertEqual(r.json["database"]["status"], "up")
        self.assertEqual(srv.stop(), 0)

    def test_health_is_down_without_the_database(self):
        url = "postgresql://herald@127.0.0.1:%d/herald" % harness.free_port()
        srv = self.new_server(env={"HERALD_DATABASE_URL": url}, name="herald (no database)")
        r = srv.get(HEALTH)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["status"], "down", r)
        self.assertEqual(r.json["database"]["status"], "down", r)
        self.assertEqual(r.json["redis"]["status"], "up", r)
        # API errors say the service is unavailable, not that the key is bad
        t = srv.post_json("/api/crm/auth/token", {"api_key": "hk_000000000000_" + "A" * 43})
        self.assertError(t, 503)
        m = srv.get("/metrics").body.decode()
        self.assertEqual(metric_value(m, "herald_db_up"), 0.0, m)
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    harness.main()

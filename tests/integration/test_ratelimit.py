"""API rate limits (issue 13): each token subject has its share of the API
(limits.api_rate, limits.api_burst); past it, 429 with Retry-After and the JSON
error body, and another subject is unaffected."""

import subprocess
import time
import unittest

import harness
from harness import HeraldCase

ME = "/api/crm/auth/me"
TOKEN = "/api/crm/auth/token"
REFRESH = "/api/crm/auth/refresh"


class ApiLimitTest(HeraldCase):

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()
        cls.server = cls.new_server(env={"HERALD_LIMIT_API_RATE": "2",
                                         "HERALD_LIMIT_API_BURST": "5"})

    def test_past_the_burst_is_429_and_others_go_on(self):
        _, key_a = harness.create_api_key("read")
        _, key_b = harness.create_api_key("read")
        a = self.server.token_for(key_a)["access_token"]
        b = self.server.token_for(key_b)["access_token"]
        statuses = [self.server.get(ME, token=a) for _ in range(8)]
        ok = [r for r in statuses if r.status == 200]
        refused = [r for r in statuses if r.status == 429]
        # 5 at once, and at 2/s at most one more while the 8 are asked
        self.assertIn(len(ok), (5, 6), [r.status for r in statuses])
        self.assertEqual(len(ok) + len(refused), 8)
        r = refused[0]
        self.assertEqual(r.json["error"]["code"], "rate_limited")
        self.assertIn(r.headers.get("Retry-After"), ("1",))
        # another subject has its own bucket
        self.assertEqual(self.server.get(ME, token=b).status, 200)
        # after the wait, the first goes on
        time.sleep(1.1)
        self.assertEqual(self.server.get(ME, token=a).status, 200)

    def test_unauthenticated_routes_are_not_counted_here(self):
        for _ in range(10):
            self.assertEqual(self.server.get("/api/crm/health").status, 200)


class AuthFailureLimitTest(HeraldCase):

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()
        cls.server = cls.new_server(env={"HERALD_LIMIT_AUTH_FAILURES": "7"})

    def test_refused_before_the_next_key_is_checked(self):
        _, good = harness.create_api_key("read")
        # a fresh bucket for this run (an earlier run's lasts up to a minute)
        subprocess.run(["redis-cli", "-u", harness.redis_url(), "DEL",
                        "herald:limit:authfail:7:127.0.0.1"], check=True,
                       stdout=subprocess.DEVNULL)
        statuses = [self.server.post_json(TOKEN, {"api_key": "hk_wrong%d" % i}).status
                    for i in range(7)]
        self.assertEqual(statuses, [401] * 7)
        r = self.server.post_json(TOKEN, {"api_key": good})
        # the 8th is refused before it is even checked, a good key too
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json["error"]["code"], "rate_limited")
        self.assertGreaterEqual(int(r.headers.get("Retry-After")), 1)
        r = self.server.post_json(REFRESH, {"refresh_token": "nope"})
        self.assertEqual(r.status, 429)
        m = self.server.get("/metrics").body.decode()
        self.assertIn('crm_rate_limited_total{bucket="auth_failures",kind="shared"} 2', m)
        self.assertIn("crm_auth_failures_total 7", m)
        self.assertNotIn("hk_wrong", self.server.stderr())
        self.assertEqual(sum(1 for ln in self.server.log_lines()
                             if ln.get("msg") == "auth: credential refused"), 7)


class SourceFloodTest(HeraldCase):

    @classmethod
    def setUpClass(cls):
        harness.ensure_migrated()
        super().setUpClass()
        cls.server = cls.new_server(env={"HERALD_LIMIT_TRACKING_RATE": "0.5"})

    def test_tracking_flood_is_429_and_the_api_goes_on(self):
        subprocess.run(["redis-cli", "-u", harness.redis_url(), "DEL",
                        "herald:limit:src:tracking:0.5:127.0.0.1"], check=True,
                       stdout=subprocess.DEVNULL)
        # rate 0.5/s: a burst of 1, then one every 2 s
        first = self.server.get("/t/o/not-a-token").status
        self.assertNotEqual(first, 429)
        r = self.server.get("/t/o/not-a-token")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.headers.get("Retry-After"), "2")
        self.assertEqual(self.server.get("/api/crm/health").status, 200)
        m = self.server.get("/metrics").body.decode()
        self.assertIn('crm_rate_limited_total{bucket="tracking",kind="shared"} 1', m)


if __name__ == "__main__":
    unittest.main()

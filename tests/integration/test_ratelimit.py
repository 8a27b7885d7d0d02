"""API rate limits (issue 13): each token subject has its share of the API
(limits.api_rate, limits.api_burst); past it, 429 with Retry-After and the JSON
error body, and another subject is unaffected."""

import time
import unittest

import harness
from harness import HeraldCase

ME = "/api/crm/auth/me"


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


if __name__ == "__main__":
    unittest.main()

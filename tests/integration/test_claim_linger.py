"""engine.claim_linger_ms (issue 16): when the last claim emptied the queue,
the next waits up to that long for more messages, so one claim statement
(and its mark and outcome statements) carries several. Measured with
crm_claims_total / crm_claimed_jobs_total: the same eight messages, posted
one every 40 ms, take one claim each without a linger and share a few with
one; and a linger never holds a message longer than itself."""
import os
import shutil
import tempfile
import time
import unittest

import harness


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class ClaimLingerTest(harness.HeraldCase):
    def start(self, linger_ms):
        tmp = tempfile.mkdtemp(prefix="herald-linger-")
        self.addCleanup(shutil.rmtree, tmp, True)
        db_url, drop_db = harness.fresh_database()
        self.addCleanup(drop_db)
        server = self.new_server(env={"HERALD_DATABASE_URL": db_url,
                                      "HERALD_OUTBOX_DIR": os.path.join(tmp, "out"),
                                      "HERALD_WORKERS": "2",
                                      "HERALD_CLAIM_LINGER_MS": str(linger_ms)})
        return server

    def counters(self, server):
        return harness.counters(server, "crm_claims_total", "crm_claimed_jobs_total")

    def post(self, server):
        return harness.post_welcome(server, auth())

    def run_eight(self, server):
        """Posts eight messages 40 ms apart; returns (claims, jobs) between
        the first post and the last message sent, and the seconds that took."""
        # the engine's first, idle claim is made (and counted) before we measure
        time.sleep(0.5)
        claims0, jobs0 = self.counters(server)
        t0 = time.time()
        ids = []
        for _ in range(8):
            ids.append(self.post(server))
            time.sleep(0.04)
        pending = set(ids)
        deadline = time.time() + 20
        while pending and time.time() < deadline:
            for cid in list(pending):
                r = server.request("GET", "/api/crm/communications/" + cid, headers=auth())
                self.assertEqual(r.status, 200, r)
                if r.json["status"] == "sent":
                    pending.discard(cid)
            time.sleep(0.02)
        self.assertFalse(pending, "not sent in 20 s")
        took = time.time() - t0
        claims1, jobs1 = self.counters(server)
        return claims1 - claims0, jobs1 - jobs0, took

    def test_without_a_linger_each_message_is_claimed_alone(self):
        server = self.start(0)
        claims, jobs, _ = self.run_eight(server)
        self.assertEqual(jobs, 8)
        # one claim per message, plus the idle polls of the wait (no more
        # than one a second per worker)
        self.assertGreaterEqual(claims, 8, (claims, jobs))

    def test_a_linger_lets_one_claim_carry_several(self):
        server = self.start(1000)
        claims, jobs, took = self.run_eight(server)
        self.assertEqual(jobs, 8)
        # the eight posts take about 0.4 s: the first claim lingers a second
        # and takes what came meanwhile; empty idle polls add at most two
        self.assertLessEqual(claims, 4, (claims, jobs))
        # the linger bounds the wait: a message waits at most about 1 s for
        # its claim (20 s would mean the linger did not end)
        self.assertLess(took, 8, took)


if __name__ == "__main__":
    unittest.main()

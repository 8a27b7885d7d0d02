"""engine.outcome_linger_ms (issue 16): a worker that has one send's outcome
waits up to that long for its other sends in flight, so one statement records
several. Measured with crm_outcome_writes_total / crm_outcomes_total: three
emails sent 60 ms apart through an SMTP sink that answers each 200 ms later
(all well inside the 500 ms after which a send counts as stalled and is not
waited for) come back apart while the worker holds all three; without a
linger each is written alone, with one they share a write. A lone send is
not held at all."""
import os
import shutil
import signal
import tempfile
import time
import unittest

import harness


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class OutcomeLingerTest(harness.HeraldCase):
    def start(self, linger_ms):
        tmp = tempfile.mkdtemp(prefix="herald-olinger-")
        self.addCleanup(shutil.rmtree, tmp, True)
        sink, port, _ = harness.start_smtp_sink(tmp, "--latency-ms", "200")
        self.addCleanup(sink.wait, 10)
        self.addCleanup(sink.send_signal, signal.SIGTERM)
        db_url, drop_db = harness.fresh_database()
        self.addCleanup(drop_db)
        # one worker, so the three sends are in flight on the same one; no
        # claim linger, so each message is claimed (and sent) when posted
        return self.new_server(env={"HERALD_DATABASE_URL": db_url,
                                    "HERALD_EMAIL_DRIVER": "smtp",
                                    "HERALD_SMTP_URL": "smtp://127.0.0.1:%d" % port,
                                    "HERALD_SMTP_STARTTLS": "off",
                                    "HERALD_WORKERS": "1",
                                    "HERALD_CLAIM_LINGER_MS": "0",
                                    "HERALD_OUTCOME_LINGER_MS": str(linger_ms)})

    def counters(self, server):
        return harness.counters(server, "crm_outcome_writes_total", "crm_outcomes_total")

    def post(self, server):
        return harness.post_welcome(server, auth())

    def run_three(self, server):
        """Posts three emails 60 ms apart; returns (outcome writes, outcomes)
        until all three are sent, and the seconds from the last post until
        then."""
        time.sleep(0.3)  # the engine's first, idle claim is behind us
        writes0, outcomes0 = self.counters(server)
        ids = []
        for _ in range(3):
            ids.append(self.post(server))
            time.sleep(0.06)
        last_post = time.time() - 0.06
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
        took = time.time() - last_post
        writes1, outcomes1 = self.counters(server)
        return writes1 - writes0, outcomes1 - outcomes0, took

    def test_without_a_linger_each_outcome_is_written_alone(self):
        server = self.start(0)
        writes, outcomes, _ = self.run_three(server)
        self.assertEqual(outcomes, 3)
        self.assertEqual(writes, 3, "outcomes 60 ms apart, no linger: one write each")

    def test_a_linger_writes_the_outcomes_in_flight_together(self):
        server = self.start(1000)
        writes, outcomes, took = self.run_three(server)
        self.assertEqual(outcomes, 3)
        self.assertEqual(writes, 1, "the first outcome waits for the two still in flight")
        self.assertLess(took, 5.0)

    def test_a_lone_send_is_not_held(self):
        server = self.start(1000)
        time.sleep(0.3)
        t0 = time.time()
        cid = self.post(server)
        while time.time() - t0 < 20:
            r = server.request("GET", "/api/crm/communications/" + cid, headers=auth())
            if r.json["status"] == "sent":
                break
            time.sleep(0.02)
        # nothing else in flight: the 200 ms answer, not the 1 s linger on top
        self.assertLess(time.time() - t0, 0.9)


if __name__ == "__main__":
    unittest.main()

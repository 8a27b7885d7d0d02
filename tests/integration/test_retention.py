"""Retention (issue 12): ended messages older than
retention.communications_days (with their attempts and events) and events older
than retention.events_days are deleted in batches while the API keeps
answering; messages still waiting are kept, newer ones are kept, and the daily
analytics rollups of the deleted days stay."""
import subprocess
import threading
import time
import unittest

import harness

OLD = 6000       # ended messages 800 days old
BATCH = 500


def auth():
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope="send read"))}


class RetentionTest(harness.HeraldCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db_url, cls.drop_db = harness.fresh_database()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def sql(self, q):
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            self.db_url, "-c", q], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode().strip()

    def insert(self, n, days_ago, status, client="ret-old"):
        self.sql("INSERT INTO crm_communications (plan_id, client_id, message_type, urgency, "
                 "primary_channel, channel, status, send_at, created_at, sent_at) "
                 "SELECT 'p', '%s', 'welcome', 'normal', 'email', 'email', '%s', "
                 "now() - interval '%d days', now() - interval '%d days', "
                 "now() - interval '%d days' FROM generate_series(1, %d)"
                 % (client, status, days_ago, days_ago, days_ago, n))

    def test_old_rows_go_in_batches_while_the_api_answers(self):
        self.insert(OLD, 800, "delivered")
        # Idempotency-Key records: expired ones go (they answer nothing any
        # more), the ones still in their 24 hours stay
        self.sql("INSERT INTO crm_idempotency_keys (principal, idempotency_key, request_hash, "
                 "state, response_status, response_body, created_at, expires_at) "
                 "SELECT 'ret', 'old-' || i, repeat('a', 64), 'done', 202, '{}', "
                 "now() - interval '3 days', now() - interval '2 days' "
                 "FROM generate_series(1, %d) i" % (BATCH * 2 + 3))
        self.sql("INSERT INTO crm_idempotency_keys (principal, idempotency_key, request_hash) "
                 "VALUES ('ret', 'fresh', repeat('b', 64))")
        self.insert(5, 800, "queued", client="ret-waiting")  # still waiting: kept
        self.insert(7, 10, "delivered", client="ret-recent")
        # attempts and events of the old messages; old events of recent ones
        self.sql("INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, "
                 "status, occurred_at) SELECT id, 'event', 'email', 'delivered', 'delivered', "
                 "created_at FROM crm_communications")
        self.sql("INSERT INTO crm_delivery_logs (communication_id, kind, channel, event_type, "
                 "status, occurred_at) SELECT id, 'event', 'email', 'open', 'open', "
                 "now() - interval '100 days' FROM crm_communications WHERE client_id = "
                 "'ret-recent'")
        server = self.new_server(env={
            "HERALD_DATABASE_URL": self.db_url, "HERALD_WORKERS": "1",
            "HERALD_RETENTION_COMMUNICATIONS_DAYS": "730",
            "HERALD_RETENTION_EVENTS_DAYS": "90",
            "HERALD_RETENTION_BATCH_SIZE": str(BATCH), "HERALD_RETENTION_PAUSE_MS": "20",
            "HERALD_RETENTION_INTERVAL_SECONDS": "1"})

        # the API answers all along
        stop, slowest, statuses = threading.Event(), [0.0], []

        def probe():
            while not stop.is_set():
                t0 = time.time()
                r = server.request("GET", "/api/crm/communications?client_id=ret-recent",
                                   headers=auth())
                slowest[0] = max(slowest[0], time.time() - t0)
                statuses.append(r.status)
                time.sleep(0.02)
        t = threading.Thread(target=probe)
        t.start()
        try:
            gone = harness.wait_until(lambda: self.sql(
                "SELECT count(*) FROM crm_communications WHERE client_id = 'ret-old'") == "0",
                60, interval=0.2)
        finally:
            stop.set()
            t.join()
        self.assertTrue(gone, "old messages left: " + self.sql(
            "SELECT count(*) FROM crm_communications WHERE client_id = 'ret-old'"))
        self.assertEqual(set(statuses), {200})
        self.assertGreater(len(statuses), 5)
        self.assertLess(slowest[0], 1.0)

        # batches, one process: the log says how many
        line = server.wait_log(lambda ln: ln.get("msg", "").startswith("retention:")
                               and ln.get("what") == "communications", timeout=10)
        self.assertIsNotNone(line, server.stderr()[-2000:])
        self.assertEqual(int(line["rows"]), OLD)
        self.assertGreaterEqual(int(line["batches"]), OLD // BATCH)

        # kept: waiting messages, recent ones; their old events went, not the recent ones
        self.assertEqual(self.sql("SELECT count(*) FROM crm_communications WHERE client_id = "
                                  "'ret-waiting'"), "5")
        self.assertEqual(self.sql("SELECT count(*) FROM crm_communications WHERE client_id = "
                                  "'ret-recent'"), "7")
        harness.wait_until(lambda: self.sql(
            "SELECT count(*) FROM crm_delivery_logs WHERE event_type = 'open'") == "0", 20)
        self.assertEqual(self.sql("SELECT count(*) FROM crm_delivery_logs WHERE event_type = "
                                  "'open'"), "0")
        self.assertEqual(self.sql(
            "SELECT count(*) FROM crm_delivery_logs l JOIN crm_communications c ON "
            "c.id = l.communication_id WHERE c.client_id = 'ret-recent'"), "7")
        # the cascade took the old messages' logs
        self.assertEqual(self.sql("SELECT count(*) FROM crm_delivery_logs WHERE "
                                  "communication_id IS NULL"), "0")
        harness.wait_until(lambda: self.sql(
            "SELECT count(*) FROM crm_idempotency_keys WHERE principal = 'ret'") == "1", 20)
        self.assertEqual(self.sql("SELECT string_agg(idempotency_key, ',') FROM "
                                  "crm_idempotency_keys WHERE principal = 'ret'"), "fresh")
        # the deleted day's counters stay (deleting does not subtract)
        total = self.sql("SELECT coalesce(sum(total), 0) FROM (SELECT total FROM "
                         "crm_analytics_daily WHERE day = (now() - interval '800 days')::date "
                         "UNION ALL SELECT total FROM crm_analytics_pending("
                         "(now() - interval '800 days')::date, (now() - interval '800 days')::date)"
                         ") x")
        self.assertEqual(int(total), OLD + 5)

    # The analytics are counters that deleting a message does not touch, so
    # a short period no longer reaches them (it was at least 40 days while
    # the last 35 days were recomputed from the messages).
    def test_a_short_period_is_accepted_and_a_negative_one_refused(self):
        env = harness.base_env(HERALD_DATABASE_URL=self.db_url)
        r = harness.cli("check", env=dict(env, HERALD_RETENTION_COMMUNICATIONS_DAYS="1"))
        self.assertEqual(r.code, 0, r.stderr)
        r = harness.cli("check", env=dict(env, HERALD_RETENTION_COMMUNICATIONS_DAYS="-1"))
        self.assertNotEqual(r.code, 0)
        self.assertIn("retention.communications_days", r.stderr)


if __name__ == "__main__":
    unittest.main()

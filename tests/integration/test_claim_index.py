"""The workers' claim reads the queue through its index, whatever the
planner's statistics say (migration 0019, crm_claim_jobs; issue 16).

crm_jobs is a queue: autovacuum analyzes it when it holds a few jobs, most of
them in flight, so the planner believes next to no row is claimable. Planned
on those statistics, the claim's query reads every row of the table and sorts
every due job: its cost grew with the backlog. The test builds that situation
(statistics taken on 30 leased jobs, then a backlog of 40,000), checks that
the plain query does read the whole table there (so the check below can
fail), and that crm_claim_jobs() claims 16 jobs with no sequential scan,
fetching fewer than 200 rows (the transaction's own table counters).
It also checks what the claim returns: the most urgent due jobs in order,
never one under a live lease or not yet due, an expired lease taken over and
reported as recovered, and the new lease written."""
import subprocess
import unittest

import harness

BACKLOG = 40000

# The claim's selection as it was written before migration 0019.
PLAIN = ("SELECT t.id FROM crm_jobs t "
         "WHERE t.kind IN ('send', 'no_receipt', 'receipt', 'alert') AND t.due_at <= now() "
         "AND (t.lease_expires_at IS NULL OR t.lease_expires_at < now()) "
         "ORDER BY t.priority DESC, t.due_at LIMIT 16 FOR UPDATE SKIP LOCKED")


def psql(url, sql):
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
                       input=sql.encode(), capture_output=True)
    if r.returncode != 0:
        raise AssertionError("psql failed: %s" % r.stderr.decode())
    return r.stdout.decode().strip()


def scans(url, statement):
    """How `statement` read crm_jobs, from the transaction's own table counters
    (pg_stat_xact_user_tables, which count a function's statements too):
    (sequential scans, rows they read, rows fetched through an index)."""
    out = psql(url, "BEGIN; " + statement + "; SELECT seq_scan, seq_tup_read, idx_tup_fetch "
               "FROM pg_stat_xact_user_tables WHERE relname = 'crm_jobs'; ROLLBACK;")
    return tuple(int(x) for x in out.splitlines()[-1].split("|"))


class ClaimIndexTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url, cls.drop = harness.fresh_database()
        # statistics as autovacuum leaves them on a busy queue: taken when the
        # table held a few live jobs, all under lease (in flight), the rest
        # processed and deleted; so the planner expects next to no claimable
        # row wherever the table's pages are. No autovacuum of this queue while
        # the test runs: an analyze of the backlog would let the planner find
        # the index by itself.
        psql(cls.url, f"""
            ALTER TABLE crm_jobs SET (autovacuum_enabled = false);
            INSERT INTO crm_communications (id, client_id, message_type, urgency,
                                            primary_channel, send_at, status)
            SELECT gen_random_uuid(), 'c' || g, 'welcome', 'high', 'email', now(), 'queued'
            FROM generate_series(1, {BACKLOG}) g;
            INSERT INTO crm_jobs (communication_id, kind, priority, due_at)
            SELECT id, 'send', 50, now() FROM crm_communications;
            DELETE FROM crm_jobs
            WHERE id NOT IN (SELECT id FROM crm_jobs ORDER BY id DESC LIMIT 30);
            UPDATE crm_jobs SET lease_owner = 'then', lease_expires_at = now() + interval '5 min';
        """)
        psql(cls.url, "VACUUM ANALYZE crm_jobs")
        psql(cls.url, "DELETE FROM crm_jobs")
        # then a backlog: the other messages' send jobs at three priorities,
        # due over the last minute; at the head of the queue, 40 under a live
        # lease, 10 whose lease expired, and 30 due only tomorrow (at the top
        # priority, so an ordered walk meets them first)
        psql(cls.url, """
            INSERT INTO crm_jobs (communication_id, kind, priority, due_at)
            SELECT m.id, 'send', (ARRAY[20, 50, 80])[1 + (row_number() OVER ()) % 3],
                   now() - make_interval(secs => random() * 60)
            FROM crm_communications m
            WHERE NOT EXISTS (SELECT 1 FROM crm_jobs j WHERE j.communication_id = m.id);
            UPDATE crm_jobs SET lease_owner = 'other', lease_expires_at = now() + interval '5 min'
            WHERE id IN (SELECT id FROM crm_jobs ORDER BY priority DESC, due_at LIMIT 40);
            UPDATE crm_jobs SET lease_owner = 'gone', lease_expires_at = now() - interval '1 s'
            WHERE id IN (SELECT id FROM crm_jobs WHERE lease_owner IS NULL
                         ORDER BY priority DESC, due_at LIMIT 10);
            UPDATE crm_jobs SET priority = 100, due_at = now() + interval '1 day'
            WHERE id IN (SELECT id FROM crm_jobs WHERE lease_owner IS NULL
                         ORDER BY priority, due_at LIMIT 30);
        """)

    @classmethod
    def tearDownClass(cls):
        cls.drop()

    def test_the_plain_query_reads_the_whole_table_on_these_statistics(self):
        # the situation the function is for: if this stops holding (the
        # planner chooses the index by itself), the next test proves nothing
        seq, seq_rows, _ = scans(self.url, "SELECT count(*) FROM (" + PLAIN + ") q")
        self.assertEqual(seq, 1)
        self.assertGreaterEqual(seq_rows, BACKLOG - 100)

    def test_the_claim_reads_a_fraction_of_the_table(self):
        seq, seq_rows, fetched = scans(self.url,
                                       "SELECT count(*) FROM crm_claim_jobs(16, 'w', 30)")
        self.assertEqual((seq, seq_rows), (0, 0))
        # the 40 live leases, the 30 not due and the 16 claimed (and the
        # update of those 16 through the primary key)
        self.assertLess(fetched, 200)
        self.assertGreaterEqual(fetched, 16)

    def test_the_claim_takes_the_most_urgent_due_jobs_in_order(self):
        out = psql(self.url, """
            BEGIN;
            CREATE TEMP TABLE expected AS
              SELECT id, lease_owner IS NOT NULL AS recovered FROM crm_jobs
              WHERE due_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
              ORDER BY priority DESC, due_at LIMIT 16;
            CREATE TEMP TABLE got AS
              SELECT * FROM crm_claim_jobs(16, 'me', 30) WITH ORDINALITY;
            SELECT (SELECT json_agg(id ORDER BY id) FROM expected)::text
                   = (SELECT json_agg(job_id ORDER BY job_id) FROM got)::text,
                   (SELECT count(*) FROM got WHERE recovered),
                   (SELECT count(*) FROM expected WHERE recovered),
                   (SELECT count(*) FROM crm_jobs j JOIN got g ON g.job_id = j.id
                    WHERE j.lease_owner = 'me'
                      AND j.lease_expires_at BETWEEN now() + interval '29 s'
                                                 AND now() + interval '31 s'),
                   (SELECT count(*) FROM got g JOIN crm_jobs j ON j.id = g.job_id
                    JOIN crm_communications m ON m.id = j.communication_id
                    WHERE g.communication_id = j.communication_id AND g.kind = 'send'
                      AND g.priority = j.priority AND g.status = 'queued'
                      AND g.client_id = m.client_id AND g.channels = 'email'
                      AND NOT g.batch AND NOT g.resend AND g.prefs_version IS NULL),
                   (SELECT bool_and(o.ok) FROM (
                      SELECT (-j.priority::int, j.due_at) >= lag((-j.priority::int, j.due_at))
                             OVER (ORDER BY g.ordinality) IS NOT FALSE AS ok
                      FROM got g JOIN crm_jobs j ON j.id = g.job_id) o),
                   (SELECT count(*) FROM got g JOIN crm_jobs j ON j.id = g.job_id
                    WHERE j.due_at > now());
            ROLLBACK;
        """)
        same, recovered, expected_recovered, leased, faithful, ordered, future = out.split("|")
        self.assertEqual(same, "t", "the claim took other jobs than the 16 most urgent due")
        self.assertEqual(recovered, "10", "the 10 expired leases come first and are recovered")
        self.assertEqual(expected_recovered, "10")
        self.assertEqual(leased, "16")
        self.assertEqual(faithful, "16", "the rows carry their jobs' and messages' values")
        self.assertEqual(ordered, "t", "the batch comes most urgent first, then oldest due")
        self.assertEqual(future, "0")

    def test_a_second_claim_does_not_take_what_the_first_leased(self):
        out = psql(self.url, """
            BEGIN;
            CREATE TEMP TABLE a AS SELECT job_id FROM crm_claim_jobs(16, 'a', 30);
            CREATE TEMP TABLE b AS SELECT job_id FROM crm_claim_jobs(16, 'b', 30);
            SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b),
                   (SELECT count(*) FROM a JOIN b USING (job_id));
            ROLLBACK;
        """)
        self.assertEqual(out, "16|16|0")


if __name__ == "__main__":
    unittest.main()

"""The send path's one-column checks as domains (migration 0020; issue 16).

PostgreSQL prepares a table's CHECK constraints again for every statement
that writes it (their stored expressions parsed and simplified), and checks
every one on every row written; a domain's constraints are prepared once per
connection and checked only on the columns a statement assigns. Migration
0020 moved the one-column checks of crm_communications, crm_jobs and
crm_delivery_logs to domains. This test checks that:

- every rule still holds: each value the old CHECK refused is refused, with
  SQLSTATE 23514 (check_violation) as before, and each it accepted (NULL
  included) is accepted;
- the migration keeps the stored rows as they are and rewrites nothing: the
  tables' and indexes' files are the same before and after, on a database
  migrated up to 0019 with messages, jobs and attempt logs in it, and the
  changed columns have statistics after it;
- no one-column CHECK is left on those tables but the three the migration
  keeps (fallback_channels, and the jobs' and logs' kind: a change of their
  type would rewrite the table or rebuild indexes), so a later migration that
  adds one back is caught here (and is told why);
- the claim function, whose RETURN QUERY wants its declared types exactly,
  still returns the messages of the new types."""
import os
import shutil
import subprocess
import tempfile
import unittest

import harness

HOT = ("crm_communications", "crm_jobs", "crm_delivery_logs")


def psql(url, sql, ok=True):
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v",
                        "VERBOSITY=verbose", "-d", url], input=sql.encode(), capture_output=True)
    if ok and r.returncode != 0:
        raise AssertionError("psql failed: %s" % r.stderr.decode())
    return r


MESSAGE = ("INSERT INTO crm_communications (id, plan_id, client_id, message_type, urgency, "
           "primary_channel, send_at, status) VALUES ('{id}', 'p1', 'c1', 'welcome', 'high', "
           "'email', now(), 'queued');")

# (table, column, refused values, accepted values); values are SQL literals
RULES = [
    ("crm_communications", "status", ["'bogus'", "''", "'SENT'"],
     ["'scheduled'", "'sent'", "'suppressed'"]),
    ("crm_communications", "channel", ["'fax'", "'Email'"], ["'email'", "'sms'", "NULL"]),
    ("crm_communications", "primary_channel", ["'pigeon'"], ["'whatsapp'"]),
    ("crm_communications", "urgency", ["'urgent'"], ["'low'", "'critical'"]),
    ("crm_communications", "message_type", ["'Welcome'", "'1x'", "'a-b'", "'a" + "b" * 64 + "'"],
     ["'welcome'", "'a" + "b" * 63 + "'"]),
    ("crm_communications", "client_id", ["''", "'" + "c" * 201 + "'"], ["'" + "c" * 200 + "'"]),
    ("crm_communications", "plan_id", ["''"], ["'p'", "NULL"]),
    ("crm_communications", "priority", ["-1", "101"], ["0", "100"]),
    ("crm_communications", "attempt_count", ["-1"], ["0", "7"]),
    ("crm_communications", "last_error_category", ["'boom'"], ["'rate_limit'", "NULL"]),
    ("crm_communications", "strategy", ["'[]'", "'1'"], ["'{}'", "'{\"a\": 1}'"]),
    ("crm_communications", "context", ["'\"x\"'"], ["'{}'", "NULL"]),
    ("crm_communications", "payload", ["'[1]'"], ["'{}'", "NULL"]),
    ("crm_communications", "tracked_links", ["'{}'"], ["'[]'", "NULL"]),
    ("crm_communications", "fallback_channels", ["'{fax}'"], ["'{sms,whatsapp}'", "'{}'"]),
    ("crm_jobs", "priority", ["101"], ["100"]),
    ("crm_jobs", "attempt", ["-1"], ["3"]),
    ("crm_jobs", "channel_index", ["-1"], ["2"]),
    ("crm_jobs", "kind", ["'mail'"], ["'receipt'", "'no_receipt'"]),
    ("crm_delivery_logs", "attempt", ["0"], ["1"]),
    ("crm_delivery_logs", "latency_ms", ["-5"], ["0", "NULL"]),
    ("crm_delivery_logs", "channel", ["'telex'"], ["'sms'"]),
    ("crm_delivery_logs", "category", ["'oops'"], ["'permanent'", "NULL"]),
    ("crm_delivery_logs", "kind", ["'note'"], ["'attempt'"]),
]

KEYS = {"crm_communications": "id = '00000000-0000-0000-0000-00000000000a'",
        "crm_jobs": "id = 1000001", "crm_delivery_logs": "id = 1000001"}


class SchemaDomainsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url, cls.drop = harness.fresh_database()
        psql(cls.url, MESSAGE.format(id="00000000-0000-0000-0000-00000000000a") + """
            INSERT INTO crm_jobs (id, communication_id, kind)
            VALUES (1000001, '00000000-0000-0000-0000-00000000000a', 'send');
            INSERT INTO crm_delivery_logs (id, communication_id, kind, channel, attempt)
            VALUES (1000001, '00000000-0000-0000-0000-00000000000a', 'attempt', 'email', 1);""")

    @classmethod
    def tearDownClass(cls):
        cls.drop()

    def test_every_rule_holds(self):
        for table, column, refused, accepted in RULES:
            for v in refused:
                r = psql(self.url, "UPDATE %s SET %s = %s WHERE %s" % (table, column, v,
                                                                    KEYS[table]), ok=False)
                err = r.stderr.decode()
                self.assertNotEqual(r.returncode, 0, "%s.%s = %s was accepted" % (table, column, v))
                self.assertIn("23514", err, "%s.%s = %s: %s" % (table, column, v, err))
            for v in accepted:
                # in a transaction rolled back: the row stays as the others expect
                psql(self.url, "BEGIN; UPDATE %s SET %s = %s WHERE %s; ROLLBACK;" % (
                    table, column, v, KEYS[table]))
        # an insert is checked the same way as an update
        r = psql(self.url, MESSAGE.format(id="00000000-0000-0000-0000-00000000000b")
                 .replace("'high'", "'asap'"), ok=False)
        self.assertIn("23514", r.stderr.decode())

    def test_no_one_column_check_left(self):
        rows = psql(self.url, """
            SELECT conrelid::regclass, conname FROM pg_constraint
            WHERE contype = 'c' AND conrelid = ANY (ARRAY['%s']::regclass[])
              AND cardinality(conkey) = 1 AND conname NOT IN (
                  'crm_communications_fallback_channels_check', 'crm_jobs_kind_check',
                  'crm_delivery_logs_kind_check')
            """ % "','".join(HOT)).stdout.decode().split()
        self.assertEqual(rows, [], "a one-column CHECK on a table the send path writes is "
                         "prepared again by every statement that writes it; make it a domain "
                         "(migrations/0020_checks_as_domains.sql says why)")

    def test_claim_returns_the_new_types(self):
        psql(self.url, "BEGIN; " + MESSAGE.format(id="00000000-0000-0000-0000-00000000000c") + """
            INSERT INTO crm_jobs (communication_id, kind, priority)
            VALUES ('00000000-0000-0000-0000-00000000000c', 'send', 90);
            COMMIT;""")
        out = psql(self.url, "SELECT status, client_id, message_type, urgency, kind, priority, "
                   "attempt FROM crm_claim_jobs(1, 'me', 30)").stdout.decode().strip()
        self.assertEqual(out, "queued|c1|welcome|high|send|90|0")


class MigrationTest(unittest.TestCase):
    """0020 on a database migrated up to 0019, with rows in it."""

    def test_no_rewrite_and_rows_kept(self):
        src = os.path.join(harness.SOURCE_DIR, "migrations")
        old = tempfile.mkdtemp(prefix="herald_mig_")
        try:
            for f in sorted(os.listdir(src)):
                if f.endswith(".sql") and int(f[:4]) < 20:
                    shutil.copy(os.path.join(src, f), old)
            url, drop = harness.fresh_database(migrations=old)
        finally:
            shutil.rmtree(old)
        try:
            psql(url, """
                INSERT INTO crm_communications (id, plan_id, client_id, message_type, urgency,
                    primary_channel, fallback_channels, send_at, status, priority, strategy,
                    context, attempt_count, last_error_category, tracked_links)
                SELECT gen_random_uuid(), 'p' || g, 'c' || g, 'welcome',
                       (ARRAY['low', 'normal', 'high', 'critical'])[1 + g % 4], 'email',
                       '{sms}', now(), (ARRAY['queued', 'sent', 'failed'])[1 + g % 3], g % 101,
                       '{"a": 1}', '{"n": 1}', g % 3,
                       CASE WHEN g % 3 = 2 THEN 'permanent' END, '[]'
                FROM generate_series(1, 2000) g;
                INSERT INTO crm_jobs (communication_id, kind, priority, attempt)
                SELECT id, 'send', priority, attempt_count FROM crm_communications;
                INSERT INTO crm_delivery_logs (communication_id, kind, channel, attempt, status,
                                               category, latency_ms)
                SELECT id, 'attempt', 'email', 1, status, last_error_category, 12
                FROM crm_communications;""")
            files = ("SELECT string_agg(c.relname || '=' || c.relfilenode, ',' ORDER BY c.relname) "
                     "FROM pg_class c WHERE c.relname LIKE 'crm_communications%' "
                     "OR c.relname LIKE 'crm_jobs%' OR c.relname LIKE 'crm_delivery_logs%'")
            data = ("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT c::text "
                    "FROM crm_communications c UNION ALL SELECT j::text FROM crm_jobs j "
                    "UNION ALL SELECT l::text FROM crm_delivery_logs l) t")
            before = (psql(url, files).stdout, psql(url, data).stdout)
            r = subprocess.run([harness.HERALD_BIN, "migrate"], cwd=harness.SOURCE_DIR,
                               env=harness.base_env(HERALD_DATABASE_URL=url), capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn("0020_checks_as_domains.sql", r.stderr.decode() + r.stdout.decode())
            after = (psql(url, files).stdout, psql(url, data).stdout)
            self.assertEqual(before[0].decode().split(","), after[0].decode().split(","),
                             "a table or index was rewritten")
            self.assertEqual(before[1], after[1], "stored rows changed")
            typ = psql(url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = 'crm_communications'::regclass "
                       "AND attname = 'status'").stdout.decode().strip()
            self.assertEqual(typ, "crm_message_status")
            # a column's type change drops its statistics: the migration
            # analyzes the tables, so plans do not fall back to guesses
            stats = psql(url, "SELECT count(*) FROM pg_stats WHERE tablename = "
                         "'crm_communications' AND attname IN ('status', 'client_id', "
                         "'urgency', 'priority')").stdout.decode().strip()
            self.assertEqual(stats, "4")
        finally:
            drop()


if __name__ == "__main__":
    unittest.main()

"""`herald migrate` on throwaway databases of the shared PostgreSQL: applies
once, is a no-op the second time, refuses a changed history, rejects badly
named files, and serialises concurrent runs with its advisory lock."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid

import harness
from harness import HeraldCase


def db_url(name):
    u = urllib.parse.urlsplit(harness.database_url())
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def psql(dbname, sql):
    """Runs sql; returns stdout (unaligned, tuples only). Raises on error."""
    p = subprocess.run(["psql", "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-d", db_url(dbname),
                        "-c", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" % (sql, p.stderr.decode()))
    return p.stdout.decode().strip()


class MigrateCase(HeraldCase):

    def setUp(self):
        self.db = "herald_it_%s" % uuid.uuid4().hex[:16]
        psql("postgres", 'CREATE DATABASE "%s"' % self.db)
        self.addCleanup(psql, "postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db)
        self.tmp = tempfile.mkdtemp(prefix="herald-it-mig-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir = os.path.join(self.tmp, "migrations")
        shutil.copytree(os.path.join(harness.SOURCE_DIR, "migrations"), self.dir)
        self.files = sorted(f for f in os.listdir(self.dir) if f.endswith(".sql"))
        self.assertGreaterEqual(len(self.files), 1)
        self.env = harness.base_env(HERALD_DATABASE_URL=db_url(self.db),
                                    HERALD_VAR_DIR=os.path.join(self.tmp, "var"))

    def migrate(self, *extra):
        return harness.cli("migrate", "--dir", self.dir, *extra, env=self.env, timeout=60)

    def applied(self):
        """{version: (name, checksum, applied_at)}; {} when the table is absent."""
        if psql(self.db, "SELECT to_regclass('herald_schema_migrations') IS NOT NULL") != "t":
            return {}
        out = psql(self.db, "SELECT version, name, checksum, applied_at::text "
                            "FROM herald_schema_migrations ORDER BY version")
        rows = {}
        for line in out.splitlines():
            v, name, checksum, at = line.split("|")
            rows[int(v)] = (name, checksum, at)
        return rows

    def table_exists(self, name):
        return psql(self.db, "SELECT to_regclass('%s') IS NOT NULL" % name) == "t"

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)


class MigrateTest(MigrateCase):

    def test_first_run_applies_all_second_is_a_noop(self):
        r = self.migrate()
        self.assertEqual(r.code, 0, r)
        rows = self.applied()
        self.assertEqual(len(rows), len(self.files), rows)
        self.assertEqual(sorted(n for n, _, _ in rows.values()), self.files)
        for f in self.files:
            with open(os.path.join(self.dir, f), "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            version = int(f[:4])
            self.assertIn(version, rows)
            self.assertEqual(rows[version][0], f)
            self.assertEqual(rows[version][1], digest, "checksum recorded for %s" % f)
        # the first migration's tables exist
        for t in ["crm_api_keys", "crm_refresh_tokens", "crm_client_preferences"]:
            self.assertTrue(self.table_exists(t), t)

        again = self.migrate()
        self.assertEqual(again.code, 0, again)
        self.assertEqual(self.applied(), rows, "a second run must change nothing")

    def test_new_file_is_applied_on_the_next_run(self):
        self.assertEqual(self.migrate().code, 0)
        first = self.applied()
        self.write("9998_add_marker.sql", "CREATE TABLE it_marker (x int);\n")
        r = self.migrate()
        self.assertEqual(r.code, 0, r)
        rows = self.applied()
        self.assertEqual(len(rows), len(first) + 1)
        self.assertEqual(rows[9998][0], "9998_add_marker.sql")
        for v, row in first.items():
            self.assertEqual(rows[v], row)
        self.assertTrue(self.table_exists("it_marker"))

    def test_changed_applied_file_is_refused(self):
        self.assertEqual(self.migrate().code, 0)
        before = self.applied()
        changed = self.files[0]
        path = os.path.join(self.dir, changed)
        with open(path, "rb") as f:
            original = f.read()
        with open(path, "ab") as f:
            f.write(b"\n-- edited after it was applied\n")
        self.write("9999_later.sql", "CREATE TABLE it_later (x int);\n")

        r = self.migrate()
        self.assertEqual(r.code, 1, r)
        self.assertIn("changed after it was applied", r.stderr)
        self.assertIn(changed, r.stderr)
        self.assertEqual(self.applied(), before, "nothing may be applied after a refusal")
        self.assertFalse(self.table_exists("it_later"))

        # restoring the file lets the run go on: the refusal was about the change
        with open(path, "wb") as f:
            f.write(original)
        ok = self.migrate()
        self.assertEqual(ok.code, 0, ok)
        self.assertIn(9999, self.applied())
        self.assertTrue(self.table_exists("it_later"))

    def test_badly_named_file_is_refused(self):
        for bad in ["abc.sql", "12_short.sql", "0002-dash.sql", "0002_Upper.sql"]:
            with self.subTest(name=bad):
                self.write(bad, "CREATE TABLE it_bad (x int);\n")
                r = self.migrate()
                self.assertEqual(r.code, 1, r)
                self.assertIn(bad, r.stderr)
                self.assertEqual(self.applied(), {}, "nothing may be applied")
                self.assertFalse(self.table_exists("crm_api_keys"))
                os.remove(os.path.join(self.dir, bad))
        self.assertEqual(self.migrate().code, 0)

    def test_failing_migration_is_rolled_back_and_not_recorded(self):
        self.write("9997_broken.sql",
                   "CREATE TABLE it_half (x int);\nSELECT * FROM no_such_table_here;\n")
        r = self.migrate()
        self.assertEqual(r.code, 1, r)
        self.assertIn("9997_broken.sql", r.stderr)
        rows = self.applied()
        self.assertNotIn(9997, rows)
        self.assertEqual(len(rows), len(self.files), "earlier files stay applied")
        self.assertFalse(self.table_exists("it_half"), "a failed file must be rolled back")

    def test_missing_directory_is_an_error(self):
        r = harness.cli("migrate", "--dir", os.path.join(self.tmp, "nope"), env=self.env)
        self.assertEqual(r.code, 1, r)
        self.assertIn("nope", r.stderr)

    def test_concurrent_runs_apply_each_file_once(self):
        # a slow extra file widens the window in which two unlocked runners
        # would both see it pending
        self.write("9000_slow_probe.sql",
                   "SELECT pg_sleep(0.5);\nCREATE TABLE it_slow (x int);\n")
        files = self.files + ["9000_slow_probe.sql"]
        procs = [subprocess.Popen([harness.HERALD_BIN, "migrate", "--dir", self.dir],
                                  cwd=harness.SOURCE_DIR, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, "concurrent migrate failed:\n%s" % err.decode())
        rows = self.applied()
        self.assertEqual(sorted(n for n, _, _ in rows.values()), sorted(files))
        applied_logs = sum(err.decode().count('"migration applied"') for _, err in outs)
        self.assertEqual(applied_logs, len(files),
                         "each file must be applied by exactly one runner:\n%s"
                         % "\n".join(e.decode() for _, e in outs))


if __name__ == "__main__":
    harness.main()

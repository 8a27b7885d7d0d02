"""GET /api/crm/analytics end to end with the real binary.

A fresh database is seeded with psql BEFORE `herald serve` starts: fifteen
hand-made messages on four UTC days (32 and 29 days ago, yesterday, today),
on the three channels and three message types, in every state the rollups
count (queued before a first attempt, sent only, delivered after 10 s, 100 s
or 1000 s, opened, clicked, failed by category and with no category, one
fallback from email to sms). The database counts each message as it is
written (migrations/0018_analytics_counts.sql) and the server folds the
deltas every second (HERALD_ANALYTICS_REFRESH_SECONDS=1); every total, rate
and failure count is compared exactly with the figures of the seed (a few
written out by hand below, the groups computed from the seed table by
`expected()`), and the delivery-time percentiles within the histogram's error
(buckets of a quarter power of two: about 19 %).

Also: a message written or changed after start, on any day, is counted at
the next read, before and after a fold; from/to and their defaults (the last
30 days, today included); the 400s of bad dates, ranges and group_by, with
the field named; 401 without a token, 403 without the read scope. Two more
servers, each on a database of its own, check that messages of any age are
counted, and that the migration to counters starts from the right figures
(old rollups where the old engine had frozen them, the messages elsewhere).
"""
import datetime
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

UTC = datetime.timezone.utc


def utc_today():
    return datetime.datetime.now(UTC).date()


def avoid_midnight(margin=60):
    """The day must not change during the run: wait past a close UTC midnight."""
    now = datetime.datetime.now(UTC)
    left = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    if left < margin:
        time.sleep(left + 2)


def psql(url, sql):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                       capture_output=True)
    if r.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (r.stderr.decode(), sql))
    return r.stdout.decode()


def auth(scope="read"):
    return {"Authorization": "Bearer " + harness.make_jwt(harness.claims(scope=scope))}


# One message. day: days before today (0 = today); at: second of that UTC
# day it was created; sent: seconds from creation to sent_at (None: never
# reached a provider); dl: sent -> delivered seconds (None: not delivered).
class Msg:
    def __init__(self, name, day, at, mt, primary, channel, status, sent=None, dl=None,
                 opened=False, clicked=False, category=None):
        self.name, self.day, self.at, self.mt = name, day, at, mt
        self.primary, self.channel, self.status = primary, channel, status
        self.sent, self.dl, self.opened, self.clicked = sent, dl, opened, clicked
        self.category = category


SEED = [
    # 32 days ago: inside the 35-day refresh window, outside the default 30 days
    Msg("a1", 32, 8 * 3600, "welcome", "email", "email", "delivered", sent=5, dl=10),
    Msg("a2", 32, 9 * 3600, "reminder", "sms", "sms", "failed", category="permanent"),
    # 29 days ago: the first day of the default range
    Msg("b1", 29, 8 * 3600, "welcome", "email", "email", "opened", sent=5, dl=100, opened=True),
    Msg("b2", 29, 10 * 3600, "vendor_options", "email", "sms", "delivered", sent=5, dl=1000),
    Msg("b3", 29, 12 * 3600, "reminder", "whatsapp", "whatsapp", "sent", sent=5),
    Msg("b4", 29, 23 * 3600 + 3599, "reminder", "sms", "sms", "failed", sent=5),  # NULL category
    # yesterday
    Msg("c1", 1, 0, "welcome", "email", "email", "clicked", sent=5, dl=10, opened=True,
        clicked=True),
    Msg("c2", 1, 7 * 3600, "vendor_options", "whatsapp", "whatsapp", "delivered", sent=5, dl=100),
    Msg("c3", 1, 8 * 3600, "vendor_options", "email", "email", "failed", category="transient"),
    Msg("c4", 1, 9 * 3600, "welcome", "sms", "sms", "failed", category="rate_limit"),
    Msg("c5", 1, 23 * 3600, "reminder", "email", "email", "failed", category="transient"),
    # today (early, so whatever the time of the run they are today's)
    Msg("d1", 0, 30, "welcome", "email", None, "queued"),
    Msg("d2", 0, 31, "reminder", "sms", "sms", "sent", sent=5),
    Msg("d3", 0, 32, "vendor_options", "whatsapp", "whatsapp", "opened", sent=5, dl=1000,
        opened=True),
    Msg("d4", 0, 33, "welcome", "email", "email", "delivered", sent=5, dl=10),
]


def insert_sql(msgs, today, client="analytics-client"):
    def lit(t):
        return "NULL" if t is None else "'%s'" % t.strftime("%Y-%m-%dT%H:%M:%SZ")

    values = []
    for m in msgs:
        created = (datetime.datetime.combine(today, datetime.time(), UTC)
                   - datetime.timedelta(days=m.day) + datetime.timedelta(seconds=m.at))
        sent = created + datetime.timedelta(seconds=m.sent) if m.sent is not None else None
        dl = sent + datetime.timedelta(seconds=m.dl) if m.dl is not None else None
        opened = dl + datetime.timedelta(seconds=30) if m.opened else None
        clicked = opened + datetime.timedelta(seconds=10) if m.clicked else None
        failed = created + datetime.timedelta(seconds=60) if m.status == "failed" else None
        fallbacks = "'{%s}'" % m.channel if m.channel and m.channel != m.primary else "'{}'"
        values.append("('%s', '%s', 'normal', '%s', %s, %s, '%s', %s, %s, %s, %s, %s, %s, %s, %s, "
                      "%s, %d)" % (
                          client, m.mt, m.primary, fallbacks,
                          "'%s'" % m.channel if m.channel else "NULL", m.status, lit(created),
                          lit(created), lit(created), lit(sent), lit(dl), lit(opened), lit(clicked),
                          lit(failed), "'%s'" % m.category if m.category else "NULL",
                          1 if m.channel else 0))
    return ("INSERT INTO crm_communications (client_id, message_type, urgency, primary_channel, "
            "fallback_channels, channel, status, send_at, created_at, queued_at, sent_at, "
            "delivered_at, opened_at, clicked_at, failed_at, last_error_category, attempt_count) "
            "VALUES " + ",\n".join(values))


def rate(a, b):
    return None if b == 0 else math.floor(a / b * 10000 + 0.5) / 10000


def nearest_rank(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[max(1, math.ceil(q * len(v))) - 1]


def figures(msgs):
    """The figures of one group, computed from the seed without the product."""
    by_status, failures = {}, {}
    for m in msgs:
        by_status[m.status] = by_status.get(m.status, 0) + 1
        if m.status == "failed":
            cat = m.category or "unknown"
            failures[cat] = failures.get(cat, 0) + 1
    reached = sum(1 for m in msgs if m.sent is not None)
    delivered = sum(1 for m in msgs if m.dl is not None)
    opened = sum(1 for m in msgs if m.opened)
    clicked = sum(1 for m in msgs if m.clicked)
    durations = [m.dl for m in msgs if m.dl is not None]
    return {"total": len(msgs), "by_status": by_status, "reached": reached,
            "delivered": delivered, "opened": opened, "clicked": clicked,
            "delivery_rate": rate(delivered, reached), "open_rate": rate(opened, delivered),
            "click_rate": rate(clicked, delivered), "failures": failures,
            "fallbacks": sum(1 for m in msgs if m.channel and m.channel != m.primary),
            "delivery_seconds": {"p50": nearest_rank(durations, 0.5),
                                 "p95": nearest_rank(durations, 0.95)}}


def expected(msgs, today, first, last, group_by=None):
    """(total, {key: figures}) of the seed for the days first..last (days back)."""
    chosen = [m for m in msgs if last <= m.day <= first]
    groups = {}
    if group_by:
        for m in chosen:
            if group_by == "channel":
                key = m.channel or "none"
            elif group_by == "message_type":
                key = m.mt
            else:
                key = (today - datetime.timedelta(days=m.day)).isoformat()
            groups.setdefault(key, []).append(m)
    return figures(chosen), {k: figures(v) for k, v in groups.items()}


class AnalyticsCase(harness.HeraldCase):
    def day(self, back):
        return (self.today - datetime.timedelta(days=back)).isoformat()

    def range_of(self, first, last):
        return "from=%s&to=%s" % (self.day(first), self.day(last))

    def analytics(self, query="", scope="read"):
        r = self.server.get("/api/crm/analytics" + ("?" + query if query else ""),
                            headers=auth(scope))
        self.assertEqual(r.status, 200, r)
        return r.json

    def assertFigures(self, got, want, what):
        ctx = "%s: got %r" % (what, got)
        for k in ("total", "reached", "delivered", "opened", "clicked", "fallbacks"):
            self.assertEqual(got[k], want[k], "%s (%s)" % (ctx, k))
        self.assertEqual(got["by_status"], want["by_status"], ctx)
        self.assertEqual(got["failures"], want["failures"], ctx)
        for k in ("delivery_rate", "open_rate", "click_rate"):
            if want[k] is None:
                self.assertIsNone(got[k], "%s (%s)" % (ctx, k))
            else:
                self.assertIsNotNone(got[k], "%s (%s)" % (ctx, k))
                self.assertAlmostEqual(got[k], want[k], places=9, msg="%s (%s)" % (ctx, k))
        for k in ("p50", "p95"):
            true = want["delivery_seconds"][k]
            have = got["delivery_seconds"][k]
            if true is None:
                self.assertIsNone(have, "%s (delivery_seconds.%s)" % (ctx, k))
            else:
                # the histogram's bucket: within about 19 %, plus the 0.1 s rounding
                self.assertIsNotNone(have, "%s (delivery_seconds.%s)" % (ctx, k))
                self.assertLessEqual(abs(have - true), 0.2 * true + 0.1,
                                     "%s (delivery_seconds.%s, true %s)" % (ctx, k, true))

    def assertDoc(self, doc, first, last, group_by=None):
        """doc answers days first..last back, with exactly the seed's figures."""
        self.assertEqual(doc["from"], self.day(first), doc)
        self.assertEqual(doc["to"], self.day(last), doc)
        total, groups = expected(self.seed, self.today, first, last, group_by)
        self.assertFigures(doc["total"], total, "total %s..%s" % (doc["from"], doc["to"]))
        if group_by is None:
            self.assertNotIn("group_by", doc)
            self.assertNotIn("groups", doc)
            return
        self.assertEqual(doc["group_by"], group_by)
        keys = [g["key"] for g in doc["groups"]]
        self.assertEqual(len(keys), len(set(keys)), doc["groups"])
        self.assertEqual(set(keys), set(groups), doc["groups"])
        for g in doc["groups"]:
            self.assertFigures(g, groups[g["key"]], "group_by=%s key %s" % (group_by, g["key"]))
        if group_by == "day":
            self.assertEqual(keys, sorted(keys))

    @classmethod
    def wait_for(cls, query, pred, timeout=15):
        deadline = time.time() + timeout
        while True:
            r = cls.server.get("/api/crm/analytics?" + query, headers=auth())
            if r.status == 200 and pred(r.json):
                return r.json
            if time.time() > deadline:
                raise AssertionError("analytics never matched; last answer %r" % (r,))
            time.sleep(0.1)


class AnalyticsTest(AnalyticsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        avoid_midnight()
        cls.today = utc_today()
        cls.seed = list(SEED)
        cls.db_url, cls.drop_db = harness.fresh_database()
        try:
            psql(cls.db_url, insert_sql(cls.seed, cls.today))
            cls.server = cls.new_server(env={"HERALD_DATABASE_URL": cls.db_url,
                                             "HERALD_ANALYTICS_REFRESH_SECONDS": "1"})
            cls.started = time.time()
            everything = "from=%s&to=%s" % ((cls.today - datetime.timedelta(days=40)).isoformat(),
                                            cls.today.isoformat())
            cls.wait_for(everything, lambda d: d["as_of"] and d["total"]["total"] == len(SEED))
        except Exception:
            cls.drop_db()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    # -- the figures ----------------------------------------------------------

    def test_totals_of_every_seeded_day_written_out(self):
        doc = self.analytics(self.range_of(32, 0))
        t = doc["total"]
        self.assertEqual(t["total"], 15)
        self.assertEqual(t["by_status"], {"delivered": 4, "failed": 5, "opened": 2, "sent": 2,
                                          "clicked": 1, "queued": 1})
        self.assertEqual((t["reached"], t["delivered"], t["opened"], t["clicked"]), (10, 7, 3, 1))
        self.assertEqual(t["delivery_rate"], 0.7)
        self.assertEqual(t["open_rate"], 0.4286)
        self.assertEqual(t["click_rate"], 0.1429)
        self.assertEqual(t["failures"], {"permanent": 1, "unknown": 1, "transient": 2,
                                         "rate_limit": 1})
        self.assertEqual(t["fallbacks"], 1)
        # 10, 10, 10, 100, 100, 1000, 1000 s
        self.assertLessEqual(abs(t["delivery_seconds"]["p50"] - 100), 20, t)
        self.assertLessEqual(abs(t["delivery_seconds"]["p95"] - 1000), 200, t)
        self.assertDoc(doc, 32, 0)

    def test_default_range_is_the_last_30_days_with_today(self):
        doc = self.analytics()
        self.assertEqual((doc["from"], doc["to"]), (self.day(29), self.day(0)))
        t = doc["total"]
        # 32 days ago (a1, a2) is out; 29 days ago, the range's first day, is in
        self.assertEqual(t["total"], 13)
        self.assertEqual(t["by_status"], {"delivered": 3, "failed": 4, "opened": 2, "sent": 2,
                                          "clicked": 1, "queued": 1})
        self.assertEqual((t["reached"], t["delivered"], t["opened"], t["clicked"]), (9, 6, 3, 1))
        self.assertEqual((t["delivery_rate"], t["open_rate"], t["click_rate"]),
                         (0.6667, 0.5, 0.1667))
        self.assertEqual(t["failures"], {"unknown": 1, "transient": 2, "rate_limit": 1})
        self.assertDoc(doc, 29, 0)
        self.assertRegex(doc["as_of"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        as_of = datetime.datetime.strptime(doc["as_of"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        age = (datetime.datetime.now(UTC) - as_of).total_seconds()
        self.assertTrue(-5 <= age <= time.time() - self.started + 5, (doc["as_of"], age))

    def test_group_by_channel_counts_no_channel_yet_as_none(self):
        doc = self.analytics(self.range_of(32, 0) + "&group_by=channel")
        self.assertDoc(doc, 32, 0, "channel")
        by = {g["key"]: g for g in doc["groups"]}
        self.assertEqual({k: g["total"] for k, g in by.items()},
                         {"email": 6, "sms": 5, "whatsapp": 3, "none": 1})
        # the fallback counts on the channel it ended on
        self.assertEqual(by["sms"]["fallbacks"], 1)
        self.assertEqual(by["email"]["fallbacks"], 0)
        none = by["none"]
        self.assertEqual(none["by_status"], {"queued": 1})
        self.assertEqual((none["reached"], none["delivery_rate"], none["open_rate"]), (0, None, None))
        self.assertEqual(none["delivery_seconds"], {"p50": None, "p95": None})

    def test_group_by_message_type(self):
        doc = self.analytics(self.range_of(32, 0) + "&group_by=message_type")
        self.assertDoc(doc, 32, 0, "message_type")
        by = {g["key"]: g for g in doc["groups"]}
        self.assertEqual(set(by), {"welcome", "reminder", "vendor_options"})
        # reminders reached providers but none was delivered: a rate of 0, no
        # open rate (nothing delivered), no delivery times
        r = by["reminder"]
        self.assertEqual((r["reached"], r["delivered"]), (3, 0))
        self.assertEqual(r["delivery_rate"], 0)
        self.assertIsNone(r["open_rate"])
        self.assertIsNone(r["click_rate"])
        self.assertEqual(r["delivery_seconds"], {"p50": None, "p95": None})

    def test_group_by_day_uses_utc_days(self):
        doc = self.analytics(self.range_of(32, 0) + "&group_by=day")
        self.assertDoc(doc, 32, 0, "day")
        self.assertEqual([g["key"] for g in doc["groups"]],
                         [self.day(32), self.day(29), self.day(1), self.day(0)])
        # b4 was created at 23:59:59 and c1 at 00:00:00 UTC of the next day
        self.assertEqual([g["total"] for g in doc["groups"]], [2, 4, 5, 4])

    def test_every_group_by_over_the_default_range(self):
        for by in ("channel", "message_type", "day"):
            with self.subTest(group_by=by):
                self.assertDoc(self.analytics("group_by=" + by), 29, 0, by)

    # -- ranges ---------------------------------------------------------------

    def test_a_range_excludes_exactly_the_days_outside_it(self):
        for first, last in ((32, 32), (31, 2), (29, 1), (32, 1), (1, 0), (0, 0), (28, 2)):
            for by in (None, "channel", "day"):
                with self.subTest(first=first, last=last, group_by=by):
                    q = self.range_of(first, last) + ("&group_by=" + by if by else "")
                    self.assertDoc(self.analytics(q), first, last, by)

    def test_only_to_means_the_30_days_up_to_it(self):
        doc = self.analytics("to=" + self.day(1))
        self.assertDoc(doc, 30, 1)
        self.assertEqual(doc["total"]["total"], 9)  # b* and c*

    def test_only_from_means_up_to_today(self):
        doc = self.analytics("from=" + self.day(32))
        self.assertDoc(doc, 32, 0)

    def test_a_range_without_messages(self):
        doc = self.analytics("from=%s&to=%s&group_by=channel" % (
            self.day(-1), self.day(-5)))
        self.assertIsNone(doc["as_of"])
        self.assertEqual(doc["groups"], [])
        t = doc["total"]
        self.assertEqual((t["total"], t["reached"], t["by_status"], t["failures"]), (0, 0, {}, {}))
        self.assertEqual((t["delivery_rate"], t["open_rate"], t["click_rate"]), (None, None, None))
        self.assertEqual(t["delivery_seconds"], {"p50": None, "p95": None})

    def test_366_days_is_the_longest_range(self):
        doc = self.analytics("from=%s&to=%s" % (self.day(365), self.day(0)))
        self.assertEqual(doc["total"]["total"], len(SEED))
        self.assertEqual(self.analytics("from=2024-02-29&to=2024-03-01")["total"]["total"], 0)
        self.assertEqual(self.analytics("from=2000-02-29&to=2000-02-29")["to"], "2000-02-29")

    # -- freshness ------------------------------------------------------------

    def test_new_and_changed_messages_of_any_day_count_at_the_next_read(self):
        before = self.analytics("group_by=message_type")
        long_ago = "from=%s&to=%s" % (self.day(400), self.day(400))
        # a message delivered 400 days ago (outside every other test's range),
        # written after the server started, as an import would
        probe = Msg("p1", 400, 40, "fresh_probe", "sms", "sms", "delivered", sent=5, dl=100)
        psql(self.db_url, insert_sql([probe], self.today, client="analytics-probe"))
        # late opens: yesterday's c2, and a1 of 32 days ago
        late_open = ("UPDATE crm_communications SET opened_at = delivered_at + interval '1 hour' "
                     "WHERE (message_type = 'vendor_options' AND channel = 'whatsapp' "
                     "AND created_at < '%sT00:00:00Z') OR created_at = '%sT08:00:00Z'"
                     % (self.today.isoformat(), self.day(32)))
        psql(self.db_url, late_open)
        try:
            # no wait: the read adds the deltas not folded yet
            doc = self.analytics("group_by=message_type")
            self.assertEqual(doc["total"]["opened"], before["total"]["opened"] + 1, doc)
            old = self.analytics(self.range_of(32, 32))
            self.assertEqual(old["total"]["opened"], 1, old)
            probe_doc = self.analytics(long_ago + "&group_by=message_type")
            self.assertEqual([(g["key"], g["total"], g["delivered"], g["by_status"])
                              for g in probe_doc["groups"]],
                             [("fresh_probe", 1, 1, {"delivered": 1})])
            # the same figures once the deltas are folded into the daily rows
            harness.wait_until(lambda: psql(self.db_url, "SELECT 'left:' || count(*) FROM "
                                            "crm_analytics_delta").find("left:0") >= 0, 10)
            self.assertEqual(self.analytics("group_by=message_type")["total"], doc["total"])
            self.assertEqual(self.analytics(self.range_of(32, 32))["total"], old["total"])
            self.assertEqual(self.analytics(long_ago + "&group_by=message_type")["groups"],
                             probe_doc["groups"])
            # a status change moves the message between statuses
            psql(self.db_url, "UPDATE crm_communications SET status = 'failed', "
                 "last_error_category = 'permanent' WHERE client_id = 'analytics-probe'")
            moved = self.analytics(long_ago)["total"]
            self.assertEqual((moved["total"], moved["by_status"], moved["failures"]),
                             (1, {"failed": 1}, {"permanent": 1}), moved)
        finally:
            psql(self.db_url, "UPDATE crm_communications SET opened_at = NULL WHERE "
                 "status = 'delivered' AND opened_at IS NOT NULL")
            # back to the seed's figures for the other tests (the probe is
            # 400 days old: outside their ranges)
            self.wait_for("group_by=message_type", lambda d: d["total"] == before["total"]
                          and len(d["groups"]) == len(before["groups"]), timeout=10)

    # -- errors ---------------------------------------------------------------

    def test_bad_parameters_are_400_naming_the_field(self):
        today = self.day(0)
        cases = [
            ("from=2026-02-30", "from"),
            ("from=2025-02-29", "from"),
            ("from=2100-02-29&to=2100-03-01", "from"),
            ("from=yesterday", "from"),
            ("from=", "from"),
            ("to=2026-1-1", "to"),
            ("to=2026-01-01T00:00:00Z", "to"),
            ("to=2026-13-01", "to"),
            ("from=%s&to=%s" % (today, self.day(1)), "from"),
            ("from=%s&to=%s" % (self.day(366), today), "from"),
            ("from=2020-01-01&to=2026-01-01", "from"),
            ("group_by=status", "group_by"),
            ("group_by=Channel", "group_by"),
        ]
        for query, field in cases:
            with self.subTest(query=query):
                r = self.server.get("/api/crm/analytics?" + query, headers=auth())
                err = self.assertError(r, 400, "invalid_field")
                self.assertRegex(err["message"], r"^%s\b" % re.escape(field), err)

    def test_no_token_is_401(self):
        self.assertUnauthorized(self.server.get("/api/crm/analytics"))

    def test_a_token_without_read_is_403(self):
        r = self.server.get("/api/crm/analytics", headers=auth("send admin"))
        err = self.assertError(r, 403, "forbidden")
        self.assertIn("read", err["message"])


class OlderDaysCase(AnalyticsCase):
    """A server started on a database whose messages were written before it
    started, some long ago."""
    seed_sql = None
    migrations = None  # the repo's

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        avoid_midnight()
        cls.today = utc_today()
        cls.db_url, cls.drop_db = harness.fresh_database(cls.migrations)
        try:
            psql(cls.db_url, cls.seed_sql(cls.today))
            if cls.migrations:  # the rest of the repo's migrations
                r = harness.cli("migrate", env=harness.base_env(HERALD_DATABASE_URL=cls.db_url))
                if r.code != 0:
                    raise AssertionError("migrate failed: %s" % r.stderr)
            cls.server = cls.new_server(env={"HERALD_DATABASE_URL": cls.db_url,
                                             "HERALD_ANALYTICS_REFRESH_SECONDS": "1"})
        except Exception:
            cls.drop_db()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.drop_db()

    def days(self, first, last):
        doc = self.analytics("from=%s&to=%s&group_by=day" % (self.day(first), self.day(last)))
        return {g["key"]: g["total"] for g in doc["groups"]}


class OldestDayTest(OlderDaysCase):
    """The oldest message was created in the afternoon (UTC) of its day."""
    seed = [
        Msg("o1", 50, 18 * 3600, "welcome", "email", "email", "delivered", sent=5, dl=10),
        Msg("o2", 40, 6 * 3600, "welcome", "email", "email", "sent", sent=5),
        Msg("o3", 2, 6 * 3600, "welcome", "email", "email", "sent", sent=5),
    ]

    @staticmethod
    def seed_sql(today):
        # and a row whose messages all moved on (all zero): the first fold prunes it
        zero = ("INSERT INTO crm_analytics_daily (day, channel, message_type, total, by_status, "
                "reached, delivered, opened, clicked, fallbacks, failures, delivery_hist) VALUES "
                "('%s', '', 'welcome', 0, '{}', 0, 0, 0, 0, 0, '{}', '{}')"
                % (today - datetime.timedelta(days=45)).isoformat())
        return insert_sql(OldestDayTest.seed, today) + ";\n" + zero

    def test_an_all_zero_row_is_pruned(self):
        harness.wait_until(lambda: "zero:0" in psql(
            self.db_url, "SELECT 'zero:' || count(*) FROM crm_analytics_daily WHERE total = 0"), 10)
        self.assertIn("rows:3", psql(self.db_url, "SELECT 'rows:' || count(*) FROM "
                                                  "crm_analytics_daily"))

    def test_a_day_older_than_35_days_is_counted(self):
        self.assertEqual(self.days(45, 36), {self.day(40): 1})

    # The day is the UTC day of created_at, whatever its hour (a rounding of
    # the old start-up fill-in once skipped a first message after 12:00).
    def test_the_oldest_day_is_counted_whatever_the_hour_of_its_first_message(self):
        self.assertEqual(self.days(60, 0), {self.day(50): 1, self.day(40): 1, self.day(2): 1})


class MigrationTest(OlderDaysCase):
    """A database that ran the engine before migration 0018: messages, and
    the daily rows the old engine recomputed (crm_analytics_daily), some of
    them stale. The migration keeps the rows of days older than the old
    35-day window (frozen then; retention may have deleted their messages)
    and counts every other day from its messages."""
    seed = [
        Msg("m1", 60, 6 * 3600, "welcome", "email", "email", "sent", sent=5),  # no rollup
        Msg("m2", 40, 6 * 3600, "welcome", "email", "email", "sent", sent=5),  # frozen rollup
        Msg("m3", 2, 6 * 3600, "welcome", "email", "email", "delivered", sent=5, dl=10),
        Msg("m4", 2, 7 * 3600, "welcome", "sms", "sms", "failed", category="transient"),
    ]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="herald-mig-")
        src = os.path.join(harness.SOURCE_DIR, "migrations")
        for f in sorted(os.listdir(src)):
            if f.endswith(".sql") and int(f[:4]) < 18:
                shutil.copy(os.path.join(src, f), cls.tmp)
        cls.migrations = cls.tmp
        try:
            super().setUpClass()
        finally:
            shutil.rmtree(cls.tmp)

    @staticmethod
    def seed_sql(today):
        def day(back):
            return (today - datetime.timedelta(days=back)).isoformat()

        rollup = ("INSERT INTO crm_analytics_daily (day, channel, message_type, total, "
                  "by_status, reached, delivered, opened, clicked, fallbacks, failures, "
                  "delivery_hist) VALUES ")
        return (insert_sql(MigrationTest.seed, today) + ";\n" + rollup +
                # 40 days ago: frozen, and matches its message
                "('%s', 'email', 'welcome', 1, '{\"sent\": 1}', 1, 0, 0, 0, 0, '{}', '{}'), "
                # 70 days ago: retention deleted the messages; the rollup is all there is
                "('%s', 'email', 'welcome', 3, '{\"delivered\": 2, \"failed\": 1}', 3, 2, 1, 0, 1, "
                "'{\"permanent\": 1}', '{\"14\": 2}'), "
                # 2 days ago: stale (the old engine would have recomputed it)
                "('%s', 'email', 'welcome', 5, '{\"sent\": 5}', 5, 0, 0, 0, 0, '{}', '{}')"
                % (day(40), day(70), day(2)))

    def test_each_day_starts_from_the_right_source(self):
        self.assertEqual(self.days(80, 0), {self.day(70): 3, self.day(60): 1, self.day(40): 1,
                                            self.day(2): 2})

    def test_a_kept_rollup_keeps_every_figure(self):
        got = self.analytics(self.range_of(70, 70))["total"]
        self.assertEqual((got["total"], got["reached"], got["delivered"], got["opened"],
                          got["clicked"], got["fallbacks"], got["by_status"], got["failures"]),
                         (3, 3, 2, 1, 0, 1, {"delivered": 2, "failed": 1}, {"permanent": 1}))
        # bucket 14: 2^(14/4) - 1 .. 2^(15/4) - 1 seconds, 10.3 .. 12.5
        self.assertGreaterEqual(got["delivery_seconds"]["p50"], 10.3)
        self.assertLessEqual(got["delivery_seconds"]["p50"], 12.5)

    def test_a_recent_day_is_counted_from_its_messages(self):
        got = self.analytics(self.range_of(2, 2) + "&group_by=channel")
        self.assertEqual({g["key"]: (g["total"], g["by_status"], g["failures"])
                          for g in got["groups"]},
                         {"email": (1, {"delivered": 1}, {}),
                          "sms": (1, {"failed": 1}, {"transient": 1})})

    def test_new_messages_are_counted_after_the_migration(self):
        before = self.analytics(self.range_of(0, 0))["total"]["total"]
        psql(self.db_url, insert_sql([Msg("n1", 0, 50, "welcome", "email", None, "queued")],
                                     self.today, client="after-migration"))
        self.assertEqual(self.analytics(self.range_of(0, 0))["total"]["total"], before + 1)


if __name__ == "__main__":
    harness.main()

/* test_tz.c - time zones from the system's compiled zoneinfo
 * (core/base/tz.c): known offsets and DST changes of real zones, footer
 * rules past the last transition, local -> UTC in gaps and overlaps, name
 * checks, the cache, and the cache under threads. Hand-made and broken TZif
 * files are in test_tz_files.c; the helpers both use are in tz_check.h.
 * Expected values were cross-checked with `TZ=... date -d @t` and zdump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/tz.h"
#include "tz_check.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void test_utc(void **state)
{
    (void)state;
    check("UTC", 0, "1970-01-01 00:00:00", 0, false, "UTC");
    check("Etc/UTC", 1774746000, "2026-03-29 01:00:00", 0, false, "UTC");
    check("UTC", 4102488000, "2100-01-01 12:00:00", 0, false, "UTC");
    assert_string_equal(tz_name(get("Etc/UTC")), "Etc/UTC");
    /* UTC is a symlink to Etc/UTC on Debian; the zone keeps the asked name. */
    assert_string_equal(tz_name(get("UTC")), "UTC");
    assert_int_equal(from("UTC", 2026, 3, 29, 1, 0, 0), 1774746000);
}

/* The UTC calendar against gmtime_r (no TZ involved) over +-4000 years. */
static void test_civil_calendar_matches_gmtime(void **state)
{
    (void)state;
    const tz_zone_t *utc = get("UTC");
    for (int64_t t = -125000000000; t < 125000000000; t += 7777777 * 13 + 17) {
        time_t tt = (time_t)t;
        struct tm tm;
        tz_local_t l;
        assert_non_null(gmtime_r(&tt, &tm));
        tz_to_local(utc, t, &l);
        assert_int_equal(l.year, tm.tm_year + 1900);
        assert_int_equal(l.month, tm.tm_mon + 1);
        assert_int_equal(l.day, tm.tm_mday);
        assert_int_equal(l.hour, tm.tm_hour);
        assert_int_equal(l.min, tm.tm_min);
        assert_int_equal(l.sec, tm.tm_sec);
        assert_int_equal(l.wday % 7, tm.tm_wday);
        assert_int_equal(l.yday, tm.tm_yday + 1);
        assert_int_equal(tz_from_local(utc, l.year, l.month, l.day, l.hour, l.min, l.sec), t);
    }
    check("UTC", -62135596800, "0001-01-01 00:00:00", 0, false, "UTC");
}

static void test_weekday_and_yday(void **state)
{
    (void)state;
    tz_local_t l;
    tz_to_local(get("Europe/Paris"), 1795867200, &l); /* 2026-11-28 13:00 CET */
    assert_int_equal(l.wday, 6);                      /* Saturday */
    assert_int_equal(l.yday, 332);
    tz_to_local(get("UTC"), 1735646400, &l); /* 2024-12-31 */
    assert_int_equal(l.yday, 366);
    assert_int_equal(l.wday, 2); /* Tuesday */
    tz_to_local(get("UTC"), 0, &l);
    assert_int_equal(l.wday, 4); /* 1970-01-01 was a Thursday */
    assert_int_equal(l.yday, 1);
    /* 2026-03-29 is a Sunday; 13 hours later it is Monday noon in Sydney. */
    tz_to_local(get("Europe/Paris"), 1774785600, &l);
    assert_int_equal(l.wday, 7);
    tz_to_local(get("Australia/Sydney"), 1774785600 + 13 * 3600, &l);
    assert_int_equal(l.wday, 1);
    assert_int_equal(l.yday, 89);
}

static void test_paris(void **state)
{
    (void)state;
    check("Europe/Paris", 1768478400, "2026-01-15 13:00:00", 3600, false, "CET");
    check("Europe/Paris", 1784116800, "2026-07-15 14:00:00", 7200, true, "CEST");
    /* Spring forward: 2026-03-29 01:00 UTC, 02:00 CET -> 03:00 CEST. */
    check("Europe/Paris", 1774745999, "2026-03-29 01:59:59", 3600, false, "CET");
    check("Europe/Paris", 1774746000, "2026-03-29 03:00:00", 7200, true, "CEST");
    /* Fall back: 2026-10-25 01:00 UTC, 03:00 CEST -> 02:00 CET. */
    check("Europe/Paris", 1792889999, "2026-10-25 02:59:59", 7200, true, "CEST");
    check("Europe/Paris", 1792890000, "2026-10-25 02:00:00", 3600, false, "CET");
}

static void test_paris_from_local(void **state)
{
    (void)state;
    assert_int_equal(from("Europe/Paris", 2026, 1, 15, 13, 0, 0), 1768478400);
    assert_int_equal(from("Europe/Paris", 2026, 7, 15, 14, 0, 0), 1784116800);
    /* Gap: 02:30 does not exist; read with the CET offset it is 01:30 UTC,
     * which is 03:30 CEST. */
    int64_t t = from("Europe/Paris", 2026, 3, 29, 2, 30, 0);
    assert_int_equal(t, 1774747800);
    check("Europe/Paris", t, "2026-03-29 03:30:00", 7200, true, "CEST");
    assert_int_equal(from("Europe/Paris", 2026, 3, 29, 2, 0, 0), 1774746000);
    assert_int_equal(from("Europe/Paris", 2026, 3, 29, 1, 59, 59), 1774745999);
    assert_int_equal(from("Europe/Paris", 2026, 3, 29, 3, 0, 0), 1774746000);
    /* Overlap: 02:30 happens twice; the earlier (CEST, 00:30 UTC) wins. */
    assert_int_equal(from("Europe/Paris", 2026, 10, 25, 2, 30, 0), 1792888200);
    assert_int_equal(from("Europe/Paris", 2026, 10, 25, 2, 0, 0), 1792886400);
    assert_int_equal(from("Europe/Paris", 2026, 10, 25, 3, 0, 0), 1792893600);
    assert_int_equal(from("Europe/Paris", 2026, 10, 25, 1, 59, 59), 1792886399);
}

static void test_normalisation(void **state)
{
    (void)state;
    /* month 13 = January of the next year */
    assert_int_equal(from("Europe/Paris", 2025, 13, 15, 13, 0, 0), 1768478400);
    /* min 90 = +1 h 30 */
    assert_int_equal(from("Europe/Paris", 2026, 1, 15, 11, 120, 0), 1768478400);
    assert_int_equal(from("UTC", 2026, 3, 29, 0, 90, 0), 1774747800);
    /* day 0 = last day of the previous month (2024 is a leap year) */
    assert_int_equal(from("UTC", 2024, 3, 0, 0, 0, 0), from("UTC", 2024, 2, 29, 0, 0, 0));
    assert_int_equal(from("UTC", 2026, 1, 0, 12, 0, 0), from("UTC", 2025, 12, 31, 12, 0, 0));
    /* negative fields and large seconds */
    assert_int_equal(from("UTC", 2026, 0, 1, 0, 0, 0), from("UTC", 2025, 12, 1, 0, 0, 0));
    assert_int_equal(from("UTC", 2026, -11, 1, 0, 0, 0), from("UTC", 2025, 1, 1, 0, 0, 0));
    assert_int_equal(from("UTC", 2026, 1, 1, -1, 0, 0), from("UTC", 2025, 12, 31, 23, 0, 0));
    assert_int_equal(from("UTC", 2026, 1, 1, 0, 0, -1), 1767225599);
    assert_int_equal(from("UTC", 1970, 1, 1, 0, 0, 86400 * 365), 31536000);
    /* normalising into a gap still moves forward: 01:90 = 02:30 CET gap */
    assert_int_equal(from("Europe/Paris", 2026, 3, 29, 1, 90, 0), 1774747800);
}

static void test_new_york_and_los_angeles(void **state)
{
    (void)state;
    check("America/New_York", 1768478400, "2026-01-15 07:00:00", -18000, false, "EST");
    check("America/New_York", 1772953199, "2026-03-08 01:59:59", -18000, false, "EST");
    check("America/New_York", 1772953200, "2026-03-08 03:00:00", -14400, true, "EDT");
    check("America/New_York", 1793512799, "2026-11-01 01:59:59", -14400, true, "EDT");
    check("America/New_York", 1793512800, "2026-11-01 01:00:00", -18000, false, "EST");
    assert_int_equal(from("America/New_York", 2026, 3, 8, 2, 30, 0), 1772953200 + 1800);
    assert_int_equal(from("America/New_York", 2026, 11, 1, 1, 30, 0), 1793512800 - 1800);

    check("America/Los_Angeles", 1768478400, "2026-01-15 04:00:00", -28800, false, "PST");
    check("America/Los_Angeles", 1772963999, "2026-03-08 01:59:59", -28800, false, "PST");
    check("America/Los_Angeles", 1772964000, "2026-03-08 03:00:00", -25200, true, "PDT");
    check("America/Los_Angeles", 1793523599, "2026-11-01 01:59:59", -25200, true, "PDT");
    check("America/Los_Angeles", 1793523600, "2026-11-01 01:00:00", -28800, false, "PST");
}

static void test_southern_and_odd_offsets(void **state)
{
    (void)state;
    /* Sydney: DST in January; it ends 2026-04-05 03:00 AEDT = 04-04 16:00 UTC. */
    check("Australia/Sydney", 1768478400, "2026-01-15 23:00:00", 39600, true, "AEDT");
    check("Australia/Sydney", 1775318399, "2026-04-05 02:59:59", 39600, true, "AEDT");
    check("Australia/Sydney", 1775318400, "2026-04-05 02:00:00", 36000, false, "AEST");
    check("Australia/Sydney", 1791043199, "2026-10-04 01:59:59", 36000, false, "AEST");
    check("Australia/Sydney", 1791043200, "2026-10-04 03:00:00", 39600, true, "AEDT");
    assert_int_equal(from("Australia/Sydney", 2026, 4, 5, 2, 30, 0), 1775318400 - 1800);
    assert_int_equal(from("Australia/Sydney", 2026, 10, 4, 2, 30, 0), 1791043200 + 1800);

    check("Asia/Kolkata", 1768478400, "2026-01-15 17:30:00", 19800, false, "IST");
    check("Asia/Kolkata", 1784116800, "2026-07-15 17:30:00", 19800, false, "IST");
    check("Asia/Kathmandu", 1768478400, "2026-01-15 17:45:00", 20700, false, "+0545");
    /* Chatham: +12:45 standard, +13:45 in the (southern) summer. */
    check("Pacific/Chatham", 1768478400, "2026-01-16 01:45:00", 49500, true, "+1345");
    check("Pacific/Chatham", 1784116800, "2026-07-16 00:45:00", 45900, false, "+1245");
    /* Sao Paulo: DST until 2019-02-17, none since. */
    check("America/Sao_Paulo", 1516017600, "2018-01-15 10:00:00", -7200, true, "-02");
    check("America/Sao_Paulo", 1550368799, "2019-02-16 23:59:59", -7200, true, "-02");
    check("America/Sao_Paulo", 1550368800, "2019-02-16 23:00:00", -10800, false, "-03");
    check("America/Sao_Paulo", 1768478400, "2026-01-15 09:00:00", -10800, false, "-03");
    check("America/Sao_Paulo", 1784116800, "2026-07-15 09:00:00", -10800, false, "-03");
    /* Samoa skipped 2011-12-30 entirely: a 24-hour gap. */
    check("Pacific/Apia", 1325239199, "2011-12-29 23:59:59", -36000, true, "-10");
    check("Pacific/Apia", 1325239200, "2011-12-31 00:00:00", 50400, true, "+14");
    assert_int_equal(from("Pacific/Apia", 2011, 12, 30, 12, 0, 0), 1325239200 + 12 * 3600);
}

static void test_far_future_and_past(void **state)
{
    (void)state;
    /* Past the last transition the footer rule decides. */
    check("Europe/Paris", 4118126400, "2100-07-01 14:00:00", 7200, true, "CEST");
    check("Europe/Paris", 4102488000, "2100-01-01 13:00:00", 3600, false, "CET");
    check("America/New_York", 4118126400, "2100-07-01 08:00:00", -14400, true, "EDT");
    check("Australia/Sydney", 4103697600, "2100-01-15 23:00:00", 39600, true, "AEDT");
    check("America/Sao_Paulo", 4118126400, "2100-07-01 09:00:00", -10800, false, "-03");
    assert_int_equal(from("Europe/Paris", 2100, 7, 1, 14, 0, 0), 4118126400);
    /* M3.4.4/26 (Friday 02:00 written as Thursday 26:00) and M3.5.0/-1. */
    check("Asia/Jerusalem", 4109702399, "2100-03-26 01:59:59", 7200, false, "IST");
    check("Asia/Jerusalem", 4109702400, "2100-03-26 03:00:00", 10800, true, "IDT");
    check("America/Nuuk", 4109878799, "2100-03-27 22:59:59", -7200, false, "-02");
    check("America/Nuuk", 4109878800, "2100-03-28 00:00:00", -3600, true, "-01");
    check("America/Nuuk", 4128627600, "2100-10-30 23:00:00", -7200, false, "-02");
    /* Before 1900: local mean time, then Paris Mean Time. */
    check("Europe/Paris", -3773779200, "1850-06-01 00:09:21", 561, false, "LMT");
    check("Europe/Paris", -2208992400, "1899-12-31 23:09:21", 561, false, "PMT");
    check("America/New_York", -5364662400, "1799-12-31 19:03:58", -17762, false, "LMT");
    check("Europe/London", -2195899200, "1900-06-01 12:00:00", 0, false, "GMT");
    assert_int_equal(from("Europe/Paris", 1850, 6, 1, 0, 9, 21), -3773779200);
}

/* Every 30 minutes through 2026: local -> UTC -> local is the identity, and
 * UTC -> local -> UTC too except in the second copy of a repeated hour. */
static void test_round_trips(void **state)
{
    (void)state;
    static const char *zones[] = {"Europe/Paris",    "America/New_York", "Australia/Sydney",
                                  "Pacific/Chatham", "Asia/Kathmandu",   "America/Sao_Paulo"};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        const tz_zone_t *z = get(zones[i]);
        int repeated = 0;
        for (int64_t t = 1767225600; t < 1798761600; t += 1800) {
            tz_local_t l, back;
            tz_to_local(z, t, &l);
            int64_t u = tz_from_local(z, l.year, l.month, l.day, l.hour, l.min, l.sec);
            tz_to_local(z, u, &back);
            assert_int_equal(back.hour * 60 + back.min, l.hour * 60 + l.min);
            assert_int_equal(back.day, l.day);
            if (u != t) {
                assert_true(u < t);
                repeated++;
            }
        }
        /* one repeated hour a year with DST, none without */
        assert_int_equal(repeated, strcmp(zones[i], "Asia/Kathmandu") == 0 ||
                                           strcmp(zones[i], "America/Sao_Paulo") == 0
                                       ? 0
                                       : 2);
    }
}

static void test_invalid_names(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "/etc/passwd",
                                "../x",
                                "Europe/../../etc/passwd",
                                "Europe/Paris/",
                                "Europe//Paris",
                                "./UTC",
                                "Europe/Paris ",
                                "Europe/Par\nis",
                                "Europe\\Paris",
                                "Europe/.",
                                "~root"};
    hd_err_t err;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_null(tz_get(bad[i], &err));
        assert_non_null(strstr(err.msg, "invalid time zone name \""));
    }
    assert_null(tz_get("../etc/passwd", &err));
    assert_string_equal(err.msg, "invalid time zone name \"../etc/passwd\"");
    assert_null(tz_get("Europe/Par\nis", &err));
    assert_string_equal(err.msg, "invalid time zone name \"Europe/Par?is\"");
    assert_null(tz_get(NULL, &err));
    assert_string_equal(err.msg, "invalid time zone name \"\"");

    char longname[300];
    memset(longname, 'A', sizeof(longname));
    longname[256] = '\0';
    assert_null(tz_get(longname, &err));
    assert_non_null(strstr(err.msg, "...\""));
    assert_null(tz_get(NULL, NULL)); /* err is optional */
}

static void test_unknown_zones(void **state)
{
    (void)state;
    hd_err_t err;
    assert_null(tz_get("Mars/Base", &err));
    assert_string_equal(err.msg, "unknown time zone \"Mars/Base\"");
    assert_null(tz_get("Europe", &err)); /* a directory */
    assert_string_equal(err.msg, "unknown time zone \"Europe\"");
    assert_null(tz_get("Europe/Paris/Louvre", &err)); /* ENOTDIR */
    assert_string_equal(err.msg, "unknown time zone \"Europe/Paris/Louvre\"");
}

static void test_cache_returns_one_zone(void **state)
{
    (void)state;
    const tz_zone_t *a = get("Europe/Paris");
    assert_ptr_equal(get("Europe/Paris"), a);
    assert_ptr_not_equal(get("Europe/Berlin"), a);
    tz_cache_clear();
    assert_string_equal(tz_name(get("Europe/Paris")), "Europe/Paris");
}

/* ---------------------------------------------------------------------------
 * Threads: 8 threads load zones into an empty cache at once and convert
 * thousands of instants; results must equal the single-threaded ones.
 */

#define NTHREADS 8
#define NZONES   8
#define NSAMPLES 4000

static const char *thread_zones[NZONES] = {
    "Europe/Paris",    "America/New_York", "Australia/Sydney",    "Asia/Kolkata",
    "Pacific/Chatham", "Asia/Kathmandu",   "America/Los_Angeles", "America/Sao_Paulo"};
static tz_local_t expected[NZONES][NSAMPLES];
static int64_t expected_back[NZONES][NSAMPLES];
static pthread_barrier_t start_line;

typedef struct worker {
    int id;
    int mismatches;
    const tz_zone_t *shared; /* what this thread got for zone 0 */
} worker_t;

static int64_t sample(int k)
{
    return 1600000000 + (int64_t)k * 123457; /* 2020-09 .. 2036 */
}

static bool same_local(const tz_local_t *a, const tz_local_t *b)
{
    return a->year == b->year && a->month == b->month && a->day == b->day && a->hour == b->hour &&
           a->min == b->min && a->sec == b->sec && a->wday == b->wday && a->yday == b->yday &&
           a->offset == b->offset && a->isdst == b->isdst && strcmp(a->abbr, b->abbr) == 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(&start_line);
    /* zone 0 is shared by all threads; each also has its own */
    int mine[2] = {0, w->id % NZONES};
    for (int round = 0; round < 3; round++) {
        for (int j = 0; j < 2; j++) {
            const tz_zone_t *z = tz_get(thread_zones[mine[j]], NULL);
            if (z == NULL) {
                w->mismatches++;
                continue;
            }
            if (mine[j] == 0)
                w->shared = z;
            for (int k = 0; k < NSAMPLES; k++) {
                tz_local_t l;
                tz_to_local(z, sample(k), &l);
                int64_t back = tz_from_local(z, l.year, l.month, l.day, l.hour, l.min, l.sec);
                if (!same_local(&l, &expected[mine[j]][k]) || back != expected_back[mine[j]][k])
                    w->mismatches++;
            }
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    for (int i = 0; i < NZONES; i++) {
        const tz_zone_t *z = get(thread_zones[i]);
        for (int k = 0; k < NSAMPLES; k++) {
            tz_local_t *l = &expected[i][k];
            tz_to_local(z, sample(k), l);
            expected_back[i][k] =
                tz_from_local(z, l->year, l->month, l->day, l->hour, l->min, l->sec);
        }
    }
    tz_cache_clear(); /* the threads race to load every zone */

    pthread_t th[NTHREADS];
    worker_t w[NTHREADS];
    assert_int_equal(pthread_barrier_init(&start_line, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&start_line);

    const tz_zone_t *paris = get("Europe/Paris");
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(w[i].mismatches, 0);
        assert_ptr_equal(w[i].shared, paris); /* one zone, not one per thread */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_civil_calendar_matches_gmtime),
        cmocka_unit_test(test_weekday_and_yday),
        cmocka_unit_test(test_paris),
        cmocka_unit_test(test_paris_from_local),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_new_york_and_los_angeles),
        cmocka_unit_test(test_southern_and_odd_offsets),
        cmocka_unit_test(test_far_future_and_past),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_unknown_zones),
        cmocka_unit_test(test_cache_returns_one_zone),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}

/* test_tz.c - time zones from compiled zoneinfo (core/base/tz.c): known
 * offsets and DST changes of real zones, footer rules, local -> UTC in gaps
 * and overlaps, name checks, malformed files, the cache under threads.
 * Expected values were cross-checked with `TZ=... date -d @t` and zdump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/tz.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const tz_zone_t *get(const char *name)
{
    hd_err_t err = {{0}};
    const tz_zone_t *z = tz_get(name, &err);
    if (z == NULL)
        fail_msg("tz_get(%s): %s", name, err.msg);
    return z;
}

/* Asserts the wall clock, offset and abbreviation of instant t in zone. */
static void check(const char *zone, int64_t t, const char *wall, int offset, bool isdst,
                  const char *abbr)
{
    tz_local_t l;
    char got[32];
    tz_to_local(get(zone), t, &l);
    snprintf(got, sizeof(got), "%04d-%02d-%02d %02d:%02d:%02d", l.year, l.month, l.day, l.hour,
             l.min, l.sec);
    assert_string_equal(got, wall);
    assert_int_equal(l.offset, offset);
    assert_int_equal(l.isdst, isdst);
    assert_string_equal(l.abbr, abbr);
}

static int64_t from(const char *zone, int y, int mo, int d, int h, int mi, int s)
{
    return tz_from_local(get(zone), y, mo, d, h, mi, s);
}

/* An independent UTC oracle: timegm does not consult TZ. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

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
 * Hand-made TZif files in a temporary $TZDIR.
 */

static char tmpdir[64];
static char *saved_tzdir;

static void put_be32(buf_t *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_append(b, p, 4);
}

static void put_be64(buf_t *b, int64_t v)
{
    put_be32(b, (uint32_t)((uint64_t)v >> 32));
    put_be32(b, (uint32_t)v);
}

typedef struct ttype {
    int32_t off;
    uint8_t isdst, abbr;
} ttype_t;

/* A version 2 file: a minimal v1 block, then the 64-bit data and footer. */
static void build_tzif(buf_t *b, const int64_t *trans, const uint8_t *idx, uint32_t ntrans,
                       const ttype_t *types, uint32_t ntypes, const char *chars, uint32_t nchars,
                       const char *footer)
{
    buf_init(b);
    buf_append(b, "TZif2", 5);
    buf_append(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
    uint32_t v1[6] = {0, 0, 0, 0, 1, 1}; /* one type, one NUL */
    for (int i = 0; i < 6; i++)
        put_be32(b, v1[i]);
    buf_append(b, "\0\0\0\0\0\0\0", 7);
    buf_append(b, "TZif2", 5);
    buf_append(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 15);
    uint32_t v2[6] = {0, 0, 0, ntrans, ntypes, nchars};
    for (int i = 0; i < 6; i++)
        put_be32(b, v2[i]);
    for (uint32_t i = 0; i < ntrans; i++)
        put_be64(b, trans[i]);
    buf_append(b, idx, ntrans);
    for (uint32_t i = 0; i < ntypes; i++) {
        put_be32(b, (uint32_t)types[i].off);
        buf_append(b, &types[i].isdst, 1);
        buf_append(b, &types[i].abbr, 1);
    }
    buf_append(b, chars, nchars);
    buf_printf(b, "\n%s\n", footer);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A zone with no transitions, so the footer governs all time (RFC 8536 3.2). */
static void write_rule_zone(const char *name, const char *footer)
{
    buf_t b;
    ttype_t t = {0, 0, 0};
    build_tzif(&b, NULL, NULL, 0, &t, 1, "XXX", 4, footer);
    write_file(name, b.data, b.len);
    buf_free(&b);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup_tmpdir(void **state)
{
    (void)state;
    const char *old = getenv("TZDIR");
    saved_tzdir = old ? xstrdup(old) : NULL;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/herald_tz_XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/T", tmpdir);
    if (mkdir(sub, 0700) != 0)
        return -1;
    setenv("TZDIR", tmpdir, 1);
    return 0;
}

static int teardown_tmpdir(void **state)
{
    (void)state;
    if (saved_tzdir)
        setenv("TZDIR", saved_tzdir, 1);
    else
        unsetenv("TZDIR");
    free(saved_tzdir);
    saved_tzdir = NULL;
    /* The zones loaded from tmpdir must not outlive it under their names. */
    tz_cache_clear();
    return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Reads a system zone file (for truncation and mutation). */
static buf_t read_system(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", saved_tzdir ? saved_tzdir : "/usr/share/zoneinfo", name);
    buf_t b;
    buf_init(&b);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return b;
}

/* Asserts that name fails to load with a message containing want. */
static void expect_malformed(const char *name, const char *want)
{
    hd_err_t err = {{0}};
    assert_null(tz_get(name, &err));
    if (strstr(err.msg, want) == NULL)
        fail_msg("%s: got \"%s\", want \"%s\"", name, err.msg, want);
}

static void test_malformed_files(void **state)
{
    (void)state;
    buf_t paris = read_system("Europe/Paris");
    write_file("T/Empty", "", 0);
    expect_malformed("T/Empty", "malformed TZif file: truncated header");
    write_file("T/Garbage", "This is not a time zone file, just some words about one.", 56);
    expect_malformed("T/Garbage", "malformed TZif file: bad magic");
    write_file("T/Short", paris.data, 100);
    expect_malformed("T/Short", "truncated version 1 data block");
    write_file("T/NoFooter", paris.data, paris.len - 10);
    expect_malformed("T/NoFooter", "footer");
    paris.data[4] = '\0';
    write_file("T/V1", paris.data, paris.len);
    expect_malformed("T/V1", "version 1 file");
    paris.data[4] = '2';
    memcpy(paris.data + 32, "\xff\xff\xff\xff", 4); /* timecnt */
    write_file("T/Huge", paris.data, paris.len);
    expect_malformed("T/Huge", "count larger than the file");
    buf_free(&paris);

    buf_t b;
    ttype_t types[2] = {{3600, 0, 0}, {7200, 1, 4}};
    int64_t up[2] = {0, 100}, down[2] = {100, 0};
    uint8_t ok_idx[2] = {0, 1}, bad_idx[2] = {0, 2};
    build_tzif(&b, up, bad_idx, 2, types, 2, "CET\0CEST", 9, "CET-1");
    write_file("T/BadIndex", b.data, b.len);
    buf_free(&b);
    expect_malformed("T/BadIndex", "transition type index out of range");
    build_tzif(&b, down, ok_idx, 2, types, 2, "CET\0CEST", 9, "CET-1");
    write_file("T/Unsorted", b.data, b.len);
    buf_free(&b);
    expect_malformed("T/Unsorted", "not in ascending order");
    build_tzif(&b, up, ok_idx, 2, types, 2, "CET\0CEST", 8, "CET-1");
    write_file("T/NoNul", b.data, b.len);
    buf_free(&b);
    expect_malformed("T/NoNul", "not NUL-terminated");
    build_tzif(&b, up, ok_idx, 2, types, 0, "", 0, "CET-1");
    write_file("T/NoTypes", b.data, b.len);
    buf_free(&b);
    expect_malformed("T/NoTypes", "inconsistent counts");
    ttype_t wild = {100000000, 0, 0};
    build_tzif(&b, NULL, NULL, 0, &wild, 1, "CET", 4, "CET-1");
    write_file("T/Wild", b.data, b.len);
    buf_free(&b);
    expect_malformed("T/Wild", "bad local time type");

    static const char *footers[] = {
        "CET-1CEST",                    /* DST without a rule */
        "CET-1CEST,M13.5.0,M10.5.0/3",  /* month 13 */
        "CET-1CEST,M3.6.0,M10.5.0/3",   /* week 6 */
        "CET-1CEST,M3.5.7,M10.5.0/3",   /* weekday 7 */
        "CET-1CEST,M3.5.0,M10.5.0/3x",  /* trailing garbage */
        "CET-1CEST,M3.5.0",             /* no end */
        "CET-1CEST,M3.5.0,M10.5.0/168", /* time beyond 167 h */
        "CET-1CEST,J0,J100",            /* J counts from 1 */
        "CET-1CEST,366,100",            /* n is 0-365 */
        "C-1",                          /* abbreviation too short */
        "<+03-3",                       /* unterminated <> */
        "CET25",                        /* offset beyond 24 h */
        "CET",                          /* no offset */
        "CET-1:60",                     /* minutes 60 */
    };
    for (size_t i = 0; i < sizeof(footers) / sizeof(footers[0]); i++) {
        write_rule_zone("T/Footer", footers[i]);
        hd_err_t err = {{0}};
        if (tz_get("T/Footer", &err) != NULL)
            fail_msg("footer \"%s\" accepted", footers[i]);
        assert_non_null(strstr(err.msg, "malformed TZif file"));
    }
    /* A leap-second table (as in right/ zones) is refused, not ignored. */
    build_tzif(&b, NULL, NULL, 0, types, 1, "CET", 4, "CET-1");
    size_t body = b.len - strlen("\nCET-1\n");
    buf_t leap;
    buf_init(&leap);
    buf_append(&leap, b.data, body);
    put_be64(&leap, 78796800); /* 1972-07-01 */
    put_be32(&leap, 1);
    buf_append(&leap, b.data + body, b.len - body);
    memcpy(leap.data + 44 + 7 + 28, "\0\0\0\1", 4); /* leapcnt of the v2 header */
    write_file("T/Leap", leap.data, leap.len);
    buf_free(&leap);
    buf_free(&b);
    expect_malformed("T/Leap", "leap-second zones (right/) are not supported");
    /* A directory inside TZDIR is not a zone. */
    expect_malformed("T", "unknown time zone \"T\"");
}

/* Random byte changes to a real file: each load fails cleanly or yields a
 * zone that converts without crashing (ASan/UBSan watch this test). */
static void test_mutated_files_never_crash(void **state)
{
    (void)state;
    buf_t paris = read_system("Europe/Paris");
    unsigned char *copy = xmalloc(paris.len);
    uint64_t seed = 42;
    int loaded = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, paris.data, paris.len);
        int flips = 1 + round % 4;
        for (int k = 0; k < flips; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            copy[(seed >> 33) % paris.len] ^= (unsigned char)(1u << ((seed >> 20) % 8));
        }
        size_t len = round % 7 == 0 ? (seed >> 40) % paris.len : paris.len;
        write_file("T/Mutant", copy, len);
        const tz_zone_t *z = tz_get("T/Mutant", NULL);
        if (z == NULL)
            continue;
        loaded++;
        tz_local_t l;
        for (int64_t t = -4000000000; t < 5000000000; t += 99999937) {
            tz_to_local(z, t, &l);
            (void)tz_from_local(z, l.year, l.month, l.day, l.hour, l.min, l.sec);
        }
        tz_cache_clear(); /* next round reloads the name */
    }
    /* most single flips land in data that is still valid */
    assert_true(loaded > 100);
    free(copy);
    buf_free(&paris);
}

/* The footer alone must agree with the table zic computed from the same
 * rules: a zone with only the footer vs. the real (fat) file, 2027-2037. */
static void test_footer_matches_table(void **state)
{
    (void)state;
    static const struct {
        const char *zone, *footer;
    } cases[] = {
        {"Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3"},
        {"America/New_York", "EST5EDT,M3.2.0,M11.1.0"},
        {"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3"},
        {"Asia/Jerusalem", "IST-2IDT,M3.4.4/26,M10.5.0"},
        {"America/Nuuk", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"},
        {"Pacific/Chatham", "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45"},
        {"Asia/Kolkata", "IST-5:30"},
    };
    const char *sys = saved_tzdir ? saved_tzdir : "/usr/share/zoneinfo";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_rule_zone("T/Rule", cases[i].footer);
        const tz_zone_t *rule = get("T/Rule");
        setenv("TZDIR", sys, 1);
        const tz_zone_t *real = get(cases[i].zone);
        setenv("TZDIR", tmpdir, 1);
        int changes = 0;
        int prev = 0;
        for (int64_t t = 1798761600; t < 2145916800; t += 900) {
            tz_local_t a, b;
            tz_to_local(rule, t, &a);
            tz_to_local(real, t, &b);
            if (a.offset != b.offset || a.isdst != b.isdst || strcmp(a.abbr, b.abbr) != 0)
                fail_msg("%s at %lld: rule %d %s, table %d %s", cases[i].zone, (long long)t,
                         a.offset, a.abbr, b.offset, b.abbr);
            changes += t > 1798761600 && a.offset != prev;
            prev = a.offset;
            int64_t back = tz_from_local(rule, a.year, a.month, a.day, a.hour, a.min, a.sec);
            assert_int_equal(back,
                             tz_from_local(real, a.year, a.month, a.day, a.hour, a.min, a.sec));
        }
        assert_int_equal(changes, strcmp(cases[i].zone, "Asia/Kolkata") == 0 ? 0 : 22);
        tz_cache_clear();
    }
}

static void test_footer_forms(void **state)
{
    (void)state;
    /* Jn skips Feb 29 (J60 = March 1 always); n counts it (59 = Feb 29 in
     * leap years). Standard -03, daylight -02. */
    write_rule_zone("T/Julian", "AAA3BBB,J60/2,J300/2");
    write_rule_zone("T/Zero", "AAA3BBB,59/2,299/2");
    int64_t mar1_2024 = utc(2024, 3, 1, 5, 0, 0); /* 02:00 at -03 */
    int64_t feb29_2024 = utc(2024, 2, 29, 5, 0, 0);
    int64_t mar1_2023 = utc(2023, 3, 1, 5, 0, 0);
    check("T/Julian", mar1_2024 - 1, "2024-03-01 01:59:59", -10800, false, "AAA");
    check("T/Julian", mar1_2024, "2024-03-01 03:00:00", -7200, true, "BBB");
    check("T/Julian", mar1_2023, "2023-03-01 03:00:00", -7200, true, "BBB");
    /* J300 = October 27 in every year, 02:00 daylight time = 04:00 UTC */
    check("T/Julian", utc(2024, 10, 27, 4, 0, 0), "2024-10-27 01:00:00", -10800, false, "AAA");
    check("T/Zero", feb29_2024 - 1, "2024-02-29 01:59:59", -10800, false, "AAA");
    check("T/Zero", feb29_2024, "2024-02-29 03:00:00", -7200, true, "BBB");
    check("T/Zero", mar1_2023, "2023-03-01 03:00:00", -7200, true, "BBB");
    /* 299 = Oct 26 in a leap year, Oct 27 otherwise */
    check("T/Zero", utc(2024, 10, 26, 4, 0, 0), "2024-10-26 01:00:00", -10800, false, "AAA");
    check("T/Zero", utc(2023, 10, 27, 4, 0, 0), "2023-10-27 01:00:00", -10800, false, "AAA");

    /* Gaps near New Year: the search for changes must look into the next
     * year's rule, and into the previous one when a time past 24 h pushes
     * its change into January (Dec 31 + 120 h = Jan 5 00:00). */
    write_rule_zone("T/NewYear", "AAA-3BBB,J1/1,J200/2");
    assert_int_equal(from("T/NewYear", 2026, 1, 1, 1, 30, 0), utc(2025, 12, 31, 22, 30, 0));
    check("T/NewYear", utc(2025, 12, 31, 22, 30, 0), "2026-01-01 02:30:00", 14400, true, "BBB");
    assert_int_equal(from("T/NewYear", 2025, 12, 31, 23, 59, 0), utc(2025, 12, 31, 20, 59, 0));
    write_rule_zone("T/Late", "AAA-3BBB,J365/120,J200/2");
    check("T/Late", utc(2026, 1, 4, 20, 59, 59), "2026-01-04 23:59:59", 10800, false, "AAA");
    check("T/Late", utc(2026, 1, 4, 21, 0, 0), "2026-01-05 01:00:00", 14400, true, "BBB");
    assert_int_equal(from("T/Late", 2026, 1, 5, 0, 30, 0), utc(2026, 1, 4, 21, 30, 0));

    /* Quoted abbreviations, no DST. */
    write_rule_zone("T/Plus3", "<+03>-3");
    check("T/Plus3", 1768478400, "2026-01-15 15:00:00", 10800, false, "+03");
    write_rule_zone("T/Minus3", "<-03>3");
    check("T/Minus3", 1768478400, "2026-01-15 09:00:00", -10800, false, "-03");
    write_rule_zone("T/Utc", "UTC0");
    check("T/Utc", 1768478400, "2026-01-15 12:00:00", 0, false, "UTC");
    /* Explicit DST offset, seconds in offsets. */
    write_rule_zone("T/Explicit", "AAA-1:00:30BBB-2:30,M3.5.0,M10.5.0/3");
    check("T/Explicit", 1768478400, "2026-01-15 13:00:30", 3630, false, "AAA");
    check("T/Explicit", 1784116800, "2026-07-15 14:30:00", 9000, true, "BBB");

    /* DST all year (tzfile(5)): starts Jan 1 00:00, ends Dec 31 25:00 DST,
     * so the end of one year meets the start of the next. */
    write_rule_zone("T/AllYear", "EST5EDT4,0/0,J365/25");
    const tz_zone_t *all = get("T/AllYear");
    for (int64_t t = utc(2025, 12, 31, 0, 0, 0); t < utc(2026, 1, 2, 0, 0, 0); t += 600) {
        tz_local_t l;
        tz_to_local(all, t, &l);
        assert_int_equal(l.offset, -14400);
        assert_string_equal(l.abbr, "EDT");
    }
    check("T/AllYear", utc(2026, 7, 1, 0, 0, 0), "2026-06-30 20:00:00", -14400, true, "EDT");
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

static int teardown_all(void **state)
{
    (void)state;
    tz_cache_clear();
    return 0;
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
        cmocka_unit_test_setup_teardown(test_malformed_files, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_mutated_files_never_crash, setup_tmpdir,
                                        teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_footer_matches_table, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_footer_forms, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}

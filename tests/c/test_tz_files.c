/* test_tz_files.c - time zones from hand-made TZif files in a temporary
 * $TZDIR (core/base/tz.c): malformed files refused with their reason,
 * random byte changes to a real file that never crash, footer rules alone
 * against the tables zic computed from the same rules, and the footer forms
 * (Jn, n, quoted abbreviations, explicit DST offsets, DST all year). Real
 * zones are tested in test_tz.c; the helpers both use are in tz_check.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/tz.h"
#include "tz_check.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_files, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_mutated_files_never_crash, setup_tmpdir,
                                        teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_footer_matches_table, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_footer_forms, setup_tmpdir, teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}

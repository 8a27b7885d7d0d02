/* test_text.c - SMS measurement (core/base/sms.c), RFC 3339 times
 * (core/base/timefmt.c) and UTF-8 checks (core/base/utf8.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/sms.h"
#include "base/timefmt.h"
#include "base/utf8.h"

#include <stdio.h>
#include <string.h>

static sms_info_t measure(const char *s)
{
    sms_info_t i;
    sms_measure(s, strlen(s), &i);
    return i;
}

static void test_gsm7(void **state)
{
    sms_info_t i = measure("Hello Zoé, your plan is ready: https://x.example/p/42");
    assert_true(i.gsm7); /* é is in the GSM basic set */
    assert_int_equal(i.units, strlen("Hello Zo_, your plan is ready: https://x.example/p/42"));
    assert_int_equal(i.segments, 1);
    assert_int_equal(i.per_segment, 160);
    /* Extension characters cost two septets. */
    i = measure("{}[]~^|\\€");
    assert_true(i.gsm7);
    assert_int_equal(i.units, 18);
    char s161[162];
    memset(s161, 'a', 161);
    s161[161] = '\0';
    i = measure(s161);
    assert_int_equal(i.segments, 2);
    assert_int_equal(i.per_segment, 153);
    s161[160] = '\0';
    assert_int_equal(measure(s161).segments, 1);
    char s306[307];
    memset(s306, 'b', 306);
    s306[306] = '\0';
    assert_int_equal(measure(s306).segments, 2); /* 2 x 153 */
    s306[305] = 'b';
    char s307[308];
    memset(s307, 'c', 307);
    s307[307] = '\0';
    assert_int_equal(measure(s307).segments, 3);
    i = measure("");
    assert_int_equal(i.segments, 0);
}

static void test_ucs2(void **state)
{
    sms_info_t i = measure("Zoë ✓"); /* ë and ✓ are not GSM-7 */
    assert_false(i.gsm7);
    assert_int_equal(i.units, 5);
    assert_int_equal(i.per_segment, 70);
    i = measure("🎉"); /* outside the BMP: a surrogate pair */
    assert_int_equal(i.units, 2);
    char s71[200] = "";
    for (int k = 0; k < 71; k++)
        strcat(s71, "ë");
    i = measure(s71);
    assert_int_equal(i.segments, 2);
    assert_int_equal(i.per_segment, 67);
    /* Invalid UTF-8 is measured as replacement characters, never crashes. */
    i = measure("\xff\xfe\xc3");
    assert_false(i.gsm7);
    assert_int_equal(i.units, 3);
}

/* n copies of unit (UTF-8) appended to b. */
static void rep(char *b, const char *unit, int n)
{
    for (int k = 0; k < n; k++)
        strcat(b, unit);
}

/* A two-unit character (a GSM-7 escape sequence, a surrogate pair) is never
 * split across segments. Expected counts by a closed form: with one such
 * character after p units of filler, in a text of total units over the
 * single-segment capacity, it would straddle exactly when p % multi is
 * multi - 1, and then costs one unit of padding. Every position, around
 * every boundary. */
static void check_one_wide(const char *filler, const char *wide, bool gsm, int total)
{
    int single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    static char b[4096];
    for (int p = 0; p <= total - 2; p++) {
        b[0] = '\0';
        rep(b, filler, p);
        strcat(b, wide);
        rep(b, filler, total - 2 - p);
        sms_info_t i = measure(b);
        assert_int_equal(i.gsm7, gsm);
        assert_int_equal(i.units, (size_t)total);
        int want = total <= single          ? 1
                   : p % multi == multi - 1 ? (total + 1 + multi - 1) / multi
                                            : (total + multi - 1) / multi;
        if (i.segments != want)
            fail_msg("%s at %d of %d units: %d segments, want %d", wide, p, total, i.segments,
                     want);
    }
}

static void test_wide_characters_never_split(void **state)
{
    /* 153 euros: 306 septets, 76 a segment -> 3 (not 306 / 153 = 2) */
    static char b[4096];
    b[0] = '\0';
    rep(b, "€", 153);
    sms_info_t i = measure(b);
    assert_true(i.gsm7);
    assert_int_equal(i.units, 306);
    assert_int_equal(i.segments, 3);
    assert_int_equal(i.per_segment, 153);
    b[0] = '\0';
    rep(b, "€", 80); /* 160 septets: one segment, nothing to split */
    assert_int_equal(measure(b).segments, 1);
    strcat(b, "€");
    assert_int_equal(measure(b).segments, 2); /* 81: 76 + 5 */
    b[0] = '\0';
    rep(b, "a", 153); /* 161 septets: the first segment full, then ~ and 6 */
    rep(b, "~", 1);
    rep(b, "a", 6);
    assert_int_equal(measure(b).segments, 2);
    /* the same for surrogate pairs: 67 emoji = 134 units, 33 a segment -> 3 */
    b[0] = '\0';
    rep(b, "🎉", 67);
    i = measure(b);
    assert_false(i.gsm7);
    assert_int_equal(i.units, 134);
    assert_int_equal(i.segments, 3);
    b[0] = '\0';
    rep(b, "🎉", 35); /* 70 units: one segment */
    assert_int_equal(measure(b).segments, 1);
    for (int total = 159; total <= 162; total++)
        check_one_wide("a", "€", true, total);
    for (int total = 304; total <= 308; total++)
        check_one_wide("a", "€", true, total);
    check_one_wide("a", "\\", true, 459);
    check_one_wide("a", "{", true, 460);
    for (int total = 69; total <= 72; total++)
        check_one_wide("ë", "🎉", false, total);
    for (int total = 133; total <= 136; total++)
        check_one_wide("ë", "😀", false, total);
    check_one_wide("ë", "😀", false, 201);
    check_one_wide("ë", "😀", false, 202);
}

static void test_rfc3339(void **state)
{
    int64_t t;
    assert_int_equal(timefmt_parse("2026-11-28T09:00:00Z", &t), 0);
    assert_int_equal(t, 1795856400);
    assert_int_equal(timefmt_parse("2026-11-28T10:00:00+01:00", &t), 0);
    assert_int_equal(t, 1795856400);
    assert_int_equal(timefmt_parse("2026-11-28t04:30:00.123-04:30", &t), 0);
    assert_int_equal(t, 1795856400);
    assert_int_equal(timefmt_parse("1970-01-01 00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(timefmt_parse("2024-02-29T00:00:00Z", &t), 0);
    static const char *const bad[] = {
        "2026-11-28",
        "2026-11-28T09:00:00",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T09:00:00+25:00",
        "2026-11-28T09:00:00Zjunk",
        "yesterday",
        "2026-11-28T09:00:00.Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (timefmt_parse(bad[i], &t) == 0)
            fail_msg("accepted %s", bad[i]);
    char out[32];
    timefmt_format(1795856400, out);
    assert_string_equal(out, "2026-11-28T09:00:00Z");
    /* Every time that parses formats back to itself (tests/fuzz/fuzz_query.c
     * found "0226-...": strftime wrote "226-...", which did not parse). */
    assert_int_equal(timefmt_parse("0226-11-28T09:00:00Z", &t), 0);
    timefmt_format(t, out);
    assert_string_equal(out, "0226-11-28T09:00:00Z");
    assert_int_equal(timefmt_parse("0001-01-01T00:00:00Z", &t), 0);
    assert_int_equal(timefmt_parse("9999-12-31T23:59:59Z", &t), 0);
    timefmt_format(t, out);
    assert_string_equal(out, "9999-12-31T23:59:59Z");
    /* and no year outside 0001..9999 once in UTC */
    static const char *const out_of_range[] = {"0000-06-01T00:00:00Z", "0001-01-01T00:00:00+00:01",
                                               "9999-12-31T23:59:59-00:01"};
    for (size_t i = 0; i < 3; i++)
        if (timefmt_parse(out_of_range[i], &t) == 0)
            fail_msg("accepted %s", out_of_range[i]);
}

static void scrubbed(const char *in, const char *want)
{
    char b[64];
    snprintf(b, sizeof(b), "%s", in);
    utf8_scrub(b);
    assert_string_equal(b, want);
    assert_true(utf8_valid(b, strlen(b)));
}

static void test_utf8(void **state)
{
    (void)state;
    const char *ok = "Zo\xc3\xab \xe2\x80\x94 \xf0\x9f\x8e\x89";
    assert_true(utf8_valid(ok, strlen(ok)));
    assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong "/" */
    assert_false(utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    scrubbed("plain ASCII", "plain ASCII");
    scrubbed("Zo\xc3\xab", "Zo\xc3\xab");
    scrubbed("cut mid-character \xe2\x80", "cut mid-character ??"); /* a buffer's end */
    scrubbed("caf\xe9 (Latin-1)", "caf? (Latin-1)");
    scrubbed("\xc0\xaf", "??");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm7),
        cmocka_unit_test(test_ucs2),
        cmocka_unit_test(test_wide_characters_never_split),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

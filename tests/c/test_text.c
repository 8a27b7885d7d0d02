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
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tz_check.h - how test_tz.c and test_tz_files.c read a zone: tz_get that
 * fails the test with tz_get's own message, the wall clock, offset and
 * abbreviation of an instant asserted in one call, local -> UTC by zone name,
 * and the group teardown that empties the zone cache. Static helpers for
 * those two test files; included after cmocka.h (they assert).
 */
#ifndef HERALD_TESTS_TZ_CHECK_H
#define HERALD_TESTS_TZ_CHECK_H

#include "base/tz.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static __attribute__((unused)) const tz_zone_t *get(const char *name)
{
    hd_err_t err = {{0}};
    const tz_zone_t *z = tz_get(name, &err);
    if (z == NULL)
        fail_msg("tz_get(%s): %s", name, err.msg);
    return z;
}

/* Asserts the wall clock, offset and abbreviation of instant t in zone. */
static __attribute__((unused)) void check(const char *zone, int64_t t, const char *wall, int offset,
                                          bool isdst, const char *abbr)
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

static __attribute__((unused)) int64_t from(const char *zone, int y, int mo, int d, int h, int mi,
                                            int s)
{
    return tz_from_local(get(zone), y, mo, d, h, mi, s);
}

static __attribute__((unused)) int teardown_all(void **state)
{
    (void)state;
    tz_cache_clear();
    return 0;
}

#endif

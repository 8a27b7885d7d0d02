/*
 * test_rollup.c - the analytics refresher's pacing (engine/rollup.h): the
 * configured interval, stretched to ROLLUP_DUTY times a slow refresh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>

#include "engine/rollup.h"

static void test_fast_refresh_keeps_the_interval(void **state)
{
    (void)state;
    assert_int_equal(rollup_wait_s(60, 0), 60);
    assert_int_equal(rollup_wait_s(60, 0.334), 60);
    assert_int_equal(rollup_wait_s(60, 6.0), 60); /* exactly a tenth */
    assert_int_equal(rollup_wait_s(1, 0.05), 1);
}

static void test_slow_refresh_stretches_the_wait(void **state)
{
    (void)state;
    assert_int_equal(rollup_wait_s(60, 6.01), 61); /* rounded up: never above a tenth */
    assert_int_equal(rollup_wait_s(60, 12.0), 120);
    assert_int_equal(rollup_wait_s(1, 0.35), 4);
}

static void test_absurd_durations_are_bounded(void **state)
{
    (void)state;
    assert_int_equal(rollup_wait_s(60, 1e9), 86400);
    assert_int_equal(rollup_wait_s(60, NAN), 86400);
    assert_int_equal(rollup_wait_s(60, -5), 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_refresh_keeps_the_interval),
        cmocka_unit_test(test_slow_refresh_stretches_the_wait),
        cmocka_unit_test(test_absurd_durations_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

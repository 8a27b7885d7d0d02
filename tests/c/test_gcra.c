/*
 * test_gcra.c - the GCRA arithmetic (limit/gcra.h) alone: burst, steady
 * rate, a clock that goes backwards, keys that expire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "limit/gcra.h"

static void test_burst_then_refused(void **state)
{
    (void)state;
    double tat = 0, now = 1000000;
    double iv = gcra_interval(5, 1); /* 200 ms */
    assert_true(iv > 199.999 && iv < 200.001);
    for (int i = 0; i < 3; i++)
        assert_true(gcra_take(&tat, now, iv, 3) == 0);
    double wait = gcra_take(&tat, now, iv, 3);
    assert_true(wait > 199.999 && wait < 200.001); /* one interval until the next */
    double before = tat;
    assert_true(gcra_take(&tat, now + 100, iv, 3) > 99.999); /* refusals change nothing */
    assert_true(tat == before);
    assert_true(gcra_take(&tat, now + 200, iv, 3) == 0);
}

static void test_steady_rate(void **state)
{
    (void)state;
    /* Asked every ms for 10 s at 5/s burst 1: 50 allowed (+1 at t=0), evenly. */
    double tat = 0, iv = gcra_interval(5, 1), last = -1;
    int allowed = 0;
    for (int t = 0; t < 10000; t++) {
        if (gcra_take(&tat, 5000000.0 + t, iv, 1) == 0) {
            if (last >= 0)
                assert_true(t - last >= 200 - 1e-9);
            last = t;
            allowed++;
        }
    }
    assert_int_equal(allowed, 50);
    /* rate per longer periods: 3 per minute */
    assert_true(gcra_interval(3, 60) == 20000);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    double tat = 0, iv = 100;
    assert_true(gcra_take(&tat, 1000000, iv, 2) == 0);
    assert_true(gcra_take(&tat, 1000000, iv, 2) == 0);
    /* the clock jumps an hour back: the wait is at most one interval */
    double wait = gcra_take(&tat, 1000000 - 3600000, iv, 2);
    assert_true(wait > 0 && wait <= iv);
    assert_true(gcra_take(&tat, 1000000 - 3600000 + iv, iv, 2) == 0);
}

static void test_expiry(void **state)
{
    (void)state;
    double tat = 0, iv = 1000, now = 1e6;
    for (int i = 0; i < 4; i++)
        assert_true(gcra_take(&tat, now, iv, 4) == 0);
    double ttl = gcra_ttl(tat, now);
    assert_true(ttl == 4000);
    /* once the ttl has passed, the bucket is a new one: a full burst again */
    assert_true(gcra_ttl(tat, now + ttl) == 0);
    double fresh = 0;
    for (int i = 0; i < 4; i++) {
        assert_true(gcra_take(&tat, now + ttl, iv, 4) == 0);
        assert_true(gcra_take(&fresh, now + ttl, iv, 4) == 0);
    }
    assert_true(tat == fresh);
    /* a burst below one acts as one */
    double z = 0;
    assert_true(gcra_take(&z, now, iv, 0) == 0);
    assert_true(gcra_take(&z, now, iv, 0) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

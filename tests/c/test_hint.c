/*
 * test_hint.c - base/hint: what was added is found until a key of the same
 * slot replaces it or it is dropped; dropping a key leaves another key's
 * slot alone; threads add and ask at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/hint.h"

#include <pthread.h>
#include <stdio.h>

static void test_added_keys_are_found(void **state)
{
    (void)state;
    hint_t *h = hint_new(1 << 16);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "client-%d", i);
        hint_add(h, k);
    }
    /* 1,000 keys in 65,536 slots: a few may share a slot, most do not */
    int found = 0, strangers = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "client-%d", i);
        found += hint_has(h, k);
        snprintf(k, sizeof(k), "stranger-%d", i);
        strangers += hint_has(h, k);
    }
    if (found < 980)
        fail_msg("only %d of 1000 keys found", found);
    assert_int_equal(strangers, 0);
    assert_false(hint_has(h, ""));
    hint_add(h, "");
    assert_true(hint_has(h, ""));
    hint_free(h);
}

static void test_a_key_of_the_same_slot_replaces_and_drop_is_exact(void **state)
{
    (void)state;
    hint_t *h = hint_new(1); /* 64 slots: collisions are easy to find */
    char a[32] = "a", b[32];
    hint_add(h, a);
    /* find a key that lands in a's slot: it replaces a */
    int i = 0;
    for (;; i++) {
        snprintf(b, sizeof(b), "b-%d", i);
        hint_t *probe = hint_new(1);
        hint_add(probe, a);
        hint_add(probe, b);
        bool same_slot = !hint_has(probe, a);
        hint_free(probe);
        if (same_slot)
            break;
    }
    hint_add(h, b);
    assert_false(hint_has(h, a));
    assert_true(hint_has(h, b));
    /* dropping a (no longer held) leaves b */
    hint_drop(h, a);
    assert_true(hint_has(h, b));
    hint_drop(h, b);
    assert_false(hint_has(h, b));
    hint_free(h);
}

#define THREADS 4
static hint_t *shared;

static void *adder(void *arg)
{
    int t = (int)(intptr_t)arg;
    char k[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof(k), "t%d-%d", t, i % 500);
        hint_add(shared, k);
        (void)hint_has(shared, k);
    }
    return NULL;
}

static void test_threads_add_and_ask_at_once(void **state)
{
    (void)state;
    shared = hint_new(1 << 16);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, adder, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    int found = 0;
    char k[32];
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < 500; i++) {
            snprintf(k, sizeof(k), "t%d-%d", t, i);
            found += hint_has(shared, k);
        }
    if (found < 1950)
        fail_msg("only %d of 2000 keys found", found);
    hint_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_keys_are_found),
        cmocka_unit_test(test_a_key_of_the_same_slot_replaces_and_drop_is_exact),
        cmocka_unit_test(test_threads_add_and_ask_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_group.c - base/group: leader and followers. Every item is run once
 * and finished before its submit returns; items that wait while a group
 * runs go together in the next; max_items and max_inflight hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/group.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8

typedef struct {
    int in, out, runs; /* out = in * 2, runs: how often it was run */
} item_t;

typedef struct {
    int max_items;
    atomic_int arrived;    /* threads about to submit */
    atomic_int inflight;   /* runs now */
    atomic_int peak;       /* most runs at once */
    atomic_int largest;    /* most items in one run */
    atomic_int first_done; /* the first run has returned */
} ctx_t;

static void run(void *arg, void **items, int n)
{
    ctx_t *c = arg;
    int now = atomic_fetch_add(&c->inflight, 1) + 1;
    if (now > atomic_load(&c->peak))
        atomic_store(&c->peak, now);
    if (n > atomic_load(&c->largest))
        atomic_store(&c->largest, n);
    if (!atomic_load(&c->first_done)) {
        /* hold the first run until every thread has come, so the others
         * queue behind it */
        while (atomic_load(&c->arrived) < THREADS)
            usleep(1000);
        usleep(100 * 1000);
    }
    for (int i = 0; i < n; i++) {
        item_t *it = items[i];
        it->out = it->in * 2;
        it->runs++;
    }
    atomic_fetch_sub(&c->inflight, 1);
    atomic_store(&c->first_done, 1);
}

typedef struct {
    group_t *g;
    ctx_t *c;
    item_t item;
    int seen_runs, seen_out; /* the item as submit left it */
} arg_t;

static void *submitter(void *p)
{
    arg_t *a = p;
    atomic_fetch_add(&a->c->arrived, 1);
    group_submit(a->g, &a->item);
    /* finished before submit returned (checked by the main thread: cmocka's
     * asserts belong there) */
    a->seen_runs = a->item.runs;
    a->seen_out = a->item.out;
    return NULL;
}

static void concurrent(int max_items, long *calls, long *items, ctx_t *c)
{
    memset(c, 0, sizeof(*c));
    group_t *g = group_new(run, c, max_items, 1);
    pthread_t t[THREADS];
    arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (arg_t){.g = g, .c = c, .item = {.in = i + 1}};
        assert_int_equal(pthread_create(&t[i], NULL, submitter, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].seen_runs, 1);
        assert_int_equal(args[i].seen_out, (i + 1) * 2);
    }
    group_counts(g, calls, items);
    group_free(g);
}

static void test_lone_item_runs_at_once(void **state)
{
    (void)state;
    ctx_t c = {.first_done = 1};
    group_t *g = group_new(run, &c, 64, 1);
    item_t it = {.in = 21};
    group_submit(g, &it);
    assert_int_equal(it.out, 42);
    assert_int_equal(it.runs, 1);
    long calls, items;
    group_counts(g, &calls, &items);
    assert_int_equal(calls, 1);
    assert_int_equal(items, 1);
    group_free(g);
}

static void test_waiting_items_share_a_run(void **state)
{
    (void)state;
    ctx_t c;
    long calls, items;
    concurrent(64, &calls, &items, &c);
    assert_int_equal(items, THREADS);
    /* the first run held everyone else: they went in one (or, for a thread
     * that had counted itself but not yet queued, one more) */
    assert_in_range(calls, 2, 3);
    assert_int_equal(atomic_load(&c.peak), 1);
}

static void test_max_items_caps_a_run(void **state)
{
    (void)state;
    ctx_t c;
    long calls, items;
    concurrent(3, &calls, &items, &c);
    assert_int_equal(items, THREADS);
    assert_true(atomic_load(&c.largest) <= 3);
    assert_true(calls >= 1 + (THREADS - 1 + 2) / 3);
    assert_int_equal(atomic_load(&c.peak), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lone_item_runs_at_once),
        cmocka_unit_test(test_waiting_items_share_a_run),
        cmocka_unit_test(test_max_items_caps_a_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_limit.c - the shared GCRA limiter (limit/limit.h) against the real
 * Redis named by HERALD_REDIS_URL, and against a private redis-server this
 * test starts, stops and starts again (the in-process fallback and the
 * return to the shared buckets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "limit/limit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *url(void)
{
    const char *u = getenv("HERALD_REDIS_URL");
    return u ? u : "redis://127.0.0.1:56379/0";
}

static double fake_now;
static double fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static char prefix[64];

static lim_t *new_lim(rd_client_t *rd, int procs)
{
    hd_err_t err;
    lim_t *lim = lim_new(rd, prefix, procs, &err);
    assert_non_null(lim);
    lim_set_clock(lim, fake_clock, NULL);
    return lim;
}

static redisReply *cmd(rd_client_t *rd, int argc, const char **argv)
{
    hd_err_t err;
    redisReply *r = rd_command_argv(rd, argc, argv, &err);
    assert_non_null(r);
    return r;
}

static void test_shared_between_processes(void **state)
{
    (void)state;
    hd_err_t err;
    rd_client_t *rd1 = rd_new(url(), 500, 2, &err), *rd2 = rd_new(url(), 500, 2, &err);
    lim_t *a = new_lim(rd1, 1), *b = new_lim(rd2, 1);
    fake_now = 1.7e12;
    lim_rule_t rule = {.rate = 5, .per_s = 1, .burst = 2};
    /* two limiters (two processes) draw from one bucket */
    assert_true(lim_check(a, "sms:+15550001111", &rule).allowed);
    assert_true(lim_check(b, "sms:+15550001111", &rule).allowed);
    lim_result_t r = lim_check(a, "sms:+15550001111", &rule);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 200);
    assert_true(lim_shared(a) && lim_shared(b));
    assert_int_equal(lim_processes(b), 2); /* b's heartbeat saw a's */
    fake_now += 150;
    r = lim_check(b, "sms:+15550001111", &rule);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 50);
    fake_now += 50;
    assert_true(lim_check(b, "sms:+15550001111", &rule).allowed);
    /* another key is another bucket */
    assert_true(lim_check(a, "sms:+15550002222", &rule).allowed);
    /* the key expires when idle: its ttl is what is left of the burst */
    char key[128];
    snprintf(key, sizeof(key), "%ssms:+15550001111", prefix);
    const char *pttl[] = {"PTTL", key};
    redisReply *t = cmd(rd1, 2, pttl);
    assert_true(t->integer > 0 && t->integer <= 400);
    freeReplyObject(t);
    /* the clock goes an hour back: one interval to wait, then going again */
    assert_false(lim_check(a, "sms:+15550001111", &rule).allowed);
    fake_now -= 3600000;
    r = lim_check(a, "sms:+15550001111", &rule);
    assert_false(r.allowed);
    assert_true(r.retry_after_ms >= 1 && r.retry_after_ms <= 200);
    fake_now += (double)r.retry_after_ms;
    assert_true(lim_check(b, "sms:+15550001111", &rule).allowed);
    assert_int_equal(lim_fallback_count(a), 0);
    lim_free(a);
    lim_free(b);
    rd_free(rd1);
    rd_free(rd2);
}

static void test_batch_one_call(void **state)
{
    (void)state;
    hd_err_t err;
    rd_client_t *rd = rd_new(url(), 500, 2, &err);
    lim_t *a = new_lim(rd, 1);
    fake_now = 1.8e12;
    const char *keys[10];
    lim_rule_t rules[10];
    lim_result_t out[10];
    for (int i = 0; i < 10; i++) {
        keys[i] = i == 9 ? "email:relay" : "whatsapp:1055500";
        rules[i] = (lim_rule_t){.rate = 10, .per_s = 1, .burst = 3};
    }
    assert_int_equal(lim_check_many(a, 10, keys, rules, out, &err), 0);
    for (int i = 0; i < 3; i++)
        assert_true(out[i].allowed);
    for (int i = 3; i < 9; i++) { /* the waits grow by one interval each */
        assert_false(out[i].allowed);
        assert_int_equal(out[i].retry_after_ms, 100);
    }
    assert_true(out[9].allowed);
    /* a peek answers without taking */
    lim_rule_t peek = {.rate = 10, .per_s = 1, .burst = 1, .peek = true};
    for (int i = 0; i < 3; i++)
        assert_true(lim_check(a, "peeked", &peek).allowed);
    peek.peek = false;
    assert_true(lim_check(a, "peeked", &peek).allowed);
    peek.peek = true;
    lim_result_t pr = lim_check(a, "peeked", &peek);
    assert_false(pr.allowed);
    assert_int_equal(pr.retry_after_ms, 100);
    /* bad input is refused whole, nothing counted */
    rules[2].rate = 0;
    assert_int_equal(lim_check_many(a, 10, keys, rules, out, &err), -1);
    assert_non_null(strstr(err.msg, "rule 2"));
    assert_int_equal(lim_check_many(a, LIM_MAX_BATCH + 1, keys, rules, out, &err), -1);
    /* SCRIPT FLUSH (or a restarted Redis): reloaded on NOSCRIPT */
    const char *flush[] = {"SCRIPT", "FLUSH"};
    freeReplyObject(cmd(rd, 2, flush));
    fake_now += 100;
    lim_rule_t rule = {.rate = 10, .per_s = 1, .burst = 3};
    assert_true(lim_check(a, "whatsapp:1055500", &rule).allowed);
    assert_true(lim_shared(a));
    assert_int_equal(lim_fallback_count(a), 0);
    lim_free(a);
    rd_free(rd);
}

static pid_t start_redis(int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL)
            _exit(127);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    char u[64];
    snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0", port);
    for (int i = 0; i < 100; i++) { /* up to 5 s */
        hd_err_t err;
        rd_client_t *rd = rd_new(u, 200, 1, &err);
        int ok = rd_ping(rd, &err) == 0;
        rd_free(rd);
        if (ok)
            return pid;
        usleep(50000);
    }
    fail_msg("redis-server did not start on port %d", port);
    return -1;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_fallback_and_back(void **state)
{
    (void)state;
    int port = 20000 + (int)(getpid() % 20000);
    pid_t pid = start_redis(port);
    char u[64];
    snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0", port);
    hd_err_t err;
    rd_client_t *rd = rd_new(u, 200, 2, &err);
    lim_t *a = new_lim(rd, 1), *b = new_lim(rd, 1);
    fake_now = 1.9e12;
    lim_rule_t rule = {.rate = 10, .per_s = 1, .burst = 4};
    assert_true(lim_check(a, "k", &rule).allowed);
    assert_true(lim_check(b, "k2", &rule).allowed); /* b beats too: 2 processes */
    fake_now += 2000;                               /* a's next heartbeat counts both */
    assert_true(lim_check(a, "k3", &rule).allowed);
    assert_int_equal(lim_processes(a), 2);
    stop_redis(pid);
    /* Redis gone: in-process, at 10/s / 2 processes = one per 200 ms, burst 2 */
    fake_now += 1000;
    assert_true(lim_check(a, "k", &rule).allowed);
    assert_false(lim_shared(a));
    assert_true(lim_check(a, "k", &rule).allowed);
    lim_result_t r = lim_check(a, "k", &rule);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 200);
    assert_int_equal(lim_fallback_count(a), 3);
    /* steady: 10 s of asking every 10 ms lets through 50, never unlimited nor stuck */
    int allowed = 0;
    for (int i = 0; i < 1000; i++) {
        fake_now += 10;
        allowed += lim_check(a, "k", &rule).allowed;
    }
    assert_int_equal(allowed, 50);
    /* Redis back (after the client's 1 s reconnect pause): shared again, no restart */
    pid = start_redis(port);
    usleep(1100000);
    fake_now += 1000;
    for (int i = 0; i < 4; i++)
        assert_true(lim_check(a, "k", &rule).allowed);
    assert_true(lim_shared(a));
    assert_false(lim_check(b, "k", &rule).allowed); /* b sees a's draws */
    stop_redis(pid);
    lim_free(a);
    lim_free(b);
    rd_free(rd);
}

/* A check that reads other keys in the same call: their values (NULL when
 * absent, also in the last place), the check itself unchanged, and nothing
 * read when Redis does not answer. */
static void test_check_reading(void **state)
{
    (void)state;
    hd_err_t err;
    rd_client_t *rd = rd_new(url(), 500, 2, &err);
    assert_non_null(rd);
    lim_t *a = new_lim(rd, 1);
    fake_now = 1.95e12;
    char present[128], absent[128];
    snprintf(present, sizeof(present), "%sread:present", prefix);
    snprintf(absent, sizeof(absent), "%sread:absent", prefix);
    const char *set[] = {"SET", present, "hello"};
    freeReplyObject(cmd(rd, 3, set));
    lim_rule_t rule = {.rate = 1, .per_s = 1, .burst = 1};
    const char *reads[] = {present, absent, present, absent};
    char *values[4];
    bool ok = false;
    lim_result_t r = lim_check_reading(a, "reading", &rule, 4, reads, values, &ok);
    assert_true(ok);
    assert_true(r.allowed);
    assert_string_equal(values[0], "hello");
    assert_null(values[1]);
    assert_string_equal(values[2], "hello");
    assert_null(values[3]); /* absent in the last place */
    for (int i = 0; i < 4; i++)
        free(values[i]);
    /* the bucket is the same as lim_check's: its one token is gone */
    r = lim_check_reading(a, "reading", &rule, 1, reads, values, &ok);
    assert_true(ok);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 1000);
    free(values[0]);
    assert_false(lim_check(a, "reading", &rule).allowed);
    /* more reads than allowed: refused, nothing read */
    const char *many[LIM_MAX_READS + 1];
    char *vals[LIM_MAX_READS + 1];
    for (int i = 0; i <= LIM_MAX_READS; i++)
        many[i] = present;
    r = lim_check_reading(a, "other", &rule, LIM_MAX_READS + 1, many, vals, &ok);
    assert_false(ok);
    assert_false(r.allowed);
    lim_free(a);
    rd_free(rd);

    /* no Redis: checked in-process, the reads unknown */
    rd = rd_new("redis://127.0.0.1:1/0", 200, 1, &err);
    a = new_lim(rd, 1);
    values[0] = (char *)"untouched";
    r = lim_check_reading(a, "reading", &rule, 1, reads, values, &ok);
    assert_false(ok);
    assert_true(r.allowed);
    assert_null(values[0]);
    lim_free(a);
    rd_free(rd);
}

static void test_without_redis_configured(void **state)
{
    (void)state;
    hd_err_t err;
    assert_null(lim_new(NULL, prefix, 0, &err));
    lim_t *a = new_lim(NULL, 3);
    fake_now = 1e12;
    lim_rule_t rule = {.rate = 3, .per_s = 1, .burst = 1};
    assert_true(lim_check(a, "x", &rule).allowed);
    lim_result_t r = lim_check(a, "x", &rule);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 1000); /* 3/s shared by 3 processes */
    lim_rule_t peek = rule;
    peek.peek = true;
    assert_true(lim_check(a, "y", &peek).allowed); /* in-process peeks take nothing */
    assert_true(lim_check(a, "y", &peek).allowed);
    /* many more keys than the table holds: idle ones are forgotten */
    for (int i = 0; i < 3 * LIM_LOCAL_SLOTS; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%d", i);
        fake_now += 2000;
        assert_true(lim_check(a, k, &rule).allowed);
    }
    lim_free(a);
}

int main(void)
{
    snprintf(prefix, sizeof(prefix), "herald:test:limit:%d:", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_between_processes), cmocka_unit_test(test_batch_one_call),
        cmocka_unit_test(test_fallback_and_back),        cmocka_unit_test(test_check_reading),
        cmocka_unit_test(test_without_redis_configured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

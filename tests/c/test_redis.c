/*
 * test_redis.c - the hiredis client against the real Redis named by
 * HERALD_REDIS_URL (make test starts it), and against a closed port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cache/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *url(void)
{
    const char *u = getenv("HERALD_REDIS_URL");
    return u ? u : "redis://127.0.0.1:56379/0";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_commands(void **state)
{
    hd_err_t err;
    rd_client_t *rd = rd_new(url(), 500, 2, &err);
    assert_non_null(rd);
    assert_false(rd_is_up(rd)); /* nothing known before the first command */
    assert_int_equal(rd_ping(rd, &err), 0);
    assert_true(rd_is_up(rd));
    char key[64];
    snprintf(key, sizeof(key), "herald:test:%d", getpid());
    const char *set[] = {"SET", key, "v\r\nwith binary-safe bytes", "EX", "30"};
    redisReply *r = rd_command_argv(rd, 5, set, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    const char *get[] = {"GET", key};
    r = rd_command_argv(rd, 2, get, &err);
    assert_non_null(r);
    assert_string_equal(r->str, "v\r\nwith binary-safe bytes");
    freeReplyObject(r);
    /* A Redis error reply is a reply, not a lost connection. */
    const char *bad[] = {"INCR", key};
    r = rd_command_argv(rd, 2, bad, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    assert_true(rd_is_up(rd));
    const char *del[] = {"DEL", key};
    freeReplyObject(rd_command_argv(rd, 2, del, &err));
    rd_free(rd);
}

static void test_survives_killed_connections(void **state)
{
    hd_err_t err;
    rd_client_t *rd = rd_new(url(), 500, 4, &err);
    assert_non_null(rd);
    assert_int_equal(rd_ping(rd, &err), 0); /* one pooled connection now */
    /* The server drops every client connection, as a restart does. */
    rd_client_t *killer = rd_new(url(), 500, 1, &err);
    const char *kill[] = {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"};
    redisReply *r = rd_command_argv(killer, 6, kill, &err);
    assert_non_null(r);
    freeReplyObject(r);
    rd_free(killer);
    /* The stale connection is replaced on the spot: no false outage. */
    assert_int_equal(rd_ping(rd, &err), 0);
    assert_true(rd_is_up(rd));
    rd_free(rd);
}

static void test_down_is_fast_and_reported(void **state)
{
    hd_err_t err;
    rd_client_t *rd = rd_new("redis://127.0.0.1:1/0", 200, 2, &err);
    assert_non_null(rd);
    assert_int_equal(rd_ping(rd, &err), -1);
    assert_non_null(strstr(err.msg, "redis:"));
    assert_false(rd_is_up(rd));
    /* While down, calls fail at once instead of paying a connect each. */
    double t0 = now_s();
    for (int i = 0; i < 100; i++)
        assert_int_equal(rd_ping(rd, &err), -1);
    assert_true(now_s() - t0 < 0.5);
    assert_non_null(strstr(err.msg, "down"));
    rd_free(rd);
}

static void test_bad_urls(void **state)
{
    hd_err_t err;
    assert_null(rd_new("http://x:1/0", 100, 1, &err));
    assert_non_null(strstr(err.msg, "redis://"));
    assert_null(rd_new("redis://:1/0", 100, 1, &err));
    assert_null(rd_new("redis://h:99999/0", 100, 1, &err));
    assert_null(rd_new("redis://h:1/x", 100, 1, &err));
    rd_client_t *rd = rd_new("redis://:secret@h:7000/3", 100, 1, &err);
    assert_non_null(rd);
    rd_free(rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_survives_killed_connections),
        cmocka_unit_test(test_down_is_fast_and_reported),
        cmocka_unit_test(test_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_prefs_cache.c - the Redis copy of preferences rows (cache/prefs_cache)
 * against the real Redis named by HERALD_REDIS_URL: a row comes back whole,
 * Redis holds no plaintext, an older version never replaces a newer one,
 * and what is not a readable row of the client is a miss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "cache/prefs_cache.h"
#include "crypto/field.h"
#include "crypto/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    rd_client_t *rd;
    fe_keyring_t *kr;
} fixture_t;

static const char *url(void)
{
    const char *u = getenv("HERALD_REDIS_URL");
    return u ? u : "redis://127.0.0.1:56379/0";
}

static fe_keyring_t *keyring(uint8_t base)
{
    uint8_t k[32], idx[32];
    for (int i = 0; i < 32; i++) {
        k[i] = (uint8_t)(base + i);
        idx[i] = (uint8_t)(base + 0x80 + i);
    }
    fe_keyring_t *kr = fe_keyring_new(k, idx);
    assert_non_null(kr);
    return kr;
}

static void new_client(char *buf, size_t size)
{
    uint8_t rnd[6];
    assert_int_equal(hash_random(rnd, sizeof(rnd)), 0);
    snprintf(buf, size, "cache-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
             rnd[5]);
}

/* A row as the repository returns it, at version and in locale. */
static prefs_row_t make_row(const char *client_id, int64_t version, const char *locale)
{
    prefs_row_t r = {.client_id = xstrdup(client_id),
                     .name = xstrdup("Ana Lúcia Prado"),
                     .email = xstrdup("ana.prado@example.org"),
                     .phone = NULL,
                     .timezone = xstrdup("America/Sao_Paulo"),
                     .locale = xstrdup(locale),
                     .channels_stated = false,
                     .nopted_out = 1,
                     .opted_out = {"sms"},
                     .quiet_start = "21:00",
                     .quiet_end = "08:00",
                     .digest_time = "09:00",
                     .consent_given = true,
                     .consent_at = "2026-01-02T03:04:05Z",
                     .consent_source = xstrdup("shop"),
                     .created_at = "2026-01-01T00:00:00Z",
                     .updated_at = "2026-01-02T03:04:05Z",
                     .version = version};
    return r;
}

static void put(fixture_t *fx, const char *id, int64_t version, const char *locale)
{
    prefs_row_t r = make_row(id, version, locale);
    pcache_put(fx->rd, fx->kr, &r);
    prefs_row_free(&r);
}

/* The cached version and locale of id; false on a miss. */
static bool cached(fixture_t *fx, const char *id, int64_t *version, char *locale, size_t size)
{
    prefs_row_t r;
    if (!pcache_get(fx->rd, fx->kr, id, &r)) {
        assert_null(r.client_id);
        return false;
    }
    *version = r.version;
    snprintf(locale, size, "%s", r.locale);
    prefs_row_free(&r);
    return true;
}

static redisReply *command(fixture_t *fx, int argc, const char **argv)
{
    hd_err_t err;
    redisReply *r = rd_command_argv(fx->rd, argc, argv, &err);
    if (r == NULL)
        fail_msg("redis: %s", err.msg);
    return r;
}

static void test_round_trip_without_plaintext(void **state)
{
    fixture_t *fx = *state;
    char id[64], key[96];
    new_client(id, sizeof(id));
    snprintf(key, sizeof(key), "herald:prefs:v1:%s", id);
    put(fx, id, 1764321000123456, "pt-BR");

    prefs_row_t r;
    assert_true(pcache_get(fx->rd, fx->kr, id, &r));
    prefs_row_t want = make_row(id, 1764321000123456, "pt-BR");
    assert_string_equal(r.client_id, id);
    assert_string_equal(r.name, want.name);
    assert_string_equal(r.email, want.email);
    assert_null(r.phone);
    assert_string_equal(r.timezone, want.timezone);
    assert_string_equal(r.locale, "pt-BR");
    assert_false(r.channels_stated);
    assert_int_equal(r.nopted_out, 1);
    assert_string_equal(r.opted_out[0], "sms");
    assert_string_equal(r.quiet_start, "21:00");
    assert_string_equal(r.quiet_end, "08:00");
    assert_string_equal(r.digest_time, "09:00");
    assert_true(r.consent_given);
    assert_string_equal(r.consent_at, want.consent_at);
    assert_string_equal(r.consent_source, "shop");
    assert_string_equal(r.created_at, want.created_at);
    assert_string_equal(r.updated_at, want.updated_at);
    assert_true(r.version == 1764321000123456);
    prefs_row_free(&r);
    prefs_row_free(&want);

    const char *get[] = {"GET", key}, *ttl[] = {"TTL", key};
    redisReply *v = command(fx, 2, get);
    assert_int_equal(v->type, REDIS_REPLY_STRING);
    /* the version first: the put script reads it there */
    assert_true(strncmp(v->str, "{\"version\":\"1764321000123456\",", 30) == 0);
    assert_null(strstr(v->str, "Ana"));
    assert_null(strstr(v->str, "Prado"));
    assert_null(strstr(v->str, "prado@"));
    assert_null(strstr(v->str, "example.org"));
    freeReplyObject(v);
    v = command(fx, 2, ttl);
    assert_true(v->integer > 0 && v->integer <= 300);
    freeReplyObject(v);
    pcache_forget(fx->rd, id);
    int64_t version;
    char locale[16];
    assert_false(cached(fx, id, &version, locale, sizeof(locale)));
}

static void test_only_a_newer_version_replaces_the_copy(void **state)
{
    fixture_t *fx = *state;
    char id[64], locale[16];
    int64_t version;
    new_client(id, sizeof(id));
    put(fx, id, 2000000, "de");
    /* a reader that loaded the row before the write comes back late */
    put(fx, id, 1999999, "en");
    assert_true(cached(fx, id, &version, locale, sizeof(locale)));
    assert_true(version == 2000000);
    assert_string_equal(locale, "de");
    /* the same version is not written again */
    put(fx, id, 2000000, "fr");
    assert_true(cached(fx, id, &version, locale, sizeof(locale)));
    assert_string_equal(locale, "de");
    /* a newer one is; versions of more digits are newer, not smaller */
    put(fx, id, 10000000, "it");
    assert_true(cached(fx, id, &version, locale, sizeof(locale)));
    assert_true(version == 10000000);
    assert_string_equal(locale, "it");
    put(fx, id, 9999999, "nl");
    assert_true(cached(fx, id, &version, locale, sizeof(locale)));
    assert_string_equal(locale, "it");
    pcache_forget(fx->rd, id);
}

static void test_what_is_not_a_readable_row_is_a_miss(void **state)
{
    fixture_t *fx = *state;
    char id[64], other[64], key[96], locale[16];
    int64_t version;
    new_client(id, sizeof(id));
    new_client(other, sizeof(other));
    snprintf(key, sizeof(key), "herald:prefs:v1:%s", id);

    /* garbage: a miss, and the next put replaces it */
    const char *set[] = {"SET", key, "not json at all", "EX", "300"};
    freeReplyObject(command(fx, 5, set));
    assert_false(cached(fx, id, &version, locale, sizeof(locale)));
    put(fx, id, 5, "sv");
    assert_true(cached(fx, id, &version, locale, sizeof(locale)));
    assert_string_equal(locale, "sv");

    /* another client's row under this key */
    prefs_row_t r = make_row(other, 6, "sv");
    pcache_put(fx->rd, fx->kr, &r);
    prefs_row_free(&r);
    char other_key[96];
    snprintf(other_key, sizeof(other_key), "herald:prefs:v1:%s", other);
    const char *get[] = {"GET", other_key};
    redisReply *v = command(fx, 2, get);
    const char *swap[] = {"SET", key, v->str, "EX", "300"};
    freeReplyObject(command(fx, 5, swap));
    freeReplyObject(v);
    assert_false(cached(fx, id, &version, locale, sizeof(locale)));

    /* a row sealed under a key this keyring lacks: a miss, and dropped */
    fe_keyring_t *stranger = keyring(0x40);
    r = make_row(id, 7, "sv");
    pcache_forget(fx->rd, id);
    pcache_put(fx->rd, stranger, &r);
    prefs_row_free(&r);
    fe_keyring_free(stranger);
    assert_false(cached(fx, id, &version, locale, sizeof(locale)));
    const char *exists[] = {"EXISTS", key};
    v = command(fx, 2, exists);
    assert_int_equal(v->integer, 0);
    freeReplyObject(v);
    pcache_forget(fx->rd, other);
}

static void test_redis_down_is_a_miss(void **state)
{
    fixture_t *fx = *state;
    hd_err_t err;
    rd_client_t *dead = rd_new("redis://127.0.0.1:1/0", 200, 1, &err);
    assert_non_null(dead);
    prefs_row_t r = make_row("down", 1, "en");
    pcache_put(dead, fx->kr, &r);
    prefs_row_free(&r);
    assert_false(pcache_get(dead, fx->kr, "down", &r));
    assert_null(r.client_id);
    pcache_forget(dead, "down");
    rd_free(dead);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    hd_err_t err;
    fx->rd = rd_new(url(), 1000, 2, &err);
    if (fx->rd == NULL || rd_ping(fx->rd, &err) != 0) {
        fprintf(stderr, "test_prefs_cache: redis at %s: %s\n", url(), err.msg);
        rd_free(fx->rd);
        free(fx);
        return -1;
    }
    fx->kr = keyring(0x01);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    rd_free(fx->rd);
    fe_keyring_free(fx->kr);
    free(fx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_without_plaintext),
        cmocka_unit_test(test_only_a_newer_version_replaces_the_copy),
        cmocka_unit_test(test_what_is_not_a_readable_row_is_a_miss),
        cmocka_unit_test(test_redis_down_is_a_miss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

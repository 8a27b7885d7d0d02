/* test_config.c - config.lua loading and validation (core/base/config.c);
 * the secrets are test_secrets.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_DB    "database = { url = 'postgresql://h@127.0.0.1:5432/h' }, "
#define BASE_REDIS "redis = { url = 'redis://127.0.0.1:6379/0' }"
#define WITH(http) "return { http = { " http " }, " BASE_DB BASE_REDIS " }"

/* Loads chunk expecting failure; returns the message (static). */
static const char *load_fail(const char *chunk)
{
    static hd_err_t err;
    cfg_t cfg;
    memset(&err, 0, sizeof(err));
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), -1);
    return err.msg;
}

static void test_minimal_and_defaults(void **state)
{
    cfg_t cfg;
    hd_err_t err;
    assert_int_equal(cfg_load_string(WITH("listen = '127.0.0.1:9000'"), "t.lua", &cfg, &err), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.http_threads, 16);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.access_ttl_s, 3600);
    assert_string_equal(cfg.jwt_issuer, "herald");
    assert_string_equal(cfg.var_dir, "var");
    assert_true(cfg.allow_dev_keys);
    assert_true(cfg.retry_scale == 1.0);
    assert_int_equal(cfg.http_max_conns, 4096);
    assert_int_equal(cfg.http_max_conns_per_addr, 256);
    assert_int_equal(cfg.http_header_timeout_s, 10);
    assert_int_equal(cfg.http_idle_timeout_s, 30);
    assert_int_equal(cfg.webhook_max_bytes, 2097152);
    cfg_free(&cfg);
}

/* One address may not take every connection slot. */
static void test_per_address_leaves_room(void **state)
{
    assert_string_equal(
        load_fail(WITH("listen = 'a:1', max_connections = 100, max_connections_per_address = 51")),
        "t.lua: http.max_connections_per_address: 51 leaves no room for other addresses; at "
        "most half of http.max_connections (50), or 0 for no limit");
    cfg_t cfg;
    hd_err_t err;
    assert_int_equal(cfg_load_string(WITH("listen = 'a:1', max_connections_per_address = 0"),
                                     "t.lua", &cfg, &err),
                     0);
    assert_int_equal(cfg.http_max_conns_per_addr, 0);
    cfg_free(&cfg);
}

static void test_listen_number_message(void **state)
{
    assert_string_equal(load_fail(WITH("listen = 8080")),
                        "t.lua: http.listen: expected \"host:port\", got 8080");
}

static void test_listen_forms(void **state)
{
    assert_non_null(strstr(load_fail(WITH("listen = 'localhost'")), "expected \"host:port\""));
    assert_non_null(strstr(load_fail(WITH("listen = ':8080'")), "got \":8080\""));
    assert_non_null(strstr(load_fail(WITH("listen = 'h:70000'")), "http.listen"));
    assert_non_null(strstr(load_fail(WITH("listen = 'h:80x'")), "http.listen"));
    cfg_t cfg;
    hd_err_t err;
    assert_int_equal(cfg_load_string(WITH("listen = '[::1]:8081'"), "t.lua", &cfg, &err), 0);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 8081);
    cfg_free(&cfg);
}

static void test_required_and_unknown(void **state)
{
    assert_string_equal(load_fail("return { http = { listen = 'a:1' }, " BASE_REDIS " }"),
                        "t.lua: database.url: required key is missing");
    assert_string_equal(load_fail(WITH("listen = 'a:1', listne = 'x'")),
                        "t.lua: http.listne: unknown key (see docs/configuration.md)");
    assert_string_equal(load_fail("return { htp = {}, " BASE_DB BASE_REDIS " }"),
                        "t.lua: htp: unknown key (see docs/configuration.md)");
    assert_string_equal(load_fail("return { http = 'x', " BASE_DB BASE_REDIS " }"),
                        "t.lua: http: expected a table, got \"x\"");
}

static void test_secrets_refused_in_file(void **state)
{
    const char *m = load_fail("return { http = { listen = 'a:1' }, auth = { jwt_secret = "
                              "'abc' }, " BASE_DB BASE_REDIS " }");
    assert_non_null(strstr(m, "auth.jwt_secret"));
    assert_non_null(strstr(m, "HERALD_JWT_SECRET"));
}

static void test_types_and_ranges(void **state)
{
    assert_string_equal(load_fail(WITH("listen = 'a:1', threads = 'many'")),
                        "t.lua: http.threads: expected a whole number, got \"many\"");
    assert_string_equal(load_fail(WITH("listen = 'a:1', threads = 2.5")),
                        "t.lua: http.threads: expected a whole number, got 2.5");
    assert_string_equal(load_fail(WITH("listen = 'a:1', threads = 0")),
                        "t.lua: http.threads: expected a value between 1 and 256, got 0");
    assert_non_null(
        strstr(load_fail("return { http = { listen = 'a:1' }, database = { url = "
                         "'mysql://x' }, " BASE_REDIS " }"),
               "database.url: expected a postgresql:// or postgres:// URL, got \"mysql://x\""));
    assert_non_null(strstr(load_fail("return { http = { listen = 'a:1' }, auth = { "
                                     "allow_dev_keys = 'yes' }, " BASE_DB BASE_REDIS " }"),
                           "auth.allow_dev_keys: expected a boolean, got \"yes\""));
    assert_non_null(strstr(load_fail("return { http = { listen = 'a:1' }, log = { level = "
                                     "'loud' }, " BASE_DB BASE_REDIS " }"),
                           "log.level: expected one of"));
}

static void test_messages_hide_credentials(void **state)
{
    const char *m =
        load_fail("return { http = { listen = 'a:1' }, database = { url = "
                  "'postgres-ql://herald:S3cretPassw0rd@db/herald' }, " BASE_REDIS " }");
    assert_null(strstr(m, "S3cret"));
    assert_non_null(strstr(m, "postgres-ql://***@db/herald"));
}

static void test_nan_is_refused(void **state)
{
    assert_non_null(strstr(load_fail("return { http = { listen = 'a:1' }, engine = { "
                                     "retry_scale = 0/0 }, " BASE_DB BASE_REDIS " }"),
                           "engine.retry_scale: expected a value between"));
    assert_string_equal(
        load_fail("return { http = { listen = 'a:1', [1] = 5 }, " BASE_DB BASE_REDIS " }"),
        "t.lua: http: keys must be names, found a number key");
}

static void test_env_function(void **state)
{
    cfg_t cfg;
    hd_err_t err;
    setenv("HERALD_TEST_LISTEN", "10.1.2.3:4567", 1);
    unsetenv("HERALD_TEST_UNSET");
    assert_int_equal(
        cfg_load_string("return { http = { listen = env('HERALD_TEST_LISTEN', "
                        "'x:1'), threads = env('HERALD_TEST_UNSET', '7') }, " BASE_DB BASE_REDIS
                        " }",
                        "t.lua", &cfg, &err),
        0);
    assert_string_equal(cfg.listen_host, "10.1.2.3");
    assert_int_equal(cfg.listen_port, 4567);
    assert_int_equal(cfg.http_threads, 7); /* numbers from env() arrive as strings */
    cfg_free(&cfg);
    unsetenv("HERALD_TEST_LISTEN");
}

static void test_file_shape_and_sandbox(void **state)
{
    assert_string_equal(load_fail("return 42"),
                        "t.lua: expected the file to return a table, got 42");
    assert_non_null(strstr(load_fail("return {"), "t.lua:1:"));
    /* The file has no io/os/require: reading the machine fails. */
    assert_non_null(strstr(load_fail("local f = io.open('/etc/passwd') return {}"), "io"));
    assert_non_null(strstr(load_fail("os.exit(1) return {}"), "os"));
    assert_non_null(strstr(load_fail("require('x') return {}"), "require"));
}

static void test_shipped_config_loads(void **state)
{
    const char *src = getenv("HERALD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.lua", src ? src : ".");
    cfg_t cfg;
    hd_err_t err = {{0}};
    int rc = cfg_load(path, &cfg, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_non_null(cfg.database_url);
    cfg_free(&cfg);
    assert_non_null(strstr(load_fail("return {}"), "required key is missing"));
    assert_int_equal(cfg_load("/nonexistent/config.lua", &cfg, &err), -1);
    assert_non_null(strstr(err.msg, "pass --config FILE or set HERALD_CONFIG"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_listen_number_message),
        cmocka_unit_test(test_per_address_leaves_room),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_required_and_unknown),
        cmocka_unit_test(test_secrets_refused_in_file),
        cmocka_unit_test(test_types_and_ranges),
        cmocka_unit_test(test_messages_hide_credentials),
        cmocka_unit_test(test_nan_is_refused),
        cmocka_unit_test(test_env_function),
        cmocka_unit_test(test_file_shape_and_sandbox),
        cmocka_unit_test(test_shipped_config_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

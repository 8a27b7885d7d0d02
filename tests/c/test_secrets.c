/* test_secrets.c - secrets from the environment and development keys under
 * var/dev-keys/ (core/cli/secrets.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/config.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE_DB    "database = { url = 'postgresql://h@127.0.0.1:5432/h' }, "
#define BASE_REDIS "redis = { url = 'redis://127.0.0.1:6379/0' }"

static void test_secrets(void **state)
{
    char dir[] = "/tmp/herald-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char chunk[512];
    snprintf(chunk, sizeof(chunk),
             "return { http = { listen = 'a:1' }, paths = { var = '%s' }, " BASE_DB BASE_REDIS " }",
             dir);
    cfg_t cfg;
    hd_err_t err;
    unsetenv("HERALD_JWT_SECRET");
    unsetenv("HERALD_ENCRYPTION_KEY");
    unsetenv("HERALD_ENCRYPTION_OLD_KEYS");
    unsetenv("HERALD_BLIND_INDEX_KEY");

    /* Development keys are generated once, private, and reused. */
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), 0);
    assert_true(cfg.jwt_secret_is_dev && cfg.enc_key_is_dev);
    uint8_t first[32];
    memcpy(first, cfg.enc_key, 32);
    char path[1024];
    snprintf(path, sizeof(path), "%s/dev-keys/encryption_key", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cfg_free(&cfg);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), 0);
    assert_memory_equal(first, cfg.enc_key, 32);
    cfg_free(&cfg);

    /* A damaged key file is an error naming it, never silently replaced. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "encryption_key is empty or damaged"));
    cfg_free(&cfg);
    f = fopen(path, "w");
    fprintf(f, "%s", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
    fclose(f);

    /* A check validates without writing anything. */
    snprintf(path, sizeof(path), "%s/dev-keys/jwt_secret", dir);
    unlink(path);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_check_secrets(&cfg, &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    cfg_free(&cfg);

    /* Environment values win; bad ones are precise errors. */
    setenv("HERALD_JWT_SECRET", "short", 1);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), -1);
    assert_string_equal(err.msg, "HERALD_JWT_SECRET: expected 32 to 128 bytes, got 5");
    cfg_free(&cfg);
    setenv("HERALD_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
    setenv("HERALD_ENCRYPTION_KEY", "not-base64!", 1);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "HERALD_ENCRYPTION_KEY"));
    cfg_free(&cfg);
    setenv("HERALD_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1);
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), 0);
    assert_false(cfg.jwt_secret_is_dev || cfg.enc_key_is_dev);
    assert_int_equal(cfg.enc_key[31], 31);
    cfg_free(&cfg);

    /* With dev keys disallowed, a missing secret stops the start. */
    unsetenv("HERALD_JWT_SECRET");
    snprintf(
        chunk, sizeof(chunk),
        "return { http = { listen = 'a:1' }, auth = { allow_dev_keys = false }, " BASE_DB BASE_REDIS
        " }");
    assert_int_equal(cfg_load_string(chunk, "t.lua", &cfg, &err), 0);
    assert_int_equal(cli_load_secrets(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "HERALD_JWT_SECRET is not set"));
    cfg_free(&cfg);
    unsetenv("HERALD_ENCRYPTION_KEY");

    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

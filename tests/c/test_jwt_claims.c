/*
 * test_jwt_claims.c - unit tests for crypto/jwt's checks of the registered
 * claims of a correctly signed HS256 token: exp (required or not, leeway),
 * nbf, time claims out of range, iss and aud. The token's form, algorithm,
 * signature and key ids are checked in test_jwt.c; the helpers both use are
 * in jwt_fixture.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/jwt.h"
#include "jwt_fixture.h"

/* ---- jwt: time claims -------------------------------------------------- */

static void test_jwt_exp(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    char payload[128];

    /* No exp: fine unless required. */
    expect_payload("{\"sub\":\"x\"}", &o, JWT_OK);
    o.require_exp = 1;
    expect_payload("{\"sub\":\"x\"}", &o, JWT_ENOEXP);

    o.leeway = 60;
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)(NOW - 120));
    expect_payload(payload, &o, JWT_EEXPIRED);
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)(NOW - 30));
    expect_payload(payload, &o, JWT_OK);
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)(NOW - 60));
    expect_payload(payload, &o, JWT_EEXPIRED);
    o.leeway = 0;
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)(NOW - 30));
    expect_payload(payload, &o, JWT_EEXPIRED);
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)(NOW + 1));
    expect_payload(payload, &o, JWT_OK);

    /* exp that is not a number is not "no exp". */
    expect_payload("{\"exp\":\"9999999999\"}", &o, JWT_EMALFORMED);
    o.require_exp = 0;
    expect_payload("{\"exp\":null}", &o, JWT_EMALFORMED);
}

static void test_jwt_nbf(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    char payload[128];
    o.leeway = 60;
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld}", (long long)(NOW + 120));
    expect_payload(payload, &o, JWT_ENOTYET);
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld}", (long long)(NOW + 30));
    expect_payload(payload, &o, JWT_OK);
    o.leeway = 0;
    expect_payload(payload, &o, JWT_ENOTYET);
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld}", (long long)NOW);
    expect_payload(payload, &o, JWT_OK);
    expect_payload("{\"nbf\":\"later\"}", &o, JWT_EMALFORMED);
}

/* Time claims Herald could not convert to whole seconds without undefined
 * behaviour (a double out of int64_t's range) are malformed, not "far away". */
static void test_jwt_time_claims_in_range(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    o.require_exp = 1;
    static const char *const bad[] = {
        "{\"exp\":1e999}",
        "{\"exp\":-1e999}",
        "{\"exp\":9.3e18}",
        "{\"exp\":1e-3}",
        "{\"exp\":4102444800.5}",
        "{\"exp\":-1}",
        "{\"exp\":4102444800,\"nbf\":1e999}",
        "{\"exp\":4102444800,\"iat\":-5}",
        "{\"exp\":4102444800,\"iat\":1.25}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_payload(bad[i], &o, JWT_EMALFORMED);
    expect_payload("{\"exp\":4102444800,\"iat\":1700000000}", &o, JWT_OK);
}

/* ---- jwt: iss / aud ---------------------------------------------------- */

static void test_jwt_iss(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    o.issuer = "herald";
    expect_payload("{\"iss\":\"herald\"}", &o, JWT_OK);
    expect_payload("{\"iss\":\"evil\"}", &o, JWT_EISS);
    expect_payload("{\"iss\":\"herald2\"}", &o, JWT_EISS);
    expect_payload("{\"sub\":\"x\"}", &o, JWT_EISS);
    expect_payload("{\"iss\":[\"herald\"]}", &o, JWT_EISS);
    /* Not asked for: any issuer is fine. */
    o.issuer = NULL;
    expect_payload("{\"iss\":\"evil\"}", &o, JWT_OK);
}

static void test_jwt_aud(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    o.audience = "api";
    expect_payload("{\"aud\":\"api\"}", &o, JWT_OK);
    expect_payload("{\"aud\":\"web\"}", &o, JWT_EAUD);
    expect_payload("{\"aud\":[\"web\",\"api\"]}", &o, JWT_OK);
    expect_payload("{\"aud\":[\"web\",\"apix\"]}", &o, JWT_EAUD);
    expect_payload("{\"aud\":[]}", &o, JWT_EAUD);
    expect_payload("{\"aud\":[1,{\"x\":\"api\"}]}", &o, JWT_EAUD);
    expect_payload("{\"sub\":\"x\"}", &o, JWT_EAUD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_exp),
        cmocka_unit_test(test_jwt_nbf),
        cmocka_unit_test(test_jwt_time_claims_in_range),
        cmocka_unit_test(test_jwt_iss),
        cmocka_unit_test(test_jwt_aud),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

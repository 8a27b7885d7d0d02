/*
 * test_jwt.c - unit tests for crypto/jwt (HS256 sign/verify against the RFC
 * 7515 A.1 example, every rejection of the token's form, algorithm and
 * signature, and key ids with rotation). The registered claims (exp, nbf,
 * iat, iss, aud) are checked in test_jwt_claims.c; the helpers both use are
 * in jwt_fixture.h. The pieces it is built on have their own: test_codec.c
 * (base64, base64url, hex), test_hash.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/codec.h"
#include "crypto/hash.h"
#include "crypto/jwt.h"
#include "jwt_fixture.h"

/* ---- jwt: RFC 7515 A.1 ------------------------------------------------ */

static const char rfc_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                                ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtc"
                                "GxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                                ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_jwk_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

static jwt_verify_opts_t rfc_opts(uint8_t **key)
{
    size_t keylen = 0;
    assert_int_equal(b64url_decode(rfc_jwk_k, strlen(rfc_jwk_k), key, &keylen), 0);
    assert_int_equal(keylen, 64);
    jwt_verify_opts_t o = {.key = *key, .keylen = keylen, .issuer = "joe"};
    return o;
}

static void test_jwt_rfc7515_a1_valid_before_exp(void **state)
{
    (void)state;
    uint8_t *key = NULL;
    jwt_verify_opts_t o = rfc_opts(&key);
    o.now = 1300819379;

    cJSON *claims = NULL;
    assert_int_equal(jwt_verify_hs256(rfc_token, &o, &claims), JWT_OK);
    assert_non_null(claims);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(claims, "iss")->valuestring, "joe");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(claims, "exp")->valuedouble, 1300819380);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(claims, "http://example.com/is_root")));
    cJSON_Delete(claims);

    /* The verdict alone, without asking for the claims. */
    assert_int_equal(jwt_verify_hs256(rfc_token, &o, NULL), JWT_OK);
    free(key);
}

static void test_jwt_rfc7515_a1_expired(void **state)
{
    (void)state;
    uint8_t *key = NULL;
    jwt_verify_opts_t o = rfc_opts(&key);

    o.now = (int64_t)time(NULL);
    expect_status(rfc_token, &o, JWT_EEXPIRED);
    /* RFC 7519 4.1.4: not accepted on or after exp. */
    o.now = 1300819380;
    expect_status(rfc_token, &o, JWT_EEXPIRED);
    o.leeway = 1;
    expect_status(rfc_token, &o, JWT_OK);
    /* Issuer is checked too. */
    o.now = 1300819379;
    o.issuer = "jane";
    expect_status(rfc_token, &o, JWT_EISS);
    free(key);
}

/* ---- jwt: round trip --------------------------------------------------- */

static void test_jwt_sign_verify_round_trip(void **state)
{
    (void)state;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "sub", "user-42");
    cJSON_AddStringToObject(c, "iss", "herald");
    cJSON_AddStringToObject(c, "aud", "api");
    cJSON_AddNumberToObject(c, "iat", (double)NOW);
    cJSON_AddNumberToObject(c, "exp", (double)(NOW + 300));

    char *tok = NULL;
    assert_int_equal(jwt_sign_hs256(test_key, TEST_KEYLEN, c, &tok), 0);
    assert_non_null(tok);

    /* Header bytes are exactly the fixed HS256 header. */
    const char *dot = strchr(tok, '.');
    assert_non_null(dot);
    uint8_t *h = NULL;
    size_t hlen = 0;
    assert_int_equal(b64url_decode(tok, (size_t)(dot - tok), &h, &hlen), 0);
    assert_string_equal((char *)h, hs256_header);
    free(h);

    jwt_verify_opts_t o = base_opts();
    o.issuer = "herald";
    o.audience = "api";
    o.require_exp = 1;
    cJSON *claims = NULL;
    assert_int_equal(jwt_verify_hs256(tok, &o, &claims), JWT_OK);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(claims, "sub")->valuestring, "user-42");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(claims, "exp")->valuedouble, NOW + 300);
    cJSON_Delete(claims);

    /* A different key must not verify it. */
    o.key = (const uint8_t *)"another-key";
    o.keylen = 11;
    expect_status(tok, &o, JWT_ESIG);

    free(tok);
    cJSON_Delete(c);
}

static void test_jwt_sign_rejects_bad_input(void **state)
{
    (void)state;
    char *tok = (char *)"sentinel";
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(jwt_sign_hs256(test_key, TEST_KEYLEN, arr, &tok), -1);
    assert_null(tok);
    cJSON *obj = cJSON_CreateObject();
    tok = (char *)"sentinel";
    assert_int_equal(jwt_sign_hs256(test_key, 0, obj, &tok), -1);
    assert_null(tok);
    cJSON_Delete(arr);
    cJSON_Delete(obj);
}

/* ---- jwt: algorithm ---------------------------------------------------- */

static void test_jwt_rejects_alg_none(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    const char *headers[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
                             "{\"alg\":\"NONE\"}"};
    char *p = enc("{\"sub\":\"admin\"}");
    for (size_t i = 0; i < 3; i++) {
        char *h = enc(headers[i]);
        /* The classic forgery: empty signature segment. */
        char *tok = join(h, p, "");
        expect_status(tok, &o, JWT_EALG);
        free(tok);
        /* And with a signature that is valid for our key. */
        tok = sign_segments(h, p, test_key, TEST_KEYLEN);
        expect_status(tok, &o, JWT_EALG);
        free(tok);
        free(h);
    }
    free(p);
}

static void test_jwt_rejects_other_algs(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    /* Each token carries a correct HS256 MAC, so only the header can be the
     * reason for rejection. */
    const char *headers[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":256}",
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"Alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *tok = make_token(headers[i], "{\"sub\":\"x\"}");
        expect_status(tok, &o, JWT_EALG);
        free(tok);
    }
    /* Control: the same construction with the right header passes. */
    expect_payload("{\"sub\":\"x\"}", &o, JWT_OK);
}

/* ---- jwt: signature ---------------------------------------------------- */

static void test_jwt_rejects_bad_signature(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    char *tok = make_token(hs256_header, "{\"sub\":\"x\"}");
    expect_status(tok, &o, JWT_OK);

    char *sig = strrchr(tok, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    expect_status(tok, &o, JWT_ESIG);
    free(tok);

    /* Right MAC, wrong length: truncated to 31 bytes or extended to 33. */
    char *h = enc(hs256_header), *p = enc("{\"sub\":\"x\"}");
    char *input = join(h, p, NULL);
    uint8_t mac[33];
    hash_hmac_sha256(test_key, TEST_KEYLEN, input, strlen(input), mac);
    mac[32] = 0;
    for (size_t len = 31; len <= 33; len += 2) {
        char *s = b64url_encode(mac, len);
        tok = join(h, p, s);
        expect_status(tok, &o, JWT_ESIG);
        free(tok);
        free(s);
    }
    /* Empty signature on an HS256 header. */
    tok = join(h, p, "");
    expect_status(tok, &o, JWT_ESIG);
    free(tok);

    /* A token MACed with an empty key never verifies, even with keylen 0. */
    tok = sign_segments(h, p, (const uint8_t *)"", 0);
    o.key = (const uint8_t *)"";
    o.keylen = 0;
    expect_status(tok, &o, JWT_ESIG);
    free(tok);

    free(input);
    free(h);
    free(p);
}

static void test_jwt_rejects_tampered_payload(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    char *tok = make_token(hs256_header, "{\"sub\":\"user-42\",\"admin\":false}");
    expect_status(tok, &o, JWT_OK);

    char *h = enc(hs256_header), *evil = enc("{\"sub\":\"user-42\",\"admin\":true}");
    char *forged = join(h, evil, strrchr(tok, '.') + 1);
    expect_status(forged, &o, JWT_ESIG);

    free(forged);
    free(evil);
    free(h);
    free(tok);
}

static void test_jwt_signature_checked_before_claims(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    o.issuer = "herald";
    /* Expired, wrong issuer and badly signed: the signature verdict wins. */
    char *h = enc(hs256_header), *p = enc("{\"iss\":\"evil\",\"exp\":1}");
    char *tok = sign_segments(h, p, (const uint8_t *)"wrong", 5);
    expect_status(tok, &o, JWT_ESIG);
    free(tok);
    /* Payload that is not even JSON, badly signed: still a signature error. */
    free(p);
    p = enc("not json");
    tok = sign_segments(h, p, (const uint8_t *)"wrong", 5);
    expect_status(tok, &o, JWT_ESIG);
    free(tok);
    free(p);
    free(h);
}

/* ---- jwt: malformed ---------------------------------------------------- */

static void test_jwt_malformed(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    char *good = make_token(hs256_header, "{\"sub\":\"x\"}");
    expect_status(good, &o, JWT_OK);

    /* Two segments. */
    char *t = strdup(good);
    *strrchr(t, '.') = '\0';
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);

    /* Four segments. */
    t = join(good, "AAAA", NULL);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);

    /* Invalid base64url character in the payload. */
    t = strdup(good);
    strchr(t, '.')[2] = '*';
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);

    /* Padding: a padded payload segment MACed as sent would otherwise pass. */
    char *h = enc(hs256_header);
    char *p = b64_encode((const uint8_t *)"{\"sub\":\"a\"}", 11);
    assert_non_null(strchr(p, '='));
    t = sign_segments(h, p, test_key, TEST_KEYLEN);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);
    free(p);

    /* Empty and degenerate inputs. */
    expect_status("", &o, JWT_EMALFORMED);
    expect_status("..", &o, JWT_EMALFORMED);
    expect_status(NULL, &o, JWT_EMALFORMED);
    p = enc("{\"sub\":\"x\"}");
    t = sign_segments("", p, test_key, TEST_KEYLEN);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);
    t = sign_segments(h, "", test_key, TEST_KEYLEN);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);
    free(p);
    free(h);

    /* Header that is not a JSON object. */
    const char *bad_headers[] = {"not json", "[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"} x",
                                 "{\"alg\":\"HS256\""};
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        t = make_token(bad_headers[i], "{\"sub\":\"x\"}");
        expect_status(t, &o, JWT_EMALFORMED);
        free(t);
    }
    /* Duplicate header names: cJSON would see the first "alg" only. */
    t = make_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"x\"}");
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);

    /* Payload that is not a JSON object (correctly signed). */
    const char *bad_payloads[] = {
        "[1,2]", "\"str\"", "42", "null", "{\"a\":1} trailing", "{\"exp\":1,\"exp\":99999999999}"};
    for (size_t i = 0; i < sizeof(bad_payloads) / sizeof(bad_payloads[0]); i++)
        expect_payload(bad_payloads[i], &o, JWT_EMALFORMED);
    /* An embedded NUL would hide the rest of the payload from cJSON. */
    h = enc(hs256_header);
    char *nul = b64url_encode((const uint8_t *)"{\"a\":1}\0{\"b\":2}", 15);
    t = sign_segments(h, nul, test_key, TEST_KEYLEN);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);
    free(nul);
    free(h);

    free(good);
}

static void test_jwt_length_bound(void **state)
{
    (void)state;
    jwt_verify_opts_t o = base_opts();
    size_t big = 7000;
    char *payload = malloc(big + 16);
    assert_non_null(payload);

    /* Just under the bound: fine. */
    memcpy(payload, "{\"x\":\"", 6);
    memset(payload + 6, 'a', 5000);
    memcpy(payload + 6 + 5000, "\"}", 3);
    char *t = make_token(hs256_header, payload);
    assert_true(strlen(t) <= JWT_MAX_TOKEN_LEN);
    expect_status(t, &o, JWT_OK);
    free(t);

    /* Over it: rejected before any decoding. */
    memset(payload + 6, 'a', big);
    memcpy(payload + 6 + big, "\"}", 3);
    t = make_token(hs256_header, payload);
    assert_true(strlen(t) > JWT_MAX_TOKEN_LEN);
    expect_status(t, &o, JWT_EMALFORMED);
    free(t);
    free(payload);
}

static void test_jwt_status_str(void **state)
{
    (void)state;
    assert_string_equal(jwt_status_str(JWT_EEXPIRED), "token expired");
    assert_string_equal(jwt_status_str(JWT_EALG), "algorithm not allowed");
    const char *seen[JWT_EAUD + 1];
    for (int s = JWT_OK; s <= JWT_EAUD; s++) {
        seen[s] = jwt_status_str((jwt_status_t)s);
        assert_non_null(seen[s]);
        assert_true(strlen(seen[s]) > 0);
        for (int prev = JWT_OK; prev < s; prev++)
            assert_string_not_equal(seen[prev], seen[s]);
    }
}

/* ---- jwt: key ids and rotation (issue 17, item 14) --------------------- */

static const uint8_t old_key[] = "old-key-0123456789abcdef-0123456789ab";
#define OLD_KEYLEN (sizeof(old_key) - 1)

static cJSON *kid_claims(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "sub", "user-42");
    cJSON_AddNumberToObject(c, "exp", (double)(NOW + 300));
    return c;
}

static void test_jwt_key_id_is_derived_from_the_key(void **state)
{
    (void)state;
    char a[9], b[9], c[9];
    jwt_key_id(test_key, TEST_KEYLEN, a);
    jwt_key_id(test_key, TEST_KEYLEN, b);
    jwt_key_id(old_key, OLD_KEYLEN, c);
    assert_int_equal(strlen(a), 8);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* the first 4 bytes of SHA-256("herald-jwt-kid" || key), in hex */
    uint8_t buf[64], md[32];
    memcpy(buf, "herald-jwt-kid", 14);
    memcpy(buf + 14, test_key, TEST_KEYLEN);
    hash_sha256(buf, 14 + TEST_KEYLEN, md);
    char want[9];
    snprintf(want, sizeof(want), "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
    assert_string_equal(a, want);
}

static void test_jwt_signed_tokens_carry_kid(void **state)
{
    (void)state;
    cJSON *c = kid_claims();
    char *tok = NULL;
    assert_int_equal(jwt_sign_hs256_kid(test_key, TEST_KEYLEN, "k-1", c, &tok), 0);
    const char *dot = strchr(tok, '.');
    uint8_t *h = NULL;
    size_t hlen = 0;
    assert_int_equal(b64url_decode(tok, (size_t)(dot - tok), &h, &hlen), 0);
    assert_string_equal((char *)h, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k-1\"}");
    free(h);
    free(tok);
    /* a kid that would need escaping, or is empty or too long, is refused */
    static const char *const bad[] = {
        "",    "a\"b",     "a b",
        "a/b", "\xc3\xa9", "0123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tok = (char *)"sentinel";
        assert_int_equal(jwt_sign_hs256_kid(test_key, TEST_KEYLEN, bad[i], c, &tok), -1);
        assert_null(tok);
    }
    cJSON_Delete(c);
}

static void test_jwt_rotation_old_key_verifies_by_kid(void **state)
{
    (void)state;
    cJSON *c = kid_claims();
    char *old_tok = NULL, *new_tok = NULL, *legacy = NULL;
    assert_int_equal(jwt_sign_hs256_kid(old_key, OLD_KEYLEN, "old", c, &old_tok), 0);
    assert_int_equal(jwt_sign_hs256_kid(test_key, TEST_KEYLEN, "new", c, &new_tok), 0);
    assert_int_equal(jwt_sign_hs256(old_key, OLD_KEYLEN, c, &legacy), 0); /* no kid */

    const jwt_key_t both[] = {{"new", test_key, TEST_KEYLEN}, {"old", old_key, OLD_KEYLEN}};
    const jwt_key_t only_new[] = {{"new", test_key, TEST_KEYLEN}};
    jwt_verify_opts_t o = {.now = NOW, .keys = both, .nkeys = 2};
    expect_status(old_tok, &o, JWT_OK);
    expect_status(new_tok, &o, JWT_OK);
    expect_status(legacy, &o, JWT_OK); /* from before key ids: each key is tried */

    /* the old key no longer configured: its tokens name an unknown kid */
    o.keys = only_new;
    o.nkeys = 1;
    expect_status(old_tok, &o, JWT_EKID);
    expect_status(new_tok, &o, JWT_OK);
    expect_status(legacy, &o, JWT_ESIG);

    /* a kid names the one key that is tried: the old key's token relabelled
     * "new" does not verify even though the old key is configured */
    o.keys = both;
    o.nkeys = 2;
    char *h = enc("{\"alg\":\"HS256\",\"kid\":\"new\"}"), *p = enc("{\"exp\":1700000300}");
    char *relabelled = sign_segments(h, p, old_key, OLD_KEYLEN);
    expect_status(relabelled, &o, JWT_ESIG);
    free(relabelled);
    relabelled = sign_segments(h, p, test_key, TEST_KEYLEN);
    expect_status(relabelled, &o, JWT_OK);
    free(relabelled);
    free(h);
    free(p);
    free(old_tok);
    free(new_tok);
    free(legacy);
    cJSON_Delete(c);
}

static void test_jwt_unknown_or_malformed_kid(void **state)
{
    (void)state;
    const jwt_key_t keys[] = {{"new", test_key, TEST_KEYLEN}};
    jwt_verify_opts_t o = {.now = NOW, .keys = keys, .nkeys = 1};
    const char *payload = "{\"exp\":1700000300}";
    static const struct {
        const char *header;
        jwt_status_t want;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"kid\":\"other\"}", JWT_EKID},
        {"{\"alg\":\"HS256\",\"kid\":\"NEW\"}", JWT_EKID},
        {"{\"alg\":\"HS256\",\"kid\":\"new \"}", JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":\"\"}", JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":7}", JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":null}", JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":[\"new\"]}", JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":\"new\",\"kid\":\"new\"}", JWT_EMALFORMED},
        {"{\"alg\":\"none\",\"kid\":\"new\"}", JWT_EALG},
        {"{\"alg\":\"HS256\",\"kid\":\"new\"}", JWT_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = make_token(cases[i].header, payload);
        expect_status(tok, &o, cases[i].want);
        free(tok);
    }
    assert_string_equal(jwt_status_str(JWT_EKID), "unknown key id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_rfc7515_a1_valid_before_exp),
        cmocka_unit_test(test_jwt_rfc7515_a1_expired),
        cmocka_unit_test(test_jwt_sign_verify_round_trip),
        cmocka_unit_test(test_jwt_sign_rejects_bad_input),
        cmocka_unit_test(test_jwt_rejects_alg_none),
        cmocka_unit_test(test_jwt_rejects_other_algs),
        cmocka_unit_test(test_jwt_rejects_bad_signature),
        cmocka_unit_test(test_jwt_rejects_tampered_payload),
        cmocka_unit_test(test_jwt_signature_checked_before_claims),
        cmocka_unit_test(test_jwt_malformed),
        cmocka_unit_test(test_jwt_length_bound),
        cmocka_unit_test(test_jwt_status_str),
        cmocka_unit_test(test_jwt_key_id_is_derived_from_the_key),
        cmocka_unit_test(test_jwt_signed_tokens_carry_kid),
        cmocka_unit_test(test_jwt_rotation_old_key_verifies_by_kid),
        cmocka_unit_test(test_jwt_unknown_or_malformed_kid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

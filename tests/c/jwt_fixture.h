/*
 * jwt_fixture.h - what test_jwt.c and test_jwt_claims.c share to test
 * crypto/jwt: the test key and clock, tokens built segment by segment
 * (signed with any key, or correctly signed from raw header and payload
 * JSON), and the verdict checks, which also require the claims to come back
 * NULL on every failure. Static helpers for those two test files; included
 * after cmocka.h (they assert).
 */
#ifndef HERALD_TESTS_JWT_FIXTURE_H
#define HERALD_TESTS_JWT_FIXTURE_H

#include "crypto/codec.h"
#include "crypto/hash.h"
#include "crypto/jwt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((unused)) const uint8_t test_key[] = "test-key-0123456789abcdef-0123456789";
#define TEST_KEYLEN (sizeof(test_key) - 1)
#define NOW         INT64_C(1700000000)

static __attribute__((unused)) const char hs256_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static __attribute__((unused)) char *join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c != NULL ? strlen(c) : 0;
    char *s = malloc(la + 1 + lb + (c != NULL ? 1 + lc : 0) + 1);
    assert_non_null(s);
    memcpy(s, a, la);
    s[la] = '.';
    memcpy(s + la + 1, b, lb + 1);
    if (c != NULL) {
        s[la + 1 + lb] = '.';
        memcpy(s + la + 1 + lb + 1, c, lc + 1);
    }
    return s;
}

static __attribute__((unused)) char *enc(const char *text)
{
    char *s = b64url_encode((const uint8_t *)text, strlen(text));
    assert_non_null(s);
    return s;
}

/* "hseg.pseg.<HS256 MAC over hseg.pseg>" from already-encoded segments, so
 * tests can sign things jwt_sign_hs256 would never produce. Caller frees. */
static __attribute__((unused)) char *sign_segments(const char *hseg, const char *pseg,
                                                   const uint8_t *key, size_t keylen)
{
    char *input = join(hseg, pseg, NULL);
    uint8_t mac[32];
    hash_hmac_sha256(key, keylen, input, strlen(input), mac);
    char *sig = b64url_encode(mac, sizeof(mac));
    assert_non_null(sig);
    char *tok = join(hseg, pseg, sig);
    free(input);
    free(sig);
    return tok;
}

/* Correctly signed token from raw header and payload JSON text. */
static __attribute__((unused)) char *make_token(const char *header, const char *payload)
{
    char *h = enc(header), *p = enc(payload);
    char *tok = sign_segments(h, p, test_key, TEST_KEYLEN);
    free(h);
    free(p);
    return tok;
}

static __attribute__((unused)) jwt_verify_opts_t base_opts(void)
{
    jwt_verify_opts_t o = {
        .key = test_key,
        .keylen = TEST_KEYLEN,
        .now = NOW,
    };
    return o;
}

/* Verifies and checks the status; on failure claims must come back NULL
 * (overwriting a non-NULL sentinel). */
static __attribute__((unused)) void expect_status(const char *tok, const jwt_verify_opts_t *o,
                                                  jwt_status_t want)
{
    cJSON sentinel;
    cJSON *claims = &sentinel;
    jwt_status_t got = jwt_verify_hs256(tok, o, &claims);
    if (got != want)
        fail_msg("token %.60s...: got %d (%s), want %d (%s)", tok ? tok : "(null)", got,
                 jwt_status_str(got), want, jwt_status_str(want));
    if (want == JWT_OK) {
        assert_true(cJSON_IsObject(claims));
        cJSON_Delete(claims);
    } else {
        assert_null(claims);
    }
}

static __attribute__((unused)) void expect_payload(const char *payload, const jwt_verify_opts_t *o,
                                                   jwt_status_t want)
{
    char *tok = make_token(hs256_header, payload);
    expect_status(tok, o, want);
    free(tok);
}

#endif

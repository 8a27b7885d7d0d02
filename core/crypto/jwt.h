/*
 * jwt.h - JSON Web Tokens (RFC 7519) in JWS compact serialization (RFC 7515),
 * HMAC-SHA256 ("HS256") only, with claims as cJSON objects.
 *
 * Verification is deliberately narrow: one algorithm, no "crit" extensions,
 * strict base64url, the signature checked before any claim is looked at, and
 * the clock injected by the caller so expiry is testable.
 */
#ifndef HERALD_CRYPTO_JWT_H
#define HERALD_CRYPTO_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Longest token jwt_verify_hs256 will look at; longer ones are malformed. */
#define JWT_MAX_TOKEN_LEN 8192

/* Signs claims (must be a JSON object) with header {"alg":"HS256","typ":"JWT"}.
 * Returns 0 and sets *out (caller frees), or -1 with *out = NULL on an empty
 * key, non-object claims or OOM. claims is not modified. */
int jwt_sign_hs256(const uint8_t *key, size_t keylen, const cJSON *claims, char **out);

typedef struct jwt_verify_opts {
    const uint8_t *key; /* HMAC key; an empty key never verifies */
    size_t keylen;
    const char *issuer;   /* when non-NULL the "iss" claim must equal it */
    const char *audience; /* when non-NULL "aud" (string, or array containing it) must match */
    int64_t now;          /* unix seconds: the injected clock */
    int64_t leeway;       /* seconds of tolerance for exp and nbf (negative counts as 0) */
    int require_exp;      /* when set a token without numeric "exp" is rejected */
} jwt_verify_opts_t;

typedef enum {
    JWT_OK = 0,
    JWT_EMALFORMED, /* not three strict base64url segments, not JSON objects, bad claim type */
    JWT_EALG,       /* header alg is not exactly "HS256", or header has "crit" */
    JWT_ESIG,       /* signature missing, wrong length or does not match */
    JWT_EEXPIRED,   /* now >= exp + leeway */
    JWT_ENOTYET,    /* now + leeway < nbf */
    JWT_ENOEXP,     /* require_exp and no "exp" claim */
    JWT_EISS,       /* "iss" missing or different from opts->issuer */
    JWT_EAUD,       /* "aud" missing or does not contain opts->audience */
} jwt_status_t;

/* Verifies token against opts. On JWT_OK *claims_out is the parsed payload
 * object (caller frees with cJSON_Delete); on any other status *claims_out is
 * NULL. claims_out may be NULL when the caller only wants the verdict. */
jwt_status_t jwt_verify_hs256(const char *token, const jwt_verify_opts_t *opts, cJSON **claims_out);

/* Short human reason for s ("token expired", "algorithm not allowed", ...);
 * a static string, never NULL. */
const char *jwt_status_str(jwt_status_t s);

#endif

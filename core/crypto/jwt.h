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

/* Longest key id accepted in a header or given to jwt_sign_hs256_kid. */
#define JWT_MAX_KID_LEN 64

/* Signs claims (must be a JSON object) with header {"alg":"HS256","typ":"JWT"}.
 * Returns 0 and sets *out (caller frees), or -1 with *out = NULL on an empty
 * key, non-object claims or OOM. claims is not modified. */
int jwt_sign_hs256(const uint8_t *key, size_t keylen, const cJSON *claims, char **out);

/* Same, with header {"alg":"HS256","typ":"JWT","kid":kid}. kid: 1 to
 * JWT_MAX_KID_LEN characters of [A-Za-z0-9_-] (-1 otherwise). */
int jwt_sign_hs256_kid(const uint8_t *key, size_t keylen, const char *kid, const cJSON *claims,
                       char **out);

/* The id Herald gives an HS256 key: the first 4 bytes of
 * SHA-256("herald-jwt-kid" || key) as 8 lowercase hex characters and a NUL.
 * Not secret; derived, so rotation needs no bookkeeping. */
void jwt_key_id(const uint8_t *key, size_t keylen, char out[9]);

/* One verification key and its id. */
typedef struct jwt_key {
    const char *kid;
    const uint8_t *key;
    size_t keylen;
} jwt_key_t;

typedef struct jwt_verify_opts {
    const uint8_t *key; /* HMAC key; an empty key never verifies (used when nkeys is 0) */
    size_t keylen;
    /* When nkeys > 0: the keys that verify. A header "kid" must name one of
     * them (JWT_EKID otherwise; a kid that is not a short string is
     * JWT_EMALFORMED); a header without "kid" (a token from before key
     * ids) is tried with each. key/keylen are then ignored. */
    const jwt_key_t *keys;
    size_t nkeys;
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
    JWT_EKID,       /* header "kid" names none of opts->keys */
} jwt_status_t;

/* Verifies token against opts. On JWT_OK *claims_out is the parsed payload
 * object (caller frees with cJSON_Delete); on any other status *claims_out is
 * NULL. claims_out may be NULL when the caller only wants the verdict. */
jwt_status_t jwt_verify_hs256(const char *token, const jwt_verify_opts_t *opts, cJSON **claims_out);

/* Short human reason for s ("token expired", "algorithm not allowed", ...);
 * a static string, never NULL. */
const char *jwt_status_str(jwt_status_t s);

#endif

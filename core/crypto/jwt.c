/*
 * jwt.c - HS256 JWS compact tokens (see jwt.h). Uses codec.h for base64url,
 * hash.h for HMAC-SHA256 and the constant-time compare, cJSON for header and
 * claims.
 */
#include "crypto/jwt.h"

#include "crypto/codec.h"
#include "crypto/hash.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Fixed rather than built with cJSON so every token we issue has the same,
 * predictable header bytes. */
static const char jwt_header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > JWT_MAX_KID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

void jwt_key_id(const uint8_t *key, size_t keylen, char out[9])
{
    static const char label[] = "herald-jwt-kid";
    uint8_t md[32];
    uint8_t *buf = malloc(sizeof(label) - 1 + keylen);
    if (buf == NULL) {
        memcpy(out, "00000000", 9);
        return;
    }
    memcpy(buf, label, sizeof(label) - 1);
    if (keylen)
        memcpy(buf + sizeof(label) - 1, key, keylen);
    hash_sha256(buf, sizeof(label) - 1 + keylen, md);
    OPENSSL_cleanse(buf, sizeof(label) - 1 + keylen);
    free(buf);
    hex_encode(md, 4, out);
}

int jwt_sign_hs256(const uint8_t *key, size_t keylen, const cJSON *claims, char **out)
{
    return jwt_sign_hs256_kid(key, keylen, NULL, claims, out);
}

int jwt_sign_hs256_kid(const uint8_t *key, size_t keylen, const char *kid, const cJSON *claims,
                       char **out)
{
    char *hdr = NULL, *json = NULL, *body = NULL, *sig = NULL, *tok = NULL;
    char header[sizeof(jwt_header_json) + JWT_MAX_KID_LEN + 16];
    uint8_t mac[32];
    int rc = -1;

    *out = NULL;
    if (key == NULL || keylen == 0 || !cJSON_IsObject(claims) || (kid && !kid_ok(kid)))
        return -1;
    if (kid)
        snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    else
        snprintf(header, sizeof(header), "%s", jwt_header_json);

    hdr = b64url_encode((const uint8_t *)header, strlen(header));
    json = cJSON_PrintUnformatted(claims);
    if (hdr == NULL || json == NULL)
        goto done;
    body = b64url_encode((const uint8_t *)json, strlen(json));
    if (body == NULL)
        goto done;

    size_t hlen = strlen(hdr), blen = strlen(body);
    size_t siglen = 43; /* base64url of 32 bytes */
    tok = malloc(hlen + 1 + blen + 1 + siglen + 1);
    if (tok == NULL)
        goto done;
    memcpy(tok, hdr, hlen);
    tok[hlen] = '.';
    memcpy(tok + hlen + 1, body, blen);

    if (hash_hmac_sha256_checked(key, keylen, tok, hlen + 1 + blen, mac) != 0 ||
        (sig = b64url_encode(mac, sizeof(mac))) == NULL)
        goto done;
    tok[hlen + 1 + blen] = '.';
    memcpy(tok + hlen + 1 + blen + 1, sig, siglen + 1);
    *out = tok; /* ownership passes to the caller */
    tok = NULL;
    rc = 0;

done:
    free(tok);
    free(hdr);
    free(json);
    free(body);
    free(sig);
    return rc;
}

/*
 * Parses decoded JSON text (NUL-terminated by the decoder) as an object.
 * Rejects embedded NULs and trailing data, and duplicate member names:
 * RFC 7515 section 4 / RFC 7519 section 4 require rejecting them or taking the
 * last one, while cJSON lookups return the first, so two parsers could
 * otherwise disagree about what a token says.
 */
static cJSON *parse_object(const uint8_t *buf, size_t len)
{
    if (memchr(buf, '\0', len) != NULL)
        return NULL;
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithOpts((const char *)buf, &end, 1);
    if (obj == NULL)
        return NULL;
    if (!cJSON_IsObject(obj))
        goto fail;
    for (const cJSON *a = obj->child; a != NULL; a = a->next)
        for (const cJSON *b = a->next; b != NULL; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                goto fail;
    return obj;

fail:
    cJSON_Delete(obj);
    return NULL;
}

static jwt_status_t check_header(const cJSON *hdr)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        return JWT_EALG;
    /* We implement no extensions, so anything marked critical must fail
     * (RFC 7515 section 4.1.11). */
    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL)
        return JWT_EALG;
    return JWT_OK;
}

static int aud_matches(const cJSON *aud, const char *want)
{
    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    if (cJSON_IsArray(aud)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, aud)
        {
            if (cJSON_IsString(it) && strcmp(it->valuestring, want) == 0)
                return 1;
        }
    }
    return 0;
}

/* A NumericDate (RFC 7519 2) as Herald takes it: whole seconds from 0 to
 * 2^53, so converting it to int64_t anywhere is defined ("exp": 1e999 is
 * infinity after parsing; 1.5 or -1 are no time we ever issue). */
static bool numeric_date(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
           v->valuedouble <= 9007199254740992.0 && floor(v->valuedouble) == v->valuedouble;
}

/* Time and identity claims; the signature has already been checked. */
static jwt_status_t check_claims(const cJSON *claims, const jwt_verify_opts_t *opts)
{
    static const char *const times[] = {"exp", "nbf", "iat"};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(claims, times[i]);
        if (t != NULL && !numeric_date(t))
            return JWT_EMALFORMED;
    }
    /* Doubles: exp/nbf are JSON numbers and may be fractional or huge, and
     * now + leeway must not overflow an int64. */
    double now = (double)opts->now;
    double leeway = opts->leeway > 0 ? (double)opts->leeway : 0.0;

    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    if (exp != NULL) {
        if (!cJSON_IsNumber(exp))
            return JWT_EMALFORMED;
        /* RFC 7519 4.1.4: not accepted "on or after" exp. */
        if (now >= exp->valuedouble + leeway)
            return JWT_EEXPIRED;
    } else if (opts->require_exp) {
        return JWT_ENOEXP;
    }

    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
    if (nbf != NULL) {
        if (!cJSON_IsNumber(nbf))
            return JWT_EMALFORMED;
        if (now + leeway < nbf->valuedouble)
            return JWT_ENOTYET;
    }

    if (opts->issuer != NULL) {
        const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
        if (!cJSON_IsString(iss) || strcmp(iss->valuestring, opts->issuer) != 0)
            return JWT_EISS;
    }
    if (opts->audience != NULL) {
        const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
        if (!aud_matches(aud, opts->audience))
            return JWT_EAUD;
    }
    return JWT_OK;
}

jwt_status_t jwt_verify_hs256(const char *token, const jwt_verify_opts_t *opts, cJSON **claims_out)
{
    uint8_t *hbuf = NULL, *pbuf = NULL, *sbuf = NULL;
    size_t hlen = 0, plen = 0, slen = 0;
    cJSON *hdr = NULL, *claims = NULL;
    uint8_t mac[32];
    int ok;
    jwt_status_t st = JWT_EMALFORMED;

    if (claims_out != NULL)
        *claims_out = NULL;
    if (token == NULL || opts == NULL)
        return JWT_EMALFORMED;

    size_t len = strnlen(token, JWT_MAX_TOKEN_LEN + 1);
    if (len == 0 || len > JWT_MAX_TOKEN_LEN)
        return JWT_EMALFORMED;

    const char *dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return JWT_EMALFORMED;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return JWT_EMALFORMED;

    const char *p = dot1 + 1, *s = dot2 + 1;
    size_t hseg = (size_t)(dot1 - token), pseg = (size_t)(dot2 - p),
           sseg = len - (size_t)(s - token);
    if (hseg == 0 || pseg == 0)
        goto done;
    if (b64url_decode(token, hseg, &hbuf, &hlen) != 0 ||
        b64url_decode(p, pseg, &pbuf, &plen) != 0 || b64url_decode(s, sseg, &sbuf, &slen) != 0)
        goto done;

    if ((hdr = parse_object(hbuf, hlen)) == NULL)
        goto done;
    if ((st = check_header(hdr)) != JWT_OK)
        goto done;

    /* Which keys may have signed it: the one its kid names, or (no kid,
     * a token from before key ids) each configured key. */
    const jwt_key_t single = {NULL, opts->key, opts->keylen};
    const jwt_key_t *keys = &single;
    size_t nkeys = 1;
    if (opts->nkeys > 0) {
        const cJSON *kid = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
        keys = opts->keys;
        nkeys = opts->nkeys;
        if (kid != NULL) {
            st = JWT_EMALFORMED;
            if (!cJSON_IsString(kid) || !kid_ok(kid->valuestring))
                goto done;
            st = JWT_EKID;
            keys = NULL;
            for (size_t i = 0; i < opts->nkeys && keys == NULL; i++)
                if (opts->keys[i].kid && strcmp(opts->keys[i].kid, kid->valuestring) == 0)
                    keys = &opts->keys[i];
            if (keys == NULL)
                goto done;
            nkeys = 1;
        }
    }

    /* Nothing in the payload is looked at until the MAC over the exact
     * received "header.payload" bytes matches. An empty segment (the
     * classic alg=none forgery) lands here as a length mismatch. */
    st = JWT_ESIG;
    if (slen != 32)
        goto done;
    ok = 0;
    for (size_t i = 0; i < nkeys && !ok; i++) {
        if (keys[i].key == NULL || keys[i].keylen == 0 ||
            hash_hmac_sha256_checked(keys[i].key, keys[i].keylen, token, (size_t)(dot2 - token),
                                     mac) != 0)
            continue;
        ok = hash_ct_equal(mac, sbuf, sizeof(mac));
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!ok)
        goto done;

    st = JWT_EMALFORMED;
    if ((claims = parse_object(pbuf, plen)) == NULL)
        goto done;
    if ((st = check_claims(claims, opts)) != JWT_OK)
        goto done;

    if (claims_out != NULL) {
        *claims_out = claims; /* ownership passes to the caller */
        claims = NULL;
    }

done:
    cJSON_Delete(hdr);
    cJSON_Delete(claims);
    free(hbuf);
    free(pbuf);
    free(sbuf);
    return st;
}

const char *jwt_status_str(jwt_status_t s)
{
    switch (s) {
    case JWT_OK:
        return "ok";
    case JWT_EMALFORMED:
        return "malformed token";
    case JWT_EALG:
        return "algorithm not allowed";
    case JWT_ESIG:
        return "invalid signature";
    case JWT_EEXPIRED:
        return "token expired";
    case JWT_ENOTYET:
        return "token not yet valid";
    case JWT_ENOEXP:
        return "token has no expiry";
    case JWT_EISS:
        return "wrong issuer";
    case JWT_EAUD:
        return "wrong audience";
    case JWT_EKID:
        return "unknown key id";
    }
    return "unknown error";
}

/*
 * field.c - AES-256-GCM field encryption, keyring with rotation, blind
 * indexes and key parsing (see field.h). Uses OpenSSL EVP for AES-GCM,
 * hash.h for SHA-256 / HMAC / randomness and codec.h for base64.
 */
#include "crypto/field.h"

#include "crypto/codec.h"
#include "crypto/hash.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define FE_KEY_LEN   32
#define FE_NONCE_LEN 12
#define FE_TAG_LEN   16
#define FE_KID_LEN   8
#define FE_VERSION   "v1"

typedef struct fe_key {
    uint8_t key[FE_KEY_LEN];
    char kid[FE_KID_LEN + 1];
} fe_key_t;

struct fe_keyring {
    fe_key_t current;
    uint8_t index_key[FE_KEY_LEN];
    fe_key_t *old; /* decrypt-only keys, nold entries */
    size_t nold;
    /* fetched once: OpenSSL 3 looks EVP_aes_256_gcm() up in its provider
     * tables on every init otherwise, which costs more than the cipher */
    EVP_CIPHER *gcm;
};

static const char ws_chars[] = " \t\n\v\f\r";

void fe_key_id(const uint8_t key[32], char out[9])
{
    /* Domain-separated so the id is not a plain hash of the key that might
     * be computed elsewhere for another purpose. */
    static const char label[] = "herald-kid";
    uint8_t buf[sizeof(label) - 1 + FE_KEY_LEN], md[32];
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, key, FE_KEY_LEN);
    hash_sha256(buf, sizeof(buf), md);
    OPENSSL_cleanse(buf, sizeof(buf));
    hex_encode(md, FE_KID_LEN / 2, out);
}

fe_keyring_t *fe_keyring_new(const uint8_t current_key[32], const uint8_t index_key[32])
{
    fe_keyring_t *kr = calloc(1, sizeof(*kr));
    if (kr == NULL)
        return NULL;
    memcpy(kr->current.key, current_key, FE_KEY_LEN);
    fe_key_id(current_key, kr->current.kid);
    memcpy(kr->index_key, index_key, FE_KEY_LEN);
    kr->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (kr->gcm == NULL) {
        fe_keyring_free(kr);
        return NULL;
    }
    return kr;
}

/* Classifies key against those in kr: 1 already present, -1 a different key
 * with the same id, 0 new. */
static int key_conflict(const fe_keyring_t *kr, const uint8_t key[32], const char *kid)
{
    for (size_t i = 0; i <= kr->nold; i++) {
        const fe_key_t *k = i == 0 ? &kr->current : &kr->old[i - 1];
        if (strcmp(k->kid, kid) == 0)
            return CRYPTO_memcmp(k->key, key, FE_KEY_LEN) == 0 ? 1 : -1;
    }
    return 0;
}

int fe_keyring_add_old(fe_keyring_t *kr, const uint8_t key[32])
{
    char kid[FE_KID_LEN + 1];
    fe_key_id(key, kid);
    int c = key_conflict(kr, key, kid);
    if (c != 0)
        return c > 0 ? 0 : -1;

    /* Not realloc: it would free the old block without wiping the keys. */
    fe_key_t *grown = malloc((kr->nold + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    if (kr->nold > 0) {
        memcpy(grown, kr->old, kr->nold * sizeof(*grown));
        OPENSSL_cleanse(kr->old, kr->nold * sizeof(*kr->old));
    }
    free(kr->old);
    memcpy(grown[kr->nold].key, key, FE_KEY_LEN);
    memcpy(grown[kr->nold].kid, kid, sizeof(kid));
    kr->old = grown;
    kr->nold++;
    return 0;
}

void fe_keyring_free(fe_keyring_t *kr)
{
    if (kr == NULL)
        return;
    if (kr->old != NULL)
        OPENSSL_cleanse(kr->old, kr->nold * sizeof(*kr->old));
    free(kr->old);
    EVP_CIPHER_free(kr->gcm);
    OPENSSL_cleanse(kr, sizeof(*kr));
    free(kr);
}

const char *fe_keyring_current_id(const fe_keyring_t *kr)
{
    return kr->current.kid;
}

static const fe_key_t *find_key(const fe_keyring_t *kr, const char *kid)
{
    if (strcmp(kr->current.kid, kid) == 0)
        return &kr->current;
    for (size_t i = 0; i < kr->nold; i++)
        if (strcmp(kr->old[i].kid, kid) == 0)
            return &kr->old[i];
    return NULL;
}

int fe_keyring_has(const fe_keyring_t *kr, const char *kid)
{
    return kid != NULL && find_key(kr, kid) != NULL;
}

/* "herald:v1:<field>:<kid>"; caller frees. kid has a fixed length and comes
 * last, so a ':' inside field cannot make two (field, kid) pairs collide. */
static char *make_aad(const char *field, const char *kid, size_t *len)
{
    static const char prefix[] = "herald:" FE_VERSION ":";
    size_t flen = strlen(field);
    size_t n = sizeof(prefix) - 1 + flen + 1 + FE_KID_LEN;
    char *aad = malloc(n + 1);
    if (aad == NULL)
        return NULL;
    memcpy(aad, prefix, sizeof(prefix) - 1);
    memcpy(aad + sizeof(prefix) - 1, field, flen);
    aad[sizeof(prefix) - 1 + flen] = ':';
    memcpy(aad + sizeof(prefix) + flen, kid, FE_KID_LEN + 1);
    *len = n;
    return aad;
}

int fe_encrypt(const fe_keyring_t *kr, const char *field, const char *pt, size_t ptlen, char **out,
               hd_err_t *err)
{
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    char *aad = NULL, *data = NULL;
    size_t aadlen = 0;
    int n = 0, rc = -1;

    *out = NULL;
    if (kr == NULL || field == NULL || field[0] == '\0')
        return hd_err_set(err, "encrypt: keyring and field name are required");
    if (pt == NULL && ptlen > 0)
        return hd_err_set(err, "encrypt: no plaintext");
    if (ptlen > (size_t)INT_MAX - FE_NONCE_LEN - FE_TAG_LEN)
        return hd_err_set(err, "encrypt: value too large (%zu bytes)", ptlen);

    size_t blen = FE_NONCE_LEN + ptlen + FE_TAG_LEN;
    buf = malloc(blen);
    aad = make_aad(field, kr->current.kid, &aadlen);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || aad == NULL || ctx == NULL) {
        hd_err_set(err, "encrypt: out of memory");
        goto done;
    }
    /* GCM nonces must never repeat under one key; 96 random bits keep the
     * collision risk negligible for far more values than a key will see. */
    if (hash_random(buf, FE_NONCE_LEN) != 0) {
        hd_err_set(err, "encrypt: random generator failed");
        goto done;
    }

    uint8_t *ct = buf + FE_NONCE_LEN;
    if (EVP_EncryptInit_ex(ctx, kr->gcm, NULL, kr->current.key, buf) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)aadlen) != 1 ||
        (ptlen > 0 && EVP_EncryptUpdate(ctx, ct, &n, (const uint8_t *)pt, (int)ptlen) != 1) ||
        EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, FE_TAG_LEN, ct + ptlen) != 1) {
        hd_err_set(err, "encrypt: AES-256-GCM failed");
        goto done;
    }

    data = b64url_encode(buf, blen);
    if (data == NULL) {
        hd_err_set(err, "encrypt: out of memory");
        goto done;
    }
    size_t dlen = strlen(data);
    size_t olen = sizeof(FE_VERSION) - 1 + 1 + FE_KID_LEN + 1 + dlen;
    char *o = malloc(olen + 1);
    if (o == NULL) {
        hd_err_set(err, "encrypt: out of memory");
        goto done;
    }
    memcpy(o, FE_VERSION ".", sizeof(FE_VERSION));
    memcpy(o + sizeof(FE_VERSION), kr->current.kid, FE_KID_LEN);
    o[sizeof(FE_VERSION) + FE_KID_LEN] = '.';
    memcpy(o + sizeof(FE_VERSION) + FE_KID_LEN + 1, data, dlen + 1);
    *out = o; /* ownership passes to the caller */
    rc = 0;

done:
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    free(aad);
    free(data);
    return rc;
}

static int is_kid(const char *s, size_t len)
{
    if (len != FE_KID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* A version segment worth naming in an error: short and alphanumeric, so
 * attacker-supplied bytes never reach the logs verbatim. */
static int is_version_like(const char *s, size_t len)
{
    if (len == 0 || len > 8)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

int fe_decrypt(const fe_keyring_t *kr, const char *field, const char *in, char **pt_out,
               size_t *ptlen_out, hd_err_t *err)
{
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *raw = NULL;
    size_t rawlen = 0, aadlen = 0, ptlen = 0;
    char *aad = NULL, *pt = NULL;
    char kid[FE_KID_LEN + 1];
    int n = 0, rc = -1;

    *pt_out = NULL;
    *ptlen_out = 0;
    if (kr == NULL || field == NULL || field[0] == '\0')
        return hd_err_set(err, "decrypt: keyring and field name are required");
    if (in == NULL)
        return hd_err_set(err, "malformed encrypted value: missing");

    /* The version decides the rest of the layout, so it is checked first. */
    const char *dot1 = strchr(in, '.');
    size_t vlen = dot1 != NULL ? (size_t)(dot1 - in) : strlen(in);
    if (vlen != sizeof(FE_VERSION) - 1 || memcmp(in, FE_VERSION, vlen) != 0) {
        if (dot1 != NULL && is_version_like(in, vlen))
            return hd_err_set(err, "unsupported version \"%.*s\"", (int)vlen, in);
        return hd_err_set(err, "malformed encrypted value: expected v1.<kid>.<data>");
    }
    if (dot1 == NULL)
        return hd_err_set(err, "malformed encrypted value: expected v1.<kid>.<data>");
    const char *dot2 = strchr(dot1 + 1, '.');
    if (dot2 == NULL)
        return hd_err_set(err, "malformed encrypted value: expected v1.<kid>.<data>");
    if (!is_kid(dot1 + 1, (size_t)(dot2 - dot1 - 1)))
        return hd_err_set(err, "malformed encrypted value: bad key id");
    memcpy(kid, dot1 + 1, FE_KID_LEN);
    kid[FE_KID_LEN] = '\0';

    const char *data = dot2 + 1;
    if (b64url_decode(data, strlen(data), &raw, &rawlen) != 0)
        return hd_err_set(err, "malformed encrypted value: data is not base64url");
    if (rawlen < FE_NONCE_LEN + FE_TAG_LEN || rawlen - FE_NONCE_LEN - FE_TAG_LEN > INT_MAX) {
        hd_err_set(err, "malformed encrypted value: data has a bad length (%zu bytes)", rawlen);
        goto done;
    }

    const fe_key_t *key = find_key(kr, kid);
    if (key == NULL) {
        hd_err_set(err, "unknown key id %s", kid);
        goto done;
    }

    ptlen = rawlen - FE_NONCE_LEN - FE_TAG_LEN;
    const uint8_t *nonce = raw, *ct = raw + FE_NONCE_LEN, *tag = raw + FE_NONCE_LEN + ptlen;
    pt = malloc(ptlen + 1);
    aad = make_aad(field, kid, &aadlen);
    ctx = EVP_CIPHER_CTX_new();
    if (pt == NULL || aad == NULL || ctx == NULL) {
        hd_err_set(err, "decrypt: out of memory");
        goto done;
    }
    if (EVP_DecryptInit_ex(ctx, kr->gcm, NULL, key->key, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)aadlen) != 1 ||
        (ptlen > 0 && EVP_DecryptUpdate(ctx, (uint8_t *)pt, &n, ct, (int)ptlen) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, FE_TAG_LEN, (void *)tag) != 1) {
        hd_err_set(err, "decrypt: AES-256-GCM failed");
        goto done;
    }
    /* Final is where the tag is checked; until it succeeds pt holds
     * unauthenticated bytes that must not escape. */
    if (EVP_DecryptFinal_ex(ctx, (uint8_t *)pt + ptlen, &n) != 1) {
        hd_err_set(err, "authentication failed (tampered value, wrong field or wrong key)");
        goto done;
    }
    pt[ptlen] = '\0';
    *pt_out = pt; /* ownership passes to the caller */
    *ptlen_out = ptlen;
    pt = NULL;
    rc = 0;

done:
    if (pt != NULL)
        OPENSSL_cleanse(pt, ptlen + 1);
    free(pt);
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    free(aad);
    return rc;
}

int fe_reseal(const fe_keyring_t *kr, const char *field, const char *in, char **out, hd_err_t *err)
{
    char *pt = NULL;
    size_t n = 0;
    *out = NULL;
    if (fe_decrypt(kr, field, in, &pt, &n, err) != 0)
        return -1;
    int rc = fe_encrypt(kr, field, pt, n, out, err);
    OPENSSL_cleanse(pt, n);
    free(pt);
    return rc;
}

/* Writes the normalized form of value for field into out (strlen(value)+1
 * bytes) and returns its length. */
static size_t normalize(const char *field, const char *value, char *out)
{
    size_t len = strlen(value);
    size_t start = strspn(value, ws_chars);
    while (len > start && strchr(ws_chars, value[len - 1]) != NULL)
        len--;
    const char *v = value + start;
    len -= start;

    size_t n = 0;
    if (strcmp(field, "phone") == 0) {
        /* Formatting ("(415) 555-0100", dots, dashes) varies by who typed
         * it; only the '+' country marker and the digits identify the line. */
        for (size_t i = 0; i < len; i++)
            if ((i == 0 && v[i] == '+') || (v[i] >= '0' && v[i] <= '9'))
                out[n++] = v[i];
    } else if (strcmp(field, "email") == 0) {
        /* ASCII only: lowercasing non-ASCII would need locale rules that
         * must not change between the writer and the reader. */
        for (size_t i = 0; i < len; i++)
            out[n++] = (v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] - 'A' + 'a') : v[i];
    } else {
        memcpy(out, v, len);
        n = len;
    }
    out[n] = '\0';
    return n;
}

int fe_blind_index(const fe_keyring_t *kr, const char *field, const char *value, char out[65])
{
    if (kr == NULL || field == NULL || field[0] == '\0' || value == NULL)
        return -1;

    size_t flen = strlen(field), vlen = strlen(value);
    /* field || '\0' || value: the NUL keeps ("ab", "c") and ("a", "bc")
     * apart, and the field name keeps equal values in different columns
     * from sharing an index. */
    char *msg = malloc(flen + 1 + vlen + 1);
    if (msg == NULL)
        return -1;
    memcpy(msg, field, flen + 1);
    size_t nlen = normalize(field, value, msg + flen + 1);

    uint8_t mac[32];
    int rc = hash_hmac_sha256_checked(kr->index_key, FE_KEY_LEN, msg, flen + 1 + nlen, mac);
    if (rc == 0)
        hex_encode(mac, sizeof(mac), out);
    OPENSSL_cleanse(msg, flen + 1 + vlen + 1);
    free(msg);
    return rc;
}

int fe_decode_key(const char *b64, uint8_t out[32], hd_err_t *err)
{
    if (b64 == NULL)
        return hd_err_set(err, "not valid base64");
    size_t start = strspn(b64, ws_chars), len = strlen(b64);
    while (len > start && strchr(ws_chars, b64[len - 1]) != NULL)
        len--;

    uint8_t *buf = NULL;
    size_t n = 0;
    if (b64_decode(b64 + start, len - start, &buf, &n) != 0)
        return hd_err_set(err, "not valid base64");
    int rc = 0;
    if (n != FE_KEY_LEN)
        rc = hd_err_set(err, "expected base64 of 32 bytes, got %zu bytes", n);
    else
        memcpy(out, buf, FE_KEY_LEN);
    OPENSSL_cleanse(buf, n);
    free(buf);
    return rc;
}

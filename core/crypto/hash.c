/*
 * hash.c - SHA-256, HMAC-SHA256, CSPRNG helpers and constant-time compare
 * (see hash.h). Uses OpenSSL 3's one-shot SHA256() and HMAC(), which are
 * not deprecated, and codec.h for the textual forms.
 */
#include "crypto/hash.h"

#include "crypto/codec.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/* OpenSSL treats a NULL key or message as "absent" rather than empty, so
 * zero-length inputs are pointed at a real (empty) buffer. */
static const unsigned char empty[1];

void hash_sha256(const void *data, size_t len, uint8_t out[32])
{
    if (SHA256(len > 0 ? data : empty, len, out) == NULL)
        memset(out, 0, 32);
}

void hash_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    hash_sha256(data, len, md);
    hex_encode(md, sizeof(md), out);
}

int hash_hmac_sha256_checked(const void *key, size_t keylen, const void *data, size_t len,
                             uint8_t out[32])
{
    unsigned int mdlen = 0;
    if (keylen > INT_MAX)
        goto fail;
    if (HMAC(EVP_sha256(), keylen > 0 ? key : empty, (int)keylen, len > 0 ? data : empty, len, out,
             &mdlen) == NULL ||
        mdlen != 32)
        goto fail;
    return 0;

fail:
    memset(out, 0, 32);
    return -1;
}

int hash_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[20])
{
    unsigned int mdlen = 0;
    if (keylen > INT_MAX ||
        HMAC(EVP_sha1(), keylen > 0 ? key : empty, (int)keylen, len > 0 ? data : empty, len, out,
             &mdlen) == NULL ||
        mdlen != 20) {
        memset(out, 0, 20);
        return -1;
    }
    return 0;
}

void hash_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[32])
{
    (void)hash_hmac_sha256_checked(key, keylen, data, len, out);
}

/* Random bytes come from a small per-thread pool filled by RAND_bytes:
 * OpenSSL's generator takes its locks and asks the kernel for the process
 * id (fork detection) on every call, and the engine draws several times per
 * message (request ids, each field's nonce, MIME boundaries). Bytes are
 * taken from the end of the pool and wiped as they go. A fork child must
 * never reuse its parent's pool: the atfork handler bumps a generation that
 * every draw compares. Requests larger than half the pool go straight to
 * OpenSSL. */
#define POOL_BYTES 512

static _Thread_local struct {
    uint8_t buf[POOL_BYTES];
    size_t left;
    unsigned gen;
} pool;
static atomic_uint fork_gen;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_after_fork(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void pool_setup(void)
{
    pthread_atfork(NULL, NULL, pool_after_fork);
}

static int rand_direct(uint8_t *out, size_t len)
{
    /* RAND_bytes takes an int length. */
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(out, chunk) != 1)
            return -1;
        out += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

int hash_random(uint8_t *out, size_t len)
{
    if (len > POOL_BYTES / 2)
        return rand_direct(out, len);
    pthread_once(&pool_once, pool_setup);
    unsigned gen = atomic_load(&fork_gen);
    if (pool.gen != gen) {
        OPENSSL_cleanse(pool.buf, sizeof(pool.buf));
        pool.left = 0;
        pool.gen = gen;
    }
    if (pool.left < len) {
        if (RAND_bytes(pool.buf, POOL_BYTES) != 1) {
            pool.left = 0;
            return -1;
        }
        pool.left = POOL_BYTES;
    }
    pool.left -= len;
    memcpy(out, pool.buf + pool.left, len);
    OPENSSL_cleanse(pool.buf + pool.left, len);
    return 0;
}

char *hash_random_token(size_t nbytes)
{
    uint8_t *buf = malloc(nbytes > 0 ? nbytes : 1);
    if (buf == NULL)
        return NULL;
    char *tok = NULL;
    if (hash_random(buf, nbytes) == 0)
        tok = b64url_encode(buf, nbytes);
    OPENSSL_cleanse(buf, nbytes);
    free(buf);
    return tok;
}

char *hash_uuid4(void)
{
    uint8_t b[16];
    if (hash_random(b, sizeof(b)) != 0)
        return NULL;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */

    char hex[33];
    hex_encode(b, sizeof(b), hex);
    char *out = malloc(37);
    if (out == NULL)
        return NULL;
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return out;
}

int hash_ct_equal(const void *a, const void *b, size_t len)
{
    if (len == 0)
        return 1;
    return CRYPTO_memcmp(a, b, len) == 0;
}

/*
 * hash.h - digests, MACs and randomness for Herald, on top of OpenSSL 3:
 * SHA-256, HMAC-SHA256, the CSPRNG (random tokens, UUIDv4) and a
 * constant-time comparison for secrets.
 */
#ifndef HERALD_CRYPTO_HASH_H
#define HERALD_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of len bytes at data (data may be NULL when len is 0). On the
 * (allocation-only) failure path out is zeroed. */
void hash_sha256(const void *data, size_t len, uint8_t out[32]);

/* SHA-256 as 64 lowercase hex digits plus NUL. */
void hash_sha256_hex(const void *data, size_t len, char out[65]);

/* HMAC-SHA256(key, data). On the (allocation-only) failure path out is
 * zeroed; code that authenticates something uses hash_hmac_sha256_checked
 * so a failure can never look like a valid MAC. */
void hash_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      uint8_t out[32]);

/* HMAC-SHA256 that reports failure: 0, or -1 with out zeroed. */
int hash_hmac_sha256_checked(const void *key, size_t keylen, const void *data, size_t len,
                             uint8_t out[32]);

/* HMAC-SHA1: only for checking signatures a provider defines with it
 * (X-Twilio-Signature); 0, or -1 with out zeroed. */
int hash_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[20]);

/* Fills out with len bytes from the OpenSSL CSPRNG (through a per-thread
 * pool that a fork discards, see hash.c). 0, or -1 when the generator is
 * not seeded / fails (out must then not be used). Thread-safe. */
int hash_random(uint8_t *out, size_t len);

/* nbytes random bytes as base64url without padding (suitable for URLs and
 * headers). Caller frees; NULL on failure. */
char *hash_random_token(size_t nbytes);

/* A random RFC 4122 version-4 UUID, "xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx"
 * in lowercase (N is 8, 9, a or b). Caller frees; NULL on failure. */
char *hash_uuid4(void);

/* 1 when the len bytes at a and b are equal, 0 otherwise; the time taken
 * does not depend on where they differ (CRYPTO_memcmp). */
int hash_ct_equal(const void *a, const void *b, size_t len);

#endif

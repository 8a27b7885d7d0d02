/*
 * field.h - encryption of individual database fields (AES-256-GCM) with key
 * rotation, and HMAC blind indexes so encrypted columns can still be looked
 * up by exact value.
 *
 * Stored form: "v1.<kid>.<base64url(nonce12 | ciphertext | tag16)>". The
 * authenticated data binds the version, the field (column) name and the key
 * id, so a value pasted into another column or relabelled with another key
 * id fails to decrypt instead of decrypting to something plausible.
 */
#ifndef HERALD_CRYPTO_FIELD_H
#define HERALD_CRYPTO_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The current encryption key, older decrypt-only keys and the blind-index
 * key. Immutable after set-up, so one keyring can be shared by threads. */
typedef struct fe_keyring fe_keyring_t;

/* A keyring encrypting with current_key and indexing with index_key (both
 * copied). NULL on OOM or when OpenSSL has no AES-256-GCM. */
fe_keyring_t *fe_keyring_new(const uint8_t current_key[32], const uint8_t index_key[32]);

/* Adds an older key (copied), used only to decrypt values written before a
 * rotation. Adding a key already present is a no-op. 0, or -1 on OOM or when
 * a different key has the same key id (values would be ambiguous). */
int fe_keyring_add_old(fe_keyring_t *kr, const uint8_t key[32]);

/* Wipes all key material (OPENSSL_cleanse) and frees kr. NULL is ignored. */
void fe_keyring_free(fe_keyring_t *kr);

/* Key id of the current key (8 lowercase hex chars); owned by kr. */
const char *fe_keyring_current_id(const fe_keyring_t *kr);

/* Whether kid (8 lowercase hex chars) names a key of kr, current or old. */
int fe_keyring_has(const fe_keyring_t *kr, const char *kid);

/* Key id of key: first 4 bytes of SHA-256("herald-kid" || key) as 8
 * lowercase hex chars plus NUL. Not secret; names the key in stored values. */
void fe_key_id(const uint8_t key[32], char out[9]);

/* Encrypts ptlen bytes of pt (may be NULL when ptlen is 0) for column field
 * with the current key and a fresh random nonce. Returns 0 and sets *out
 * (caller frees), or -1 with *out = NULL and a reason in err. */
int fe_encrypt(const fe_keyring_t *kr, const char *field, const char *pt, size_t ptlen, char **out,
               hd_err_t *err);

/* Decrypts a value produced by fe_encrypt for the same field with any key
 * in kr. Returns 0 and sets *pt_out (caller frees; NUL-terminated after
 * *ptlen_out bytes), or -1 with *pt_out = NULL, *ptlen_out = 0 and err set
 * to one of "malformed encrypted value ...", "unsupported version ...",
 * "unknown key id <kid>", "authentication failed ...". Never returns
 * unauthenticated plaintext. */
int fe_decrypt(const fe_keyring_t *kr, const char *field, const char *in, char **pt_out,
               size_t *ptlen_out, hd_err_t *err);

/* Re-encrypts a value of field under the current key (key rotation): one
 * decryption with whichever key of kr sealed it, one encryption; the
 * plaintext is wiped. 0 with *out (caller frees), or -1 with *out = NULL
 * and err as fe_decrypt's. */
int fe_reseal(const fe_keyring_t *kr, const char *field, const char *in, char **out, hd_err_t *err);

/* Blind index of value for field: hex HMAC-SHA256(index_key, field || '\0' ||
 * normalized value) into out (64 hex chars plus NUL). Normalization: "email"
 * trims ASCII whitespace and lowercases ASCII; "phone" keeps a leading '+'
 * and the digits; other fields are trimmed. Independent of the encryption
 * keys, so rotation keeps indexes valid. 0, or -1 on bad arguments. */
int fe_blind_index(const fe_keyring_t *kr, const char *field, const char *value, char out[65]);

/* Parses a key given as standard base64 of exactly 32 bytes (surrounding
 * whitespace, e.g. a trailing newline from a key file, is ignored). 0, or -1
 * with err "not valid base64" or "expected base64 of 32 bytes, got N bytes". */
int fe_decode_key(const char *b64, uint8_t out[32], hd_err_t *err);

#endif

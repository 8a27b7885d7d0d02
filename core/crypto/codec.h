/*
 * codec.h - byte/text encodings used by the crypto layer: base64 (RFC 4648
 * section 4, padded), base64url (section 5, unpadded, as JOSE uses it) and
 * lowercase hex.
 *
 * Decoders are strict on purpose: tokens and stored ciphertexts must have
 * exactly one textual form, so anything a canonical encoder would not have
 * produced (bad characters, bad length, misplaced padding, non-zero trailing
 * bits, whitespace) is rejected instead of being silently repaired.
 */
#ifndef HERALD_CRYPTO_CODEC_H
#define HERALD_CRYPTO_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Standard base64 with '=' padding. Returns a NUL-terminated string, caller
 * frees; NULL on OOM. in may be NULL when len is 0. */
char *b64_encode(const uint8_t *in, size_t len);

/* base64url without padding. Returns a NUL-terminated string, caller frees;
 * NULL on OOM. in may be NULL when len is 0. */
char *b64url_encode(const uint8_t *in, size_t len);

/* Decodes inlen characters of padded standard base64. Returns 0 and sets
 * *out / *outlen (caller frees *out; it is also NUL-terminated past outlen so
 * decoded text can be used as a C string), or -1 with *out = NULL on any
 * invalid character, length or padding, or on OOM. "" decodes to 0 bytes. */
int b64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

/* Same as b64_decode for unpadded base64url: rejects '=', '+', '/' and
 * whitespace. Caller frees *out (NUL-terminated past outlen). */
int b64url_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

/* Writes 2*len lowercase hex digits and a NUL into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);

#endif

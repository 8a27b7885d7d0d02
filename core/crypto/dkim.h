/*
 * dkim.h - DKIM signatures (RFC 6376) for outgoing email: relaxed/relaxed
 * canonicalisation, rsa-sha256 and ed25519-sha256 (RFC 8463), on top of
 * OpenSSL 3. The transport signs the exact bytes it sends (the MIME builder's
 * output) and prepends the DKIM-Signature field this module writes.
 */
#ifndef HERALD_CRYPTO_DKIM_H
#define HERALD_CRYPTO_DKIM_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

/* The longest key file read (a 4096-bit RSA PEM is about 3.3 KB). */
#define DKIM_KEY_FILE_MAX 16384
/* Smallest RSA key accepted (RFC 8301 section 3.2: verifiers refuse smaller). */
#define DKIM_RSA_MIN_BITS 1024
/* Largest: a signature must fit in one DNS-published key's b= (8192 bits is
 * 1024 bytes) and larger keys are not deployed. */
#define DKIM_RSA_MAX_BITS 8192

typedef struct dkim_signer dkim_signer_t;

/* Loads the private key (PEM, PKCS#8 or traditional RSA, not encrypted) at
 * key_path and checks domain (d=) and selector (s=): dot-separated labels of
 * letters, digits and hyphens, at most 253 characters. The algorithm follows
 * the key: RSA (DKIM_RSA_MIN_BITS to DKIM_RSA_MAX_BITS) -> rsa-sha256, Ed25519 ->
 * ed25519-sha256; any other key type is refused. Returns a signer (free with
 * dkim_signer_free), or NULL with a precise err that never holds key bytes. */
dkim_signer_t *dkim_signer_new(const char *domain, const char *selector, const char *key_path,
                               hd_err_t *err);
void dkim_signer_free(dkim_signer_t *s);

/* "rsa-sha256" or "ed25519-sha256". */
const char *dkim_signer_algorithm(const dkim_signer_t *s);

/* The DNS TXT record that publishes the public key at
 * <selector>._domainkey.<domain>: "v=DKIM1; k=rsa; p=..." (p= the DER
 * SubjectPublicKeyInfo, RFC 6376 section 3.6.1) or "v=DKIM1; k=ed25519;
 * p=..." (the raw 32-byte key, RFC 8463 section 4). Appended to out. */
void dkim_signer_record(const dkim_signer_t *s, buf_t *out);

/* Signs msg (len bytes: header fields, CRLF, body, CRLF line endings, as the
 * MIME builder writes it) at time now (t=), and appends the whole
 * "DKIM-Signature: ...\r\n" field, folded under 78 characters, to out. The
 * signed fields are those of a fixed list (From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type, List-Unsubscribe, ...) that the
 * message holds, plus From once more so a From added later breaks the
 * signature. Returns 0, or -1 with err on a message without a From field or
 * without the empty line after its header, or on an OpenSSL failure. */
int dkim_sign(const dkim_signer_t *s, const char *msg, size_t len, int64_t now, buf_t *out,
              hd_err_t *err);

/* Relaxed canonicalisation (RFC 6376 section 3.4.2): one header field (name,
 * colon, value with its folding; a trailing CRLF is optional) becomes
 * "lowercase-name:value\r\n" with the value unfolded, runs of spaces and tabs
 * made one space, and none at either end. Appended to out. */
void dkim_canon_header(const char *field, size_t len, buf_t *out);

/* Relaxed body canonicalisation (section 3.4.4): spaces and tabs at line
 * ends removed, other runs made one space, empty lines at the end removed,
 * a CRLF added after a last line without one; an empty body stays empty.
 * Lines end at CRLF only. Appended to out. */
void dkim_canon_body(const char *body, size_t len, buf_t *out);

#endif

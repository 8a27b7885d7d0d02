/*
 * dkim.c - DKIM signing (see dkim.h): the relaxed canonicalisations, the
 * choice of signed fields, the DKIM-Signature field, and the RSA / Ed25519
 * signature through OpenSSL's EVP interface. Uses crypto/hash (SHA-256) and
 * crypto/codec (base64).
 */
#include "crypto/dkim.h"
#include "crypto/codec.h"
#include "crypto/hash.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct dkim_signer {
    EVP_PKEY *key;
    bool ed25519;
    char domain[254];
    char selector[254];
};

/* Fields signed when present, in this order. RFC 6376 section 5.4.1 lists
 * these; RFC 8058 section 4 requires List-Unsubscribe(-Post) to be signed. */
static const char *const signed_fields[] = {
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "feedback-id",
};
#define NSIGNED    (sizeof(signed_fields) / sizeof(signed_fields[0]))
#define MAX_FIELDS 256 /* header fields looked at; the builder writes about 15 */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* A domain or selector: labels of [A-Za-z0-9-], not starting or ending with
 * '-', separated by single dots; 1..253 characters. */
static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || s[i - 1] == '-' || label > 63)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label > 0)) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

dkim_signer_t *dkim_signer_new(const char *domain, const char *selector, const char *key_path,
                               hd_err_t *err)
{
    if (!valid_name(domain))
        return hd_err_set(err, "dkim domain: not a domain name (letters, digits, '-', '.')"), NULL;
    if (!valid_name(selector))
        return hd_err_set(err, "dkim selector: not a selector (letters, digits, '-', '.')"), NULL;
    if (key_path == NULL || *key_path == '\0')
        return hd_err_set(err, "HERALD_DKIM_KEY_FILE is not set; DKIM signing needs a key"), NULL;
    FILE *f = fopen(key_path, "rb");
    if (f == NULL)
        return hd_err_set(err, "HERALD_DKIM_KEY_FILE: cannot read %s: %s", key_path,
                          strerror(errno)),
               NULL;
    unsigned char pem[DKIM_KEY_FILE_MAX + 1];
    size_t n = fread(pem, 1, sizeof(pem), f);
    fclose(f);
    dkim_signer_t *s = NULL;
    EVP_PKEY *key = NULL;
    if (n > DKIM_KEY_FILE_MAX) {
        hd_err_set(err, "HERALD_DKIM_KEY_FILE: %s is over %d bytes; not a private key", key_path,
                   DKIM_KEY_FILE_MAX);
        goto done;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (bio != NULL) {
        /* no passphrase callback that answers: an encrypted key is refused */
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
        BIO_free(bio);
    }
    if (key == NULL) {
        hd_err_set(err,
                   "HERALD_DKIM_KEY_FILE: %s holds no unencrypted PEM private key (RSA or "
                   "Ed25519)",
                   key_path);
        goto done;
    }
    bool ed = EVP_PKEY_base_id(key) == EVP_PKEY_ED25519;
    if (!ed && EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        hd_err_set(err, "HERALD_DKIM_KEY_FILE: %s is a %s key; DKIM signs with RSA or Ed25519",
                   key_path, OBJ_nid2sn(EVP_PKEY_base_id(key)));
        goto done;
    }
    if (!ed && EVP_PKEY_bits(key) > DKIM_RSA_MAX_BITS) {
        hd_err_set(err, "HERALD_DKIM_KEY_FILE: %s is a %d-bit RSA key; at most %d bits", key_path,
                   EVP_PKEY_bits(key), DKIM_RSA_MAX_BITS);
        goto done;
    }
    if (!ed && EVP_PKEY_bits(key) < DKIM_RSA_MIN_BITS) {
        hd_err_set(err,
                   "HERALD_DKIM_KEY_FILE: %s is a %d-bit RSA key; DKIM needs at least %d bits "
                   "(RFC 8301), 2048 recommended",
                   key_path, EVP_PKEY_bits(key), DKIM_RSA_MIN_BITS);
        goto done;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        hd_err_set(err, "dkim: out of memory");
        goto done;
    }
    s->key = key;
    key = NULL;
    s->ed25519 = ed;
    snprintf(s->domain, sizeof(s->domain), "%s", domain);
    snprintf(s->selector, sizeof(s->selector), "%s", selector);
done:
    EVP_PKEY_free(key);
    OPENSSL_cleanse(pem, sizeof(pem));
    return s;
}

void dkim_signer_free(dkim_signer_t *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

const char *dkim_signer_algorithm(const dkim_signer_t *s)
{
    return s->ed25519 ? "ed25519-sha256" : "rsa-sha256";
}

void dkim_signer_record(const dkim_signer_t *s, buf_t *out)
{
    unsigned char raw[32], *der = NULL;
    const unsigned char *p;
    size_t plen = 0;
    if (s->ed25519) {
        plen = sizeof(raw);
        if (EVP_PKEY_get_raw_public_key(s->key, raw, &plen) != 1)
            plen = 0;
        p = raw;
    } else {
        int n = i2d_PUBKEY(s->key, &der);
        plen = n > 0 ? (size_t)n : 0;
        p = der;
    }
    char *b64 = b64_encode(p, plen);
    buf_printf(out, "v=DKIM1; k=%s; p=%s", s->ed25519 ? "ed25519" : "rsa", b64 ? b64 : "");
    free(b64);
    OPENSSL_free(der);
}

void dkim_canon_header(const char *field, size_t len, buf_t *out)
{
    size_t colon = 0;
    while (colon < len && field[colon] != ':')
        colon++;
    size_t name_end = colon;
    while (name_end > 0 && is_wsp(field[name_end - 1]))
        name_end--;
    for (size_t i = 0; i < name_end; i++) {
        char c = field[i];
        buf_putc(out, (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);
    }
    buf_putc(out, ':');
    /* the value: unfolded (CRLF dropped), WSP runs -> one SP, none at the ends */
    bool started = false, pending_sp = false;
    for (size_t i = colon + 1; i < len; i++) {
        char c = field[i];
        if (c == '\r' && i + 1 < len && field[i + 1] == '\n') {
            i++;
            continue;
        }
        if (is_wsp(c)) {
            pending_sp = started;
            continue;
        }
        if (pending_sp)
            buf_putc(out, ' ');
        pending_sp = false;
        started = true;
        buf_putc(out, c);
    }
    buf_puts(out, "\r\n");
}

void dkim_canon_body(const char *body, size_t len, buf_t *out)
{
    size_t empty = 0; /* empty lines held back: kept only if text follows */
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && !(body[end] == '\r' && end + 1 < len && body[end + 1] == '\n'))
            end++;
        /* the line is body[i, end): strip trailing WSP, compress the rest */
        size_t last = end;
        while (last > i && is_wsp(body[last - 1]))
            last--;
        if (last == i) {
            if (end < len)
                empty++;
        } else {
            for (; empty > 0; empty--)
                buf_puts(out, "\r\n");
            for (size_t k = i; k < last; k++) {
                if (is_wsp(body[k])) {
                    buf_putc(out, ' ');
                    while (k + 1 < last && is_wsp(body[k + 1]))
                        k++;
                } else {
                    buf_putc(out, body[k]);
                }
            }
            buf_puts(out, "\r\n");
        }
        i = end < len ? end + 2 : len;
    }
}

typedef struct field_span {
    const char *p;
    size_t len;  /* including the final CRLF */
    size_t nlen; /* the name's length */
    bool used;   /* already signed (each instance is signed once) */
} field_span_t;

/* Splits the header into fields; returns how many, or -1 without the empty
 * line that ends the header. *body_off is where the body starts. */
static int split_header(const char *msg, size_t len, field_span_t *f, int max, size_t *body_off)
{
    int n = 0;
    size_t i = 0;
    while (i + 1 < len) {
        if (msg[i] == '\r' && msg[i + 1] == '\n') {
            *body_off = i + 2;
            return n;
        }
        size_t start = i;
        for (;;) {
            while (i + 1 < len && !(msg[i] == '\r' && msg[i + 1] == '\n'))
                i++;
            if (i + 1 >= len)
                return -1;
            i += 2;
            if (i >= len || !is_wsp(msg[i]))
                break; /* the next line does not continue this field */
        }
        if (n < max) {
            size_t nl = 0;
            while (start + nl < i && msg[start + nl] != ':')
                nl++;
            while (nl > 0 && is_wsp(msg[start + nl - 1]))
                nl--;
            f[n++] = (field_span_t){msg + start, i - start, nl, false};
        }
    }
    return -1;
}

static int do_sign(const dkim_signer_t *s, const unsigned char *data, size_t len,
                   unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -1;
    int ok;
    if (s->ed25519) {
        /* RFC 8463 section 3: Ed25519 (pure) over the SHA-256 of the data */
        uint8_t h[32];
        hash_sha256(data, len, h);
        ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, h, sizeof(h)) == 1;
    } else {
        ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->key) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, data, len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Appends " tag" to the field being written, on a new folded line when the
 * current one would pass 76 characters. *col is the current line's width. */
static void put_folded(buf_t *b, size_t *col, const char *piece, size_t n, bool space)
{
    if (*col + n + (space ? 1 : 0) > 76) {
        buf_puts(b, "\r\n\t");
        *col = 1;
    } else if (space) {
        buf_putc(b, ' ');
        (*col)++;
    }
    buf_append(b, piece, n);
    *col += n;
}

int dkim_sign(const dkim_signer_t *s, const char *msg, size_t len, int64_t now, buf_t *out,
              hd_err_t *err)
{
    field_span_t fields[MAX_FIELDS];
    size_t body_off = 0;
    int nf = split_header(msg, len, fields, MAX_FIELDS, &body_off);
    if (nf < 0)
        return hd_err_set(err, "dkim: the message has no empty line after its header");
    buf_t canon, sigf;
    buf_init(&canon);
    buf_init(&sigf);
    int rc = -1;
    char *bh = NULL, *b = NULL;

    dkim_canon_body(msg + body_off, len - body_off, &canon);
    uint8_t digest[32];
    hash_sha256(canon.data, canon.len, digest);
    bh = b64_encode(digest, sizeof(digest));
    buf_reset(&canon);

    /* h=: each listed field the message holds, bottom-most instance first
     * (section 5.4.2), and From once more (over-signing, section 8.15). */
    buf_t h;
    buf_init(&h);
    bool has_from = false;
    for (size_t k = 0; k < NSIGNED; k++) {
        size_t kl = strlen(signed_fields[k]);
        for (int i = nf - 1; i >= 0; i--) {
            if (fields[i].used || fields[i].nlen != kl ||
                strncasecmp(fields[i].p, signed_fields[k], kl) != 0)
                continue;
            fields[i].used = true;
            dkim_canon_header(fields[i].p, fields[i].len, &canon);
            buf_printf(&h, "%s%s", h.len ? ":" : "", signed_fields[k]);
            has_from |= k == 0;
        }
    }
    if (!has_from) {
        buf_free(&h);
        hd_err_set(err, "dkim: the message has no From field");
        goto done;
    }
    buf_puts(&h, ":from");

    size_t col = 0;
    buf_printf(&sigf, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;", dkim_signer_algorithm(s));
    col = sigf.len;
    char tag[600];
    int tn = snprintf(tag, sizeof(tag), "d=%s;", s->domain);
    put_folded(&sigf, &col, tag, (size_t)tn, true);
    tn = snprintf(tag, sizeof(tag), "s=%s;", s->selector);
    put_folded(&sigf, &col, tag, (size_t)tn, true);
    tn = snprintf(tag, sizeof(tag), "t=%lld;", (long long)now);
    put_folded(&sigf, &col, tag, (size_t)tn, true);
    /* h= may be folded after any colon (section 3.5, sig-h-tag) */
    const char *hp = h.data;
    bool first = true;
    while (*hp) {
        const char *colon = strchr(hp + 1, ':');
        size_t n = colon ? (size_t)(colon - hp) + 1 : strlen(hp);
        char piece[64];
        int pn = snprintf(piece, sizeof(piece), "%s%.*s%s", first ? "h=" : "",
                          (int)(colon ? n - 1 : n), hp, colon ? ":" : ";");
        put_folded(&sigf, &col, piece, (size_t)pn, first);
        first = false;
        hp += n;
    }
    buf_free(&h);
    tn = snprintf(tag, sizeof(tag), "bh=%s;", bh ? bh : "");
    put_folded(&sigf, &col, tag, (size_t)tn, true);
    put_folded(&sigf, &col, "b=", 2, true);

    /* The signature covers the signed fields and this field with b= empty,
     * canonicalised, without its final CRLF (section 3.7). */
    dkim_canon_header(sigf.data, sigf.len, &canon);
    canon.len -= 2;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    if (do_sign(s, (const unsigned char *)canon.data, canon.len, sig, &siglen) != 0) {
        hd_err_set(err, "dkim: signing failed (OpenSSL)");
        goto done;
    }
    b = b64_encode(sig, siglen);
    if (b == NULL || bh == NULL) {
        hd_err_set(err, "dkim: out of memory");
        goto done;
    }
    for (size_t off = 0, blen = strlen(b); off < blen;) {
        size_t room = col < 76 ? 76 - col : 0;
        if (room < 8) {
            buf_puts(&sigf, "\r\n\t");
            col = 1;
            continue;
        }
        size_t n = blen - off < room ? blen - off : room;
        buf_append(&sigf, b + off, n);
        off += n;
        col += n;
    }
    buf_puts(&sigf, "\r\n");
    buf_append(out, sigf.data, sigf.len);
    rc = 0;
done:
    free(bh);
    free(b);
    buf_free(&canon);
    buf_free(&sigf);
    return rc;
}

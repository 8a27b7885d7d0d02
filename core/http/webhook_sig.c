/* webhook_sig.c - see webhook_sig.h. */
#include "http/webhook_sig.h"
#include "base/buf.h"
#include "crypto/codec.h"
#include "crypto/hash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_name(const void *a, const void *b)
{
    const form_pair_t *x = *(const form_pair_t *const *)a, *y = *(const form_pair_t *const *)b;
    int c = strcmp(x->name, y->name);
    /* the same name twice: both go in, in a fixed order */
    return c ? c : strcmp(x->value, y->value);
}

void sig_twilio(const char *token, const char *url, const form_t *params, char out[32])
{
    buf_t b;
    buf_init(&b);
    buf_puts(&b, url);
    const form_pair_t **sorted = xcalloc(params->n ? params->n : 1, sizeof(*sorted));
    for (size_t i = 0; i < params->n; i++)
        sorted[i] = &params->pairs[i];
    qsort(sorted, params->n, sizeof(*sorted), by_name);
    for (size_t i = 0; i < params->n; i++) {
        buf_puts(&b, sorted[i]->name);
        buf_puts(&b, sorted[i]->value);
    }
    free(sorted);
    uint8_t mac[20];
    int rc = hash_hmac_sha1(token, strlen(token), b.data ? b.data : "", b.len, mac);
    buf_free(&b);
    char *s = rc == 0 ? b64_encode(mac, sizeof(mac)) : NULL;
    /* A failure leaves out empty, which matches no signature (same()). */
    snprintf(out, 32, "%s", s ? s : "");
    free(s);
}

static bool same(const char *want, const char *got)
{
    size_t n = strlen(want);
    if (n == 0)
        return false; /* no expected value (HMAC or encoding failed) */
    /* length first (public: a base64 HMAC-SHA1 is always 28), then the bytes
     * in constant time */
    return strlen(got) == n && hash_ct_equal(want, got, n);
}

/* url with its default port toggled, or NULL when it has another port. */
static char *toggle_port(const char *url)
{
    const char *port;
    size_t skip;
    if (strncmp(url, "https://", 8) == 0)
        port = ":443", skip = 8;
    else if (strncmp(url, "http://", 7) == 0)
        port = ":80", skip = 7;
    else
        return NULL;
    const char *host = url + skip;
    size_t hl = strcspn(host, "/?#");
    /* the port's ':' comes after the host name, or after "]" of an IPv6
     * literal; a ':' inside the literal is not one */
    const char *after = host;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', hl);
        if (close == NULL)
            return NULL;
        after = close;
    }
    const char *colon = memchr(after, ':', (size_t)(host + hl - after));
    buf_t b;
    buf_init(&b);
    if (colon == NULL) {
        buf_append(&b, url, skip + hl);
        buf_puts(&b, port);
        buf_puts(&b, host + hl);
    } else if ((size_t)(host + hl - colon) == strlen(port) &&
               memcmp(colon, port, strlen(port)) == 0) {
        buf_append(&b, url, (size_t)(colon - url));
        buf_puts(&b, host + hl);
    } else {
        return NULL;
    }
    return buf_steal(&b);
}

bool sig_twilio_valid(const char *token, const char *url, const form_t *params,
                      const char *signature)
{
    if (token == NULL || *token == '\0' || signature == NULL)
        return false;
    char want[32];
    sig_twilio(token, url, params, want);
    bool ok = same(want, signature);
    char *other = toggle_port(url);
    if (other) {
        sig_twilio(token, other, params, want);
        ok |= same(want, signature);
        free(other);
    }
    return ok;
}

bool sig_meta_valid(const char *secret, const char *body, size_t len, const char *header)
{
    if (secret == NULL || *secret == '\0' || header == NULL || strncmp(header, "sha256=", 7) != 0)
        return false;
    uint8_t mac[32];
    if (hash_hmac_sha256_checked(secret, strlen(secret), body, len, mac) != 0)
        return false;
    char want[65];
    hex_encode(mac, sizeof(mac), want);
    /* Meta sends lowercase hex; compare case-insensitively without
     * branching on secret bytes: lower the header's copy first. */
    char got[65];
    size_t n = strlen(header + 7);
    if (n != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = header[7 + i];
        got[i] = (char)(c >= 'A' && c <= 'F' ? c + 32 : c);
    }
    got[64] = '\0';
    return hash_ct_equal(want, got, 64);
}

/* tracking.c - see tracking.h. */
#include "engine/tracking.h"
#include "base/buf.h"
#include "crypto/codec.h"
#include "crypto/hash.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAC_LEN     16
#define HEAD1_LEN   (1 + 1 + 4 + 16 + 2 + 8) /* version 1: no key id */
#define HEAD_LEN    (1 + 1 + 4 + 4 + 16 + 2 + 8)
#define MAX_URL     2000
#define TOKEN_CHARS 128 /* longer input is refused before decoding */

void track_key_derive(const uint8_t enc_key[32], track_key_t *out)
{
    static const char label[] = "herald/tracking/v1";
    hash_hmac_sha256(enc_key, 32, label, sizeof(label) - 1, out->k);
    /* the key's id as crypto/field.h fe_key_id names it (in hex there) */
    static const char kid_label[] = "herald-kid";
    uint8_t buf[sizeof(kid_label) - 1 + 32], md[32];
    memcpy(buf, kid_label, sizeof(kid_label) - 1);
    memcpy(buf + sizeof(kid_label) - 1, enc_key, 32);
    hash_sha256(buf, sizeof(buf), md);
    memset(buf, 0, sizeof(buf));
    memcpy(out->id, md, 4);
}

void track_keys_init(track_keys_t *ring, const uint8_t current[32], const uint8_t (*old)[32],
                     int nold)
{
    memset(ring, 0, sizeof(*ring));
    track_key_derive(current, &ring->keys[0]);
    ring->n = 1;
    for (int i = 0; i < nold && ring->n < TRACK_MAX_KEYS; i++)
        track_key_derive(old[i], &ring->keys[ring->n++]);
}

static int uuid_bytes(const char *s, uint8_t out[16])
{
    int n = 0;
    for (size_t i = 0; s[i] && n < 32; i++) {
        if (s[i] == '-')
            continue;
        int v = isdigit((unsigned char)s[i])   ? s[i] - '0'
                : (s[i] >= 'a' && s[i] <= 'f') ? s[i] - 'a' + 10
                : (s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 10
                                               : -1;
        if (v < 0)
            return -1;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : -1;
}

char *track_token(const track_key_t *key, char kind, const char *comm_id, int index,
                  int64_t expires, const char *url)
{
    uint8_t p[HEAD_LEN + MAC_LEN];
    memset(p, 0, sizeof(p));
    p[0] = 2;
    p[1] = (uint8_t)kind;
    memcpy(p + 2, key->id, 4);
    /* four bytes, unsigned: clamped, never wrapped into the past */
    uint32_t e = expires <= 0 ? 0 : expires >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)expires;
    p[6] = (uint8_t)(e >> 24), p[7] = (uint8_t)(e >> 16), p[8] = (uint8_t)(e >> 8),
    p[9] = (uint8_t)e;
    if (uuid_bytes(comm_id, p + 10) != 0)
        memset(p + 10, 0, 16);
    p[26] = (uint8_t)(index >> 8), p[27] = (uint8_t)index;
    if (kind == 'c' && url) {
        uint8_t h[32];
        hash_sha256(url, strlen(url), h);
        memcpy(p + 28, h, 8);
    }
    uint8_t mac[32];
    if (hash_hmac_sha256_checked(key->k, sizeof(key->k), p, HEAD_LEN, mac) != 0)
        return NULL;
    memcpy(p + HEAD_LEN, mac, MAC_LEN);
    return b64url_encode(p, sizeof(p));
}

bool track_url_matches(const track_claim_t *c, const char *url)
{
    if (url == NULL || c->kind != 'c')
        return false;
    uint8_t h[32];
    hash_sha256(url, strlen(url), h);
    return hash_ct_equal(h, c->url_hash, 8);
}

bool track_url_ok(const char *url)
{
    if (url == NULL)
        return false;
    size_t n = strlen(url);
    if (n > MAX_URL ||
        !(strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return false; /* no spaces, CR, LF: nothing that could split a header */
    }
    /* "http://" with no host, or a host that starts a path */
    const char *host = url + (url[4] == 's' || url[4] == 'S' ? 8 : 7);
    return *host && *host != '/' && *host != '?' && *host != '#';
}

/* A decoded token: its version, the offset of its fields after the key id
 * (2 in version 1, 6 in version 2) and the length it MACs. 0, or -1 when
 * the shape is not a token's. */
typedef struct raw_token {
    uint8_t *p;
    size_t n, head, off;
} raw_token_t;

static int decode(const char *token, raw_token_t *t)
{
    memset(t, 0, sizeof(*t));
    if (token == NULL || strlen(token) > TOKEN_CHARS ||
        b64url_decode(token, strlen(token), &t->p, &t->n) != 0)
        return -1;
    if (t->n < 2 || (t->p[1] != 'o' && t->p[1] != 'c' && t->p[1] != 'u'))
        return -1;
    if (t->p[0] == 1 && t->n == HEAD1_LEN + MAC_LEN)
        t->head = HEAD1_LEN, t->off = 2;
    else if (t->p[0] == 2 && t->n == HEAD_LEN + MAC_LEN)
        t->head = HEAD_LEN, t->off = 6;
    else
        return -1;
    return 0;
}

static bool mac_ok(const track_key_t *key, const raw_token_t *t)
{
    uint8_t mac[32];
    return hash_hmac_sha256_checked(key->k, sizeof(key->k), t->p, t->head, mac) == 0 &&
           hash_ct_equal(mac, t->p + t->head, MAC_LEN);
}

/* The claim of a token whose MAC has been checked. */
static track_check_t claim(const raw_token_t *t, int64_t now, track_claim_t *out)
{
    const uint8_t *f = t->p + t->off;
    out->kind = (char)t->p[1];
    out->expires = (int64_t)((uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 |
                             (uint32_t)f[3]);
    static const char hex[] = "0123456789abcdef";
    char *o = out->comm_id;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[f[4 + i] >> 4];
        *o++ = hex[f[4 + i] & 15];
    }
    *o = '\0';
    out->index = f[20] << 8 | f[21];
    memcpy(out->url_hash, f + 22, 8);
    return out->expires < now ? TRACK_EXPIRED : TRACK_OK;
}

static track_check_t verify_keys(const track_key_t *keys, int nkeys, const char *token, int64_t now,
                                 track_claim_t *out)
{
    memset(out, 0, sizeof(*out));
    raw_token_t t;
    track_check_t rc = TRACK_INVALID;
    if (decode(token, &t) != 0)
        goto done;
    for (int i = 0; i < nkeys; i++) {
        const track_key_t *k = &keys[i];
        /* version 2 names its key: only that one is tried */
        if (t.p[0] == 2 && memcmp(k->id, t.p + 2, 4) != 0)
            continue;
        if (mac_ok(k, &t)) {
            rc = claim(&t, now, out);
            break;
        }
    }
done:
    free(t.p);
    return rc;
}

track_check_t track_verify(const track_key_t *key, const char *token, int64_t now,
                           track_claim_t *out)
{
    return verify_keys(key, 1, token, now, out);
}

track_check_t track_verify_ring(const track_keys_t *ring, const char *token, int64_t now,
                                track_claim_t *out)
{
    return verify_keys(ring->keys, ring->n, token, now, out);
}

/* &amp; &quot; &#39; &lt; &gt; &#x27; in an attribute value, decoded. */
static char *attr_decode(const char *s, size_t n)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&quot;", '"'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}};
    buf_t b;
    buf_init(&b);
    for (size_t i = 0; i < n;) {
        bool done = false;
        if (s[i] == '&' && i + 2 < n && s[i + 1] == '#') {
            /* &#NN; and &#xHH; : a code point, written as UTF-8 */
            bool hex = s[i + 2] == 'x' || s[i + 2] == 'X';
            size_t k = i + (hex ? 3 : 2);
            unsigned long cp = 0;
            size_t digits = 0;
            while (k < n && digits < 7 &&
                   (hex ? isxdigit((unsigned char)s[k]) : isdigit((unsigned char)s[k]))) {
                int v = isdigit((unsigned char)s[k]) ? s[k] - '0' : (s[k] | 32) - 'a' + 10;
                cp = cp * (hex ? 16 : 10) + (unsigned long)v;
                k++, digits++;
            }
            if (digits > 0 && k < n && s[k] == ';' && cp > 0 && cp <= 0x10ffff &&
                !(cp >= 0xd800 && cp <= 0xdfff)) {
                if (cp < 0x80) {
                    buf_putc(&b, (char)cp);
                } else if (cp < 0x800) {
                    buf_putc(&b, (char)(0xc0 | cp >> 6));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3f)));
                } else if (cp < 0x10000) {
                    buf_putc(&b, (char)(0xe0 | cp >> 12));
                    buf_putc(&b, (char)(0x80 | ((cp >> 6) & 0x3f)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3f)));
                } else {
                    buf_putc(&b, (char)(0xf0 | cp >> 18));
                    buf_putc(&b, (char)(0x80 | ((cp >> 12) & 0x3f)));
                    buf_putc(&b, (char)(0x80 | ((cp >> 6) & 0x3f)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3f)));
                }
                i = k + 1;
                continue;
            }
        }
        for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]) && s[i] == '&'; k++) {
            size_t el = strlen(ents[k].ent);
            if (i + el <= n && strncasecmp(s + i, ents[k].ent, el) == 0) {
                buf_putc(&b, ents[k].c);
                i += el;
                done = true;
                break;
            }
        }
        if (!done)
            buf_putc(&b, s[i++]);
    }
    return buf_steal(&b);
}

/* Finds the quoted href value of the <a ...> tag at a, walking its
 * attributes (so a quoted value may hold "href=" or ">"). *q: the opening
 * quote, or NULL; returns the tag's closing '>', or NULL when unterminated. */
static const char *a_tag_href(const char *a, const char **q)
{
    *q = NULL;
    const char *s = a + 2;
    for (;;) {
        while (isspace((unsigned char)*s) || *s == '/')
            s++;
        if (*s == '>' || *s == '\0')
            return *s == '>' ? s : NULL;
        const char *name = s;
        while (*s && !isspace((unsigned char)*s) && *s != '=' && *s != '>' && *s != '/')
            s++;
        size_t nl = (size_t)(s - name);
        while (isspace((unsigned char)*s))
            s++;
        if (*s != '=')
            continue; /* an attribute without a value */
        s++;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '"' || *s == '\'') {
            const char *close = strchr(s + 1, *s);
            if (close == NULL)
                return NULL;
            if (nl == 4 && strncasecmp(name, "href", 4) == 0 && *q == NULL)
                *q = s;
            s = close + 1;
        } else {
            while (*s && !isspace((unsigned char)*s) && *s != '>')
                s++; /* unquoted values are left alone */
        }
    }
}

/* Whether a decoded href may be a link: no scheme (a relative link), or one
 * of http, https, mailto, tel. Browsers ignore ASCII whitespace and control
 * characters inside a scheme ("java\tscript:"), so the check does too. */
static bool link_allowed(const char *url)
{
    char scheme[8];
    size_t n = 0;
    for (const char *s = url; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f)
            continue;
        if (c == '/' || c == '?' || c == '#')
            return true; /* a path, query or fragment before any ':': relative */
        if (c == ':') {
            scheme[n < sizeof(scheme) ? n : 0] = '\0';
            return n < sizeof(scheme) &&
                   (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0 ||
                    strcmp(scheme, "mailto") == 0 || strcmp(scheme, "tel") == 0);
        }
        if (n < sizeof(scheme))
            scheme[n] = (char)tolower(c);
        n++;
    }
    return true; /* no scheme at all */
}

/* Walks *p to the next quoted href of an <a> tag, copying to out what comes
 * before its value (the opening quote included). Returns the decoded URL
 * (caller frees) with the value as written in *raw / *rawn and its quote in
 * *quote, and moves *p past the closing quote; NULL when no href is left
 * (*p then points at the rest, not copied). */
static char *next_href(const char **p, buf_t *out, const char **raw, size_t *rawn, char *quote)
{
    for (;;) {
        /* the next "<a" followed by whitespace */
        const char *a = *p;
        while ((a = strchr(a, '<')) != NULL &&
               !((a[1] == 'a' || a[1] == 'A') &&
                 (a[2] == ' ' || a[2] == '\t' || a[2] == '\n' || a[2] == '\r')))
            a++;
        const char *q = NULL;
        const char *end = a ? a_tag_href(a, &q) : NULL;
        if (end == NULL)
            return NULL;
        if (q == NULL) {
            buf_append(out, *p, (size_t)(end + 1 - *p));
            *p = end + 1;
            continue;
        }
        const char *close = strchr(q + 1, *q);
        buf_append(out, *p, (size_t)(q + 1 - *p));
        *raw = q + 1;
        *rawn = (size_t)(close - q - 1);
        *quote = *q;
        *p = close + 1;
        return attr_decode(*raw, *rawn);
    }
}

char *track_safe_links(const char *html, int *dropped)
{
    *dropped = 0;
    buf_t out;
    buf_init(&out);
    const char *p = html, *raw;
    size_t rawn;
    char quote;
    char *url;
    while ((url = next_href(&p, &out, &raw, &rawn, &quote)) != NULL) {
        if (link_allowed(url)) {
            buf_append(&out, raw, rawn);
        } else {
            buf_putc(&out, '#');
            (*dropped)++;
        }
        buf_putc(&out, quote);
        free(url);
    }
    buf_puts(&out, p);
    return buf_steal(&out);
}

char *track_rewrite_html(const track_key_t *key, const char *html, const char *base,
                         const char *comm_id, int64_t expires, const char *skip_prefix,
                         char **links_json)
{
    cJSON *links = cJSON_CreateArray();
    buf_t out;
    buf_init(&out);
    const char *p = html, *raw;
    size_t rawn;
    char quote;
    char *url;
    int index = 0;
    while ((url = next_href(&p, &out, &raw, &rawn, &quote)) != NULL) {
        bool skip =
            !track_url_ok(url) ||
            (skip_prefix && *skip_prefix && strncmp(url, skip_prefix, strlen(skip_prefix)) == 0) ||
            index > 0xffff;
        char *tok = skip ? NULL : track_token(key, 'c', comm_id, index, expires, url);
        if (tok == NULL) {
            buf_append(&out, raw, rawn); /* left direct */
        } else {
            index++;
            buf_printf(&out, "%s/t/c/%s", base, tok);
            free(tok);
            cJSON_AddItemToArray(links, cJSON_CreateString(url));
        }
        buf_putc(&out, quote);
        free(url);
    }
    buf_puts(&out, p);
    /* the pixel before the last </body>, or at the end */
    char *tok = track_token(key, 'o', comm_id, 0, expires, NULL);
    buf_t px;
    buf_init(&px);
    if (tok)
        buf_printf(&px,
                   "<img src=\"%s/t/o/%s.gif\" width=\"1\" height=\"1\" alt=\"\" "
                   "style=\"display:block;border:0;width:1px;height:1px\">",
                   base, tok);
    free(tok);
    char *done = buf_steal(&out);
    const char *body_end = NULL;
    for (const char *s = done; (s = strchr(s, '<')) != NULL; s++)
        if (strncasecmp(s, "</body", 6) == 0)
            body_end = s;
    buf_init(&out);
    if (body_end) {
        buf_append(&out, done, (size_t)(body_end - done));
        buf_append(&out, px.data, px.len);
        buf_puts(&out, body_end);
    } else {
        buf_puts(&out, done);
        buf_append(&out, px.data, px.len);
    }
    free(done);
    buf_free(&px);
    *links_json = cJSON_PrintUnformatted(links);
    cJSON_Delete(links);
    return buf_steal(&out);
}

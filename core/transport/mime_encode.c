/*
 * mime_encode.c - the encodings the MIME builder writes with (see
 * mime_encode.h): header lines folded under 78 columns, RFC 2047
 * encoded-words, display names, RFC 2231 parameters, quoted-printable and
 * base64 bodies. Uses buf and utf8 (base), the atext class of base/addr and
 * base64 from crypto/codec. Checks nothing: mime.c has checked every value.
 */
#include "transport/mime_encode.h"
#include "base/addr.h"
#include "base/utf8.h"

#include "crypto/codec.h"

#include <stdlib.h>
#include <string.h>

#define HDR_LINE  78 /* RFC 5322 2.1.1: SHOULD stay under 78 */
#define EW_MAX    75 /* RFC 2047 2: an encoded-word is at most 75 characters */
#define EW_OVERHD 12 /* "=?UTF-8?B?" + "?=" */
#define EW_MIN    24 /* below this, start the encoded-word on a fresh line */
#define QP_LINE   76 /* RFC 2045 6.7 (5), the soft-break '=' included */
#define B64_LINE  76 /* RFC 2045 6.8 */

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* OOM is fatal in Herald (see buf.h); b64_encode only fails on OOM. */
static char *b64(const uint8_t *in, size_t len)
{
    char *s = b64_encode(in, len);
    if (s == NULL)
        abort();
    return s;
}

/* ---- folded header lines ------------------------------------------------ */

void mime_hdr_begin(mime_hdr_t *h, buf_t *b, const char *name)
{
    h->b = b;
    h->items = 0;
    buf_puts(b, name);
    buf_putc(b, ':');
    h->col = strlen(name) + 1;
}

void mime_hdr_item(mime_hdr_t *h, const char *s, size_t n)
{
    /* An item too long for any line is not moved off the "Name:" line. */
    int fold = h->col + 1 + n > HDR_LINE && !(h->items == 0 && 1 + n > HDR_LINE);
    if (fold) {
        buf_append(h->b, "\r\n ", 3);
        h->col = 1;
    } else {
        buf_putc(h->b, ' ');
        h->col++;
    }
    buf_append(h->b, s, n);
    h->col += n;
    h->items++;
}

void mime_hdr_items(mime_hdr_t *h, const char *s)
{
    mime_hdr_item(h, s, strlen(s));
}

void mime_hdr_end(mime_hdr_t *h)
{
    buf_append(h->b, "\r\n", 2);
}

/* RFC 2047 5 (3): the Q characters allowed in a phrase (stricter than in
 * unstructured text, so one encoder serves both). */
static size_t q_cost(unsigned char c)
{
    return c == ' ' || is_alnum(c) || (c != '\0' && strchr("!*+-/", c) != NULL) ? 1 : 3;
}

/* Writes s as UTF-8 encoded-words, Q or B, whichever is shorter overall.
 * Words hold whole characters and are at most 75 characters; the first one is
 * cut to fit the current line when there is room for a useful one. */
static void put_encoded_words(mime_hdr_t *h, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t qlen = 0;
    for (size_t i = 0; i < n; i++)
        qlen += q_cost((unsigned char)s[i]);
    int use_q = qlen <= (n + 2) / 3 * 4;
    buf_t w;
    buf_init(&w);
    for (size_t i = 0; i < n;) {
        size_t max = EW_MAX;
        if (h->col + 1 + EW_MIN <= HDR_LINE && HDR_LINE - h->col - 1 < max)
            max = HDR_LINE - h->col - 1;
        size_t room = max - EW_OVERHD, start = i, cost = 0;
        while (i < n) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i); /* checked: > 0 */
            size_t add = 0;
            if (use_q) {
                for (size_t k = 0; k < l; k++)
                    add += q_cost((unsigned char)s[i + k]);
                if (cost + add > room)
                    break;
                cost += add;
            } else if ((i + l - start + 2) / 3 * 4 > room) {
                break;
            }
            i += l;
        }
        buf_reset(&w);
        buf_puts(&w, use_q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
        if (use_q) {
            for (size_t k = start; k < i; k++) {
                unsigned char c = (unsigned char)s[k];
                if (c == ' ')
                    buf_putc(&w, '_');
                else if (q_cost(c) == 1)
                    buf_putc(&w, (char)c);
                else
                    buf_printf(&w, "=%c%c", hex[c >> 4], hex[c & 15]);
            }
        } else {
            char *e = b64((const uint8_t *)s + start, i - start);
            buf_puts(&w, e);
            free(e);
        }
        buf_puts(&w, "?=");
        mime_hdr_item(h, w.data, w.len);
    }
    buf_free(&w);
}

/* Items of s split at its single spaces, when all of them fit a line. */
static int put_words(mime_hdr_t *h, const char *s, size_t n, int dry)
{
    for (size_t i = 0; i < n;) {
        const char *sp = memchr(s + i, ' ', n - i);
        size_t end = sp ? (size_t)(sp - s) : n;
        if (dry && end - i + 1 > HDR_LINE - 1)
            return -1;
        if (!dry)
            mime_hdr_item(h, s + i, end - i);
        i = end + 1;
    }
    return 0;
}

/* Text that can go out as it is: printable ASCII words separated by single
 * spaces, nothing that a reader would take for an encoded-word. */
static int plain_ascii(const char *s, size_t n)
{
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || (c == ' ' && s[i + 1] == ' '))
            return 0;
        if (c == '=' && s[i + 1] == '?')
            return 0;
    }
    return 1;
}

/* Unstructured text (Subject, the extra header). */
void mime_put_unstructured(mime_hdr_t *h, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return;
    if (plain_ascii(s, n) && put_words(h, s, n, 1) == 0)
        put_words(h, s, n, 0);
    else
        put_encoded_words(h, s, n);
}

/* A word that can stand as an RFC 5322 atom and not read as an encoded-word. */
static int atom_word(const char *s, size_t n)
{
    if (n + 1 > HDR_LINE - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!addr_is_atext((unsigned char)s[i]) || (s[i] == '=' && i + 1 < n && s[i + 1] == '?'))
            return 0;
    return 1;
}

/* A display name, already whitespace-normalised (single spaces, none at the
 * ends). All-ASCII: atoms, or one quoted-string folded only at its spaces
 * (RFC 5322 3.2.4 allows that). Otherwise atom words stay as they are and
 * each run of the other words becomes encoded-words, as Python's generator
 * does: adjacent encoded-words - whose separating space RFC 2047 decoders
 * drop, and some parsers (Python's address parser) turn into a space - then
 * only appear when one run outgrows a single word. */
static void put_phrase(mime_hdr_t *h, const char *s, size_t n)
{
    if (plain_ascii(s, n)) {
        int atoms = 1;
        for (size_t i = 0; i < n; i++)
            atoms &= s[i] == ' ' || addr_is_atext((unsigned char)s[i]);
        buf_t q;
        buf_init(&q);
        if (!atoms) {
            buf_putc(&q, '"');
            for (size_t i = 0; i < n; i++) {
                if (s[i] == '"' || s[i] == '\\')
                    buf_putc(&q, '\\');
                buf_putc(&q, s[i]);
            }
            buf_putc(&q, '"');
        } else {
            buf_append(&q, s, n);
        }
        int ok = put_words(h, q.data, q.len, 1) == 0;
        if (ok)
            put_words(h, q.data, q.len, 0);
        buf_free(&q);
        if (ok)
            return;
    }
    size_t run = n; /* start of the pending run of non-atom words, n: none */
    for (size_t i = 0; i <= n;) {
        const char *sp = i < n ? memchr(s + i, ' ', n - i) : NULL;
        size_t end = sp ? (size_t)(sp - s) : n;
        if (i == n || atom_word(s + i, end - i)) {
            if (run < n)
                put_encoded_words(h, s + run, (i == n ? n : i - 1) - run);
            run = n;
            if (i < n)
                mime_hdr_item(h, s + i, end - i);
        } else if (run == n) {
            run = i;
        }
        if (i == n)
            break;
        i = end < n ? end + 1 : n;
    }
}

/* "Name <addr>" or the bare address. White space in the name is normalised
 * to single spaces (a phrase means no more, RFC 5322 3.2.2). */
void mime_put_mailbox(buf_t *b, const char *header, const char *name, const char *addr)
{
    mime_hdr_t h;
    buf_t nm;
    buf_init(&nm);
    for (const char *p = name ? name : ""; *p; p++) {
        int ws = *p == ' ' || *p == '\t';
        if (!ws)
            buf_putc(&nm, *p);
        else if (nm.len > 0 && nm.data[nm.len - 1] != ' ')
            buf_putc(&nm, ' ');
    }
    if (nm.len > 0 && nm.data[nm.len - 1] == ' ')
        nm.data[--nm.len] = '\0';
    mime_hdr_begin(&h, b, header);
    if (nm.len > 0) {
        put_phrase(&h, nm.data, nm.len);
        buf_reset(&nm);
        buf_printf(&nm, "<%s>", addr);
        mime_hdr_item(&h, nm.data, nm.len);
    } else {
        mime_hdr_items(&h, addr);
    }
    mime_hdr_end(&h);
    buf_free(&nm);
}

/* RFC 2231 attribute-char, kept as it is in an extended value. */
static int rfc2231_plain(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* `attr="value"` for short printable ASCII, otherwise RFC 2231
 * `attr*=UTF-8''%XX..`, split into attr*0*, attr*1*, ... segments that keep
 * every line under 78 and never cut a character. */
void mime_put_param(mime_hdr_t *h, const char *attr, const char *v)
{
    size_t n = strlen(v), alen = strlen(attr);
    buf_t item;
    buf_init(&item);
    int simple = n + alen + 3 <= HDR_LINE - 2;
    for (size_t i = 0; simple && i < n; i++)
        simple = v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\';
    if (simple) {
        buf_printf(&item, "%s=\"%s\"", attr, v);
        mime_hdr_item(h, item.data, item.len);
        buf_free(&item);
        return;
    }
    /* Percent-encode once, remembering where characters start. */
    buf_t enc;
    buf_init(&enc);
    size_t *cut = xcalloc(n + 1, sizeof(*cut)); /* cut[k]: enc offset after k-th char */
    size_t nchars = 0;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq((const unsigned char *)v + i, n - i);
        for (size_t k = 0; k < l; k++) {
            unsigned char c = (unsigned char)v[i + k];
            if (rfc2231_plain(c))
                buf_putc(&enc, (char)c);
            else
                buf_printf(&enc, "%%%02X", c);
        }
        i += l;
        cut[nchars++] = enc.len;
    }
    size_t budget = HDR_LINE - 2 - alen - 8; /* " attr*NN*=" ... ";" */
    if (enc.len + 7 <= budget) {
        buf_printf(&item, "%s*=UTF-8''%s", attr, enc.data);
        mime_hdr_item(h, item.data, item.len);
    } else {
        size_t from = 0, c = 0;
        for (int seg = 0; from < enc.len; seg++) {
            size_t room = budget - (seg == 0 ? 7 : 0), to = from;
            while (c < nchars && (cut[c] - from <= room || to == from))
                to = cut[c++];
            buf_reset(&item);
            buf_printf(&item, "%s*%d*=%s%.*s%s", attr, seg, seg == 0 ? "UTF-8''" : "",
                       (int)(to - from), enc.data + from, to < enc.len ? ";" : "");
            mime_hdr_item(h, item.data, item.len);
            from = to;
        }
    }
    free(cut);
    buf_free(&enc);
    buf_free(&item);
}

/* ---- bodies ------------------------------------------------------------- */

static int line_break_at(const char *s, size_t n, size_t i)
{
    return i < n && (s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'));
}

/* RFC 2045 6.7 quoted-printable. CRLF and bare LF become CRLF hard breaks;
 * lines are at most 76 with the soft-break '='; whitespace before a hard
 * break or at the very end is encoded; "From " at a line start is encoded so
 * mbox-style stores cannot mangle it. The output always ends in CRLF (a final
 * soft break when the text does not end with a line break), so it decodes to
 * exactly the (LF-normalised) input whatever follows it. */
void mime_qp_encode(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    /* the most the output can take: every byte as =XX, a soft break every
     * 25 of them, and the final soft break; written in place, no call per
     * byte (this runs over every email's text and HTML) */
    buf_reserve(b, 3 * n + 3 * (n / 25 + 1) + 3);
    char *o = b->data + b->len;
    size_t col = 0;
    int at_break = 1;
    for (size_t i = 0; i < n;) {
        if (line_break_at(s, n, i)) {
            *o++ = '\r', *o++ = '\n';
            col = 0;
            at_break = 1;
            i += s[i] == '\r' ? 2 : 1;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        int before_break = line_break_at(s, n, i + 1);
        int raw;
        if (c == ' ' || c == '\t')
            raw = !before_break && i + 1 < n;
        else
            raw = c >= 33 && c <= 126 && c != '=';
        size_t t = raw ? 1 : 3;
        /* the last token of a hard-broken line may take column 76 itself */
        if (col + t > (before_break ? QP_LINE : QP_LINE - 1)) {
            *o++ = '=', *o++ = '\r', *o++ = '\n';
            col = 0;
        }
        if (raw && col == 0 && c == 'F' && n - i >= 5 && memcmp(s + i, "From ", 5) == 0)
            raw = 0, t = 3;
        if (raw) {
            *o++ = (char)c;
        } else {
            *o++ = '=';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        col += t;
        at_break = 0;
        i++;
    }
    if (!at_break)
        *o++ = '=', *o++ = '\r', *o++ = '\n';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void mime_b64_lines(buf_t *e, const uint8_t *data, size_t len)
{
    char *enc = b64(data, len);
    size_t n = strlen(enc);
    for (size_t i = 0; i < n; i += B64_LINE) {
        if (i > 0)
            buf_append(e, "\r\n", 2);
        buf_append(e, enc + i, n - i < B64_LINE ? n - i : B64_LINE);
    }
    free(enc);
}

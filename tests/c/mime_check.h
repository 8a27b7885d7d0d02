/*
 * mime_check.h - the decoders test_mime.c, test_mime_headers.c and
 * test_mime_refusals.c read their own output with: RFC 2047 words,
 * quoted-printable, header and multipart splitting, and the wire checks every
 * built message must pass (CRLF only, 7-bit, line lengths). Static helpers
 * for those test files; included after cmocka.h (they assert).
 */
#ifndef HERALD_TESTS_MIME_CHECK_H
#define HERALD_TESTS_MIME_CHECK_H

#include "crypto/codec.h"
#include "transport/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COMM_ID "4f1c2b9e-7d3a-4c8e-9b21-0a5f6e7d8c9b"

typedef struct span {
    const char *p;
    size_t n;
} span_t;

static __attribute__((unused)) span_t span_of(const buf_t *b)
{
    return (span_t){b->data, b->len};
}

static __attribute__((unused)) mime_email_t base_email(void)
{
    return (mime_email_t){
        .from_name = "Herald Shop",
        .from_addr = "shop@example.com",
        .to_addr = "jane@example.org",
        .subject = "Your plan",
        .text = "Hello\n",
        .comm_id = COMM_ID,
        .date = 1795856400, /* 2026-11-28T09:00:00Z, a Saturday */
    };
}

/* ---- small decoders and parsers ----------------------------------------- */

static __attribute__((unused)) int utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 : 4;
        if (s[i] >= 0xf8 || (s[i] & 0xc0) == 0x80 || i + l > n)
            return 0;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += l;
    }
    return 1;
}

static __attribute__((unused)) int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* RFC 2045: uppercase only from a conforming encoder */
}

/* Quoted-printable to bytes; fails on a line over 76, a bad escape or
 * trailing whitespace (which a relay could strip). */
static __attribute__((unused)) int qp_decode(span_t s, buf_t *out)
{
    size_t col = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '\r') {
            if (i + 1 >= s.n || s.p[i + 1] != '\n' || col > 76)
                return -1;
            if (i > 0 && (s.p[i - 1] == ' ' || s.p[i - 1] == '\t'))
                return -1;
            buf_append(out, "\r\n", 2);
            i++;
            col = 0;
            continue;
        }
        col++;
        if (c != '=') {
            buf_putc(out, c);
            continue;
        }
        if (i + 2 < s.n && s.p[i + 1] == '\r' && s.p[i + 2] == '\n') {
            if (col > 76)
                return -1;
            i += 2;
            col = 0;
            continue;
        }
        if (i + 2 >= s.n || hexval(s.p[i + 1]) < 0 || hexval(s.p[i + 2]) < 0)
            return -1;
        buf_putc(out, (char)(hexval(s.p[i + 1]) * 16 + hexval(s.p[i + 2])));
        i += 2;
        col += 2;
    }
    return col > 76 ? -1 : 0;
}

/* RFC 2047: decodes an unfolded header value. Each encoded-word must be at
 * most 75 characters, UTF-8, and hold whole characters on its own; white
 * space between two encoded-words is dropped. Counts the words in *nwords. */
static __attribute__((unused)) int rfc2047_decode(const char *v, buf_t *out, int *nwords, int *nq,
                                                  int *nb)
{
    buf_t ws, w;
    buf_init(&ws);
    buf_init(&w);
    int prev_ew = 0, rc = -1;
    size_t n = strlen(v);
    for (size_t i = 0; i < n;) {
        if (v[i] == ' ' || v[i] == '\t') {
            buf_putc(&ws, v[i++]);
            continue;
        }
        if (v[i] != '=' || v[i + 1] != '?') {
            buf_append(out, ws.data, ws.len);
            buf_reset(&ws);
            buf_putc(out, v[i++]);
            prev_ew = 0;
            continue;
        }
        const char *cs = v + i + 2, *q = strchr(cs, '?');
        if (q == NULL || q - cs != 5 || strncasecmp(cs, "UTF-8", 5) != 0 || q[1] == '\0' ||
            q[2] != '?')
            goto done;
        char enc = q[1];
        const char *txt = q + 3, *end = strstr(txt, "?=");
        if (end == NULL || end + 2 - (v + i) > 75)
            goto done;
        buf_reset(&w);
        if (enc == 'B' || enc == 'b') {
            uint8_t *d;
            size_t dl;
            if (b64_decode(txt, (size_t)(end - txt), &d, &dl) != 0)
                goto done;
            buf_append(&w, d, dl);
            free(d);
        } else if (enc == 'Q' || enc == 'q') {
            for (const char *p = txt; p < end; p++) {
                if (*p == '_') {
                    buf_putc(&w, ' ');
                } else if (*p == '=') {
                    if (end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                        goto done;
                    buf_putc(&w, (char)(hexval(p[1]) * 16 + hexval(p[2])));
                    p += 2;
                } else if (*p == ' ' || *p == '?') {
                    goto done;
                } else {
                    buf_putc(&w, *p);
                }
            }
            (*nq)++;
        } else {
            goto done;
        }
        if (enc == 'B' || enc == 'b')
            (*nb)++;
        if (!utf8_ok((const uint8_t *)w.data, w.len))
            goto done; /* a character split across two words */
        if (!prev_ew)
            buf_append(out, ws.data, ws.len);
        buf_reset(&ws);
        buf_append(out, w.data, w.len);
        prev_ew = 1;
        (*nwords)++;
        i = (size_t)(end + 2 - v);
    }
    buf_append(out, ws.data, ws.len);
    rc = 0;
done:
    buf_free(&ws);
    buf_free(&w);
    return rc;
}

static __attribute__((unused)) char *decode_2047(const char *v, int *nwords, int *nq, int *nb)
{
    buf_t out;
    buf_init(&out);
    int a = 0, b = 0, c = 0;
    if (rfc2047_decode(v, &out, nwords ? nwords : &a, nq ? nq : &b, nb ? nb : &c) != 0)
        fail_msg("not valid RFC 2047: %s", v);
    buf_putc(&out, '\0');
    return buf_steal(&out);
}

/* Splits an entity at its blank line. */
static __attribute__((unused)) void entity(span_t e, span_t *hdrs, span_t *body)
{
    for (size_t i = 0; i + 1 < e.n; i++) {
        if ((i == 0 || (i >= 2 && e.p[i - 2] == '\r' && e.p[i - 1] == '\n')) && e.p[i] == '\r' &&
            e.p[i + 1] == '\n') {
            *hdrs = (span_t){e.p, i};
            *body = (span_t){e.p + i + 2, e.n - i - 2};
            return;
        }
    }
    fail_msg("entity without a blank line");
}

/* The unfolded value of header name in hdrs, leading white space removed;
 * returns how many times the header occurs (0: val is left empty). */
static __attribute__((unused)) int header(span_t hdrs, const char *name, buf_t *val)
{
    size_t nl = strlen(name);
    int count = 0;
    buf_reset(val);
    for (size_t i = 0; i < hdrs.n;) {
        size_t end = i;
        for (;;) { /* a field ends at CRLF not followed by WSP */
            const char *crlf = memmem(hdrs.p + end, hdrs.n - end, "\r\n", 2);
            end = crlf ? (size_t)(crlf - hdrs.p) : hdrs.n;
            if (end + 2 < hdrs.n && (hdrs.p[end + 2] == ' ' || hdrs.p[end + 2] == '\t')) {
                end += 2;
                continue;
            }
            break;
        }
        if (end - i > nl && strncasecmp(hdrs.p + i, name, nl) == 0 && hdrs.p[i + nl] == ':') {
            if (count++ == 0) {
                size_t k = i + nl + 1;
                while (k < end && (hdrs.p[k] == ' ' || hdrs.p[k] == '\t' || hdrs.p[k] == '\r' ||
                                   hdrs.p[k] == '\n'))
                    k++;
                for (; k < end; k++)
                    if (!(hdrs.p[k] == '\r' && k + 1 < end && hdrs.p[k + 1] == '\n'))
                        buf_putc(val, hdrs.p[k]);
                    else
                        k++;
            }
        }
        i = end + 2;
    }
    if (val->data == NULL)
        buf_puts(val, "");
    return count;
}

static __attribute__((unused)) char *header_dup(span_t hdrs, const char *name)
{
    buf_t v;
    buf_init(&v);
    if (header(hdrs, name, &v) != 1)
        fail_msg("header %s: not there exactly once", name);
    return buf_steal(&v);
}

/* Offset of the header in hdrs, to check the order. */
static __attribute__((unused)) size_t header_pos(span_t hdrs, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < hdrs.n; i++)
        if ((i == 0 || hdrs.p[i - 1] == '\n') && i + nl < hdrs.n &&
            strncasecmp(hdrs.p + i, name, nl) == 0 && hdrs.p[i + nl] == ':')
            return i;
    fail_msg("header %s: missing", name);
    return 0;
}

static __attribute__((unused)) void boundary_of(const char *content_type, char out[80])
{
    const char *b = strstr(content_type, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const char *e = strchr(b, '"');
    assert_non_null(e);
    assert_true(e - b > 0 && e - b < 71); /* RFC 2046: 1..70 characters */
    memcpy(out, b, (size_t)(e - b));
    out[e - b] = '\0';
}

/* Splits a multipart body into its parts, checking the boundary occurs only
 * on the delimiter lines (never inside a part) and the close delimiter. */
static __attribute__((unused)) int multipart(span_t whole, span_t body, const char *content_type,
                                             span_t *parts, int max)
{
    char b[80], delim[90];
    boundary_of(content_type, b);
    snprintf(delim, sizeof(delim), "\r\n--%s", b);
    size_t dl = strlen(delim);
    assert_true(body.n > dl - 2 && memcmp(body.p, delim + 2, dl - 2) == 0); /* no preamble */
    const char *p = body.p + dl - 2;
    int n = 0;
    for (;;) {
        if (p + 2 <= body.p + body.n && memcmp(p, "--", 2) == 0)
            break; /* close delimiter */
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
        const char *next = memmem(p, (size_t)(body.p + body.n - p), delim, dl);
        assert_non_null(next);
        assert_true(n < max);
        parts[n++] = (span_t){p, (size_t)(next - p)};
        assert_null(memmem(parts[n - 1].p, parts[n - 1].n, b, strlen(b)));
        p = next + dl;
    }
    /* In the whole message: once in Content-Type, once per part, once to close. */
    int seen = 0;
    for (const char *q = whole.p; (q = memmem(q, (size_t)(whole.p + whole.n - q), b, strlen(b)));
         q++)
        seen++;
    assert_int_equal(seen, 1 + n + 1);
    return n;
}

/* Wire rules for the whole message: CRLF only, 7-bit, no NUL, every line at
 * most max_line (78 in tests with ordinary values, 998 always). */
static __attribute__((unused)) void wire_checks(span_t m, size_t max_line)
{
    size_t col = 0;
    for (size_t i = 0; i < m.n; i++) {
        unsigned char c = (unsigned char)m.p[i];
        if (c == 0 || c >= 0x80)
            fail_msg("byte 0x%02x at %zu", c, i);
        if (c == '\n' && (i == 0 || m.p[i - 1] != '\r'))
            fail_msg("bare LF at %zu", i);
        if (c == '\r' && (i + 1 == m.n || m.p[i + 1] != '\n'))
            fail_msg("bare CR at %zu", i);
        if (c == '\r')
            continue;
        if (c == '\n') {
            col = 0;
            continue;
        }
        if (++col > max_line || col > 998)
            fail_msg("line over %zu at %zu: %.60s", max_line, i, m.p + i - col + 1);
    }
    assert_true(m.n >= 2 && memcmp(m.p + m.n - 2, "\r\n", 2) == 0);
}

static __attribute__((unused)) void build_ok(const mime_email_t *m, buf_t *out, size_t max_line)
{
    hd_err_t err = {{0}};
    if (mime_build(m, out, &err) != 0)
        fail_msg("mime_build: %s", err.msg);
    wire_checks(span_of(out), max_line);
}

static __attribute__((unused)) void assert_qp_body(span_t body, const char *expect)
{
    buf_t d;
    buf_init(&d);
    assert_int_equal(qp_decode(body, &d), 0);
    assert_int_equal(d.len, strlen(expect));
    assert_memory_equal(d.data, expect, d.len);
    buf_free(&d);
}

static __attribute__((unused)) void assert_b64_body(span_t body, const uint8_t *expect, size_t len)
{
    buf_t joined;
    buf_init(&joined);
    for (size_t i = 0; i < body.n;) {
        const char *crlf = memmem(body.p + i, body.n - i, "\r\n", 2);
        size_t end = crlf ? (size_t)(crlf - body.p) : body.n;
        assert_true(end - i <= 76);
        if (crlf != NULL && end + 2 < body.n)
            assert_int_equal(end - i, 76); /* full lines but the last */
        buf_append(&joined, body.p + i, end - i);
        i = end + 2;
    }
    uint8_t *d = NULL;
    size_t dl = 0;
    assert_int_equal(b64_decode(joined.data ? joined.data : "", joined.len, &d, &dl), 0);
    assert_int_equal(dl, len);
    if (len)
        assert_memory_equal(d, expect, len);
    free(d);
    buf_free(&joined);
}

/* A small PDF-like attachment with non-ASCII bytes. */
static const __attribute__((unused)) uint8_t pdf[] =
    "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n";

#endif

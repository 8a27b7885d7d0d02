/*
 * mime.c - the email builder (see mime.h): input checks, RFC 5322 headers
 * folded under 78 columns, RFC 2047 encoded-words, RFC 2231 file names,
 * quoted-printable and base64 bodies, multipart/alternative and
 * multipart/mixed. Uses buf and the address and header-value checks (base),
 * base64 and hex from crypto/codec and the CSPRNG from crypto/hash for
 * boundaries.
 */
#include "transport/mime.h"
#include "base/addr.h"
#include "base/utf8.h"

#include "crypto/codec.h"
#include "crypto/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HDR_LINE   78  /* RFC 5322 2.1.1: SHOULD stay under 78 */
#define EW_MAX     75  /* RFC 2047 2: an encoded-word is at most 75 characters */
#define EW_OVERHD  12  /* "=?UTF-8?B?" + "?=" */
#define EW_MIN     24  /* below this, start the encoded-word on a fresh line */
#define QP_LINE    76  /* RFC 2045 6.7 (5), the soft-break '=' included */
#define B64_LINE   76  /* RFC 2045 6.8 */
#define URL_MAX    900 /* keeps " <url>," far under the 998 limit */
#define COMMID_MAX 200

/* ---- character classes -------------------------------------------------- */

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 2045 token character (no tspecials, no space, no controls). */
static int is_token(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* OOM is fatal in Herald (see buf.h); b64_encode only fails on OOM. */
static char *b64(const uint8_t *in, size_t len)
{
    char *s = b64_encode(in, len);
    if (s == NULL)
        abort();
    return s;
}

/* ---- input checks ------------------------------------------------------- */

static int given(const char *s)
{
    return s != NULL && *s != '\0';
}

/* A header value that may carry any UTF-8 text (it will be encoded). */
static int check_text(const char *field, const char *s, hd_err_t *err)
{
    size_t n = strlen(s);
    if (addr_check_header_value(field, s, n, err) != 0)
        return -1;
    if (!utf8_valid(s, n))
        return hd_err_set(err, "%s: not valid UTF-8", field);
    return 0;
}

static int check_addr_field(const char *field, const char *s, hd_err_t *err)
{
    if (addr_check_header_value(field, s, strlen(s), err) != 0)
        return -1;
    if (addr_check_email(s, err) != 0)
        return hd_err_prefix(err, "%s", field);
    return 0;
}

/* A media type as "type/subtype", both RFC 2045 tokens. */
static int check_content_type(const char *field, const char *ct, hd_err_t *err)
{
    if (addr_check_header_value(field, ct, strlen(ct), err) != 0)
        return -1;
    const char *slash = strchr(ct, '/');
    size_t n = strlen(ct);
    int ok = slash != NULL && slash != ct && slash[1] != '\0' && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
        ok = ct + i == slash || is_token((unsigned char)ct[i]);
    if (!ok)
        return hd_err_set(err, "%s: not a type/subtype media type (\"%.64s\")", field, ct);
    if (strncasecmp(ct, "multipart/", 10) == 0 || strncasecmp(ct, "message/", 8) == 0)
        return hd_err_set(err, "%s: %.64s cannot be sent base64-encoded as an attachment", field,
                          ct);
    return 0;
}

static int check_url(const char *field, const char *u, hd_err_t *err)
{
    size_t n = strlen(u);
    if (addr_check_header_value(field, u, n, err) != 0)
        return -1;
    if (n <= 8 || strncasecmp(u, "https://", 8) != 0)
        return hd_err_set(err, "%s: not an https URL", field);
    if (n > URL_MAX)
        return hd_err_set(err, "%s: longer than %d characters", field, URL_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        /* RFC 2369: the URL sits in <...> in a comma-separated list */
        if (c <= 0x20 || c >= 0x7f || strchr("<>\",\\^`{|}", c) != NULL)
            return hd_err_set(err,
                              "%s: space, control, non-ASCII or one of <>\",\\^`{|} in the URL "
                              "(percent-encode it)",
                              field);
    }
    return 0;
}

static const char *const own_headers[] = {"Date",
                                          "From",
                                          "To",
                                          "Cc",
                                          "Bcc",
                                          "Sender",
                                          "Reply-To",
                                          "Subject",
                                          "Message-ID",
                                          "MIME-Version",
                                          "Return-Path",
                                          "List-Unsubscribe",
                                          "Content-Type",
                                          "List-Unsubscribe-Post",
                                          "Content-Transfer-Encoding",
                                          "Content-Disposition"};

static int check_extra_header(const mime_email_t *m, hd_err_t *err)
{
    if (!given(m->extra_header_name)) {
        if (given(m->extra_header_value))
            return hd_err_set(err, "extra_header_value: given without extra_header_name");
        return 0;
    }
    const char *name = m->extra_header_name;
    size_t n = strlen(name);
    if (addr_check_header_value("extra_header_name", name, n, err) != 0)
        return -1;
    int ok = n <= 76;
    for (size_t i = 0; ok && i < n; i++)
        ok = name[i] > 0x20 && name[i] < 0x7f && name[i] != ':';
    if (!ok)
        return hd_err_set(err, "extra_header_name: not a header field name");
    for (size_t i = 0; i < sizeof(own_headers) / sizeof(own_headers[0]); i++)
        if (strcasecmp(name, own_headers[i]) == 0)
            return hd_err_set(err, "extra_header_name: %s is written by the MIME builder itself",
                              own_headers[i]);
    if (m->extra_header_value != NULL)
        return check_text("extra_header_value", m->extra_header_value, err);
    return 0;
}

static int check_attachments(const mime_email_t *m, hd_err_t *err)
{
    if (m->nattachments < 0 || (m->nattachments > 0 && m->attachments == NULL))
        return hd_err_set(err, "attachments: %d given without an array", m->nattachments);
    for (int i = 0; i < m->nattachments; i++) {
        const mime_attachment_t *a = &m->attachments[i];
        char field[64];
        snprintf(field, sizeof(field), "attachments[%d].filename", i);
        if (!given(a->filename))
            return hd_err_set(err, "%s: required", field);
        if (check_text(field, a->filename, err) != 0)
            return -1;
        snprintf(field, sizeof(field), "attachments[%d].content_type", i);
        if (!given(a->content_type))
            return hd_err_set(err, "%s: required", field);
        if (check_content_type(field, a->content_type, err) != 0)
            return -1;
        if (a->data == NULL && a->len > 0)
            return hd_err_set(err, "attachments[%d].data: NULL with a length of %zu", i, a->len);
    }
    return 0;
}

static int check_email(const mime_email_t *m, hd_err_t *err)
{
    if (m == NULL)
        return hd_err_set(err, "mime: no message");
    if (!given(m->from_addr))
        return hd_err_set(err, "from_addr: required");
    if (check_addr_field("from_addr", m->from_addr, err) != 0)
        return -1;
    if (!given(m->to_addr))
        return hd_err_set(err, "to_addr: required");
    if (check_addr_field("to_addr", m->to_addr, err) != 0)
        return -1;
    if (given(m->reply_to) && check_addr_field("reply_to", m->reply_to, err) != 0)
        return -1;
    if (m->from_name != NULL && check_text("from_name", m->from_name, err) != 0)
        return -1;
    if (m->to_name != NULL && check_text("to_name", m->to_name, err) != 0)
        return -1;
    if (m->subject != NULL && check_text("subject", m->subject, err) != 0)
        return -1;
    if (m->text == NULL && m->html == NULL)
        return hd_err_set(err, "body: neither text nor html given");
    if (m->text != NULL && !utf8_valid(m->text, strlen(m->text)))
        return hd_err_set(err, "text: not valid UTF-8");
    if (m->html != NULL && !utf8_valid(m->html, strlen(m->html)))
        return hd_err_set(err, "html: not valid UTF-8");

    if (!given(m->comm_id))
        return hd_err_set(err, "comm_id: required (it makes the Message-ID)");
    size_t n = strlen(m->comm_id);
    if (addr_check_header_value("comm_id", m->comm_id, n, err) != 0)
        return -1;
    int ok = n <= COMMID_MAX && m->comm_id[0] != '.' && m->comm_id[n - 1] != '.' &&
             strstr(m->comm_id, "..") == NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = m->comm_id[i] == '.' || addr_is_atext((unsigned char)m->comm_id[i]);
    if (!ok)
        return hd_err_set(err, "comm_id: not usable in a Message-ID (dot-atom text of at most %d)",
                          COMMID_MAX);
    if (given(m->domain)) {
        const char *why;
        if (addr_check_header_value("domain", m->domain, strlen(m->domain), err) != 0)
            return -1;
        if ((why = addr_domain_problem(m->domain, strlen(m->domain))) != NULL)
            return hd_err_set(err, "domain: not a domain name (%s)", why);
    }
    if (m->date < 0 || m->date > INT64_C(253402300799))
        return hd_err_set(err, "date: %lld is outside years 1970..9999", (long long)m->date);

    if (given(m->unsubscribe_url) && check_url("unsubscribe_url", m->unsubscribe_url, err) != 0)
        return -1;
    if (given(m->unsubscribe_mailto) &&
        check_addr_field("unsubscribe_mailto", m->unsubscribe_mailto, err) != 0)
        return -1;
    if (check_extra_header(m, err) != 0)
        return -1;
    return check_attachments(m, err);
}

/* ---- folded header lines ------------------------------------------------ */

/* One header being written: items go after a space, or after CRLF SP when
 * they would pass column 78. Folding only ever replaces a single space that
 * separates items, so unfolding gives back exactly the unfolded header. */
typedef struct hdr {
    buf_t *b;
    size_t col;
    int items;
} hdr_t;

static void hdr_begin(hdr_t *h, buf_t *b, const char *name)
{
    h->b = b;
    h->items = 0;
    buf_puts(b, name);
    buf_putc(b, ':');
    h->col = strlen(name) + 1;
}

static void hdr_item(hdr_t *h, const char *s, size_t n)
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

static void hdr_items(hdr_t *h, const char *s)
{
    hdr_item(h, s, strlen(s));
}

static void hdr_end(hdr_t *h)
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
static void put_encoded_words(hdr_t *h, const char *s, size_t n)
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
        hdr_item(h, w.data, w.len);
    }
    buf_free(&w);
}

/* Items of s split at its single spaces, when all of them fit a line. */
static int put_words(hdr_t *h, const char *s, size_t n, int dry)
{
    for (size_t i = 0; i < n;) {
        const char *sp = memchr(s + i, ' ', n - i);
        size_t end = sp ? (size_t)(sp - s) : n;
        if (dry && end - i + 1 > HDR_LINE - 1)
            return -1;
        if (!dry)
            hdr_item(h, s + i, end - i);
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
static void put_unstructured(hdr_t *h, const char *s)
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
static void put_phrase(hdr_t *h, const char *s, size_t n)
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
                hdr_item(h, s + i, end - i);
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
static void put_mailbox(buf_t *b, const char *header, const char *name, const char *addr)
{
    hdr_t h;
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
    hdr_begin(&h, b, header);
    if (nm.len > 0) {
        put_phrase(&h, nm.data, nm.len);
        buf_reset(&nm);
        buf_printf(&nm, "<%s>", addr);
        hdr_item(&h, nm.data, nm.len);
    } else {
        hdr_items(&h, addr);
    }
    hdr_end(&h);
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
static void put_param(hdr_t *h, const char *attr, const char *v)
{
    size_t n = strlen(v), alen = strlen(attr);
    buf_t item;
    buf_init(&item);
    int simple = n + alen + 3 <= HDR_LINE - 2;
    for (size_t i = 0; simple && i < n; i++)
        simple = v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\';
    if (simple) {
        buf_printf(&item, "%s=\"%s\"", attr, v);
        hdr_item(h, item.data, item.len);
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
        hdr_item(h, item.data, item.len);
    } else {
        size_t from = 0, c = 0;
        for (int seg = 0; from < enc.len; seg++) {
            size_t room = budget - (seg == 0 ? 7 : 0), to = from;
            while (c < nchars && (cut[c] - from <= room || to == from))
                to = cut[c++];
            buf_reset(&item);
            buf_printf(&item, "%s*%d*=%s%.*s%s", attr, seg, seg == 0 ? "UTF-8''" : "",
                       (int)(to - from), enc.data + from, to < enc.len ? ";" : "");
            hdr_item(h, item.data, item.len);
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
static void qp_encode(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    int at_break = 1;
    for (size_t i = 0; i < n;) {
        if (line_break_at(s, n, i)) {
            buf_append(b, "\r\n", 2);
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
            buf_append(b, "=\r\n", 3);
            col = 0;
        }
        if (raw && col == 0 && c == 'F' && n - i >= 5 && memcmp(s + i, "From ", 5) == 0)
            raw = 0, t = 3;
        if (raw)
            buf_putc(b, (char)c);
        else
            buf_printf(b, "=%c%c", hex[c >> 4], hex[c & 15]);
        col += t;
        at_break = 0;
        i++;
    }
    if (!at_break)
        buf_append(b, "=\r\n", 3);
}

/* A text/<subtype> entity: its header lines, the blank line and the body. */
static void text_entity(buf_t *e, const char *subtype, const char *s)
{
    buf_printf(e,
               "Content-Type: text/%s; charset=UTF-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
               subtype);
    qp_encode(e, s, strlen(s));
}

static void attachment_entity(buf_t *e, const mime_attachment_t *a)
{
    hdr_t h;
    buf_t t;
    buf_init(&t);
    buf_printf(&t, "%s;", a->content_type);
    hdr_begin(&h, e, "Content-Type");
    hdr_item(&h, t.data, t.len);
    put_param(&h, "name", a->filename);
    hdr_end(&h);
    buf_free(&t);
    buf_puts(e, "Content-Transfer-Encoding: base64\r\n");
    hdr_begin(&h, e, "Content-Disposition");
    hdr_items(&h, "attachment;");
    put_param(&h, "filename", a->filename);
    hdr_end(&h);
    buf_puts(e, "\r\n");
    /* no CRLF after the last line: the delimiter's CRLF ends it */
    char *enc = b64(a->data, a->len);
    size_t n = strlen(enc);
    for (size_t i = 0; i < n; i += B64_LINE) {
        if (i > 0)
            buf_append(e, "\r\n", 2);
        buf_append(e, enc + i, n - i < B64_LINE ? n - i : B64_LINE);
    }
    free(enc);
}

/* Writes a multipart/<subtype> entity around the given part entities, with a
 * random boundary that occurs in none of them. "=_" cannot appear in
 * quoted-printable or base64 output, so a clash needs it in a header (a file
 * name) or astronomically bad luck; it is checked all the same. */
static int multipart_entity(buf_t *e, const char *subtype, const buf_t *parts, int nparts,
                            hd_err_t *err)
{
    char boundary[9 + 32 + 1];
    for (int attempt = 0;; attempt++) {
        if (attempt == 8)
            return hd_err_set(err, "mime: no boundary absent from the content after 8 draws");
        uint8_t r[16];
        if (hash_random(r, sizeof(r)) != 0)
            return hd_err_set(err, "mime: the random generator failed (boundary)");
        memcpy(boundary, "=_herald_", 9);
        hex_encode(r, sizeof(r), boundary + 9);
        int clash = 0;
        for (int i = 0; i < nparts && !clash; i++)
            clash = memmem(parts[i].data, parts[i].len, boundary, strlen(boundary)) != NULL;
        if (!clash)
            break;
    }
    hdr_t h;
    buf_t t;
    buf_init(&t);
    hdr_begin(&h, e, "Content-Type");
    buf_printf(&t, "multipart/%s;", subtype);
    hdr_item(&h, t.data, t.len);
    buf_reset(&t);
    buf_printf(&t, "boundary=\"%s\"", boundary);
    hdr_item(&h, t.data, t.len);
    hdr_end(&h);
    buf_free(&t);
    buf_puts(e, "\r\n");
    for (int i = 0; i < nparts; i++) {
        buf_printf(e, "%s--%s\r\n", i == 0 ? "" : "\r\n", boundary);
        buf_append(e, parts[i].data, parts[i].len);
    }
    buf_printf(e, "\r\n--%s--\r\n", boundary);
    return 0;
}

/* The top-level entity: a single text part, the alternative, and the mixed
 * wrapper when there are attachments. */
static int body_entity(const mime_email_t *m, buf_t *e, hd_err_t *err)
{
    int rc = -1, nparts = 1 + m->nattachments;
    buf_t *parts = xcalloc((size_t)nparts, sizeof(*parts));
    for (int i = 0; i < nparts; i++)
        buf_init(&parts[i]);
    buf_t *content = m->nattachments > 0 ? &parts[0] : e;
    if (m->text != NULL && m->html != NULL) {
        buf_t alt[2];
        buf_init(&alt[0]);
        buf_init(&alt[1]);
        text_entity(&alt[0], "plain", m->text);
        text_entity(&alt[1], "html", m->html);
        rc = multipart_entity(content, "alternative", alt, 2, err);
        buf_free(&alt[0]);
        buf_free(&alt[1]);
        if (rc != 0)
            goto done;
    } else {
        text_entity(content, m->text != NULL ? "plain" : "html",
                    m->text != NULL ? m->text : m->html);
    }
    rc = 0;
    if (m->nattachments > 0) {
        for (int i = 0; i < m->nattachments; i++)
            attachment_entity(&parts[1 + i], &m->attachments[i]);
        rc = multipart_entity(e, "mixed", parts, nparts, err);
    }
done:
    for (int i = 0; i < nparts; i++)
        buf_free(&parts[i]);
    free(parts);
    return rc;
}

/* ---- the message -------------------------------------------------------- */

static void put_date(buf_t *b, int64_t date)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)date;
    struct tm tm;
    gmtime_r(&t, &tm);
    buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
               months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void put_headers(const mime_email_t *m, buf_t *b)
{
    hdr_t h;
    buf_t t;
    buf_init(&t);
    put_date(b, m->date);
    put_mailbox(b, "From", m->from_name, m->from_addr);
    put_mailbox(b, "To", m->to_name, m->to_addr);
    if (given(m->reply_to))
        put_mailbox(b, "Reply-To", NULL, m->reply_to);
    hdr_begin(&h, b, "Subject");
    put_unstructured(&h, m->subject ? m->subject : "");
    hdr_end(&h);

    const char *domain = given(m->domain) ? m->domain : strchr(m->from_addr, '@') + 1;
    hdr_begin(&h, b, "Message-ID");
    buf_printf(&t, "<%s@%s>", m->comm_id, domain);
    hdr_item(&h, t.data, t.len);
    hdr_end(&h);
    buf_puts(b, "MIME-Version: 1.0\r\n");

    if (given(m->unsubscribe_url) || given(m->unsubscribe_mailto)) {
        hdr_begin(&h, b, "List-Unsubscribe");
        if (given(m->unsubscribe_url)) {
            buf_reset(&t);
            buf_printf(&t, "<%s>%s", m->unsubscribe_url, given(m->unsubscribe_mailto) ? "," : "");
            hdr_item(&h, t.data, t.len);
        }
        if (given(m->unsubscribe_mailto)) {
            buf_reset(&t);
            buf_printf(&t, "<mailto:%s>", m->unsubscribe_mailto);
            hdr_item(&h, t.data, t.len);
        }
        hdr_end(&h);
        /* RFC 8058: one-click needs the https URL to POST to */
        if (given(m->unsubscribe_url))
            buf_puts(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    if (given(m->extra_header_name)) {
        hdr_begin(&h, b, m->extra_header_name);
        put_unstructured(&h, m->extra_header_value ? m->extra_header_value : "");
        hdr_end(&h);
    }
    buf_free(&t);
}

int mime_build(const mime_email_t *m, buf_t *out, hd_err_t *err)
{
    if (check_email(m, err) != 0)
        return -1;
    /* built aside so that a failure leaves out untouched */
    buf_t msg;
    buf_init(&msg);
    put_headers(m, &msg);
    int rc = body_entity(m, &msg, err);
    if (rc == 0)
        buf_append(out, msg.data, msg.len);
    buf_free(&msg);
    return rc;
}

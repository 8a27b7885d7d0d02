/*
 * mime.c - the email builder (see mime.h): checks every input, then
 * assembles the message: RFC 5322 headers, text entities, attachments,
 * multipart/alternative and multipart/mixed. Uses buf, utf8 and the address
 * and header-value checks (base), the encodings of mime_encode.c, hex from
 * crypto/codec and the CSPRNG from crypto/hash for boundaries.
 */
#include "transport/mime.h"
#include "base/addr.h"
#include "base/utf8.h"
#include "transport/mime_encode.h"

#include "crypto/codec.h"
#include "crypto/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define URL_MAX    900 /* keeps " <url>," far under the 998 limit */
#define COMMID_MAX 200

/* RFC 2045 token character (no tspecials, no space, no controls). */
static int is_token(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
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
    if (given(m->unsubscribe_subject)) {
        size_t sn = strlen(m->unsubscribe_subject);
        bool plain = sn <= 200;
        for (size_t i = 0; plain && i < sn; i++) {
            unsigned char c = (unsigned char)m->unsubscribe_subject[i];
            plain = isalnum(c) || strchr("._~-", c) != NULL;
        }
        if (!plain)
            return hd_err_set(err, "unsubscribe_subject: 1 to 200 of A-Z a-z 0-9 . _ ~ -");
    }
    if (check_extra_header(m, err) != 0)
        return -1;
    return check_attachments(m, err);
}

/* ---- entities ----------------------------------------------------------- */

/* A text/<subtype> entity: its header lines, the blank line and the body. */
static void text_entity(buf_t *e, const char *subtype, const char *s)
{
    buf_printf(e,
               "Content-Type: text/%s; charset=UTF-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
               subtype);
    mime_qp_encode(e, s, strlen(s));
}

static void attachment_entity(buf_t *e, const mime_attachment_t *a)
{
    mime_hdr_t h;
    buf_t t;
    buf_init(&t);
    buf_printf(&t, "%s;", a->content_type);
    mime_hdr_begin(&h, e, "Content-Type");
    mime_hdr_item(&h, t.data, t.len);
    mime_put_param(&h, "name", a->filename);
    mime_hdr_end(&h);
    buf_free(&t);
    buf_puts(e, "Content-Transfer-Encoding: base64\r\n");
    mime_hdr_begin(&h, e, "Content-Disposition");
    mime_hdr_items(&h, "attachment;");
    mime_put_param(&h, "filename", a->filename);
    mime_hdr_end(&h);
    buf_puts(e, "\r\n");
    /* no CRLF after the last line: the delimiter's CRLF ends it */
    mime_b64_lines(e, a->data, a->len);
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
    mime_hdr_t h;
    buf_t t;
    buf_init(&t);
    mime_hdr_begin(&h, e, "Content-Type");
    buf_printf(&t, "multipart/%s;", subtype);
    mime_hdr_item(&h, t.data, t.len);
    buf_reset(&t);
    buf_printf(&t, "boundary=\"%s\"", boundary);
    mime_hdr_item(&h, t.data, t.len);
    mime_hdr_end(&h);
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
    mime_hdr_t h;
    buf_t t;
    buf_init(&t);
    put_date(b, m->date);
    mime_put_mailbox(b, "From", m->from_name, m->from_addr);
    mime_put_mailbox(b, "To", m->to_name, m->to_addr);
    if (given(m->reply_to))
        mime_put_mailbox(b, "Reply-To", NULL, m->reply_to);
    mime_hdr_begin(&h, b, "Subject");
    mime_put_unstructured(&h, m->subject ? m->subject : "");
    mime_hdr_end(&h);

    const char *domain = given(m->domain) ? m->domain : strchr(m->from_addr, '@') + 1;
    mime_hdr_begin(&h, b, "Message-ID");
    buf_printf(&t, "<%s@%s>", m->comm_id, domain);
    mime_hdr_item(&h, t.data, t.len);
    mime_hdr_end(&h);
    buf_puts(b, "MIME-Version: 1.0\r\n");

    if (given(m->unsubscribe_url) || given(m->unsubscribe_mailto)) {
        mime_hdr_begin(&h, b, "List-Unsubscribe");
        if (given(m->unsubscribe_url)) {
            buf_reset(&t);
            buf_printf(&t, "<%s>%s", m->unsubscribe_url, given(m->unsubscribe_mailto) ? "," : "");
            mime_hdr_item(&h, t.data, t.len);
        }
        if (given(m->unsubscribe_mailto)) {
            buf_reset(&t);
            buf_printf(&t, "<mailto:%s%s%s>", m->unsubscribe_mailto,
                       given(m->unsubscribe_subject) ? "?subject=" : "",
                       given(m->unsubscribe_subject) ? m->unsubscribe_subject : "");
            mime_hdr_item(&h, t.data, t.len);
        }
        mime_hdr_end(&h);
        /* RFC 8058: one-click needs the https URL to POST to */
        if (given(m->unsubscribe_url))
            buf_puts(b, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
    }
    if (given(m->extra_header_name)) {
        mime_hdr_begin(&h, b, m->extra_header_name);
        mime_put_unstructured(&h, m->extra_header_value ? m->extra_header_value : "");
        mime_hdr_end(&h);
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

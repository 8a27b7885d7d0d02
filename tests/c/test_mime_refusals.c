/* test_mime_refusals.c - what the email builder (core/transport/mime.c)
 * refuses: header injection through every field, malformed addresses and
 * the other inputs that must never reach an SMTP server. The checks it
 * applies (base/addr.c) are tested on their own in test_addr.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mime_check.h"

/* ---- refusals ----------------------------------------------------------- */

/* Every value that reaches a header, by name, in the message or attachment. */
#define EMAIL_FIELD(f)                                                                             \
    {                                                                                              \
#f, offsetof(mime_email_t, f), 0                                                           \
    }
static const struct {
    const char *name;
    size_t off;
    int in_attachment;
} fields[] = {EMAIL_FIELD(from_name),
              EMAIL_FIELD(from_addr),
              EMAIL_FIELD(to_name),
              EMAIL_FIELD(to_addr),
              EMAIL_FIELD(reply_to),
              EMAIL_FIELD(subject),
              EMAIL_FIELD(comm_id),
              EMAIL_FIELD(domain),
              EMAIL_FIELD(unsubscribe_url),
              EMAIL_FIELD(unsubscribe_mailto),
              EMAIL_FIELD(extra_header_name),
              EMAIL_FIELD(extra_header_value),
              {"attachments[0].filename", offsetof(mime_attachment_t, filename), 1},
              {"attachments[0].content_type", offsetof(mime_attachment_t, content_type), 1}};

static void set_field(mime_email_t *m, mime_attachment_t *a, int f, const char *v)
{
    char *base = fields[f].in_attachment ? (char *)a : (char *)m;
    memcpy(base + fields[f].off, &v, sizeof(v));
}

/* mime_build must fail with exactly expect and leave out as it was. */
static void refused(const mime_email_t *m, const char *expect)
{
    buf_t out;
    buf_init(&out);
    buf_puts(&out, "KEEP");
    hd_err_t err = {{0}};
    if (mime_build(m, &out, &err) != -1)
        fail_msg("accepted; expected \"%s\"", expect);
    if (strncmp(err.msg, expect, strlen(expect)) != 0)
        fail_msg("error \"%s\", expected \"%s\"", err.msg, expect);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "KEEP");
    buf_free(&out);
}

static void test_header_injection(void **state)
{
    static const char *const bad[] = {
        "a\rb", "a\nb",    "shop@example.com\r\nBcc: x@y", "https://x.example/\r\nBcc: x@y",
        "\r\n", "x\n\n<b>"};
    for (int f = 0; f < (int)(sizeof(fields) / sizeof(fields[0])); f++) {
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            mime_attachment_t att = {"a.pdf", "application/pdf", pdf, 4};
            mime_email_t m = base_email();
            m.attachments = &att;
            m.nattachments = 1;
            m.extra_header_name = "X-Herald-Attempt";
            m.extra_header_value = "1";
            set_field(&m, &att, f, bad[b]);
            char expect[160];
            snprintf(expect, sizeof(expect), "%s: contains a line break (header injection refused)",
                     fields[f].name);
            refused(&m, expect);
        }
    }
}

/* "jane@aaa...": total characters, domain labels of at most 63. */
static void make_addr(char *out, size_t total)
{
    strcpy(out, "jane@");
    size_t len = 5;
    while (total - len > 63) {
        memset(out + len, 'a', 61);
        out[len + 61] = '.';
        len += 62;
    }
    memset(out + len, 'b', total - len);
    out[total] = '\0';
    assert_int_equal(strlen(out), total);
}

static void test_addresses(void **state)
{
    /* The address rules themselves are tested in test_addr.c; here they go
     * through mime_build, with the field named; a 254-char address still
     * builds, alone on a line under 998. */
    char d[300];
    mime_email_t m = base_email();
    m.to_addr = "jane@example";
    refused(&m, "to_addr: not an email address (domain has no dot)");
    m = base_email();
    m.from_addr = "Shop <shop@example.com>";
    refused(&m, "from_addr: not an email address");
    m = base_email();
    m.reply_to = "help at example.com";
    refused(&m, "reply_to: not an email address");
    m = base_email();
    m.unsubscribe_mailto = "mailto:unsub@example.com";
    refused(&m, "unsubscribe_mailto: not an email address");
    m = base_email();
    m.unsubscribe_mailto = "unsub@example.com";
    m.unsubscribe_subject = "unsubscribe tok\r\nBcc: x@example.com";
    refused(&m, "unsubscribe_subject: 1 to 200 of A-Z a-z 0-9 . _ ~ -");
    m = base_email();
    m.to_addr = NULL;
    refused(&m, "to_addr: required");
    m = base_email();
    m.from_addr = "";
    refused(&m, "from_addr: required");
    m = base_email();
    make_addr(d, 254);
    m.to_addr = d;
    m.to_name = "A long enough display name";
    buf_t out;
    buf_init(&out);
    build_ok(&m, &out, 998);
    assert_non_null(memmem(out.data, out.len, d, strlen(d)));
    buf_free(&out);
}

static void test_other_refusals(void **state)
{
    mime_email_t m = base_email();
    m.text = NULL;
    refused(&m, "body: neither text nor html given");
    m = base_email();
    m.subject = "caf\xe9"; /* Latin-1, not UTF-8 */
    refused(&m, "subject: not valid UTF-8");
    m = base_email();
    m.to_name = "\xf0\x9f\x8e"; /* truncated 4-byte sequence */
    refused(&m, "to_name: not valid UTF-8");
    m = base_email();
    m.html = "<p>\xc0\xaf</p>"; /* overlong '/' */
    refused(&m, "html: not valid UTF-8");
    m.html = "<p>\xe0\x80\xaf</p>"; /* overlong '/', three bytes */
    refused(&m, "html: not valid UTF-8");
    m.html = NULL;
    m.text = "\xed\xa0\x80"; /* a UTF-16 surrogate */
    refused(&m, "text: not valid UTF-8");
    m = base_email();
    m.comm_id = NULL;
    refused(&m, "comm_id: required");
    static const char *const bad_ids[] = {"a b", "<id>", "a..b", ".a", "a@b"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        m = base_email();
        m.comm_id = bad_ids[i];
        refused(&m, "comm_id: not usable in a Message-ID");
    }
    m = base_email();
    m.domain = "example_com";
    refused(&m, "domain: not a domain name");
    m = base_email();
    m.date = -1;
    refused(&m, "date: -1 is outside years 1970..9999");

    static const char *const bad_urls[] = {
        "http://x.example/u",    "javascript:alert(1)",   "https://",
        "https://x.example/u t", "https://x.example/<u>", "https://x.example/a,b"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        m = base_email();
        m.unsubscribe_url = bad_urls[i];
        refused(&m, "unsubscribe_url: ");
    }
    char url[1000] = "https://x.example/";
    memset(url + 18, 'a', 900 - 18);
    url[900] = '\0';
    m = base_email();
    m.unsubscribe_url = url;
    buf_t out;
    buf_init(&out);
    build_ok(&m, &out, 998); /* the longest URL stays on one line under 998 */
    buf_free(&out);
    strcat(url, "a");
    refused(&m, "unsubscribe_url: longer than 900 characters");

    static const char *const bad_names[] = {"Bcc", "content-type", "Message-ID", "X Bad", "X:Y"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        m = base_email();
        m.extra_header_name = bad_names[i];
        m.extra_header_value = "1";
        refused(&m, "extra_header_name: ");
    }
    m = base_email();
    m.extra_header_value = "1";
    refused(&m, "extra_header_value: given without extra_header_name");

    /* attachments */
    mime_attachment_t att = {"a.pdf", "application/pdf", pdf, 4};
    m = base_email();
    m.attachments = &att;
    m.nattachments = 1;
    att.filename = NULL;
    refused(&m, "attachments[0].filename: required");
    att.filename = "";
    refused(&m, "attachments[0].filename: required");
    att.filename = "a.pdf";
    att.content_type = NULL;
    refused(&m, "attachments[0].content_type: required");
    static const char *const bad_types[] = {
        "pdf",
        "application/",
        "/pdf",
        "application/pdf; name=a",
        "a b/c",
        "application/pd\"f",
        "text/plain/x",
        "application/p@f",
        "application/pdf;x",
        "multipart/mixed",
        "message/rfc822",
    };
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        att.content_type = bad_types[i];
        refused(&m, "attachments[0].content_type: ");
    }
    static const char *const good_types[] = {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "image/svg+xml",
        "TEXT/CSV"};
    for (size_t i = 0; i < sizeof(good_types) / sizeof(good_types[0]); i++) {
        att.content_type = good_types[i];
        buf_init(&out);
        build_ok(&m, &out, 78);
        buf_free(&out);
    }
    att.data = NULL;
    refused(&m, "attachments[0].data: NULL with a length of 4");
    m.attachments = NULL;
    refused(&m, "attachments: 1 given without an array");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_other_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

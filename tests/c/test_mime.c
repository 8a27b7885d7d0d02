/* test_mime.c - the email builder (core/transport/mime.c): structure (single
 * part, alternative, mixed with attachments), quoted-printable and base64
 * round trips, boundaries that never occur inside a part. Decodes what it
 * builds with mime_check.h's quoted-printable decoder and header and
 * multipart splitting and codec.h's base64, so every assertion is on the
 * bytes that would go to the SMTP server. Header encoding and folding are in
 * test_mime_headers.c, refusals in test_mime_refusals.c. With TEST_MIME_OUT
 * set, also writes one complete message there for an outside parser to
 * check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/codec.h"
#include "transport/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_check.h"

/* ---- structure ---------------------------------------------------------- */

static void test_text_only(void **state)
{
    mime_email_t m = base_email();
    m.text = "Hello\nWorld = 1 \ncaf\xc3\xa9";
    m.reply_to = ""; /* empty optional values mean absent */
    m.unsubscribe_url = "";
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    buf_puts(&out, "KEEP"); /* mime_build appends */
    build_ok(&m, &out, 78);
    assert_memory_equal(out.data, "KEEP", 4);
    span_t h, body;
    entity((span_t){out.data + 4, out.len - 4}, &h, &body);

    assert_int_equal(header(h, "Date", &v), 1);
    assert_string_equal(v.data, "Sat, 28 Nov 2026 09:00:00 +0000");
    assert_int_equal(header(h, "From", &v), 1);
    assert_string_equal(v.data, "Herald Shop <shop@example.com>");
    assert_int_equal(header(h, "To", &v), 1);
    assert_string_equal(v.data, "jane@example.org");
    assert_int_equal(header(h, "Subject", &v), 1);
    assert_string_equal(v.data, "Your plan");
    assert_int_equal(header(h, "Message-ID", &v), 1);
    assert_string_equal(v.data, "<" COMM_ID "@example.com>");
    assert_int_equal(header(h, "MIME-Version", &v), 1);
    assert_string_equal(v.data, "1.0");
    assert_int_equal(header(h, "Content-Type", &v), 1);
    assert_string_equal(v.data, "text/plain; charset=UTF-8");
    assert_int_equal(header(h, "Content-Transfer-Encoding", &v), 1);
    assert_string_equal(v.data, "quoted-printable");
    assert_int_equal(header(h, "Reply-To", &v), 0);
    assert_int_equal(header(h, "List-Unsubscribe", &v), 0);
    assert_int_equal(header(h, "List-Unsubscribe-Post", &v), 0);
    assert_true(header_pos(h, "Date") < header_pos(h, "From"));
    assert_true(header_pos(h, "From") < header_pos(h, "To"));
    assert_true(header_pos(h, "To") < header_pos(h, "Subject"));
    assert_true(header_pos(h, "Subject") < header_pos(h, "Message-ID"));
    assert_true(header_pos(h, "Message-ID") < header_pos(h, "MIME-Version"));
    assert_true(header_pos(h, "MIME-Version") < header_pos(h, "Content-Type"));
    assert_null(memmem(out.data, out.len, "multipart", 9));

    /* the exact bytes: '=' and é escaped, trailing space encoded, LF -> CRLF,
     * and a final soft break so the body decodes to the text exactly */
    const char *wire = "Hello\r\nWorld =3D 1=20\r\ncaf=C3=A9=\r\n";
    assert_int_equal(body.n, strlen(wire));
    assert_memory_equal(body.p, wire, body.n);
    assert_qp_body(body, "Hello\r\nWorld = 1 \r\ncaf\xc3\xa9");
    buf_free(&out);
    buf_free(&v);
}

static void test_html_only_and_reply_to(void **state)
{
    mime_email_t m = base_email();
    m.text = NULL;
    m.html = "<p>Bonjour Zo\xc3\xa9</p>\r\n";
    m.reply_to = "help@example.com";
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78);
    span_t h, body;
    entity(span_of(&out), &h, &body);
    assert_int_equal(header(h, "Content-Type", &v), 1);
    assert_string_equal(v.data, "text/html; charset=UTF-8");
    assert_int_equal(header(h, "Reply-To", &v), 1);
    assert_string_equal(v.data, "help@example.com");
    assert_true(header_pos(h, "To") < header_pos(h, "Reply-To"));
    assert_true(header_pos(h, "Reply-To") < header_pos(h, "Subject"));
    assert_null(memmem(out.data, out.len, "multipart", 9));
    assert_qp_body(body, m.html);
    buf_free(&out);
    buf_free(&v);
}

static void test_alternative(void **state)
{
    mime_email_t m = base_email();
    m.text = "Plain version\n";
    m.html = "<p>HTML version</p>\n";
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78);
    span_t h, body, parts[4], ph, pb;
    entity(span_of(&out), &h, &body);
    char *ct = header_dup(h, "Content-Type");
    assert_true(strncmp(ct, "multipart/alternative; boundary=\"", 33) == 0);
    assert_int_equal(header(h, "Content-Transfer-Encoding", &v), 0);
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 4), 2);
    entity(parts[0], &ph, &pb); /* text first */
    header(ph, "Content-Type", &v);
    assert_string_equal(v.data, "text/plain; charset=UTF-8");
    header(ph, "Content-Transfer-Encoding", &v);
    assert_string_equal(v.data, "quoted-printable");
    assert_qp_body(pb, "Plain version\r\n");
    entity(parts[1], &ph, &pb); /* then HTML */
    header(ph, "Content-Type", &v);
    assert_string_equal(v.data, "text/html; charset=UTF-8");
    assert_qp_body(pb, "<p>HTML version</p>\r\n");
    free(ct);
    buf_free(&out);
    buf_free(&v);
}

static void test_mixed_with_attachments(void **state)
{
    mime_attachment_t atts[] = {
        {"plan.pdf", "application/pdf", pdf, sizeof(pdf) - 1},
        {"Caf\xc3\xa9 menu.txt", "text/plain", (const uint8_t *)"menu\n", 5},
        {"empty.bin", "application/octet-stream", NULL, 0},
    };
    mime_email_t m = base_email();
    m.text = "See attached.\n";
    m.html = "<p>See attached.</p>";
    m.attachments = atts;
    m.nattachments = 3;
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78);
    span_t h, body, parts[8], sub[4], ph, pb;
    entity(span_of(&out), &h, &body);
    char *ct = header_dup(h, "Content-Type");
    assert_true(strncmp(ct, "multipart/mixed; boundary=", 26) == 0);
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 8), 4);

    /* the alternative first, nested with its own boundary */
    entity(parts[0], &ph, &pb);
    char *ct2 = header_dup(ph, "Content-Type");
    assert_true(strncmp(ct2, "multipart/alternative;", 22) == 0);
    assert_int_equal(multipart(span_of(&out), pb, ct2, sub, 4), 2);
    entity(sub[1], &ph, &pb);
    assert_qp_body(pb, "<p>See attached.</p>");

    entity(parts[1], &ph, &pb);
    header(ph, "Content-Type", &v);
    assert_string_equal(v.data, "application/pdf; name=\"plan.pdf\"");
    header(ph, "Content-Transfer-Encoding", &v);
    assert_string_equal(v.data, "base64");
    header(ph, "Content-Disposition", &v);
    assert_string_equal(v.data, "attachment; filename=\"plan.pdf\"");
    assert_b64_body(pb, pdf, sizeof(pdf) - 1);

    entity(parts[2], &ph, &pb); /* RFC 2231 for the non-ASCII name */
    header(ph, "Content-Type", &v);
    assert_string_equal(v.data, "text/plain; name*=UTF-8''Caf%C3%A9%20menu.txt");
    header(ph, "Content-Disposition", &v);
    assert_string_equal(v.data, "attachment; filename*=UTF-8''Caf%C3%A9%20menu.txt");
    assert_b64_body(pb, (const uint8_t *)"menu\n", 5);

    entity(parts[3], &ph, &pb);
    assert_int_equal(pb.n, 0);
    free(ct);
    free(ct2);

    /* text only + attachment: mixed around the single text part */
    m.html = NULL;
    m.nattachments = 1;
    buf_reset(&out);
    build_ok(&m, &out, 78);
    entity(span_of(&out), &h, &body);
    ct = header_dup(h, "Content-Type");
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 8), 2);
    entity(parts[0], &ph, &pb);
    header(ph, "Content-Type", &v);
    assert_string_equal(v.data, "text/plain; charset=UTF-8");
    assert_qp_body(pb, "See attached.\r\n");
    free(ct);
    buf_free(&out);
    buf_free(&v);
}

static void test_binary_attachment(void **state)
{
    uint8_t data[256 * 3 + 1];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + i / 256); /* every value, three times, shuffled */
    mime_attachment_t att = {"all-bytes.bin", "application/octet-stream", data, sizeof(data)};
    mime_email_t m = base_email();
    m.attachments = &att;
    m.nattachments = 1;
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78);
    span_t h, body, parts[4], ph, pb;
    entity(span_of(&out), &h, &body);
    char *ct = header_dup(h, "Content-Type");
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 4), 2);
    entity(parts[1], &ph, &pb);
    assert_b64_body(pb, data, sizeof(data));
    int seen[256] = {0};
    for (size_t i = 0; i < sizeof(data); i++)
        seen[data[i]]++;
    for (int i = 0; i < 256; i++)
        assert_true(seen[i] >= 3);
    free(ct);
    buf_free(&out);
    buf_free(&v);
}

/* ---- bodies ------------------------------------------------------------- */

static span_t single_body(const buf_t *out)
{
    span_t h, body;
    entity(span_of(out), &h, &body);
    return body;
}

static void test_quoted_printable(void **state)
{
    buf_t text, out;
    buf_init(&text);
    buf_init(&out);
    /* one 10,000-character line, with escapes and multi-byte characters mixed in */
    for (int i = 0; i < 10000; i++)
        buf_putc(&text, "abc=def \t"[i % 9]);
    buf_puts(&text, "\nnext line\n");
    for (int i = 0; i < 2000; i++)
        buf_puts(&text, "\xc3\xa9");
    mime_email_t m = base_email();
    m.text = text.data;
    build_ok(&m, &out, 76); /* every line, headers included, within 76 */
    buf_t n;
    buf_init(&n);
    for (size_t i = 0; i < text.len; i++) /* what the body must decode to */
        buf_puts(&n, text.data[i] == '\n' ? "\r\n" : (char[]){text.data[i], 0});
    assert_qp_body(single_body(&out), n.data);
    buf_free(&n);

    /* exact encodings at the edges */
    static const struct {
        const char *in, *wire;
    } cases[] = {
        {"abc \nxyz\t", "abc=20\r\nxyz=09=\r\n"},
        {"a\r\nb\rc\n", "a\r\nb=0Dc\r\n"},
        {"From me\nFrom", "=46rom me\r\nFrom=\r\n"},
        {"\n\n", "\r\n\r\n"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m.text = cases[i].in;
        buf_reset(&out);
        build_ok(&m, &out, 78);
        span_t b = single_body(&out);
        if (b.n != strlen(cases[i].wire) || memcmp(b.p, cases[i].wire, b.n) != 0)
            fail_msg("case %zu: \"%.*s\"", i, (int)b.n, b.p);
    }
    /* 76 characters fit a hard-broken line; 77 need a soft break after 75;
     * an escape is never cut */
    char line[100];
    memset(line, 'x', 76);
    strcpy(line + 76, "\n");
    m.text = line;
    buf_reset(&out);
    build_ok(&m, &out, 78);
    span_t b = single_body(&out);
    assert_int_equal(b.n, 78);
    memset(line, 'x', 77);
    strcpy(line + 77, "\n");
    buf_reset(&out);
    build_ok(&m, &out, 78);
    b = single_body(&out);
    assert_int_equal(b.n, 75 + 3 + 2 + 2);
    assert_memory_equal(b.p + 75, "=\r\nxx\r\n", 7);
    memset(line, 'x', 74);
    strcpy(line + 74, "==\n");
    buf_reset(&out);
    build_ok(&m, &out, 78);
    b = single_body(&out);
    assert_memory_equal(b.p + 74, "=\r\n=3D=3D\r\n", 11);
    buf_free(&text);
    buf_free(&out);
}

static void test_boundary_absent_from_parts(void **state)
{
    /* content that looks like our boundaries in every place it can go */
    mime_attachment_t att[] = {
        {"--=_herald_00.txt", "text/plain", (const uint8_t *)"--=_herald_\r\n", 13},
        {"x.bin", "application/octet-stream", (const uint8_t *)"=_herald_=_herald_", 18},
    };
    mime_email_t m = base_email();
    m.subject = "--=_herald_";
    m.text = "--=_herald_0123456789abcdef\n--=_herald_--\n";
    m.html = "<pre>\n--=_herald_\n</pre>";
    m.attachments = att;
    m.nattachments = 2;
    for (int round = 0; round < 20; round++) {
        buf_t out;
        buf_init(&out);
        build_ok(&m, &out, 78);
        span_t h, body, parts[4], sub[3], ph, pb;
        entity(span_of(&out), &h, &body);
        char *ct = header_dup(h, "Content-Type");
        /* multipart() asserts each boundary is absent from every part and
         * occurs exactly 1 + parts + 1 times in the whole message */
        assert_int_equal(multipart(span_of(&out), body, ct, parts, 4), 3);
        entity(parts[0], &ph, &pb);
        char *ct2 = header_dup(ph, "Content-Type");
        assert_int_equal(multipart(span_of(&out), pb, ct2, sub, 3), 2);
        entity(sub[0], &ph, &pb);
        assert_qp_body(pb, "--=_herald_0123456789abcdef\r\n--=_herald_--\r\n");
        entity(parts[1], &ph, &pb);
        assert_b64_body(pb, att[0].data, att[0].len);
        free(ct);
        free(ct2);
        buf_free(&out);
    }
}

/* One complete message, also written to $TEST_MIME_OUT for an outside parser. */
static void test_sample_message(void **state)
{
    static uint8_t blob[3000];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 131 + 7);
    mime_attachment_t att = {"Plan d'\xc3\xa9t\xc3\xa9 \xe2\x80\x94 Zo\xc3\xa9.pdf",
                             "application/pdf", blob, sizeof(blob)};
    mime_email_t m = {
        .from_name = "Boulangerie Caf\xc3\xa9 \xc2\xab Chez Zo\xc3\xa9 \xc2\xbb",
        .from_addr = "hello@boulangerie.example",
        .to_name = "J\xc3\xbcrgen M\xc3\xbcller, \xe5\xb1\xb1\xe7\x94\xb0",
        .to_addr = "jurgen@example.org",
        .reply_to = "support@boulangerie.example",
        .subject = "Votre plan d'\xc3\xa9t\xc3\xa9 est pr\xc3\xaat \xe2\x9c\x93 \xe2\x80\x94 "
                   "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\xa1\x88\xe5\x86\x85 "
                   "\xf0\x9f\x8e\x89 (commande n\xc2\xb0 2026-11-28)",
        .text = "Bonjour J\xc3\xbcrgen,\n\nVotre plan est en pi\xc3\xa8"
                "ce jointe.\n-- \nHerald\n",
        .html = "<p>Bonjour J\xc3\xbcrgen,</p><p>Votre plan est en pi\xc3\xa8"
                "ce jointe.</p>\n",
        .attachments = &att,
        .nattachments = 1,
        .comm_id = COMM_ID,
        .domain = "mail.boulangerie.example",
        .date = 1795856400,
        .unsubscribe_url = "https://boulangerie.example/u/Zm9vYmFy",
        .unsubscribe_mailto = "unsubscribe@boulangerie.example",
        .extra_header_name = "X-Herald-Attempt",
        .extra_header_value = "1",
    };
    buf_t out;
    buf_init(&out);
    build_ok(&m, &out, 78);
    span_t h, body, parts[3];
    entity(span_of(&out), &h, &body);
    char *subject = header_dup(h, "Subject");
    char *back = decode_2047(subject, NULL, NULL, NULL);
    assert_string_equal(back, m.subject);
    char *ct = header_dup(h, "Content-Type");
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 3), 2);
    const char *path = getenv("TEST_MIME_OUT");
    if (path != NULL && *path != '\0') {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(out.data, 1, out.len, f), out.len);
        assert_int_equal(fclose(f), 0);
    }
    free(subject);
    free(back);
    free(ct);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_only),
        cmocka_unit_test(test_html_only_and_reply_to),
        cmocka_unit_test(test_alternative),
        cmocka_unit_test(test_mixed_with_attachments),
        cmocka_unit_test(test_binary_attachment),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_boundary_absent_from_parts),
        cmocka_unit_test(test_sample_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

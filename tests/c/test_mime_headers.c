/* test_mime_headers.c - the email builder's headers (core/transport/mime.c):
 * RFC 2047 encoding and folding of the subject and the display names, RFC
 * 2231 continuations of long attachment names, the Message-ID, and
 * List-Unsubscribe with List-Unsubscribe-Post. Decodes what it builds with
 * mime_check.h's RFC 2047 decoder and an RFC 2231 one of its own, so every
 * assertion is on the bytes that would go to the SMTP server; every line of
 * every message stays within 78 characters. Structure and bodies are in
 * test_mime.c. */
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

/* ---- header encoding and folding ---------------------------------------- */

/* Builds with the given subject; checks every line <= 78, that the subject
 * decodes back, and returns the number of Q and B encoded-words. */
static void subject_round_trip(const char *subject, int *nq, int *nb)
{
    mime_email_t m = base_email();
    m.subject = subject;
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78);
    span_t h, body;
    entity(span_of(&out), &h, &body);
    assert_int_equal(header(h, "Subject", &v), 1);
    int words = 0;
    *nq = *nb = 0;
    char *back = decode_2047(v.data, &words, nq, nb);
    assert_string_equal(back, subject);
    free(back);
    buf_free(&out);
    buf_free(&v);
}

static void test_subject_folding(void **state)
{
    /* 300 characters of 1- to 4-byte UTF-8 */
    static const char *const pieces[] = {
        "Pr\xc3\xbc",       "fung ", "\xe6\x97\xa5\xe6\x9c\xac ", "\xe2\x9c\x93",
        "\xf0\x9f\x8e\x89", " ok "};
    static const int chars[] = {3, 5, 3, 1, 1, 4};
    buf_t s;
    buf_init(&s);
    int n = 0;
    for (int i = 0; n < 300; i = (i + 1) % 6) {
        if (n + chars[i] > 300) {
            buf_putc(&s, 'x');
            n++;
            continue;
        }
        buf_puts(&s, pieces[i]);
        n += chars[i];
    }
    int nq, nb;
    subject_round_trip(s.data, &nq, &nb);
    assert_true(nq + nb >= 6); /* really folded over several lines */

    /* mostly Latin -> Q; mostly CJK -> B; both fold and decode */
    subject_round_trip("Votre re\xc3\xa7u pour la commande n\xc2\xb0 12345 du 28 novembre, "
                       "merci de votre confiance et \xc3\xa0 bient\xc3\xb4t chez nous !",
                       &nq, &nb);
    assert_true(nq >= 2 && nb == 0);
    buf_reset(&s);
    for (int i = 0; i < 60; i++)
        buf_puts(&s, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"); /* 日本語 */
    subject_round_trip(s.data, &nq, &nb);
    assert_true(nb >= 4 && nq == 0);

    /* long ASCII: folded at its spaces, never encoded */
    buf_reset(&s);
    for (int i = 0; i < 30; i++)
        buf_printf(&s, "%sword%02d-of-the-subject", i ? " " : "", i);
    subject_round_trip(s.data, &nq, &nb);
    assert_int_equal(nq + nb, 0);
    /* text that would read as an encoded-word, tabs, double spaces: encoded */
    subject_round_trip("=?UTF-8?B?SGk=?= is not an encoded word", &nq, &nb);
    assert_true(nq + nb > 0);
    subject_round_trip("tab\there  two spaces ", &nq, &nb);
    assert_true(nq + nb > 0);
    subject_round_trip(" padded subject ", &nq, &nb); /* raw, the spaces would be lost */
    assert_true(nq + nb > 0);
    subject_round_trip("", &nq, &nb);
    buf_free(&s);
}

static void test_display_names(void **state)
{
    static const struct {
        const char *name, *wire;
    } cases[] = {
        {"Doe, Jane", "\"Doe, Jane\" <jane@example.org>"},
        {"Jane Doe", "Jane Doe <jane@example.org>"},
        {"J. Doe", "\"J. Doe\" <jane@example.org>"},
        {"Jane \"JD\" Doe\\", "\"Jane \\\"JD\\\" Doe\\\\\" <jane@example.org>"},
        {"<admin@evil.example>", "\"<admin@evil.example>\" <jane@example.org>"},
        {"Zo\xc3\xa9 Dupont", "=?UTF-8?Q?Zo=C3=A9?= Dupont <jane@example.org>"},
        {"Dupont, Zo\xc3\xa9 (Lyon)",
         "=?UTF-8?B?RHVwb250LCBab8OpIChMeW9uKQ==?= <jane@example.org>"},
        {"  Jane \t Doe ", "Jane Doe <jane@example.org>"},
        {"=?UTF-8?Q?x?= Doe", "=?UTF-8?B?PT9VVEYtOD9RP3g/PQ==?= Doe <jane@example.org>"},
        {" \t ", "jane@example.org"},
        {"", "jane@example.org"},
        {NULL, "jane@example.org"},
    };
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mime_email_t m = base_email();
        m.to_name = cases[i].name;
        buf_reset(&out);
        build_ok(&m, &out, 78);
        span_t h, body;
        entity(span_of(&out), &h, &body);
        header(h, "To", &v);
        assert_string_equal(v.data, cases[i].wire);
    }

    /* non-ASCII names in both From and To, long enough to fold */
    mime_email_t m = base_email();
    m.from_name = "\xe5\xb1\xb1\xe7\x94\xb0\xe5\xa4\xaa\xe9\x83\x8e"; /* 山田太郎 */
    buf_t longname;
    buf_init(&longname);
    for (int i = 0; i < 12; i++)
        buf_puts(&longname, "Ren\xc3\xa9\xc3\xa9 M\xc3\xbcller-");
    m.to_name = longname.data;
    buf_reset(&out);
    build_ok(&m, &out, 78);
    span_t h, body;
    entity(span_of(&out), &h, &body);
    header(h, "From", &v);
    const char *lt = strrchr(v.data, '<');
    assert_non_null(lt);
    assert_string_equal(lt, "<shop@example.com>");
    v.data[lt - v.data - 1] = '\0';
    int nq = 0, nb = 0;
    char *back = decode_2047(v.data, NULL, &nq, &nb);
    assert_string_equal(back, m.from_name);
    assert_int_equal(nb, 1);
    free(back);
    header(h, "To", &v);
    lt = strrchr(v.data, '<');
    assert_string_equal(lt, "<jane@example.org>");
    v.data[lt - v.data - 1] = '\0';
    int words = 0;
    back = decode_2047(v.data, &words, NULL, NULL);
    assert_string_equal(back, longname.data);
    assert_true(words >= 3);
    free(back);
    buf_free(&longname);
    buf_free(&out);
    buf_free(&v);
}

/* RFC 2231 continuations: collects name*0*, name*1*, ... from a header value
 * and percent-decodes them after the charset''. */
static char *rfc2231_value(const char *v, const char *attr)
{
    buf_t raw, out;
    buf_init(&raw);
    buf_init(&out);
    for (int seg = 0;; seg++) {
        char key[64];
        snprintf(key, sizeof(key), "%s*%d*=", attr, seg);
        const char *p = strstr(v, key);
        if (p == NULL) {
            assert_true(seg > 0);
            break;
        }
        p += strlen(key);
        size_t n = strcspn(p, "; ");
        buf_append(&raw, p, n);
    }
    assert_true(strncmp(raw.data, "UTF-8''", 7) == 0);
    for (size_t i = 7; i < raw.len; i++) {
        if (raw.data[i] == '%') {
            assert_true(hexval(raw.data[i + 1]) >= 0 && hexval(raw.data[i + 2]) >= 0);
            buf_putc(&out, (char)(hexval(raw.data[i + 1]) * 16 + hexval(raw.data[i + 2])));
            i += 2;
        } else {
            buf_putc(&out, raw.data[i]);
        }
    }
    buf_free(&raw);
    return buf_steal(&out);
}

static void test_long_filename(void **state)
{
    buf_t name;
    buf_init(&name);
    for (int i = 0; i < 20; i++)
        buf_puts(&name, "Pr\xc3\xa9sentation ");
    buf_puts(&name, "finale.pdf");
    mime_attachment_t att = {name.data, "application/pdf", pdf, sizeof(pdf) - 1};
    mime_email_t m = base_email();
    m.attachments = &att;
    m.nattachments = 1;
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    build_ok(&m, &out, 78); /* every line <= 78 despite a 270-byte name */
    span_t h, body, parts[4], ph, pb;
    entity(span_of(&out), &h, &body);
    char *ct = header_dup(h, "Content-Type");
    assert_int_equal(multipart(span_of(&out), body, ct, parts, 4), 2);
    entity(parts[1], &ph, &pb);
    header(ph, "Content-Disposition", &v);
    char *back = rfc2231_value(v.data, "filename");
    assert_string_equal(back, name.data);
    free(back);
    header(ph, "Content-Type", &v);
    back = rfc2231_value(v.data, "name");
    assert_string_equal(back, name.data);
    free(back);
    free(ct);
    buf_free(&name);
    buf_free(&out);
    buf_free(&v);
}

static char *message_id_of(const mime_email_t *m, char **boundary)
{
    buf_t out;
    buf_init(&out);
    build_ok(m, &out, 78);
    span_t h, body;
    entity(span_of(&out), &h, &body);
    char *id = header_dup(h, "Message-ID");
    if (boundary != NULL) {
        char *ct = header_dup(h, "Content-Type");
        char b[80];
        boundary_of(ct, b);
        *boundary = strdup(b);
        free(ct);
    }
    buf_free(&out);
    return id;
}

static void test_message_id(void **state)
{
    mime_email_t m = base_email();
    m.html = "<p>x</p>";
    m.extra_header_name = "X-Herald-Attempt";
    m.extra_header_value = "1";
    char *b1, *b2;
    char *id1 = message_id_of(&m, &b1);
    m.extra_header_value = "2"; /* a retry: later, another attempt */
    m.date += 600;
    char *id2 = message_id_of(&m, &b2);
    assert_string_equal(id1, "<" COMM_ID "@example.com>");
    assert_string_equal(id1, id2);
    assert_string_not_equal(b1, b2); /* boundaries are drawn, the id is not */
    m.domain = "mail.herald.example";
    char *id3 = message_id_of(&m, NULL);
    assert_string_equal(id3, "<" COMM_ID "@mail.herald.example>");
    m.comm_id = "another-id";
    char *id4 = message_id_of(&m, NULL);
    assert_string_equal(id4, "<another-id@mail.herald.example>");
    free(id1);
    free(id2);
    free(id3);
    free(id4);
    free(b1);
    free(b2);
}

static void test_list_unsubscribe(void **state)
{
    static const struct {
        const char *url, *mailto, *expect;
        int post;
        const char *subject;
    } cases[] = {
        {NULL, NULL, NULL, 0, NULL},
        {"", "", NULL, 0, NULL},
        {"https://x.example/u/tok_123", NULL, "<https://x.example/u/tok_123>", 1, NULL},
        {NULL, "unsub@example.com", "<mailto:unsub@example.com>", 0, NULL},
        {"https://herald.example.com/unsubscribe/aVeryLongOpaqueToken0123456789",
         "unsubscribe+" COMM_ID "@example.com",
         "<https://herald.example.com/unsubscribe/aVeryLongOpaqueToken0123456789>, "
         "<mailto:unsubscribe+" COMM_ID "@example.com>",
         1, NULL},
        {"https://x.example/u/tok_123", "unsub@example.com",
         "<https://x.example/u/tok_123>, <mailto:unsub@example.com?subject=unsubscribe-tok_123>", 1,
         "unsubscribe-tok_123"},
    };
    buf_t out, v;
    buf_init(&out);
    buf_init(&v);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mime_email_t m = base_email();
        m.unsubscribe_url = cases[i].url;
        m.unsubscribe_mailto = cases[i].mailto;
        m.unsubscribe_subject = cases[i].subject;
        m.extra_header_name = "X-Herald-Attempt";
        m.extra_header_value = "3";
        buf_reset(&out);
        build_ok(&m, &out, 78);
        span_t h, body;
        entity(span_of(&out), &h, &body);
        int n = header(h, "List-Unsubscribe", &v);
        assert_int_equal(n, cases[i].expect != NULL);
        if (cases[i].expect)
            assert_string_equal(v.data, cases[i].expect);
        assert_int_equal(header(h, "List-Unsubscribe-Post", &v), cases[i].post);
        if (cases[i].post) {
            assert_string_equal(v.data, "List-Unsubscribe=One-Click");
            assert_true(header_pos(h, "List-Unsubscribe") < header_pos(h, "X-Herald-Attempt"));
        }
        assert_int_equal(header(h, "X-Herald-Attempt", &v), 1);
        assert_string_equal(v.data, "3");
        assert_true(header_pos(h, "X-Herald-Attempt") < header_pos(h, "Content-Type"));
    }
    buf_free(&out);
    buf_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_folding),  cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_long_filename),    cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_list_unsubscribe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

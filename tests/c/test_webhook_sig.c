/*
 * test_webhook_sig.c - unit tests for http/webhook_sig (X-Twilio-Signature
 * against Twilio's published request-validator examples, the default-port
 * toggle, every rejection path; X-Hub-Signature-256 against an HMAC computed
 * here with OpenSSL directly) and the form decoder it relies on, http/form
 * (application/x-www-form-urlencoded: '+', %XX, empty segments, duplicate
 * names, malformed escapes reported with their byte offset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/form.h"
#include "http/webhook_sig.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

/* Twilio's request-validator example (docs and api-snippets), posted in an
 * order other than the sorted one, with each '+' sent as %2B as a real form
 * body must (a bare '+' is a space). */
#define TWILIO_TOKEN "12345"
#define TWILIO_URL   "https://mycompany.com/myapp.php?foo=1&bar=2"
#define TWILIO_SIG_0 "GvWf1cFY/Q7PnoempGyD5oXAezc="
#define TWILIO_SIG_9 "RSOYDt4T1cUTdK1PDd93/VVr8B8="

static const char twilio_body_0[] = "To=%2B18005551212&Digits=1234&From=%2B14158675310"
                                    "&CallSid=CA1234567890ABCDE&Caller=%2B14158675310";
static const char twilio_body_9[] = "Caller=%2B14158675309&To=%2B18005551212&From=%2B14158675309"
                                    "&Digits=1234&CallSid=CA1234567890ABCDE";

static form_t parse_ok(const char *body)
{
    form_t f;
    hd_err_t err = {{0}};
    int rc = form_parse(body, strlen(body), &f, &err);
    if (rc != 0)
        fail_msg("form_parse(\"%s\"): %s", body, err.msg);
    return f;
}

/* Whether the decimal number n appears in s as a whole number (not as part
 * of a longer run of digits). */
static bool mentions_number(const char *s, size_t n)
{
    char num[32];
    snprintf(num, sizeof(num), "%zu", n);
    size_t len = strlen(num);
    for (const char *p = strstr(s, num); p != NULL; p = strstr(p + 1, num)) {
        bool before = p > s && p[-1] >= '0' && p[-1] <= '9';
        bool after = p[len] >= '0' && p[len] <= '9';
        if (!before && !after)
            return true;
    }
    return false;
}

/* form_parse must fail on body, name offset in its message, and leave out
 * empty. */
static void expect_parse_error(const char *body, size_t offset)
{
    form_t f;
    /* junk in, to see form_parse reset it */
    f.pairs = (form_pair_t *)&f;
    f.n = 99;
    hd_err_t err = {{0}};
    assert_int_equal(form_parse(body, strlen(body), &f, &err), -1);
    assert_int_equal(f.n, 0);
    assert_null(f.pairs);
    if (!mentions_number(err.msg, offset))
        fail_msg("form_parse(\"%s\"): message \"%s\" does not name byte %zu", body, err.msg,
                 offset);
    form_free(&f); /* harmless on the emptied form */
}

static void hex(const uint8_t *in, size_t len, bool upper, char *out)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/* "sha256=" + hex(HMAC-SHA256(secret, body[0..len))), computed with OpenSSL
 * and not with the code under test. out holds 7 + 64 + 1 bytes. */
static void meta_header(const char *secret, const void *body, size_t len, bool upper, char out[72])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &maclen));
    assert_int_equal(maclen, 32);
    memcpy(out, "sha256=", 7);
    hex(mac, maclen, upper, out + 7);
}

/* ---- form ------------------------------------------------------------- */

static void test_form_parse_pairs(void **state)
{
    (void)state;
    form_t f = parse_ok("a=1&b=two+words&c=%41%42&empty=&noeq&&d=%E2%82%AC");
    assert_int_equal(f.n, 6);
    static const char *const want[][2] = {
        {"a", "1"},    {"b", "two words"}, {"c", "AB"},
        {"empty", ""}, {"noeq", ""},       {"d", "\xE2\x82\xAC"},
    };
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(f.pairs[i].name, want[i][0]);
        assert_string_equal(f.pairs[i].value, want[i][1]);
    }
    assert_int_equal(strlen(f.pairs[5].value), 3); /* the euro sign, UTF-8 */
    assert_string_equal(form_get(&f, "b"), "two words");
    assert_string_equal(form_get(&f, "noeq"), "");
    assert_null(form_get(&f, "missing"));
    assert_null(form_get(&f, "A")); /* names are case-sensitive */
    form_free(&f);
    assert_int_equal(f.n, 0);
    assert_null(f.pairs);

    /* escapes and '+' in names too; '=' after the first is part of the value */
    f = parse_ok("first+name=J%C3%B6rg&x%3Dy=1=2");
    assert_int_equal(f.n, 2);
    assert_string_equal(f.pairs[0].name, "first name");
    assert_string_equal(f.pairs[0].value, "J\xC3\xB6rg");
    assert_string_equal(f.pairs[1].name, "x=y");
    assert_string_equal(f.pairs[1].value, "1=2");
    form_free(&f);

    /* hex digits in either case */
    f = parse_ok("d=%e2%82%ac&m=%c3%B6");
    assert_string_equal(form_get(&f, "d"), "\xE2\x82\xAC");
    assert_string_equal(form_get(&f, "m"), "\xC3\xB6");
    form_free(&f);
}

static void test_form_get_first_duplicate(void **state)
{
    (void)state;
    form_t f = parse_ok("k=first&other=x&k=second&k=third");
    assert_int_equal(f.n, 4);
    assert_string_equal(form_get(&f, "k"), "first");
    /* every occurrence is kept, in order */
    assert_string_equal(f.pairs[2].value, "second");
    assert_string_equal(f.pairs[3].value, "third");
    form_free(&f);
}

static void test_form_plus_is_space(void **state)
{
    (void)state;
    /* why the Twilio bodies below send %2B: a bare '+' decodes to a space */
    form_t f = parse_ok("Caller=+14158675310&From=%2B14158675310");
    assert_string_equal(form_get(&f, "Caller"), " 14158675310");
    assert_string_equal(form_get(&f, "From"), "+14158675310");
    form_free(&f);
}

static void test_form_malformed_escapes(void **state)
{
    (void)state;
    expect_parse_error("a=%G1", 2);
    expect_parse_error("a=%4", 2);
    expect_parse_error("a=%", 2);
    expect_parse_error("a=%4G", 2);
    /* offsets count from the start of the body, not of the pair */
    expect_parse_error("x=1&yy=ab%4", 9);
    expect_parse_error("ok=1&b%zz=2", 6);
    /* after pairs were already allocated: out is emptied, nothing leaks */
    expect_parse_error("a=1&b=2&c=3&d=%G1&e=5", 14);
    /* a '%' whose two digits straddle the '&' is still malformed */
    expect_parse_error("a=%4&1=2", 2);
}

static void test_form_nul_rejected(void **state)
{
    (void)state;
    expect_parse_error("a=%00", 2);
    expect_parse_error("name=ok&v=abc%00def", 13);
    expect_parse_error("n%00=1", 1);
    /* %01 is fine: only NUL would cut the C string short */
    form_t f = parse_ok("a=%01");
    assert_int_equal(f.n, 1);
    assert_int_equal(strlen(f.pairs[0].value), 1);
    assert_int_equal(f.pairs[0].value[0], 1);
    form_free(&f);
}

static void test_form_empty(void **state)
{
    (void)state;
    form_t f;
    f.n = 7;
    f.pairs = (form_pair_t *)&f;
    hd_err_t err = {{0}};
    assert_int_equal(form_parse("", 0, &f, &err), 0);
    assert_int_equal(f.n, 0);
    assert_null(f.pairs);
    assert_null(form_get(&f, "a"));
    form_free(&f);

    f = parse_ok("&&&");
    assert_int_equal(f.n, 0);
    form_free(&f);

    /* len, not the NUL, bounds the body */
    assert_int_equal(form_parse("a=1&b=2", 3, &f, &err), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.pairs[0].value, "1");
    assert_null(form_get(&f, "b"));
    form_free(&f);

    /* an escape cut by len is malformed, whatever byte lies past it */
    f.n = 7;
    assert_int_equal(form_parse("a=%41", 4, &f, &err), -1);
    assert_int_equal(f.n, 0);
    assert_null(f.pairs);
    assert_true(mentions_number(err.msg, 2));
}

/* ---- Twilio ------------------------------------------------------------- */

static void test_twilio_published_example(void **state)
{
    (void)state;
    form_t f = parse_ok(twilio_body_0);
    assert_int_equal(f.n, 5);
    assert_string_equal(form_get(&f, "Caller"), "+14158675310");
    assert_string_equal(form_get(&f, "From"), "+14158675310");
    assert_string_equal(form_get(&f, "To"), "+18005551212");
    assert_string_equal(form_get(&f, "CallSid"), "CA1234567890ABCDE");
    assert_string_equal(form_get(&f, "Digits"), "1234");
    /* scrambled on purpose: the validator sorts */
    assert_string_equal(f.pairs[0].name, "To");

    char sig[32];
    sig_twilio(TWILIO_TOKEN, TWILIO_URL, &f, sig);
    assert_string_equal(sig, TWILIO_SIG_0);
    assert_true(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_9));
    form_free(&f);
}

static void test_twilio_published_example_2(void **state)
{
    (void)state;
    form_t f = parse_ok(twilio_body_9);
    assert_int_equal(f.n, 5);
    assert_string_equal(form_get(&f, "Caller"), "+14158675309");
    assert_string_equal(form_get(&f, "From"), "+14158675309");
    assert_string_equal(form_get(&f, "To"), "+18005551212");

    char sig[32];
    sig_twilio(TWILIO_TOKEN, TWILIO_URL, &f, sig);
    assert_string_equal(sig, TWILIO_SIG_9);
    assert_true(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_9));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    form_free(&f);
}

/* A signature made for signed_url is accepted at served_url (or not). */
static bool signed_for(const char *signed_url, const char *served_url)
{
    form_t f = parse_ok(twilio_body_0);
    char sig[32];
    sig_twilio(TWILIO_TOKEN, signed_url, &f, sig);
    bool ok = sig_twilio_valid(TWILIO_TOKEN, served_url, &f, sig);
    form_free(&f);
    return ok;
}

static void test_twilio_default_port(void **state)
{
    (void)state;
    /* the published signature is for the URL without a port */
    form_t f = parse_ok(twilio_body_0);
    assert_true(sig_twilio_valid(TWILIO_TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                                 &f, TWILIO_SIG_0));
    /* and is not for the one with it */
    char sig[32];
    sig_twilio(TWILIO_TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2", &f, sig);
    assert_string_not_equal(sig, TWILIO_SIG_0);
    form_free(&f);

    /* signed with the port, served without */
    assert_true(signed_for("https://mycompany.com:443/myapp.php?foo=1&bar=2", TWILIO_URL));

    /* http and :80, both ways */
    assert_true(signed_for("http://mycompany.com/myapp.php?foo=1",
                           "http://mycompany.com:80/myapp.php?foo=1"));
    assert_true(signed_for("http://mycompany.com:80/myapp.php?foo=1",
                           "http://mycompany.com/myapp.php?foo=1"));
    /* a bare host, no path */
    assert_true(signed_for("https://h", "https://h:443"));
    assert_true(signed_for("https://h:443", "https://h"));
    /* the other scheme's default is not this one's */
    assert_false(signed_for("http://h/x", "http://h:443/x"));
    assert_false(signed_for("https://h/x", "https://h:80/x"));
    assert_false(signed_for("http://h/x", "https://h/x"));
}

static void test_twilio_other_port_kept(void **state)
{
    (void)state;
    assert_true(signed_for("https://h:8443/x", "https://h:8443/x"));
    assert_false(signed_for("https://h:8443/x", "https://h/x"));
    assert_false(signed_for("https://h:8443/x", "https://h:443/x"));
    assert_false(signed_for("https://h/x", "https://h:8443/x"));
    assert_false(signed_for("https://h:443/x", "https://h:8443/x"));
    /* ":4430" and ":44" are not ":443" */
    assert_false(signed_for("https://h:4430/x", "https://h/x"));
    assert_false(signed_for("https://h/x", "https://h:44/x"));
}

static void test_twilio_ipv6_host(void **state)
{
    (void)state;
    assert_true(signed_for("http://[::1]/x", "http://[::1]:80/x"));
    assert_true(signed_for("http://[::1]:80/x", "http://[::1]/x"));
    assert_true(signed_for("https://[2001:db8::1]/x?a=1", "https://[2001:db8::1]:443/x?a=1"));
    /* the colons inside the literal are not a port */
    assert_false(signed_for("http://[::1]:8080/x", "http://[::1]/x"));
    assert_false(signed_for("http://[::1]/x", "http://[::1]:8080/x"));
}

static void test_twilio_rejections(void **state)
{
    (void)state;
    form_t f = parse_ok(twilio_body_0);
    /* positive control, so each false below is about its one change */
    assert_true(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));

    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, "GvWf1cFY/Q7PnoempGyD5oXAezd="));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, "HvWf1cFY/Q7PnoempGyD5oXAezc="));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, ""));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, NULL));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, "GvWf1cFY/Q7PnoempGyD5oXAezc"));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0 "="));
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0 " "));

    assert_false(sig_twilio_valid("12346", TWILIO_URL, &f, TWILIO_SIG_0));
    assert_false(sig_twilio_valid("", TWILIO_URL, &f, TWILIO_SIG_0));
    assert_false(sig_twilio_valid(NULL, TWILIO_URL, &f, TWILIO_SIG_0));
    /* a signature made with the empty token does not pass for it either */
    char empty_sig[32];
    sig_twilio("", TWILIO_URL, &f, empty_sig);
    assert_int_equal(strlen(empty_sig), 28);
    assert_false(sig_twilio_valid("", TWILIO_URL, &f, empty_sig));

    assert_false(sig_twilio_valid(TWILIO_TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=3", &f,
                                  TWILIO_SIG_0));
    assert_false(
        sig_twilio_valid(TWILIO_TOKEN, "https://mycompany.com/myapp.php", &f, TWILIO_SIG_0));
    form_free(&f);

    /* a param value changed */
    f = parse_ok("To=%2B18005551212&Digits=1235&From=%2B14158675310"
                 "&CallSid=CA1234567890ABCDE&Caller=%2B14158675310");
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    form_free(&f);

    /* the '+' sent bare, so decoded as a space */
    f = parse_ok("To=%2B18005551212&Digits=1234&From=%2B14158675310"
                 "&CallSid=CA1234567890ABCDE&Caller=+14158675310");
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    form_free(&f);

    /* an extra param added */
    f = parse_ok("To=%2B18005551212&Digits=1234&From=%2B14158675310"
                 "&CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Extra=1");
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    form_free(&f);

    /* a param dropped */
    f = parse_ok("To=%2B18005551212&Digits=1234&From=%2B14158675310&CallSid=CA1234567890ABCDE");
    assert_false(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, TWILIO_SIG_0));
    form_free(&f);
}

static void test_twilio_no_params(void **state)
{
    (void)state;
    /* a GET webhook: the signature covers the URL alone */
    form_t f = parse_ok("");
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha1(), TWILIO_TOKEN, 5, (const uint8_t *)TWILIO_URL,
                         strlen(TWILIO_URL), mac, &maclen));
    assert_int_equal(maclen, 20);
    char want[32];
    assert_int_equal(EVP_EncodeBlock((unsigned char *)want, mac, 20), 28);
    char sig[32];
    sig_twilio(TWILIO_TOKEN, TWILIO_URL, &f, sig);
    assert_string_equal(sig, want);
    assert_true(sig_twilio_valid(TWILIO_TOKEN, TWILIO_URL, &f, want));
    form_free(&f);
}

/* ---- Meta --------------------------------------------------------------- */

static const char meta_body[] = "{\"object\":\"whatsapp_business_account\",\"entry\":[]}";
#define META_SECRET "app-secret"
#define META_LEN    (sizeof(meta_body) - 1)

static void test_meta_valid(void **state)
{
    (void)state;
    char hdr[72];
    meta_header(META_SECRET, meta_body, META_LEN, false, hdr);
    assert_int_equal(strlen(hdr), 7 + 64);
    assert_true(sig_meta_valid(META_SECRET, meta_body, META_LEN, hdr));

    char upper[72];
    meta_header(META_SECRET, meta_body, META_LEN, true, upper);
    assert_string_not_equal(upper + 7, hdr + 7); /* the digest does have a-f in it */
    assert_true(sig_meta_valid(META_SECRET, meta_body, META_LEN, upper));
}

static void test_meta_rejections(void **state)
{
    (void)state;
    char hdr[72], bad[80];
    meta_header(META_SECRET, meta_body, META_LEN, false, hdr);
    assert_true(sig_meta_valid(META_SECRET, meta_body, META_LEN, hdr));

    /* the bare hex, no "sha256=" */
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, hdr + 7));
    snprintf(bad, sizeof(bad), "sha1=%s", hdr + 7);
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    /* other prefixes of the same length */
    snprintf(bad, sizeof(bad), "sha512=%s", hdr + 7);
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    snprintf(bad, sizeof(bad), "sha256:%s", hdr + 7);
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    /* 63 and 65 hex digits */
    snprintf(bad, sizeof(bad), "%.70s", hdr);
    assert_int_equal(strlen(bad), 70);
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    snprintf(bad, sizeof(bad), "%s0", hdr);
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    /* one hex digit flipped, at the start and at the end */
    strcpy(bad, hdr);
    bad[7] = bad[7] == '0' ? '1' : '0';
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    strcpy(bad, hdr);
    bad[70] = bad[70] == 'f' ? 'e' : 'f';
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, bad));
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, NULL));
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, ""));
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN, "sha256="));

    /* the secret */
    assert_false(sig_meta_valid("", meta_body, META_LEN, hdr));
    assert_false(sig_meta_valid(NULL, meta_body, META_LEN, hdr));
    assert_false(sig_meta_valid("app-secreT", meta_body, META_LEN, hdr));

    /* a body one byte off, one byte shorter */
    char body[sizeof(meta_body)];
    memcpy(body, meta_body, sizeof(meta_body));
    body[3] ^= 0x01;
    assert_false(sig_meta_valid(META_SECRET, body, META_LEN, hdr));
    assert_false(sig_meta_valid(META_SECRET, meta_body, META_LEN - 1, hdr));

    /* a header for the empty secret does not pass for it either */
    char empty_hdr[72];
    meta_header("", meta_body, META_LEN, false, empty_hdr);
    assert_false(sig_meta_valid("", meta_body, META_LEN, empty_hdr));
}

static void test_meta_body_with_nul(void **state)
{
    (void)state;
    static const char body[] = "{\"a\":\"x\0y\",\"b\":1}";
    size_t len = sizeof(body) - 1, head = strlen(body);
    assert_true(head < len);

    char whole[72], cut[72];
    meta_header(META_SECRET, body, len, false, whole);
    meta_header(META_SECRET, body, head, false, cut);
    assert_true(sig_meta_valid(META_SECRET, body, len, whole));
    /* a MAC over the bytes before the NUL is not the body's */
    assert_false(sig_meta_valid(META_SECRET, body, len, cut));
    assert_false(sig_meta_valid(META_SECRET, body, head, whole));

    /* the bytes after the NUL count */
    char other[sizeof(body)];
    memcpy(other, body, sizeof(body));
    other[head + 1] = 'z';
    assert_false(sig_meta_valid(META_SECRET, other, len, whole));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_parse_pairs),
        cmocka_unit_test(test_form_get_first_duplicate),
        cmocka_unit_test(test_form_plus_is_space),
        cmocka_unit_test(test_form_malformed_escapes),
        cmocka_unit_test(test_form_nul_rejected),
        cmocka_unit_test(test_form_empty),
        cmocka_unit_test(test_twilio_published_example),
        cmocka_unit_test(test_twilio_published_example_2),
        cmocka_unit_test(test_twilio_default_port),
        cmocka_unit_test(test_twilio_other_port_kept),
        cmocka_unit_test(test_twilio_ipv6_host),
        cmocka_unit_test(test_twilio_rejections),
        cmocka_unit_test(test_twilio_no_params),
        cmocka_unit_test(test_meta_valid),
        cmocka_unit_test(test_meta_rejections),
        cmocka_unit_test(test_meta_body_with_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

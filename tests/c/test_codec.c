/*
 * test_codec.c - unit tests for crypto/codec: base64 and base64url against
 * the RFC 4648 vectors, their alphabets, the strict decoders' refusals, and
 * hex.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/codec.h"

static void check_b64_pair(const char *plain, const char *std, const char *url)
{
    size_t n = strlen(plain);
    char *e = b64_encode((const uint8_t *)plain, n);
    assert_string_equal(e, std);
    free(e);
    e = b64url_encode((const uint8_t *)plain, n);
    assert_string_equal(e, url);
    free(e);

    uint8_t *d = NULL;
    size_t dlen = 99;
    assert_int_equal(b64_decode(std, strlen(std), &d, &dlen), 0);
    assert_int_equal(dlen, n);
    assert_memory_equal(d, plain, n);
    assert_int_equal(d[dlen], '\0');
    free(d);
    assert_int_equal(b64url_decode(url, strlen(url), &d, &dlen), 0);
    assert_int_equal(dlen, n);
    assert_memory_equal(d, plain, n);
    free(d);
}

static void test_codec_rfc4648_vectors(void **state)
{
    (void)state;
    check_b64_pair("", "", "");
    check_b64_pair("f", "Zg==", "Zg");
    check_b64_pair("fo", "Zm8=", "Zm8");
    check_b64_pair("foo", "Zm9v", "Zm9v");
    check_b64_pair("foob", "Zm9vYg==", "Zm9vYg");
    check_b64_pair("fooba", "Zm9vYmE=", "Zm9vYmE");
    check_b64_pair("foobar", "Zm9vYmFy", "Zm9vYmFy");
}

static void test_codec_alphabets(void **state)
{
    (void)state;
    const uint8_t bin[] = {0xfb, 0xff, 0xbf, 0xfb, 0xff};
    char *s = b64_encode(bin, sizeof(bin));
    assert_string_equal(s, "+/+/+/8=");
    free(s);
    s = b64url_encode(bin, sizeof(bin));
    assert_string_equal(s, "-_-_-_8");
    free(s);

    uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(b64url_decode("-_-_-_8", 7, &d, &n), 0);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(d, bin, sizeof(bin));
    free(d);

    /* Every byte value survives both encodings. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 250; len <= 256; len++) {
        s = b64_encode(all, len);
        assert_int_equal(b64_decode(s, strlen(s), &d, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(d, all, len);
        free(d);
        free(s);
        s = b64url_encode(all, len);
        assert_null(strchr(s, '='));
        assert_int_equal(b64url_decode(s, strlen(s), &d, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(d, all, len);
        free(d);
        free(s);
    }
}

static void expect_b64_reject(const char *in, int url)
{
    uint8_t sentinel = 0, *d = &sentinel;
    size_t n = 99;
    int rc = url ? b64url_decode(in, strlen(in), &d, &n) : b64_decode(in, strlen(in), &d, &n);
    if (rc != -1)
        fail_msg("%s decode accepted \"%s\"", url ? "base64url" : "base64", in);
    assert_null(d);
    assert_int_equal(n, 0);
}

static void test_codec_strict_rejects(void **state)
{
    (void)state;
    const char *bad_std[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* length not a multiple of 4 */
        "Z===",     /* three pad characters */
        "====",     /* only padding */
        "Zg==Zg==", /* padding in the middle */
        "Zm9v\n",   /* trailing newline */
        "Zm9\n",    /* newline where a character belongs */
        " Zm9",     /* leading space */
        "Zm 9v===", /* space */
        "Zh==",     /* non-zero trailing bits: Zg== is the only form */
        "Zm9=",     /* non-zero trailing bits */
        "-_8=",     /* url alphabet */
        "Zm9*",     /* foreign character */
    };
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++)
        expect_b64_reject(bad_std[i], 0);

    const char *bad_url[] = {
        "Zg==",        /* padding */
        "Zg=",         /* padding */
        "+/8",         /* standard alphabet */
        "Zm 9v",       /* space */
        "Zm9v\n", "Z", /* impossible length */
        "Zh",          /* non-zero trailing bits */
        "Zm.9",
    };
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
        expect_b64_reject(bad_url[i], 1);

    /* An embedded NUL inside the given length is just another bad byte. */
    uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(b64url_decode("Zm\0v", 4, &d, &n), -1);
    assert_int_equal(b64_decode(NULL, 0, &d, &n), -1);
}

static void test_codec_hex(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0xab, 0xff, 0x10, 0x9c};
    char out[2 * sizeof(in) + 1];
    memset(out, 'x', sizeof(out));
    hex_encode(in, sizeof(in), out);
    assert_string_equal(out, "00abff109c");
    hex_encode(in, 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_rfc4648_vectors),
        cmocka_unit_test(test_codec_alphabets),
        cmocka_unit_test(test_codec_strict_rejects),
        cmocka_unit_test(test_codec_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

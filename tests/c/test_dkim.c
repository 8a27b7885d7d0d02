/*
 * test_dkim.c - unit tests for crypto/dkim: the relaxed canonicalisations
 * against RFC 6376's example (section 3.4.5) and edge cases, the key checks
 * of dkim_signer_new, and the shape of the DKIM-Signature field. A signature
 * made here is verified with OpenSSL over the canonical data rebuilt by
 * hand; the independent check (python3-dkim) is tests/integration/test_dkim.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/codec.h"
#include "crypto/dkim.h"
#include "crypto/hash.h"

static void check_body(const char *in, const char *want)
{
    buf_t b;
    buf_init(&b);
    dkim_canon_body(in, strlen(in), &b);
    assert_int_equal(b.len, strlen(want));
    if (b.len)
        assert_memory_equal(b.data, want, b.len);
    buf_free(&b);
}

static void check_header(const char *in, const char *want)
{
    buf_t b;
    buf_init(&b);
    dkim_canon_header(in, strlen(in), &b);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

/* RFC 6376 section 3.4.5, relaxed/relaxed. */
static void test_rfc6376_example(void **state)
{
    (void)state;
    check_header("A: X \r\n", "a:X\r\n");
    check_header("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
    check_body(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void test_body_edge_cases(void **state)
{
    (void)state;
    check_body("", "");                /* empty stays empty (errata 3192) */
    check_body("\r\n", "");            /* only an empty line: empty */
    check_body("\r\n\r\n \t\r\n", ""); /* only blank lines */
    check_body("abc", "abc\r\n");      /* a last line without CRLF gets one */
    check_body("a  \t", "a\r\n");
    check_body("a\r\n \r\nb\r\n", "a\r\n\r\nb\r\n"); /* inner blank lines kept, emptied */
    check_body("a\r\n\r\n\r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n");
    check_body("\t lead\r\n", " lead\r\n");   /* leading WSP compressed, not removed */
    check_body("a\nb \n\r\n", "a\nb \n\r\n"); /* a bare LF is no line end */
    check_body("x\r\r\n", "x\r\r\n");
    check_body("=E2=82=AC \r\n--b--\r\n", "=E2=82=AC\r\n--b--\r\n");
}

static void test_header_edge_cases(void **state)
{
    (void)state;
    check_header("Subject:  Hello\r\n   World  \r\n", "subject:Hello World\r\n");
    check_header("X-Mixed-Case :v", "x-mixed-case:v\r\n"); /* no CRLF given */
    check_header("To:\r\n zoe@example.com\r\n", "to:zoe@example.com\r\n");
    check_header("Empty:\r\n", "empty:\r\n");
    check_header("Content-Type: multipart/mixed;\r\n boundary=\"x\"\r\n",
                 "content-type:multipart/mixed; boundary=\"x\"\r\n");
}

/* Writes a PEM private key of the given type to a temporary file. */
static char *key_file(const char *type, size_t bits)
{
    EVP_PKEY *k = bits ? EVP_PKEY_Q_keygen(NULL, NULL, type, bits)
                       : EVP_PKEY_Q_keygen(NULL, NULL, type); /* ED25519 takes no size */
    assert_non_null(k);
    char *path = strdup("/tmp/herald-dkim-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
    return path;
}

static void expect_refused(const char *d, const char *s, const char *path, const char *part)
{
    hd_err_t err = {{0}};
    dkim_signer_t *sg = dkim_signer_new(d, s, path, &err);
    assert_null(sg);
    if (strstr(err.msg, part) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err.msg, part);
}

static void test_signer_refusals(void **state)
{
    (void)state;
    char *ed = key_file("ED25519", 0);
    expect_refused("", "s1", ed, "dkim domain");
    expect_refused("bad..example", "s1", ed, "dkim domain");
    expect_refused("-x.example", "s1", ed, "dkim domain");
    expect_refused("example.com", "s 1", ed, "dkim selector");
    expect_refused("example.com", "s1;x=1", ed, "dkim selector");
    expect_refused("example.com", "s1", NULL, "HERALD_DKIM_KEY_FILE is not set");
    expect_refused("example.com", "s1", "/nonexistent/key.pem", "cannot read");
    /* not a key */
    char junk[] = "/tmp/herald-dkim-junk-XXXXXX";
    int fd = mkstemp(junk);
    assert_int_equal(write(fd, "hello\n", 6), 6);
    close(fd);
    expect_refused("example.com", "s1", junk, "no unencrypted PEM private key");
    /* over the size limit */
    FILE *f = fopen(junk, "w");
    for (int i = 0; i <= DKIM_KEY_FILE_MAX; i++)
        fputc('A', f);
    fclose(f);
    expect_refused("example.com", "s1", junk, "over 16384 bytes");
    unlink(junk);
    /* an EC (P-256) key: not a DKIM algorithm */
    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char ecpath[] = "/tmp/herald-dkim-ec-XXXXXX";
    fd = mkstemp(ecpath);
    f = fdopen(fd, "w");
    PEM_write_PrivateKey(f, p256, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(p256);
    expect_refused("example.com", "s1", ecpath, "DKIM signs with RSA or Ed25519");
    unlink(ecpath);
    /* RSA under 1024 bits */
    char *small = key_file("RSA", 768);
    expect_refused("example.com", "s1", small, "768-bit RSA key");
    unlink(small);
    free(small);
    unlink(ed);
    free(ed);
}

static const char message[] = "From: Zoe <zoe@herald.example>\r\n"
                              "To: ana@example.com\r\n"
                              "Subject: =?UTF-8?B?UsOpc3Vtw6k=?=\r\n"
                              "X-Not-Signed: 1\r\n"
                              "Content-Type: text/plain;\r\n charset=UTF-8\r\n"
                              "\r\n"
                              "Hello  world \r\n\r\n";

/* The value of tag t in the unfolded field f (after "DKIM-Signature:"). */
static char *tag(const char *f, const char *t)
{
    char key[8], *flat = strdup(f);
    snprintf(key, sizeof(key), " %s=", t);
    for (char *q = flat; *q; q++) /* a tag may begin a folded line */
        if (*q == '\t')
            *q = ' ';
    const char *p = strstr(flat, key);
    assert_non_null(p);
    p += strlen(key);
    size_t n = strcspn(p, ";");
    char *v = strndup(p, n);
    char *o = v;
    for (char *q = v; *q; q++) /* drop the folding */
        if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
            *o++ = *q;
    *o = '\0';
    free(flat);
    return v;
}

static void sign_and_check(const char *type, size_t bits, const char *alg)
{
    char *path = key_file(type, bits);
    hd_err_t err = {{0}};
    dkim_signer_t *sg = dkim_signer_new("herald.example", "sel-1", path, &err);
    assert_non_null(sg);
    assert_string_equal(dkim_signer_algorithm(sg), alg);
    buf_t out;
    buf_init(&out);
    assert_int_equal(dkim_sign(sg, message, strlen(message), 1700000000, &out, &err), 0);
    /* one field, folded, every line under 78, ending in CRLF */
    assert_true(strncmp(out.data, "DKIM-Signature: v=1; a=", 23) == 0);
    assert_true(out.len > 2 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
    for (const char *l = out.data; *l;) {
        const char *e = strstr(l, "\r\n");
        assert_non_null(e);
        assert_true(e - l <= 78);
        if (l != out.data)
            assert_true(*l == '\t'); /* continuation lines only */
        l = e + 2;
    }
    char *a = tag(out.data, "a"), *h = tag(out.data, "h"), *bh = tag(out.data, "bh");
    char *b = tag(out.data, "b"), *t = tag(out.data, "t");
    assert_string_equal(a, alg);
    assert_string_equal(h, "from:to:subject:content-type:from");
    assert_string_equal(t, "1700000000");
    /* bh: SHA-256 of the canonical body "Hello world\r\n" */
    uint8_t d[32];
    hash_sha256("Hello world\r\n", 13, d);
    char *want_bh = b64_encode(d, 32);
    assert_string_equal(bh, want_bh);

    /* Rebuild the signed data by hand and verify b= with the public key. */
    buf_t data;
    buf_init(&data);
    buf_puts(&data, "from:Zoe <zoe@herald.example>\r\nto:ana@example.com\r\n"
                    "subject:=?UTF-8?B?UsOpc3Vtw6k=?=\r\n"
                    "content-type:text/plain; charset=UTF-8\r\n");
    /* the field itself with b= emptied, canonicalised, no final CRLF */
    const char *bpos = strstr(out.data, " b=");
    assert_non_null(bpos);
    buf_t sigf;
    buf_init(&sigf);
    buf_append(&sigf, out.data, (size_t)(bpos - out.data) + 3);
    dkim_canon_header(sigf.data, sigf.len, &data);
    data.len -= 2;
    uint8_t *sig;
    size_t siglen;
    assert_int_equal(b64_decode(b, strlen(b), &sig, &siglen), 0);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;
    if (strcmp(type, "ED25519") == 0) {
        uint8_t hd[32];
        hash_sha256(data.data, data.len, hd);
        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, hd, 32) == 1;
    } else {
        ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const uint8_t *)data.data, data.len) == 1;
    }
    assert_true(ok);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);

    /* The DNS record names the algorithm's key type. */
    buf_t rec;
    buf_init(&rec);
    dkim_signer_record(sg, &rec);
    assert_true(
        strncmp(rec.data,
                strcmp(type, "RSA") == 0 ? "v=DKIM1; k=rsa; p=MII" : "v=DKIM1; k=ed25519; p=",
                strlen(strcmp(type, "RSA") == 0 ? "v=DKIM1; k=rsa; p=MII"
                                                : "v=DKIM1; k=ed25519; p=")) == 0);
    if (strcmp(type, "RSA") != 0)
        assert_int_equal(strlen(rec.data), strlen("v=DKIM1; k=ed25519; p=") + 44);

    buf_free(&rec);
    free(sig);
    buf_free(&sigf);
    buf_free(&data);
    free(want_bh);
    free(a);
    free(h);
    free(bh);
    free(b);
    free(t);
    buf_free(&out);
    dkim_signer_free(sg);
    unlink(path);
    free(path);
}

static void test_sign_rsa(void **state)
{
    (void)state;
    sign_and_check("RSA", 2048, "rsa-sha256");
}

static void test_sign_ed25519(void **state)
{
    (void)state;
    sign_and_check("ED25519", 0, "ed25519-sha256");
}

static void test_sign_refuses_malformed_messages(void **state)
{
    (void)state;
    char *path = key_file("ED25519", 0);
    hd_err_t err = {{0}};
    dkim_signer_t *sg = dkim_signer_new("herald.example", "s", path, &err);
    assert_non_null(sg);
    buf_t out;
    buf_init(&out);
    const char *no_from = "To: a@b.example\r\n\r\nhi\r\n";
    assert_int_equal(dkim_sign(sg, no_from, strlen(no_from), 1, &out, &err), -1);
    assert_string_equal(err.msg, "dkim: the message has no From field");
    const char *no_end = "From: a@b.example\r\nTo: c@d.example\r\n";
    assert_int_equal(dkim_sign(sg, no_end, strlen(no_end), 1, &out, &err), -1);
    assert_string_equal(err.msg, "dkim: the message has no empty line after its header");
    assert_int_equal(out.len, 0); /* nothing appended on failure */
    buf_free(&out);
    dkim_signer_free(sg);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6376_example),
        cmocka_unit_test(test_body_edge_cases),
        cmocka_unit_test(test_header_edge_cases),
        cmocka_unit_test(test_signer_refusals),
        cmocka_unit_test(test_sign_rsa),
        cmocka_unit_test(test_sign_ed25519),
        cmocka_unit_test(test_sign_refuses_malformed_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_field.c - unit tests for crypto/field: AES-256-GCM field encryption
 * (round trips, nonce freshness, tamper and AAD checks), key rotation, blind
 * indexes and key parsing.
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
#include "crypto/field.h"

static uint8_t k1[32], k2[32], k3[32], idx1[32], idx2[32];

/* Computed independently (Python hashlib/hmac) to pin the constructions. */
#define K1_KID        "68916f32"
#define IDX1_EMAIL_BI "d7ad93570e211e273371acb3d2dfd73112ff475235058ce9c8fabed9e7388020"
#define IDX1_PHONE_BI "58cb7ef0bd4919dc6065ad4819380f7eeb7bceb24f08d4bf7e82b23b28db6ea8"
#define K1_BASE64     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
/* AES-256-GCM(k1, nonce a0..ab, "alice@example.com", AAD
 * "herald:v1:email:68916f32"), so the stored format and AAD are pinned. */
#define K1_EMAIL_KAT "v1." K1_KID ".oKGio6Slpqeoqaqrh3QVTiCLZ8cDCPe_YlSjsR2SQ9NxlSnDAHB5r-mDMn6J"
/* Two different keys sharing key id 52950ab9 (found by birthday search). */
static const char collide_a_hex[] =
    "424a368ce76ea34b2fcce8c055799c436e34580599cb2b66eda996e4fdfd8256";
static const char collide_b_hex[] =
    "7583fca0bd0a04c7ddcd007855d04806baf49bd15c439f1d93bb8eaf2597d207";

static int setup_keys(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++) {
        k1[i] = (uint8_t)i;
        k2[i] = (uint8_t)(0x40 + i);
        k3[i] = (uint8_t)(0x60 + i);
        idx1[i] = (uint8_t)(0x80 + i);
        idx2[i] = (uint8_t)(0xc0 + i);
    }
    return 0;
}

static fe_keyring_t *ring(const uint8_t *cur, const uint8_t *idx)
{
    fe_keyring_t *kr = fe_keyring_new(cur, idx);
    assert_non_null(kr);
    return kr;
}

/* noinline: once inlined, GCC 12 at -O3 suspects fe_encrypt stored &out in
 * out and reports a false -Wdangling-pointer at every use of the result. */
__attribute__((noinline)) static char *encrypt_ok(const fe_keyring_t *kr, const char *field,
                                                  const char *pt, size_t len)
{
    hd_err_t err = {{0}};
    char *out = NULL;
    int rc = fe_encrypt(kr, field, pt, len, &out, &err);
    if (rc != 0 || out == NULL)
        fail_msg("fe_encrypt failed: %s", err.msg);
    return out;
}

static void expect_plain(const fe_keyring_t *kr, const char *field, const char *in, const char *pt,
                         size_t len)
{
    hd_err_t err = {{0}};
    char *got = NULL;
    size_t glen = 99;
    if (fe_decrypt(kr, field, in, &got, &glen, &err) != 0)
        fail_msg("fe_decrypt(%s) failed: %s", in, err.msg);
    assert_int_equal(glen, len);
    assert_memory_equal(got, pt, len);
    assert_int_equal(got[len], '\0');
    free(got);
}

/* Decryption must fail, leave no output and explain itself with want. */
static void expect_fail(const fe_keyring_t *kr, const char *field, const char *in, const char *want)
{
    hd_err_t err = {{0}};
    char sentinel = 'x', *got = &sentinel;
    size_t glen = 99;
    if (fe_decrypt(kr, field, in, &got, &glen, &err) != -1)
        fail_msg("fe_decrypt accepted \"%s\"", in);
    assert_null(got);
    assert_int_equal(glen, 0);
    if (strstr(err.msg, want) == NULL)
        fail_msg("decrypting \"%s\": error \"%s\" lacks \"%s\"", in, err.msg, want);
}

/* Decodes the data segment of an encrypted value. Caller frees. */
static uint8_t *data_of(const char *val, size_t *len)
{
    const char *data = strrchr(val, '.') + 1;
    uint8_t *raw = NULL;
    assert_int_equal(b64url_decode(data, strlen(data), &raw, len), 0);
    return raw;
}

/* val with data byte i (negative: from the end) flipped. Caller frees. */
static char *flip_byte(const char *val, long i)
{
    size_t len = 0;
    uint8_t *raw = data_of(val, &len);
    size_t at = i >= 0 ? (size_t)i : len - (size_t)(-i);
    assert_true(at < len);
    raw[at] ^= 0x01;
    char *data = b64url_encode(raw, len);
    size_t plen = (size_t)(strrchr(val, '.') + 1 - val);
    char *out = malloc(plen + strlen(data) + 1);
    assert_non_null(out);
    memcpy(out, val, plen);
    strcpy(out + plen, data);
    free(data);
    free(raw);
    return out;
}

/* val with its version or kid segment replaced. Caller frees. */
static char *relabel(const char *val, const char *version, const char *kid)
{
    const char *dot1 = strchr(val, '.'), *dot2 = strchr(dot1 + 1, '.');
    size_t n = strlen(version) + strlen(kid) + strlen(dot2) + 2;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%s.%s%s", version, kid, dot2);
    return out;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    const char *utf8 = "Gr\xc3\xbc\xc3\x9f"
                       "e, \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89";
    const char *cases[] = {"alice@example.com", "", utf8};
    for (size_t i = 0; i < 3; i++) {
        char *v = encrypt_ok(kr, "email", cases[i], strlen(cases[i]));
        expect_plain(kr, "email", v, cases[i], strlen(cases[i]));

        /* Layout: v1.<kid>.<nonce | ct | tag>. */
        assert_int_equal(strncmp(v, "v1." K1_KID ".", 12), 0);
        size_t len = 0;
        free(data_of(v, &len));
        assert_int_equal(len, 12 + strlen(cases[i]) + 16);
        free(v);
    }

    /* Binary with embedded NULs, and a NULL pointer for an empty value. */
    char *v = encrypt_ok(kr, "blob", "a\0b\0c", 5);
    expect_plain(kr, "blob", v, "a\0b\0c", 5);
    free(v);
    v = encrypt_ok(kr, "blob", NULL, 0);
    expect_plain(kr, "blob", v, "", 0);
    free(v);

    /* Large value. */
    size_t big = 100000;
    char *pt = malloc(big);
    assert_non_null(pt);
    for (size_t i = 0; i < big; i++)
        pt[i] = (char)('a' + i % 26);
    v = encrypt_ok(kr, "notes", pt, big);
    expect_plain(kr, "notes", v, pt, big);
    free(v);
    free(pt);
    fe_keyring_free(kr);
}

static void from_hex(const char *hex, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void test_known_answer(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    expect_plain(kr, "email", K1_EMAIL_KAT, "alice@example.com", 17);
    expect_fail(kr, "phone", K1_EMAIL_KAT, "authentication failed");
    fe_keyring_free(kr);
}

static void test_key_id(void **state)
{
    (void)state;
    char kid[9];
    fe_key_id(k1, kid);
    assert_string_equal(kid, K1_KID);
    char kid2[9];
    fe_key_id(k2, kid2);
    assert_int_equal(strlen(kid2), 8);
    assert_string_not_equal(kid, kid2);
    fe_keyring_t *kr = ring(k1, idx1);
    assert_string_equal(fe_keyring_current_id(kr), K1_KID);
    fe_keyring_free(kr);
    fe_keyring_free(NULL);
}

static void test_nonce_is_fresh(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    char *a = encrypt_ok(kr, "email", "same", 4);
    char *b = encrypt_ok(kr, "email", "same", 4);
    assert_string_not_equal(a, b);
    size_t la = 0, lb = 0;
    uint8_t *ra = data_of(a, &la), *rb = data_of(b, &lb);
    assert_memory_not_equal(ra, rb, 12);
    expect_plain(kr, "email", a, "same", 4);
    expect_plain(kr, "email", b, "same", 4);
    free(ra);
    free(rb);
    free(a);
    free(b);
    fe_keyring_free(kr);
}

static void test_encrypt_bad_args(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    hd_err_t err = {{0}};
    char *out = (char *)"sentinel";
    assert_int_equal(fe_encrypt(kr, "", "x", 1, &out, &err), -1);
    assert_null(out);
    assert_true(strlen(err.msg) > 0);
    out = (char *)"sentinel";
    assert_int_equal(fe_encrypt(kr, "email", NULL, 3, &out, NULL), -1);
    assert_null(out);
    fe_keyring_free(kr);
}

/* ---- tampering ----------------------------------------------------------- */

static void test_tamper_each_region(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    assert_int_equal(fe_keyring_add_old(kr, k2), 0);
    char *v = encrypt_ok(kr, "email", "alice@example.com", 17);
    expect_plain(kr, "email", v, "alice@example.com", 17);

    /* nonce, first/last ciphertext byte, first/last tag byte */
    const long regions[] = {0, 11, 12, 12 + 16, -17, -16, -1};
    for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
        char *t = flip_byte(v, regions[i]);
        expect_fail(kr, "email", t, "authentication failed");
        free(t);
    }

    /* Relabelled with an unknown key id, and with another key's id that
     * this keyring does hold: the kid is authenticated too. */
    char *t = relabel(v, "v1", "00000000");
    expect_fail(kr, "email", t, "unknown key id 00000000");
    free(t);
    char kid2[9];
    fe_key_id(k2, kid2);
    t = relabel(v, "v1", kid2);
    expect_fail(kr, "email", t, "authentication failed");
    free(t);

    /* Another version. */
    t = relabel(v, "v2", K1_KID);
    expect_fail(kr, "email", t, "unsupported version \"v2\"");
    free(t);
    t = relabel(v, "v0", K1_KID);
    expect_fail(kr, "email", t, "unsupported version");
    free(t);

    /* Truncated or extended data. */
    size_t n = strlen(v);
    t = strdup(v);
    t[n - 4] = '\0';
    expect_fail(kr, "email", t, "authentication failed");
    free(t);
    t = malloc(n + 5);
    assert_non_null(t);
    memcpy(t, v, n);
    memcpy(t + n, "AAAA", 5);
    expect_fail(kr, "email", t, "authentication failed");
    free(t);
    t = strdup(v);
    t[n - 1] = '\0';
    expect_fail(kr, "email", t, "");
    free(t);

    free(v);
    fe_keyring_free(kr);
}

static void test_malformed_values(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    char *v = encrypt_ok(kr, "email", "x", 1);
    const char *data = strrchr(v, '.') + 1;
    char buf[256];

    const char *bad[] = {
        "",
        "v1",
        "v1.",
        "v1." K1_KID,
        "v1." K1_KID ".",
        "v1." K1_KID ".!!!!",
        "v1." K1_KID ".AAAA",     /* shorter than nonce + tag */
        "v1." K1_KID ".AAAA====", /* padding */
        "v1.6891.AAAA",
        "v1.68916f3g.AAAA",
        "alice@example.com",
        "hello",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_fail(kr, "email", bad[i], "malformed encrypted value");

    snprintf(buf, sizeof(buf), "v1.68916F32.%s", data);
    expect_fail(kr, "email", buf, "malformed encrypted value: bad key id");
    snprintf(buf, sizeof(buf), "v1.%s.%s.extra", K1_KID, data);
    expect_fail(kr, "email", buf, "malformed encrypted value");
    snprintf(buf, sizeof(buf), "v1..%s", data);
    expect_fail(kr, "email", buf, "malformed encrypted value");
    expect_fail(kr, "email", NULL, "malformed encrypted value");
    free(v);
    fe_keyring_free(kr);
}

static void test_wrong_key(void **state)
{
    (void)state;
    fe_keyring_t *a = ring(k1, idx1), *b = ring(k2, idx1);
    char *v = encrypt_ok(a, "email", "secret", 6);
    expect_fail(b, "email", v, "unknown key id " K1_KID);

    /* Same label, wrong key: relabel the value with b's own key id. */
    char *t = relabel(v, "v1", fe_keyring_current_id(b));
    expect_fail(b, "email", t, "authentication failed");
    free(t);
    free(v);
    fe_keyring_free(a);
    fe_keyring_free(b);
}

static void test_field_is_bound(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    char *v = encrypt_ok(kr, "email", "alice@example.com", 17);
    expect_fail(kr, "phone", v, "authentication failed");
    expect_fail(kr, "Email", v, "authentication failed");
    expect_fail(kr, "email2", v, "authentication failed");
    expect_plain(kr, "email", v, "alice@example.com", 17);
    free(v);
    fe_keyring_free(kr);
}

/* ---- rotation ------------------------------------------------------------ */

static void test_rotation(void **state)
{
    (void)state;
    fe_keyring_t *before = ring(k1, idx1);
    char *old_val = encrypt_ok(before, "email", "alice@example.com", 17);
    fe_keyring_free(before);

    fe_keyring_t *after = ring(k2, idx1);
    /* Without the old key the value names the key it needs. */
    expect_fail(after, "email", old_val, "unknown key id " K1_KID);
    hd_err_t err = {{0}};
    char *pt = NULL;
    size_t ptlen = 0;
    assert_int_equal(fe_decrypt(after, "email", old_val, &pt, &ptlen, &err), -1);
    assert_string_equal(err.msg, "unknown key id " K1_KID);

    assert_int_equal(fe_keyring_add_old(after, k1), 0);
    expect_plain(after, "email", old_val, "alice@example.com", 17);

    /* New values use the new key. */
    char kid2[9];
    fe_key_id(k2, kid2);
    assert_string_equal(fe_keyring_current_id(after), kid2);
    char *new_val = encrypt_ok(after, "email", "bob@example.com", 15);
    assert_int_equal(strncmp(new_val + 3, kid2, 8), 0);
    expect_plain(after, "email", new_val, "bob@example.com", 15);

    /* Re-adding a key already present is harmless; several old keys work. */
    assert_int_equal(fe_keyring_add_old(after, k1), 0);
    assert_int_equal(fe_keyring_add_old(after, k2), 0);
    fe_keyring_t *oldest = ring(k3, idx1);
    char *oldest_val = encrypt_ok(oldest, "email", "carol@example.com", 17);
    fe_keyring_free(oldest);
    expect_fail(after, "email", oldest_val, "unknown key id");
    assert_int_equal(fe_keyring_add_old(after, k3), 0);
    expect_plain(after, "email", oldest_val, "carol@example.com", 17);
    expect_plain(after, "email", old_val, "alice@example.com", 17);

    /* An old key cannot decrypt what the new key wrote. */
    fe_keyring_t *only_old = ring(k1, idx1);
    expect_fail(only_old, "email", new_val, "unknown key id");
    fe_keyring_free(only_old);

    /* A different key whose id collides with one present is refused:
     * values under that id would be ambiguous. */
    uint8_t ca[32], cb[32];
    char kida[9], kidb[9];
    from_hex(collide_a_hex, ca);
    from_hex(collide_b_hex, cb);
    fe_key_id(ca, kida);
    fe_key_id(cb, kidb);
    assert_string_equal(kida, kidb);
    assert_memory_not_equal(ca, cb, 32);
    fe_keyring_t *coll = ring(ca, idx1);
    assert_int_equal(fe_keyring_add_old(coll, cb), -1);
    assert_int_equal(fe_keyring_add_old(coll, k1), 0);
    assert_int_equal(fe_keyring_add_old(coll, cb), -1);
    fe_keyring_free(coll);
    coll = ring(k1, idx1);
    assert_int_equal(fe_keyring_add_old(coll, ca), 0);
    assert_int_equal(fe_keyring_add_old(coll, cb), -1);
    fe_keyring_free(coll);

    free(oldest_val);
    free(new_val);
    free(old_val);
    fe_keyring_free(after);
}

/* ---- blind index --------------------------------------------------------- */

static void bi(const fe_keyring_t *kr, const char *field, const char *value, char out[65])
{
    memset(out, 'x', 65);
    assert_int_equal(fe_blind_index(kr, field, value, out), 0);
    assert_int_equal(strlen(out), 64);
}

static void test_blind_index(void **state)
{
    (void)state;
    fe_keyring_t *kr = ring(k1, idx1);
    char a[65], b[65];

    bi(kr, "email", "alice@example.com", a);
    assert_string_equal(a, IDX1_EMAIL_BI);
    bi(kr, "email", " Alice@Example.COM ", b);
    assert_string_equal(b, IDX1_EMAIL_BI);
    bi(kr, "email", "\talice@EXAMPLE.com\r\n", b);
    assert_string_equal(b, IDX1_EMAIL_BI);
    bi(kr, "email", "alice@example.org", b);
    assert_string_not_equal(b, IDX1_EMAIL_BI);

    bi(kr, "phone", "+1 (415) 555-0100", a);
    assert_string_equal(a, IDX1_PHONE_BI);
    bi(kr, "phone", "+14155550100", b);
    assert_string_equal(b, IDX1_PHONE_BI);
    bi(kr, "phone", " +1.415.555.0100 ", b);
    assert_string_equal(b, IDX1_PHONE_BI);
    /* The '+' is significant, and only when leading. */
    bi(kr, "phone", "1 (415) 555-0100", b);
    assert_string_not_equal(b, IDX1_PHONE_BI);
    bi(kr, "phone", "1+4155550100", b);
    assert_string_not_equal(b, IDX1_PHONE_BI);
    bi(kr, "phone", "14155550100", a);
    assert_string_equal(a, b);
    bi(kr, "phone", "+1+415+555+0100", b);
    assert_string_equal(b, IDX1_PHONE_BI);

    /* Other fields: trimmed only, case kept. */
    bi(kr, "name", "  Bob ", a);
    bi(kr, "name", "Bob", b);
    assert_string_equal(a, b);
    bi(kr, "name", "bob", b);
    assert_string_not_equal(a, b);

    /* Field separates indexes, including the ("ab","c") / ("a","bc") split. */
    bi(kr, "email", "alice@example.com", a);
    bi(kr, "username", "alice@example.com", b);
    assert_string_not_equal(a, b);
    bi(kr, "ab", "c", a);
    bi(kr, "a", "bc", b);
    assert_string_not_equal(a, b);

    assert_int_equal(fe_blind_index(kr, "email", NULL, a), -1);
    assert_int_equal(fe_blind_index(kr, "", "x", a), -1);
    fe_keyring_free(kr);
}

static void test_blind_index_keys(void **state)
{
    (void)state;
    fe_keyring_t *r1 = ring(k1, idx1), *r2 = ring(k2, idx1), *r3 = ring(k1, idx2);
    assert_int_equal(fe_keyring_add_old(r2, k1), 0);
    char a[65], b[65], c[65];
    bi(r1, "email", "alice@example.com", a);
    bi(r2, "email", "Alice@example.com", b);
    bi(r3, "email", "alice@example.com", c);
    /* Rotation of the encryption key leaves the index alone... */
    assert_string_equal(a, b);
    /* ...while another index key gives another index. */
    assert_string_not_equal(a, c);
    fe_keyring_free(r1);
    fe_keyring_free(r2);
    fe_keyring_free(r3);
}

/* ---- key parsing --------------------------------------------------------- */

static void expect_key_error(const char *in, const char *want)
{
    hd_err_t err = {{0}};
    uint8_t out[32];
    memset(out, 0xee, sizeof(out));
    assert_int_equal(fe_decode_key(in, out, &err), -1);
    assert_string_equal(err.msg, want);
    for (int i = 0; i < 32; i++)
        assert_int_equal(out[i], 0xee);
}

static void test_decode_key(void **state)
{
    (void)state;
    hd_err_t err = {{0}};
    uint8_t out[32];
    assert_int_equal(fe_decode_key(K1_BASE64, out, &err), 0);
    assert_memory_equal(out, k1, 32);
    memset(out, 0, sizeof(out));
    assert_int_equal(fe_decode_key(" " K1_BASE64 "\n", out, &err), 0);
    assert_memory_equal(out, k1, 32);

    expect_key_error("AAAAAAAAAAAAAAAAAAAAAA==", "expected base64 of 32 bytes, got 16 bytes");
    expect_key_error("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                     "expected base64 of 32 bytes, got 33 bytes");
    expect_key_error("", "expected base64 of 32 bytes, got 0 bytes");
    expect_key_error("not base64 at all!", "not valid base64");
    expect_key_error("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "not valid base64");
    expect_key_error("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=x", "not valid base64");
    expect_key_error(NULL, "not valid base64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_key_id),           cmocka_unit_test(test_nonce_is_fresh),
        cmocka_unit_test(test_encrypt_bad_args), cmocka_unit_test(test_tamper_each_region),
        cmocka_unit_test(test_malformed_values), cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_field_is_bound),   cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_blind_index),      cmocka_unit_test(test_blind_index_keys),
        cmocka_unit_test(test_decode_key),
    };
    return cmocka_run_group_tests(tests, setup_keys, NULL);
}

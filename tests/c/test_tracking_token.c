/*
 * test_tracking_token.c - unit tests for engine/tracking's open and click
 * tokens: the key derivation, the documented byte layout, round trips,
 * tampering, key rotation, malformed tokens, expiry.
 *
 * Tokens are checked against the format tracking.h documents, rebuilt here
 * byte by byte with OpenSSL directly (SHA-256, HMAC-SHA256) and a base64url
 * codec of this file's own, so the integration tests' Python minting and the
 * C code agree on one definition: round trips, every single-character
 * change, other keys, bad lengths and alphabets, a kind byte changed without
 * a new MAC, expiry at and around now. The URL check and the HTML rewrite
 * are in test_tracking.c; what both use is in tracking_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "engine/tracking.h"
#include "tracking_fixture.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

#define COMM_UC "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static track_key_t other_key(void)
{
    uint8_t e[32];
    enc_key(e);
    e[31] ^= 1;
    track_key_t k;
    track_key_derive(e, &k);
    return k;
}

/* base64url without padding, written here so the product's codec is not
 * checked against itself. Caller frees. */
static char *enc64(const uint8_t *in, size_t n)
{
    char *out = malloc(n * 4 / 3 + 4);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = B64URL[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = B64URL[v & 63];
    }
    out[o] = '\0';
    return out;
}

/* Decodes a token of n characters into its bytes (fails the test if it is
 * not n characters of the base64url alphabet); returns the byte count. */
static size_t dec_n(const char *tok, size_t n, uint8_t *out)
{
    assert_int_equal(strlen(tok), n);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(B64URL, tok[i]);
        assert_non_null(c);
        acc = acc << 6 | (uint32_t)(c - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

static void dec_tok(const char *tok, uint8_t out[TOK_BYTES])
{
    assert_int_equal(dec_n(tok, TOK_CHARS, out), TOK_BYTES);
}

static void sha256(const char *s, uint8_t out[32])
{
    SHA256((const unsigned char *)s, strlen(s), out);
}

static void hmac(const uint8_t *key, size_t keylen, const uint8_t *data, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len));
    assert_int_equal(len, 32);
}

/* A token built from the documented layout (version 2 when ver is 2 or
 * more: with the key id), MAC'd with mac_key. Caller frees. */
static char *mint_with(const track_key_t *mac_key, const uint8_t id[4], uint8_t ver, uint8_t kind,
                       uint32_t exp, const uint8_t comm[16], uint16_t index, const char *url)
{
    uint8_t p[TOK_BYTES] = {0};
    size_t f = ver >= 2 ? 6 : 2, head = ver >= 2 ? 36 : 32;
    p[0] = ver;
    p[1] = kind;
    if (ver >= 2)
        memcpy(p + 2, id, 4);
    p[f] = (uint8_t)(exp >> 24), p[f + 1] = (uint8_t)(exp >> 16);
    p[f + 2] = (uint8_t)(exp >> 8), p[f + 3] = (uint8_t)exp;
    memcpy(p + f + 4, comm, 16);
    p[f + 20] = (uint8_t)(index >> 8), p[f + 21] = (uint8_t)index;
    if (url) {
        uint8_t h[32];
        sha256(url, h);
        memcpy(p + f + 22, h, 8);
    }
    uint8_t mac[32];
    hmac(mac_key->k, 32, p, head, mac);
    memcpy(p + head, mac, 16);
    return enc64(p, head + 16);
}

static char *mint(const track_key_t *key, uint8_t ver, uint8_t kind, uint32_t exp,
                  const uint8_t id[16], uint16_t index, const char *url)
{
    return mint_with(key, key->id, ver, kind, exp, id, index, url);
}

static const uint8_t COMM_BYTES[16] = {0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
                                       0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

static bool all_b64url(const char *s)
{
    for (; *s; s++)
        if (strchr(B64URL, *s) == NULL)
            return false;
    return true;
}

/* ---- key and token format --------------------------------------------- */

static void test_key_is_hmac_of_the_label(void **state)
{
    (void)state;
    uint8_t e[32], want[32];
    enc_key(e);
    hmac(e, 32, (const uint8_t *)"herald/tracking/v1", 18, want);
    track_key_t k = test_key();
    assert_memory_equal(k.k, want, 32);
    track_key_t o = other_key();
    assert_memory_not_equal(k.k, o.k, 32);
}

static void test_token_bytes_follow_the_documented_layout(void **state)
{
    (void)state;
    track_key_t k = test_key();
    const char *url = "https://vendors.example.com/a?x=1&y=2";
    char *c = track_token(&k, 'c', COMM, 258, LATER, url);
    char *want = mint(&k, 2, 'c', (uint32_t)LATER, COMM_BYTES, 258, url);
    assert_string_equal(c, want);
    uint8_t b[TOK_BYTES];
    dec_tok(c, b);
    assert_int_equal(b[0], 2);
    assert_int_equal(b[1], 'c');
    /* the signing key's id: the encryption key's, as stored values name it */
    uint8_t e[32];
    enc_key(e);
    char kid[9], got[9];
    fe_key_id(e, kid);
    snprintf(got, sizeof(got), "%02x%02x%02x%02x", b[2], b[3], b[4], b[5]);
    assert_string_equal(got, kid);
    assert_int_equal((uint32_t)b[6] << 24 | (uint32_t)b[7] << 16 | (uint32_t)b[8] << 8 | b[9],
                     (uint32_t)LATER);
    assert_memory_equal(b + 10, COMM_BYTES, 16);
    assert_int_equal(b[26], 1);
    assert_int_equal(b[27], 2);
    free(c);
    free(want);

    /* the pixel: no URL hash, whatever url is passed */
    static const uint8_t zero[8] = {0};
    char *o = track_token(&k, 'o', COMM, 0, LATER, NULL);
    char *o2 = track_token(&k, 'o', COMM, 0, LATER, "https://ignored.example/");
    want = mint(&k, 2, 'o', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    assert_string_equal(o, want);
    assert_string_equal(o2, want);
    dec_tok(o, b);
    assert_memory_equal(b + 28, zero, 8);
    free(o);
    free(o2);
    free(want);
}

/* ---- round trips ------------------------------------------------------ */

static void test_round_trip_click_and_open(void **state)
{
    (void)state;
    track_key_t k = test_key();
    static const int idx[] = {0, 1, 255, 256, 65535};
    const char *url = "https://vendors.example.com/c";
    for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
        char *t = track_token(&k, 'c', COMM_UC, idx[i], LATER, url);
        assert_int_equal(strlen(t), TOK_CHARS);
        assert_true(all_b64url(t));
        track_claim_t c;
        assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK);
        assert_int_equal(c.kind, 'c');
        assert_string_equal(c.comm_id, COMM); /* lowercase, with dashes */
        assert_int_equal(c.index, idx[i]);
        assert_int_equal(c.expires, LATER);
        assert_true(track_url_matches(&c, url));
        assert_false(track_url_matches(&c, "https://vendors.example.com/a"));
        assert_false(track_url_matches(&c, "https://vendors.example.com/c/"));
        assert_false(track_url_matches(&c, NULL));
        free(t);
    }

    char *t = track_token(&k, 'o', COMM, 0, LATER, NULL);
    assert_int_equal(strlen(t), TOK_CHARS);
    assert_true(all_b64url(t));
    track_claim_t c;
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'o');
    assert_string_equal(c.comm_id, COMM);
    assert_int_equal(c.index, 0);
    assert_int_equal(c.expires, LATER);
    /* an open claim never matches a URL, not even the empty one whose hash
     * it does not carry */
    assert_false(track_url_matches(&c, url));
    assert_false(track_url_matches(&c, ""));
    free(t);
}

static void test_expiry_beyond_int32_is_read_unsigned(void **state)
{
    (void)state;
    track_key_t k = test_key();
    int64_t exp = 4000000000; /* 2096: above INT32_MAX, fits the 4 bytes */
    char *t = track_token(&k, 'c', COMM, 7, exp, "https://x.example/");
    track_claim_t c;
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK);
    assert_int_equal(c.expires, exp);
    free(t);
    /* beyond the four bytes (a huge settings.tracking.link_days): clamped to
     * the last second they hold, never wrapped into the past */
    t = track_token(&k, 'c', COMM, 7, (int64_t)1 << 33, "https://x.example/");
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK);
    assert_int_equal(c.expires, (int64_t)UINT32_MAX);
    free(t);
}

/* ---- tampering -------------------------------------------------------- */

static void test_every_single_character_change_is_invalid(void **state)
{
    (void)state;
    track_key_t k = test_key();
    char *toks[2] = {track_token(&k, 'c', COMM, 3, LATER, "https://vendors.example.com/a"),
                     track_token(&k, 'o', COMM, 0, LATER, NULL)};
    for (int n = 0; n < 2; n++) {
        char t[TOK_CHARS + 1];
        memcpy(t, toks[n], TOK_CHARS + 1);
        track_claim_t c;
        assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK);
        for (int i = 0; i < TOK_CHARS; i++) {
            char orig = t[i];
            for (const char *s = B64URL; *s; s++) {
                if (*s == orig)
                    continue;
                t[i] = *s;
                track_check_t rc = track_verify(&k, t, NOW, &c);
                if (rc != TRACK_INVALID)
                    fail_msg("token %s (position %d '%c' -> '%c') gave %d, want INVALID", t, i,
                             orig, *s, (int)rc);
            }
            t[i] = orig;
        }
        free(toks[n]);
    }
}

static void test_token_under_another_key_is_invalid(void **state)
{
    (void)state;
    track_key_t k = test_key(), o = other_key();
    char *t = track_token(&o, 'c', COMM, 0, LATER, "https://vendors.example.com/a");
    char *p = track_token(&o, 'o', COMM, 0, LATER, NULL);
    track_claim_t c;
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&k, p, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&o, t, NOW, &c), TRACK_OK);
    free(t);
    free(p);
}

/* ---- key rotation (issue 17, item 5) ---------------------------------- */

static void enc_keys(uint8_t oldk[32], uint8_t newk[32], uint8_t gone[32])
{
    enc_key(oldk);
    for (int i = 0; i < 32; i++) {
        newk[i] = (uint8_t)(0xa0 + i);
        gone[i] = (uint8_t)(0x40 + i);
    }
}

static void test_rotation_keeps_tokens_of_every_key_in_the_ring(void **state)
{
    (void)state;
    uint8_t oldk[32], newk[32], gone[32];
    enc_keys(oldk, newk, gone);
    track_keys_t before, after, pruned;
    track_keys_init(&before, oldk, NULL, 0);
    uint8_t olds[2][32];
    memcpy(olds[0], gone, 32);
    memcpy(olds[1], oldk, 32);
    track_keys_init(&after, newk, (const uint8_t(*)[32])olds,
                    2); /* rotated: new current, both old kept */
    track_keys_init(&pruned, newk, (const uint8_t(*)[32])olds,
                    1); /* rotated, the old key removed */
    assert_int_equal(after.n, 3);
    assert_memory_not_equal(before.keys[0].id, after.keys[0].id, 4);

    const char *url = "https://vendors.example.com/a";
    char *click = track_token(&before.keys[0], 'c', COMM, 2, LATER, url);
    char *open = track_token(&before.keys[0], 'o', COMM, 0, LATER, NULL);
    char *fresh = track_token(&after.keys[0], 'c', COMM, 2, LATER, url);
    track_claim_t c;
    /* sent before the rotation: still good while the old key is configured */
    assert_int_equal(track_verify_ring(&after, click, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'c');
    assert_int_equal(c.index, 2);
    assert_string_equal(c.comm_id, COMM);
    assert_true(track_url_matches(&c, url));
    assert_int_equal(track_verify_ring(&after, open, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'o');
    assert_int_equal(track_verify_ring(&after, fresh, NOW, &c), TRACK_OK);
    /* expiry is still expiry */
    assert_int_equal(track_verify_ring(&after, click, LATER + 1, &c), TRACK_EXPIRED);
    /* the old key removed from the ring: its tokens are invalid */
    assert_int_equal(track_verify_ring(&pruned, click, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify_ring(&pruned, open, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify_ring(&pruned, fresh, NOW, &c), TRACK_OK);
    /* the new key's tokens mean nothing to a ring without it */
    assert_int_equal(track_verify_ring(&before, fresh, NOW, &c), TRACK_INVALID);
    /* tampered: one character of an old token changed */
    click[40] = click[40] == 'A' ? 'B' : 'A';
    assert_int_equal(track_verify_ring(&after, click, NOW, &c), TRACK_INVALID);
    free(click);
    free(open);
    free(fresh);
}

static void test_a_token_is_checked_with_the_key_its_id_names(void **state)
{
    (void)state;
    uint8_t oldk[32], newk[32], gone[32];
    enc_keys(oldk, newk, gone);
    uint8_t olds[1][32];
    memcpy(olds[0], oldk, 32);
    track_keys_t ring;
    track_keys_init(&ring, newk, (const uint8_t(*)[32])olds, 1);
    /* MAC'd by the old key but naming the new one (both in the ring):
     * relabelling a token is tampering */
    char *t =
        mint_with(&ring.keys[1], ring.keys[0].id, 2, 'o', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    char *ok =
        mint_with(&ring.keys[1], ring.keys[1].id, 2, 'o', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    track_claim_t c;
    assert_int_equal(track_verify_ring(&ring, t, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify_ring(&ring, ok, NOW, &c), TRACK_OK);
    free(t);
    free(ok);
}

/* Tokens sent before key ids (version 1, 64 characters) name no key: every
 * key of the ring is tried, so they survive a rotation too. */
static void test_version_1_tokens_verify_with_any_key_of_the_ring(void **state)
{
    (void)state;
    uint8_t oldk[32], newk[32], gone[32];
    enc_keys(oldk, newk, gone);
    uint8_t olds[1][32];
    memcpy(olds[0], oldk, 32);
    track_keys_t ring, fresh_only;
    track_keys_init(&ring, newk, (const uint8_t(*)[32])olds, 1);
    track_keys_init(&fresh_only, newk, NULL, 0);
    track_key_t old = test_key();
    const char *url = "https://vendors.example.com/a";
    char *v1 = mint(&old, 1, 'c', (uint32_t)LATER, COMM_BYTES, 5, url);
    assert_int_equal(strlen(v1), 64);
    track_claim_t c;
    assert_int_equal(track_verify_ring(&ring, v1, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'c');
    assert_int_equal(c.index, 5);
    assert_int_equal(c.expires, LATER);
    assert_string_equal(c.comm_id, COMM);
    assert_true(track_url_matches(&c, url));
    assert_int_equal(track_verify_ring(&fresh_only, v1, NOW, &c), TRACK_INVALID);
    /* a version 1 token is 48 bytes; labelled 2 it is not a token */
    uint8_t b[48];
    assert_int_equal(dec_n(v1, 64, b), 48);
    b[0] = 2;
    char *relabelled = enc64(b, 48);
    assert_int_equal(track_verify_ring(&ring, relabelled, NOW, &c), TRACK_INVALID);
    free(relabelled);
    free(v1);
}

static void test_malformed_tokens_are_invalid(void **state)
{
    (void)state;
    track_key_t k = test_key();
    char *good = track_token(&k, 'c', COMM, 0, LATER, "https://vendors.example.com/a");
    char buf[512];
    track_claim_t c;

    assert_int_equal(track_verify(&k, NULL, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&k, "", NOW, &c), TRACK_INVALID);
    /* truncated */
    static const size_t cut[] = {69, 68, 67, 66, 64, 63, 44, 43, 4, 1};
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        snprintf(buf, sizeof(buf), "%.*s", (int)cut[i], good);
        assert_int_equal(track_verify(&k, buf, NOW, &c), TRACK_INVALID);
    }
    /* extended: one, two, four more characters (the last decodes cleanly to
     * 55 bytes), padding, a second token */
    static const char *const tails[] = {"A", "AA", "AAAA", "=", "==", "\n", " "};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s", good, tails[i]);
        assert_int_equal(track_verify(&k, buf, NOW, &c), TRACK_INVALID);
    }
    snprintf(buf, sizeof(buf), "%s%s", good, good); /* 140 chars: too long */
    assert_int_equal(track_verify(&k, buf, NOW, &c), TRACK_INVALID);
    /* 129 and more characters */
    for (size_t n = 129; n < 300; n += 57) {
        memset(buf, 'A', n);
        buf[n] = '\0';
        memcpy(buf, good, 64);
        assert_int_equal(track_verify(&k, buf, NOW, &c), TRACK_INVALID);
    }
    /* outside the base64url alphabet: the standard alphabet's '+' and '/',
     * and characters a URL path could carry */
    static const char bad[] = {'+', '/', '=', '.', '%', '~', '!', ' '};
    for (size_t i = 0; i < sizeof(bad); i++) {
        snprintf(buf, sizeof(buf), "%s", good);
        buf[30] = bad[i];
        assert_int_equal(track_verify(&k, buf, NOW, &c), TRACK_INVALID);
    }
    assert_int_equal(track_verify(&k, "../../../etc/passwd", NOW, &c), TRACK_INVALID);
    free(good);
}

static void test_kind_changed_without_a_new_mac_is_invalid(void **state)
{
    (void)state;
    track_key_t k = test_key();
    char *o = track_token(&k, 'o', COMM, 0, LATER, NULL);
    uint8_t b[TOK_BYTES];
    dec_tok(o, b);
    b[1] = 'c';
    char *forged = enc64(b, TOK_BYTES);
    track_claim_t c;
    assert_int_equal(track_verify(&k, forged, NOW, &c), TRACK_INVALID);
    free(forged);
    /* and back: the untouched bytes re-encoded are the original token */
    b[1] = 'o';
    char *same = enc64(b, TOK_BYTES);
    assert_string_equal(same, o);
    assert_int_equal(track_verify(&k, same, NOW, &c), TRACK_OK);
    free(same);
    free(o);
}

static void test_well_signed_but_unknown_version_or_kind_is_invalid(void **state)
{
    (void)state;
    track_key_t k = test_key();
    track_claim_t c;
    char *ok = mint(&k, 2, 'c', (uint32_t)LATER, COMM_BYTES, 0, "https://a.example/");
    assert_int_equal(track_verify(&k, ok, NOW, &c), TRACK_OK);
    free(ok);
    char *v2 = mint(&k, 3, 'c', (uint32_t)LATER, COMM_BYTES, 0, "https://a.example/");
    char *v0 = mint(&k, 0, 'o', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    char *kx = mint(&k, 2, 'x', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    char *kO = mint(&k, 2, 'O', (uint32_t)LATER, COMM_BYTES, 0, NULL);
    assert_int_equal(track_verify(&k, v2, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&k, v0, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&k, kx, NOW, &c), TRACK_INVALID);
    assert_int_equal(track_verify(&k, kO, NOW, &c), TRACK_INVALID);
    free(v2);
    free(v0);
    free(kx);
    free(kO);
}

/* ---- expiry ----------------------------------------------------------- */

static void test_expiry(void **state)
{
    (void)state;
    track_key_t k = test_key();
    track_claim_t c;
    char *t = track_token(&k, 'c', COMM, 5, NOW, "https://a.example/");
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_OK); /* the last second */
    assert_int_equal(track_verify(&k, t, NOW - 1, &c), TRACK_OK);
    assert_int_equal(track_verify(&k, t, NOW + 1, &c), TRACK_EXPIRED);
    assert_int_equal(c.kind, 'c');
    assert_string_equal(c.comm_id, COMM);
    assert_int_equal(c.index, 5);
    assert_int_equal(c.expires, NOW);
    free(t);

    t = track_token(&k, 'o', COMM, 0, NOW - 86400, NULL);
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_EXPIRED);
    assert_int_equal(c.kind, 'o');
    free(t);

    /* expired and tampered: the MAC is checked first */
    t = track_token(&k, 'c', COMM, 5, NOW - 10, "https://a.example/");
    t[40] = t[40] == 'A' ? 'B' : 'A';
    assert_int_equal(track_verify(&k, t, NOW, &c), TRACK_INVALID);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_is_hmac_of_the_label),
        cmocka_unit_test(test_token_bytes_follow_the_documented_layout),
        cmocka_unit_test(test_round_trip_click_and_open),
        cmocka_unit_test(test_expiry_beyond_int32_is_read_unsigned),
        cmocka_unit_test(test_every_single_character_change_is_invalid),
        cmocka_unit_test(test_token_under_another_key_is_invalid),
        cmocka_unit_test(test_rotation_keeps_tokens_of_every_key_in_the_ring),
        cmocka_unit_test(test_a_token_is_checked_with_the_key_its_id_names),
        cmocka_unit_test(test_version_1_tokens_verify_with_any_key_of_the_ring),
        cmocka_unit_test(test_malformed_tokens_are_invalid),
        cmocka_unit_test(test_kind_changed_without_a_new_mac_is_invalid),
        cmocka_unit_test(test_well_signed_but_unknown_version_or_kind_is_invalid),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_tracking.c - unit tests for engine/tracking (open and click tokens,
 * the URL check, the HTML rewrite).
 *
 * Tokens are checked against the format tracking.h documents, rebuilt here
 * byte by byte with OpenSSL directly (SHA-256, HMAC-SHA256) and a base64url
 * codec of this file's own, so the integration tests' Python minting and the
 * C code agree on one definition: round trips, every single-character
 * change, other keys, bad lengths and alphabets, a kind byte changed without
 * a new MAC, expiry at and around now. The rewrite is checked on the exact
 * output: which links go through /t/c/, in what order and with which index,
 * which stay as they were, where the pixel goes, and the stored link list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "engine/tracking.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

#define COMM    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define COMM_UC "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
#define BASE    "https://mail.example.com"
#define NOW     ((int64_t)1750000000)
#define LATER   (NOW + 365 * 86400)

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The encryption key of the integration tests: bytes 0..31. */
static void enc_key(uint8_t k[32])
{
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)i;
}

static track_key_t test_key(void)
{
    uint8_t e[32];
    enc_key(e);
    track_key_t k;
    track_key_derive(e, &k);
    return k;
}

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

/* A token of today's layout (version 2): 70 characters, 52 bytes. */
#define TOK_CHARS 70
#define TOK_BYTES 52

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

static track_check_t verify(const char *tok, int64_t now, track_claim_t *c)
{
    track_key_t k = test_key();
    return track_verify(&k, tok, now, c);
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

/* ---- track_url_ok ----------------------------------------------------- */

static void test_url_ok(void **state)
{
    (void)state;
    static const char *const good[] = {
        "http://a",
        "https://vendors.example.com/a?x=1&y=2",
        "HTTP://EXAMPLE.COM/",
        "HtTpS://example.com/path#frag",
        "https://user@example.com:8443/p?q=%20",
        "https://[::1]:8080/",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!track_url_ok(good[i]))
            fail_msg("track_url_ok(\"%s\") is false, want true", good[i]);

    static const char *const bad[] = {
        "",
        "javascript:alert(1)",
        "JAVASCRIPT://%0aalert(1)",
        "mailto:a@example.com",
        "tel:+15005550006",
        "ftp://example.com/",
        "data:text/html,hi",
        "//example.com/",
        "/relative",
        "example.com",
        "http:",
        "http:/x",
        "http://",
        "https://",
        "https:///x",
        "http://?q",
        "http://#f",
        "http://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/\r\nSet-Cookie: x=1",
        "https://example.com/\nx",
        "https://example.com/\rx",
        "https://example.com/\tx",
        "https://example.com/\x7f",
        "https://example.com/\x01",
        " https://example.com/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (track_url_ok(bad[i]))
            fail_msg("track_url_ok(\"%s\") is true, want false", bad[i]);
    assert_false(track_url_ok(NULL));

    /* length: 2,000 bytes pass, 2,001 do not */
    char *u = malloc(2100);
    assert_non_null(u);
    memcpy(u, "https://example.com/", 20);
    memset(u + 20, 'a', 2000 - 20);
    u[2000] = '\0';
    assert_true(track_url_ok(u));
    u[2000] = 'a';
    u[2001] = '\0';
    assert_false(track_url_ok(u));
    memset(u + 20, 'a', 2099 - 20);
    u[2099] = '\0';
    assert_false(track_url_ok(u));
    free(u);
}

/* ---- track_rewrite_html ----------------------------------------------- */

/* The pixel tag output[at..] must be: an <img> whose src is
 * BASE/t/o/<open token for COMM>.gif. Returns its length. */
static size_t check_pixel(const char *s, int64_t expires)
{
    assert_memory_equal(s, "<img ", 5);
    const char *end = strchr(s, '>');
    assert_non_null(end);
    const char *src = strstr(s, "src=\"" BASE "/t/o/");
    assert_non_null(src);
    assert_true(src < end);
    src += strlen("src=\"" BASE "/t/o/");
    char tok[TOK_CHARS + 1];
    memcpy(tok, src, TOK_CHARS);
    tok[TOK_CHARS] = '\0';
    assert_memory_equal(src + TOK_CHARS, ".gif\"", 5);
    track_claim_t c;
    assert_int_equal(verify(tok, NOW, &c), TRACK_OK);
    assert_int_equal(c.kind, 'o');
    assert_string_equal(c.comm_id, COMM);
    assert_int_equal(c.expires, expires);
    return (size_t)(end + 1 - s);
}

/* Rewrites html and checks the result is exactly want_before + pixel +
 * want_after (pixel as check_pixel wants it), where "{N}" in the wants
 * stands for BASE/t/c/<token of link N>; the links list must be want_links.
 * Every token must verify and match its URL. */
static void expect_rewrite(const char *html, const char *skip, const char *want_before,
                           const char *want_after, const char *const *want_links, int nlinks)
{
    track_key_t k = test_key();
    char *links = NULL;
    char *out = track_rewrite_html(&k, html, BASE, COMM, LATER, skip, &links);
    assert_non_null(out);
    assert_non_null(links);

    cJSON *arr = cJSON_Parse(links);
    if (arr == NULL || !cJSON_IsArray(arr))
        fail_msg("links_json %s is not a JSON array", links);
    if (cJSON_GetArraySize(arr) != nlinks)
        fail_msg("links_json %s has %d entries, want %d", links, cJSON_GetArraySize(arr), nlinks);
    for (int i = 0; i < nlinks; i++) {
        cJSON *e = cJSON_GetArrayItem(arr, i);
        assert_true(cJSON_IsString(e));
        assert_string_equal(e->valuestring, want_links[i]);
    }
    cJSON_Delete(arr);

    /* expand "{N}" with the tokens the product must have made */
    char want[8192];
    size_t w = 0;
    for (int part = 0; part < 2; part++) {
        const char *s = part == 0 ? want_before : want_after;
        while (*s) {
            if (s[0] == '{' && s[1] >= '0' && s[1] <= '9' && s[2] == '}') {
                int n = s[1] - '0';
                assert_true(n < nlinks);
                char *t = track_token(&k, 'c', COMM, n, LATER, want_links[n]);
                w += (size_t)snprintf(want + w, sizeof(want) - w, "%s/t/c/%s", BASE, t);
                free(t);
                s += 3;
            } else {
                want[w++] = *s++;
            }
            assert_true(w < sizeof(want) - 100);
        }
        if (part == 0)
            want[w++] = '\x01'; /* where the pixel goes */
    }
    want[w] = '\0';

    const char *mark = strchr(want, '\x01');
    size_t before = (size_t)(mark - want);
    if (strncmp(out, want, before) != 0)
        fail_msg("rewrite of\n  %s\ngave\n  %s\nwant (before the pixel)\n  %.*s", html, out,
                 (int)before, want);
    size_t px = check_pixel(out + before, LATER);
    if (strcmp(out + before + px, mark + 1) != 0)
        fail_msg("rewrite of\n  %s\ngave\n  %s\nwant (after the pixel)\n  %s", html, out, mark + 1);

    /* every click token in the output verifies and names its URL */
    int seen = 0;
    for (const char *p = strstr(out, BASE "/t/c/"); p; p = strstr(p + 1, BASE "/t/c/")) {
        char tok[TOK_CHARS + 1];
        memcpy(tok, p + strlen(BASE "/t/c/"), TOK_CHARS);
        tok[TOK_CHARS] = '\0';
        track_claim_t c;
        assert_int_equal(verify(tok, NOW, &c), TRACK_OK);
        assert_int_equal(c.kind, 'c');
        assert_string_equal(c.comm_id, COMM);
        assert_int_equal(c.index, seen);
        assert_int_equal(c.expires, LATER);
        assert_true(track_url_matches(&c, want_links[seen]));
        seen++;
    }
    assert_int_equal(seen, nlinks);
    free(out);
    free(links);
}

static void test_rewrite_quotes_order_and_entities(void **state)
{
    (void)state;
    static const char *const links[] = {
        "https://vendors.example.com/a?x=1&y=2",
        "http://vendors.example.com/c",
        "HTTPS://Caps.Example.com/Q?a='b'",
    };
    expect_rewrite("<html><body><p><a href=\"https://vendors.example.com/a?x=1&amp;y=2\" "
                   "style=\"c\">A &amp; B</a>"
                   "<a class='v' href='http://vendors.example.com/c'>C</a>"
                   "<A\n  HREF = \"HTTPS://Caps.Example.com/Q?a=&#39;b&#39;\">D</A></p></body>"
                   "</html>",
                   NULL,
                   "<html><body><p><a href=\"{0}\" style=\"c\">A &amp; B</a>"
                   "<a class='v' href='{1}'>C</a>"
                   "<A\n  HREF = \"{2}\">D</A></p>",
                   "</body></html>", links, 3);
    /* numeric character references, decimal and hex, and a non-ASCII one;
     * a malformed one stays as written */
    static const char *const more[] = {
        "https://v.example/?a=1&b=2&c=3",
        "https://v.example/caf\xc3\xa9",
        "https://v.example/?q=&#xZZ;",
    };
    expect_rewrite("<a href=\"https://v.example/?a=1&#38;b=2&#x26;c=3\">1</a>"
                   "<a href=\"https://v.example/caf&#233;\">2</a>"
                   "<a href=\"https://v.example/?q=&#xZZ;\">3</a>",
                   NULL, "<a href=\"{0}\">1</a><a href=\"{1}\">2</a><a href=\"{2}\">3</a>", "",
                   more, 3);
}

static void test_rewrite_leaves_other_links_alone(void **state)
{
    (void)state;
    static const char *const links[] = {"https://vendors.example.com/c"};
    const char *html = "<body>"
                       "<a href=\"mailto:hi@example.com\">m</a>"
                       "<a href=\"tel:+15005550006\">t</a>"
                       "<a href=\"/relative/path\">r</a>"
                       "<a href=\"#top\">h</a>"
                       "<a href=\"javascript:alert(1)\">j</a>"
                       "<a href=\"ftp://files.example.com/\">f</a>"
                       "<a href=\"" BASE "/u/abc123\">Unsubscribe</a>"
                       "<a name=\"anchor\">no href</a>"
                       "<a id='x' data-href=\"https://not.a.link/\">data-href</a>"
                       "<abbr title=\"x\">abbr</abbr>"
                       "<area href=\"https://map.example.com/\" alt=\"\">"
                       "<address>a</address>"
                       "<a href=\"https://vendors.example.com/c\">c</a>"
                       "</body>";
    const char *before = "<body>"
                         "<a href=\"mailto:hi@example.com\">m</a>"
                         "<a href=\"tel:+15005550006\">t</a>"
                         "<a href=\"/relative/path\">r</a>"
                         "<a href=\"#top\">h</a>"
                         "<a href=\"javascript:alert(1)\">j</a>"
                         "<a href=\"ftp://files.example.com/\">f</a>"
                         "<a href=\"" BASE "/u/abc123\">Unsubscribe</a>"
                         "<a name=\"anchor\">no href</a>"
                         "<a id='x' data-href=\"https://not.a.link/\">data-href</a>"
                         "<abbr title=\"x\">abbr</abbr>"
                         "<area href=\"https://map.example.com/\" alt=\"\">"
                         "<address>a</address>"
                         "<a href=\"{0}\">c</a>";
    expect_rewrite(html, BASE "/u/", before, "</body>", links, 1);
}

static void test_rewrite_skip_prefix_is_a_prefix_not_a_substring(void **state)
{
    (void)state;
    /* a link that merely contains /u/, or is under another host's /u/, is
     * tracked; only links starting with the prefix stay direct */
    static const char *const links[] = {"https://other.example.com/u/x",
                                        "https://vendors.example.com/?next=" BASE "/u/x"};
    expect_rewrite("<a href=\"https://other.example.com/u/x\">1</a>"
                   "<a href=\"https://vendors.example.com/?next=" BASE "/u/x\">2</a>"
                   "<a href=\"" BASE "/u/x\">3</a>",
                   BASE "/u/",
                   "<a href=\"{0}\">1</a><a href=\"{1}\">2</a><a href=\"" BASE "/u/x\">3</a>", "",
                   links, 2);
}

static void test_rewrite_pixel_goes_before_the_last_body_end(void **state)
{
    (void)state;
    static const char *const links[] = {"https://a.example/"};
    /* two closing tags (one in the text), mixed case: the last one */
    expect_rewrite("<body><a href=\"https://a.example/\">a</a><p>&lt;/body&gt; </body> x</p>"
                   "</BODY>\n</html>",
                   NULL, "<body><a href=\"{0}\">a</a><p>&lt;/body&gt; </body> x</p>",
                   "</BODY>\n</html>", links, 1);
    /* no </body>: appended */
    expect_rewrite("<p><a href='https://a.example/'>a</a></p>", NULL, "<p><a href='{0}'>a</a></p>",
                   "", links, 1);
    /* no links at all: still a pixel, and an empty list */
    expect_rewrite("<html><Body>hi</Body></html>", NULL, "<html><Body>hi", "</Body></html>", NULL,
                   0);
    expect_rewrite("", NULL, "", "", NULL, 0);
}

static void test_rewrite_survives_broken_markup(void **state)
{
    (void)state;
    static const char *const links[] = {"https://b.example/"};
    /* An unterminated quote swallows what follows up to the next quote, as
     * a browser reads it: that "URL" holds spaces and markup, so nothing is
     * rewritten and everything is copied as it is. */
    expect_rewrite("<a href=\"https://a.example/>x</a><a href=\"https://b.example/\">b</a>"
                   "<a href=\"https://c.example/",
                   NULL,
                   "<a href=\"https://a.example/>x</a><a href=\"https://b.example/\">b</a>"
                   "<a href=\"https://c.example/",
                   "", NULL, 0);
    /* a quoted value holding "href=" and ">" is skipped over whole; the real
     * href after it is the link */
    expect_rewrite("<a title=\"see href='https://evil.example/' > here\" "
                   "href=\"https://b.example/\">b</a>",
                   NULL, "<a title=\"see href='https://evil.example/' > here\" href=\"{0}\">b</a>",
                   "", links, 1);
}

static void test_rewrite_url_with_a_space_stays_direct(void **state)
{
    (void)state;
    /* not fit for a Location header: never tracked, never stored */
    expect_rewrite(
        "<a href=\"https://a.example/x y\">1</a><a href=\"https://a.example/\r\n\">2</a>", NULL,
        "<a href=\"https://a.example/x y\">1</a><a href=\"https://a.example/\r\n\">2</a>", "", NULL,
        0);
}

/* issue 17 item 11: a context's javascript:/data:/vbscript: URL never becomes a
 * link, however it is spelled; http, https, mailto, tel and relative stay. */
static void test_safe_links_drop_other_schemes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", " \njavascript:x",
        "&#106;avascript:x",   "&#x6A;avascript:x",   "data:text/html,<b>x",   "vbscript:msgbox",
        "file:///etc/passwd",  "jav&#x09;ascript:x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char html[256];
        snprintf(html, sizeof(html), "<p><a class=\"v\" href=\"%s\">Vendor</a></p>", bad[i]);
        int dropped = -1;
        char *out = track_safe_links(html, &dropped);
        assert_int_equal(dropped, 1);
        assert_string_equal(out, "<p><a class=\"v\" href=\"#\">Vendor</a></p>");
        free(out);
    }
    const char *good = "<a href=\"https://x.example/a?b=c:d\">1</a><a href='http://y'>2</a>"
                       "<a href=\"mailto:ana@example.com\">3</a><a href=\"tel:+33612345678\">4</a>"
                       "<a href=\"/relative/path:x\">5</a><a href=\"#top\">6</a>"
                       "<a href=\"a-rather-long-relative-name/file\">7</a><a name=\"x\">8</a>";
    int dropped = -1;
    char *out = track_safe_links(good, &dropped);
    assert_int_equal(dropped, 0);
    assert_string_equal(out, good);
    free(out);
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
        cmocka_unit_test(test_url_ok),
        cmocka_unit_test(test_rewrite_quotes_order_and_entities),
        cmocka_unit_test(test_rewrite_leaves_other_links_alone),
        cmocka_unit_test(test_rewrite_skip_prefix_is_a_prefix_not_a_substring),
        cmocka_unit_test(test_rewrite_pixel_goes_before_the_last_body_end),
        cmocka_unit_test(test_rewrite_survives_broken_markup),
        cmocka_unit_test(test_rewrite_url_with_a_space_stays_direct),
        cmocka_unit_test(test_safe_links_drop_other_schemes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

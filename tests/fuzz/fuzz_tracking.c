/* fuzz_tracking.c - libFuzzer harness: open and click tracking tokens and
 * the links of an email (engine/tracking.c).
 *
 *   - arbitrary bytes as a token never verify (nothing is forged);
 *   - a token made from the input's fields verifies with those fields,
 *     expires after its time, and fails once one character is changed, or
 *     under another key;
 *   - the link sanitizer is idempotent (its output has nothing left to
 *     drop), and the tracking rewrite of its output only tracks http(s)
 *     URLs and always adds the pixel.
 *
 * Unsubscribe tokens do not exist yet (the unsubscribe link is a plain
 * URL); they get a harness when they do. */
#include "engine/tracking.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A version 2 token: 52 bytes (with the signing key's id) in base64url. */
#define TOKEN_LEN 70

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void check_token(const track_key_t *k, const track_key_t *other, const uint8_t *d,
                        const char *url)
{
    char kind = d[0] & 1 ? 'c' : 'o';
    char id[37];
    snprintf(id, sizeof(id), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13],
             d[14], d[15], d[16]);
    int index = d[17] << 8 | d[18];
    int64_t expires = (int64_t)((uint32_t)d[19] << 24 | (uint32_t)d[20] << 16 |
                                (uint32_t)d[21] << 8 | (uint32_t)d[22]);
    char *tok = track_token(k, kind, id, index, expires, url);
    if (tok == NULL || strlen(tok) != TOKEN_LEN)
        abort();
    track_claim_t c;
    if (track_verify(k, tok, expires, &c) != TRACK_OK)
        abort();
    if (c.kind != kind || strcmp(c.comm_id, id) != 0 || c.index != index || c.expires != expires)
        abort();
    if (track_url_matches(&c, url) != (kind == 'c'))
        abort();
    if (kind == 'c' && strcmp(url, "https://elsewhere.example/") != 0 &&
        track_url_matches(&c, "https://elsewhere.example/"))
        abort(); /* bound to its URL */
    if (track_verify(k, tok, expires + 1, &c) != TRACK_EXPIRED)
        abort();
    if (track_verify(other, tok, 0, &c) != TRACK_INVALID)
        abort();
    /* one character changed, wherever */
    size_t pos = d[23] % TOKEN_LEN;
    char was = tok[pos];
    tok[pos] = b64url[(strchr(b64url, was) - b64url + 1 + d[24] % 63) % 64];
    if (tok[pos] == was || track_verify(k, tok, 0, &c) != TRACK_INVALID)
        abort();
    tok[pos] = was;
    tok[TOKEN_LEN - 1] = '\0'; /* one character short */
    if (track_verify(k, tok, 0, &c) != TRACK_INVALID)
        abort();
    free(tok);
}

static void check_links(const track_key_t *k, const char *html)
{
    int dropped, again;
    char *safe = track_safe_links(html, &dropped);
    char *safe2 = track_safe_links(safe, &again);
    if (again != 0 || strcmp(safe, safe2) != 0)
        abort(); /* idempotent: nothing left to drop */
    char *links = NULL;
    char *out =
        track_rewrite_html(k, safe, "https://h.example", "0123abcd-0000-4000-8000-00000000c0de",
                           1900000000, "https://h.example/u/", &links);
    cJSON *arr = cJSON_Parse(links);
    if (!cJSON_IsArray(arr) || strstr(out, "https://h.example/t/o/") == NULL)
        abort();
    const cJSON *u;
    cJSON_ArrayForEach(u, arr)
    {
        if (!cJSON_IsString(u) || !track_url_ok(u->valuestring))
            abort(); /* only http(s) URLs fit for a Location header are tracked */
        if (strncmp(u->valuestring, "https://h.example/u/", 20) == 0)
            abort(); /* the unsubscribe page stays direct */
    }
    cJSON_Delete(arr);
    free(links);
    free(out);
    free(safe2);
    free(safe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static track_key_t k, other;
    static int ready;
    if (!ready) {
        uint8_t a[32], b[32];
        memset(a, 7, sizeof(a));
        memset(b, 8, sizeof(b));
        track_key_derive(a, &k);
        track_key_derive(b, &other);
        ready = 1;
    }
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    track_claim_t c;
    if (track_verify(&k, s, 0, &c) != TRACK_INVALID)
        abort(); /* without the key nothing verifies */
    check_links(&k, s);
    if (size >= 25) {
        /* the rest: a URL up to a NUL byte */
        check_token(&k, &other, data, s + 25);
    }
    free(s);
    return 0;
}

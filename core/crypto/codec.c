/*
 * codec.c - base64, base64url and hex (see codec.h). Plain C, no OpenSSL:
 * OpenSSL's EVP_DecodeBlock is lenient about whitespace and padding, and the
 * decoders here must be strict.
 */
#include "crypto/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64_std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const uint8_t *in, size_t len, const char *alphabet, int pad)
{
    if (len > (SIZE_MAX - 4) / 4 * 3)
        return NULL;
    size_t full = len / 3, rem = len % 3;
    size_t outlen = full * 4 + (rem == 0 ? 0 : pad ? 4 : rem + 1);
    char *out = malloc(outlen + 1);
    if (out == NULL)
        return NULL;

    char *p = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = alphabet[v >> 6 & 63];
        *p++ = alphabet[v & 63];
    }
    if (rem == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        if (pad) {
            *p++ = '=';
            *p++ = '=';
        }
    } else if (rem == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = alphabet[v >> 6 & 63];
        if (pad)
            *p++ = '=';
    }
    *p = '\0';
    return out;
}

char *b64_encode(const uint8_t *in, size_t len)
{
    return encode(in, len, b64_std_alphabet, 1);
}

char *b64url_encode(const uint8_t *in, size_t len)
{
    return encode(in, len, b64_url_alphabet, 0);
}

/*
 * Value of one base64 character, or -1. Branch-free range tests instead of a
 * lookup table so decoding secrets (keys from configuration) does not index
 * memory by secret data. Each term is (a - c) & (c - b), negative exactly
 * when a < c < b, so ">> 8" yields an all-ones mask for the matching range.
 */
static int b64_value(unsigned char uc, int url)
{
    int c = uc, v = -1;
    v += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); /* A-Z -> 0..25 */
    v += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); /* a-z -> 26..51 */
    v += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5);  /* 0-9 -> 52..61 */
    if (url) {
        v += (((0x2c - c) & (c - 0x2e)) >> 8) & 63; /* '-' -> 62 */
        v += (((0x5e - c) & (c - 0x60)) >> 8) & 64; /* '_' -> 63 */
    } else {
        v += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; /* '+' -> 62 */
        v += (((0x2e - c) & (c - 0x30)) >> 8) & 64; /* '/' -> 63 */
    }
    return v;
}

/* Decodes datalen characters (padding already stripped by the caller). */
static int decode(const char *in, size_t datalen, int url, uint8_t **out, size_t *outlen)
{
    size_t rem = datalen % 4;
    if (rem == 1)
        return -1;
    size_t n = datalen / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    uint8_t *buf = malloc(n + 1);
    if (buf == NULL)
        return -1;

    uint8_t *p = buf;
    size_t i = 0;
    for (; i + 4 <= datalen; i += 4) {
        int a = b64_value((unsigned char)in[i], url), b = b64_value((unsigned char)in[i + 1], url);
        int c = b64_value((unsigned char)in[i + 2], url),
            d = b64_value((unsigned char)in[i + 3], url);
        if ((a | b | c | d) < 0)
            goto fail;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        *p++ = (uint8_t)(v >> 16);
        *p++ = (uint8_t)(v >> 8);
        *p++ = (uint8_t)v;
    }
    if (rem >= 2) {
        int a = b64_value((unsigned char)in[i], url), b = b64_value((unsigned char)in[i + 1], url);
        int c = rem == 3 ? b64_value((unsigned char)in[i + 2], url) : 0;
        if ((a | b | c) < 0)
            goto fail;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* Bits below the last full byte must be zero, otherwise several
         * strings would decode to the same bytes. */
        if (rem == 2 ? (v & 0xffff) != 0 : (v & 0xff) != 0)
            goto fail;
        *p++ = (uint8_t)(v >> 16);
        if (rem == 3)
            *p++ = (uint8_t)(v >> 8);
    }
    *p = '\0';
    *out = buf;
    *outlen = n;
    return 0;

fail:
    free(buf);
    return -1;
}

int b64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (in == NULL || inlen % 4 != 0)
        return -1;
    /* Up to two '=' and only at the very end; one elsewhere is rejected
     * by b64_value like any other foreign character. */
    size_t datalen = inlen;
    if (datalen > 0 && in[datalen - 1] == '=')
        datalen--;
    if (datalen > 0 && in[datalen - 1] == '=')
        datalen--;
    return decode(in, datalen, 0, out, outlen);
}

int b64url_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (in == NULL)
        return -1;
    return decode(in, inlen, 1, out, outlen);
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

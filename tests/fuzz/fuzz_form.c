/* fuzz_form.c - libFuzzer harness: arbitrary bytes as an
 * application/x-www-form-urlencoded body (http/form.c, the Twilio webhook's
 * parser). A body that parses serialises back to one that parses to the same
 * pairs, and serialising is then stable; only a '%' or a NUL byte can make
 * a body malformed. */
#include "base/buf.h"
#include "http/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void encode(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '*')
            buf_putc(b, (char)*p);
        else if (*p == ' ')
            buf_putc(b, '+');
        else
            buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}

static void serialise(const form_t *f, buf_t *b)
{
    for (size_t i = 0; i < f->n; i++) {
        if (i)
            buf_putc(b, '&');
        encode(b, f->pairs[i].name);
        buf_putc(b, '=');
        encode(b, f->pairs[i].value);
    }
}

static void same(const form_t *a, const form_t *b)
{
    if (a->n != b->n)
        abort();
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->pairs[i].name, b->pairs[i].name) != 0 ||
            strcmp(a->pairs[i].value, b->pairs[i].value) != 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    form_t f;
    hd_err_t err;
    if (form_parse((const char *)data, size, &f, &err) != 0) {
        if (memchr(data, '%', size) == NULL && memchr(data, '\0', size) == NULL)
            abort(); /* nothing else is malformed */
        if (f.n != 0 || f.pairs != NULL)
            abort(); /* a failure hands out nothing */
        return 0;
    }
    size_t amps = 0;
    for (size_t i = 0; i < size; i++)
        amps += data[i] == '&';
    if (f.n > amps + 1)
        abort();
    for (size_t i = 0; i < f.n; i++)
        if (form_get(&f, f.pairs[i].name) == NULL)
            abort();
    buf_t b1, b2;
    buf_init(&b1);
    buf_init(&b2);
    serialise(&f, &b1);
    form_t g;
    if (form_parse(b1.data ? b1.data : "", b1.len, &g, &err) != 0)
        abort(); /* what we serialise always parses */
    same(&f, &g);
    serialise(&g, &b2);
    if (b1.len != b2.len || (b1.len && memcmp(b1.data, b2.data, b1.len) != 0))
        abort();
    buf_free(&b1);
    buf_free(&b2);
    form_free(&g);
    form_free(&f);
    return 0;
}

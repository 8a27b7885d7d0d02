/* fuzz_query.c - libFuzzer harness: query string values as the server reads
 * them (http/query.c), history cursors (store/cursor.c) and the RFC 3339
 * times of ?from= and ?to= (base/timefmt.c).
 *
 *   - a value the server lets through decodes to text: no NUL, valid UTF-8;
 *     percent-encoding any bytes and decoding gives them back;
 *   - a cursor that reads is canonical: 1 to 16 digits and a UUID's shape,
 *     and encoding what it says gives back the same cursor; a cursor made
 *     from the input's fields reads back as them;
 *   - a time that parses formats to one that parses to the same second. */
#include "base/buf.h"
#include "base/timefmt.h"
#include "base/utf8.h"
#include "http/query.h"
#include "store/cursor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_value(const char *raw, const uint8_t *data, size_t size)
{
    size_t n;
    char *d = query_decode(raw, &n);
    if (n > strlen(raw))
        abort();
    const char *why = query_problem(raw);
    bool text = memchr(d, '\0', n) == NULL && utf8_valid(d, n);
    if ((why == NULL) != text)
        abort();
    free(d);
    /* any bytes (NUL included), percent-encoded, come back */
    static const char hex[] = "0123456789abcdef";
    buf_t e;
    buf_init(&e);
    for (size_t i = 0; i < size; i++) {
        if (data[i] == ' ')
            buf_putc(&e, '+');
        else if (data[i] > 0x20 && data[i] < 0x7f && data[i] != '%' && data[i] != '+' &&
                 data[i] != '&' && data[i] != '=')
            buf_putc(&e, (char)data[i]);
        else
            buf_printf(&e, "%%%c%c", hex[data[i] >> 4], hex[data[i] & 15]);
    }
    buf_putc(&e, '\0');
    d = query_decode(e.data, &n);
    if (n != size || (size && memcmp(d, data, size) != 0))
        abort();
    bool text2 = memchr(data, '\0', size) == NULL && utf8_valid((const char *)data, size);
    if ((query_problem(e.data) == NULL) != text2)
        abort();
    free(d);
    buf_free(&e);
}

static void check_cursor(const char *raw, const uint8_t *data, size_t size)
{
    char *ts = NULL, *id = NULL;
    hd_err_t err;
    if (cursor_decode(raw, &ts, &id, &err) == 0) {
        size_t digits = strlen(ts);
        if (digits < 1 || digits > 16 || strspn(ts, "0123456789") != digits || strlen(id) != 36)
            abort();
        char *again = cursor_encode(ts, id);
        if (strcmp(again, raw) != 0)
            abort(); /* one cursor per position */
        free(again);
    } else if (ts != NULL || id != NULL || strncmp(err.msg, "cursor:", 7) != 0) {
        abort(); /* the API answers 400 on "cursor:" errors */
    }
    free(ts);
    free(id);
    if (size < 24)
        return;
    /* a cursor made of fields from the input reads back as them */
    char us[24], uuid[37];
    unsigned long long t = 0;
    for (int i = 0; i < 7; i++)
        t = t << 8 | data[i];
    snprintf(us, sizeof(us), "%llu", t % 10000000000000000ULL);
    const uint8_t *u = data + 8;
    snprintf(uuid, sizeof(uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    char *c = cursor_encode(us, uuid);
    if (cursor_decode(c, &ts, &id, &err) != 0 || strcmp(ts, us) != 0 || strcmp(id, uuid) != 0)
        abort();
    free(c);
    free(ts);
    free(id);
}

static void check_time(const char *raw)
{
    int64_t t, t2;
    if (timefmt_parse(raw, &t) != 0)
        return;
    char out[64];
    timefmt_format(t, out);
    if (timefmt_parse(out, &t2) != 0 || t2 != t)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_value(s, data, size);
    check_cursor(s, data, size);
    check_time(s);
    free(s);
    return 0;
}

/* query.c - see query.h. */
#include "http/query.h"
#include "base/buf.h"
#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *query_decode(const char *raw, size_t *len)
{
    size_t n = strlen(raw);
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (raw[i] == '+') {
            *o++ = ' ';
        } else if (raw[i] == '%' && i + 2 < n && (h = hexval(raw[i + 1])) >= 0 &&
                   (l = hexval(raw[i + 2])) >= 0) {
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = raw[i];
        }
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

const char *query_problem(const char *raw)
{
    size_t n;
    char *d = query_decode(raw, &n);
    const char *why = memchr(d, '\0', n)  ? "contains a NUL byte (%00)"
                      : !utf8_valid(d, n) ? "is not valid UTF-8"
                                          : NULL;
    free(d);
    return why;
}

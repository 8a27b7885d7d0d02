/* pg_array.c - PostgreSQL array literals (see pg_array.h). */
#include "store/pg_array.h"

#include <stdio.h>

void pg_arr_add(buf_t *b, const char *s)
{
    buf_putc(b, b->len == 0 ? '{' : ',');
    if (s == NULL) {
        buf_puts(b, "NULL");
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

void pg_arr_addf(buf_t *b, const char *fmt, long long v)
{
    char t[32];
    snprintf(t, sizeof(t), fmt, v);
    pg_arr_add(b, t);
}

char *pg_arr_end(buf_t *b)
{
    if (b->len == 0)
        buf_putc(b, '{');
    buf_putc(b, '}');
    return buf_steal(b);
}

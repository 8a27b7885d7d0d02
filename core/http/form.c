/* form.c - see form.h. */
#include "http/form.h"
#include "base/buf.h"

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

/* Decodes s[0..n) (at offset base of the body) into a new string. */
static char *decode(const char *s, size_t n, size_t base, hd_err_t *err)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            int h = i + 1 < n ? hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(out);
                hd_err_set(err, "malformed %%-escape at byte %zu", base + i);
                return NULL;
            }
            if (h == 0 && l == 0) {
                free(out);
                hd_err_set(err, "NUL byte (%%00) at byte %zu", base + i);
                return NULL;
            }
            *o++ = (char)(h << 4 | l);
            i += 2;
        } else if (s[i] == '\0') {
            free(out);
            hd_err_set(err, "NUL byte at byte %zu", base + i);
            return NULL;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

int form_parse(const char *data, size_t len, form_t *out, hd_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (data == NULL || len == 0)
        return 0;
    size_t cap = 0;
    for (size_t start = 0; start <= len;) {
        const char *amp = memchr(data + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - data) : len;
        if (end > start) {
            const char *eq = memchr(data + start, '=', end - start);
            size_t nend = eq ? (size_t)(eq - data) : end;
            char *name = decode(data + start, nend - start, start, err);
            char *value = name && eq ? decode(eq + 1, end - nend - 1, nend + 1, err)
                                     : (name ? xstrdup("") : NULL);
            if (name == NULL || value == NULL) {
                free(name);
                form_free(out);
                return -1;
            }
            if (out->n == cap) {
                cap = cap ? 2 * cap : 16;
                form_pair_t *p = realloc(out->pairs, cap * sizeof(*p));
                if (p == NULL)
                    abort(); /* OOM is fatal (buf.h) */
                out->pairs = p;
            }
            out->pairs[out->n++] = (form_pair_t){name, value};
        }
        start = end + 1;
    }
    return 0;
}

const char *form_get(const form_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->pairs[i].name, name) == 0)
            return f->pairs[i].value;
    return NULL;
}

void form_free(form_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->pairs[i].name);
        free(f->pairs[i].value);
    }
    free(f->pairs);
    memset(f, 0, sizeof(*f));
}

/* scope.c - scope names, parsing and formatting (see scope.h). */
#include "base/scope.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} scopes[] = {{"send", SCOPE_SEND}, {"read", SCOPE_READ}, {"admin", SCOPE_ADMIN}};

const char *scope_name(unsigned scope)
{
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++)
        if (scopes[i].bit == scope)
            return scopes[i].name;
    return "?";
}

int scope_parse(const char *s, unsigned *mask, hd_err_t *err)
{
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        bool found = false;
        for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
            if (strlen(scopes[i].name) == n && strncmp(scopes[i].name, p, n) == 0) {
                m |= scopes[i].bit;
                found = true;
            }
        }
        if (!found)
            return hd_err_set(err, "unknown scope \"%.*s\" (expected send, read, admin)", (int)n,
                              p);
        p += n;
    }
    if (m == 0)
        return hd_err_set(err, "no scope given (expected send, read, admin)");
    *mask = m;
    return 0;
}

void scope_format(unsigned mask, char *out, size_t n)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        if (!(mask & scopes[i].bit))
            continue;
        int w = snprintf(out + off, n - off, "%s%s", off ? " " : "", scopes[i].name);
        if (w < 0 || (size_t)w >= n - off)
            return;
        off += (size_t)w;
    }
}

/* router.c - segment-wise path matching (see router.h). */
#include "http/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void router_init(router_t *r)
{
    memset(r, 0, sizeof(*r));
}

int router_add(router_t *r, const char *method, const char *pattern, void *handler, unsigned scope,
               body_kind_t body)
{
    if (r->count == ROUTER_MAX_ROUTES || pattern[0] != '/')
        return -1;
    route_t *rt = &r->routes[r->count];
    rt->method = method;
    rt->pattern = pattern;
    rt->handler = handler;
    rt->scope = scope;
    rt->body = body;
    rt->index = r->count;
    r->count++;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into out; a capture may not decode to '/' or
 * NUL (that would let a path segment smuggle structure). */
static bool decode(const char *s, size_t n, char *out, size_t outn)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = (char)(h * 16 + l);
            if (c == '\0' || c == '/')
                return false;
            i += 2;
        }
        if (o + 1 >= outn)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return o > 0;
}

/* Matches one pattern against path, filling captures. */
static bool match_pattern(const char *pattern, const char *path, route_match_t *m)
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
        if (plen > 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (np == ROUTER_MAX_PARAMS || slen == 0)
                return false;
            snprintf(m->names[np], sizeof(m->names[np]), "%.*s", (int)(plen - 2), p + 1);
            if (!decode(s, slen, m->values[np], sizeof(m->values[np])))
                return false;
            np++;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
    }
    if (*p || *s)
        return false;
    m->nparams = np;
    return true;
}

route_status_t router_match(const router_t *r, const char *method, const char *path,
                            route_match_t *m)
{
    memset(m, 0, sizeof(*m));
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    bool path_known = false;
    size_t off = 0;
    for (int i = 0; i < r->count; i++) {
        const route_t *rt = &r->routes[i];
        route_match_t tmp;
        memset(&tmp, 0, sizeof(tmp));
        if (!match_pattern(rt->pattern, path, &tmp))
            continue;
        if (strcmp(rt->method, want) == 0) {
            *m = tmp;
            m->route = rt;
            return ROUTE_FOUND;
        }
        path_known = true;
        if (strstr(m->allow, rt->method) == NULL) {
            int w = snprintf(m->allow + off, sizeof(m->allow) - off, "%s%s", off ? ", " : "",
                             rt->method);
            if (w > 0 && (size_t)w < sizeof(m->allow) - off)
                off += (size_t)w;
        }
    }
    return path_known ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

const char *router_param(const route_match_t *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}

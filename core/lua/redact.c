/* redact.c - script errors without personal data (see redact.h). */
#include "lua/redact.h"
#include "base/buf.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 4096 /* a context holds at most 64 KiB: far fewer values */
#define MAX_DEPTH  16

typedef struct secret {
    const char *value;
    size_t len;
    char path[96];
    bool number;
} secret_t;

typedef struct secrets {
    secret_t *v;
    int n;
} secrets_t;

static void add(secrets_t *s, const char *value, const char *path, bool number)
{
    size_t len = strlen(value);
    if (len < 2 || s->n >= MAX_VALUES)
        return;
    secret_t *e = &s->v[s->n++];
    e->value = value;
    e->len = len;
    e->number = number;
    snprintf(e->path, sizeof(e->path), "%s", path);
}

/* Numbers as Lua prints them, kept in one arena (numbers have no text of
 * their own in cJSON). */
typedef struct numtext {
    char text[32];
} numtext_t;

static void walk(secrets_t *s, numtext_t *nums, int *nnum, const cJSON *v, const char *path,
                 int depth)
{
    if (depth > MAX_DEPTH || v == NULL)
        return;
    if (cJSON_IsString(v)) {
        add(s, v->valuestring, path, false);
    } else if (cJSON_IsNumber(v) && *nnum < MAX_VALUES && isfinite(v->valuedouble)) {
        double d = v->valuedouble;
        char *t = nums[(*nnum)++].text;
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(t, sizeof(nums->text), "%lld", (long long)d);
        else
            snprintf(t, sizeof(nums->text), "%.14g", d);
        add(s, t, path, true);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, v)
        {
            char sub[96];
            int n;
            i++;
            if (cJSON_IsArray(v))
                n = snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            else
                n = snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "",
                             c->string ? c->string : "?");
            /* the path only labels a value: a long one is cut, and marked */
            if (n < 0)
                memcpy(sub, "?", 2);
            else if ((size_t)n >= sizeof(sub))
                memcpy(sub + sizeof(sub) - 4, "...", 4);
            walk(s, nums, nnum, c, sub, depth + 1);
        }
    }
}

static int by_length(const void *a, const void *b)
{
    const secret_t *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || (unsigned char)c >= 0x80;
}

char *redact_text(const char *text, cJSON *const *vals, int n)
{
    if (text == NULL)
        return NULL;
    secrets_t s = {calloc(MAX_VALUES, sizeof(secret_t)), 0};
    numtext_t *nums = calloc(MAX_VALUES, sizeof(numtext_t));
    int nnum = 0;
    if (s.v == NULL || nums == NULL) {
        free(s.v);
        free(nums);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        char top[16] = "";
        if (!cJSON_IsObject(vals[i]) && !cJSON_IsArray(vals[i]))
            snprintf(top, sizeof(top), "arg%d", i + 1);
        walk(&s, nums, &nnum, vals[i], top, 0);
    }
    /* longest first: a value that contains another is masked whole */
    qsort(s.v, (size_t)s.n, sizeof(secret_t), by_length);
    buf_t out;
    buf_init(&out);
    size_t tlen = strlen(text);
    for (size_t at = 0; at < tlen;) {
        const secret_t *hit = NULL;
        for (int k = 0; k < s.n && hit == NULL; k++) {
            const secret_t *e = &s.v[k];
            if (e->len > tlen - at || text[at] != e->value[0] ||
                memcmp(text + at, e->value, e->len) != 0)
                continue;
            bool whole = (at == 0 || !word_char(text[at - 1])) &&
                         (at + e->len == tlen || !word_char(text[at + e->len]));
            if (whole || (!e->number && e->len >= REDACT_MIN_BYTES))
                hit = e;
        }
        if (hit == NULL) {
            buf_putc(&out, text[at++]);
            continue;
        }
        if (hit->number)
            buf_printf(&out, "<%s: a number>", hit->path);
        else
            buf_printf(&out, "<%s: %zu bytes>", hit->path, hit->len);
        at += hit->len;
    }
    free(s.v);
    free(nums);
    char *r = strdup(out.data ? out.data : "");
    buf_free(&out);
    return r;
}

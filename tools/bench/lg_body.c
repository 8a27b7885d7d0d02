/* lg_body.c - see lg_body.h. */
#include "lg_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

lg_body_t *lg_bodies_load(const char *file, long long clients, size_t *n_out)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        perror(file);
        exit(2);
    }
    lg_body_t *bodies = NULL;
    size_t nbodies = 0, cap = 0;
    char *line = NULL;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        bodies = realloc(bodies, (nbodies + 1) * sizeof(lg_body_t));
        if (bodies == NULL)
            fail("out of memory");
        lg_body_t *b = &bodies[nbodies++];
        memset(b, 0, sizeof(*b));
        const char *p = line;
        for (;;) {
            const char *id = strstr(p, "$ID"), *cl = strstr(p, "$CLIENT");
            const char *hit = id && (cl == NULL || id < cl) ? id : cl;
            size_t len = hit ? (size_t)(hit - p) : strlen(p);
            b->seg = realloc(b->seg, (b->nseg + 1) * sizeof(char *));
            b->seg_len = realloc(b->seg_len, (b->nseg + 1) * sizeof(size_t));
            b->token = realloc(b->token, b->nseg + 1);
            if (b->seg == NULL || b->seg_len == NULL || b->token == NULL)
                fail("out of memory");
            b->seg[b->nseg] = strndup(p, len);
            b->seg_len[b->nseg] = len;
            b->token[b->nseg++] = hit == NULL ? 0 : hit == id ? 'I' : 'C';
            if (hit == NULL)
                break;
            if (hit == cl && clients <= 0)
                fail("a body uses $CLIENT: give --clients N");
            p = hit + (hit == id ? 3 : 7);
        }
    }
    free(line);
    fclose(f);
    if (nbodies == 0)
        fail("--body-file has no lines");
    *n_out = nbodies;
    return bodies;
}

size_t lg_body_len(const lg_body_t *b, size_t idlen, size_t clen)
{
    size_t len = 0;
    for (size_t i = 0; i < b->nseg; i++)
        len += b->seg_len[i] + (b->token[i] == 'I' ? idlen : b->token[i] ? clen : 0);
    return len;
}

char *lg_body_write(const lg_body_t *b, char *o, const char *id, size_t idlen, const char *client,
                    size_t clen)
{
    for (size_t i = 0; i < b->nseg; i++) {
        memcpy(o, b->seg[i], b->seg_len[i]);
        o += b->seg_len[i];
        if (b->token[i] == 'I') {
            memcpy(o, id, idlen);
            o += idlen;
        } else if (b->token[i] == 'C') {
            memcpy(o, client, clen);
            o += clen;
        }
    }
    return o;
}

/*
 * lg_body.h - the load generator's request bodies (tools/bench/loadgen.c):
 * one body per line of a file, each "$ID" and "$CLIENT" filled in per
 * request.
 */
#ifndef HERALD_BENCH_LG_BODY_H
#define HERALD_BENCH_LG_BODY_H

#include <stddef.h>

typedef struct { /* a body line split at each "$ID" and "$CLIENT" */
    char **seg;
    size_t *seg_len;
    char *token; /* after seg[i]: 'I' ($ID), 'C' ($CLIENT) or 0 (the last) */
    size_t nseg;
} lg_body_t;

/* The non-empty lines of file (*n of them). Exits with a message when the
 * file cannot be read, has no lines, or uses $CLIENT without clients > 0. */
lg_body_t *lg_bodies_load(const char *file, long long clients, size_t *n);

/* The length of b with $ID and $CLIENT of these lengths. */
size_t lg_body_len(const lg_body_t *b, size_t idlen, size_t clen);

/* Writes b filled in to o (lg_body_len bytes); returns the end. */
char *lg_body_write(const lg_body_t *b, char *o, const char *id, size_t idlen, const char *client,
                    size_t clen);

#endif

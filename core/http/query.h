/*
 * query.h - query string values as the server reads them. libmicrohttpd
 * splits the query at '&' and '=' and is told not to unescape (server.c's
 * on_unescape): these decode a raw key or value once, and say why one is not
 * text. Pure, so tests/fuzz/fuzz_query.c reaches them.
 */
#ifndef HERALD_HTTP_QUERY_H
#define HERALD_HTTP_QUERY_H

#include <stddef.h>

/* A raw query key or value decoded ('+' is a space, %XX a byte; a '%' not
 * followed by two hex digits stays as it is); *len is its length, which may
 * include NUL bytes. Caller frees. */
char *query_decode(const char *raw, size_t *len);

/* Why the raw key or value is not text once decoded ("contains a NUL byte
 * (%00)", "is not valid UTF-8"), or NULL when it is. */
const char *query_problem(const char *raw);

#endif

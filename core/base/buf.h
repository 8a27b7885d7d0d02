/*
 * buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Allocation failure aborts the process: Herald treats OOM as fatal rather
 * than threading an error through every append.
 */
#ifndef HERALD_BASE_BUF_H
#define HERALD_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);
void buf_append(buf_t *b, const void *data, size_t len);
/* Makes room for extra more bytes (and the NUL): b->data + b->len may then
 * be written directly up to that many bytes, then b->len advanced. */
void buf_reserve(buf_t *b, size_t extra);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the body of a JSON string (escaped, without quotes). */
void buf_json_escape(buf_t *b, const char *s);
/* Returns the data (caller frees) and leaves b empty. Never NULL. */
char *buf_steal(buf_t *b);

/* Appends the whole file at path to b; -1 (errno set) when it cannot be read. */
int buf_read_file(buf_t *b, const char *path);

/* strdup that aborts on OOM. */
char *xstrdup(const char *s);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);

#endif
